"""CLIP recipes: contrastive training (`recipes/clip_train.py`) and zero-shot evaluation (`recipes/clip_zero_shot.py`).

Zero-shot tasks, each writing its figures into eval_results.json and its pictures into output_dir:
- `classify`: zero-shot classification; the bare class name vs one template vs the template ensemble; top-1,
  top-5, mean per-class recall; confusion matrix PNG.
- `retrieval`: image->text and text->image recall@1/5/10 on held-out image/caption pairs; a PNG of the top
  images for a few captions.
- `search`: text queries -> the top-k images of a folder, as PNG grids and JSON.
- `ood`: out-of-distribution detection from cosines to the class prompts (MCM and 1 - max cosine), AUROC/AUPRC,
  score histograms.
- `failures`: attribute binding: does the model prefer the true caption over the same words with the colours
  swapped (and, as a control, over a caption with a colour that is not in the image)? A PNG of the failures.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoProcessor, set_seed

from .. import hub
from ..data import synthetic
from ..models.sources import resolve
from ..outputs import RESULTS_FILE, run_directory, save_run
from ..settings.baselines import (
    CLIP_TASKS,
    ContrastiveModelArguments,
    ContrastiveTrainingArguments,
    ImageDataArguments,
    ZeroShotArguments,
)
from . import plots
from . import zero_shot as zs
from .contrastive import ContrastiveCollator, ContrastiveTrainer
from .image_data import digits_dataset, load_captions, load_classification

logger = logging.getLogger(__name__)

TASKS = CLIP_TASKS
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}


def load(model_args: ContrastiveModelArguments, use_cpu: bool = False):
    """Model (safetensors only) and processor of a contrastive checkpoint, on the GPU when there is one."""
    path = resolve(model_args.model_name_or_path)
    common = {"revision": model_args.model_revision, "trust_remote_code": model_args.trust_remote_code}
    processor = AutoProcessor.from_pretrained(path, **common)
    model = AutoModel.from_pretrained(path, use_safetensors=True, **common)
    if torch.cuda.is_available() and not use_cpu:
        model = model.cuda()
    return model.eval(), processor


# --- the zero-shot tasks ------------------------------------------------------------------------------------------


def classify(model, processor, test, class_names, templates, batch_size, out: Path) -> dict:
    images = zs.embed_images(model, processor, test["image"], batch_size, desc="classify: images")
    labels = torch.tensor(test["label"])
    variants = {"bare_name": ("{}",), "single_template": templates[:1], "ensemble": templates}
    results = {}
    for name, tpls in variants.items():
        similarity = images @ zs.class_embeddings(model, processor, class_names, tpls).T
        results[name] = zs.classification_metrics(similarity, labels, len(class_names))
        if name == "ensemble":
            predicted = similarity.argmax(dim=1)
            counts = zs.confusion_matrix(predicted, labels, len(class_names))
            results[name]["per_class_recall"] = {
                n: float(counts[i, i] / max(counts[i].sum(), 1)) for i, n in enumerate(class_names)
            }
            plots.confusion_matrix_png(
                counts, class_names, out / "confusion_matrix.png", f"zero-shot, {len(tpls)}-template ensemble"
            )
    results["templates"] = list(templates)
    results["num_images"] = len(test)
    return results


def _pairs(model, processor, captions, batch_size):
    """Image and caption embeddings of held-out pairs, and relevant[i, j]: caption j describes image i."""
    images = zs.embed_images(model, processor, captions["image"], batch_size, desc="retrieval: images")
    texts = zs.embed_texts(model, processor, captions["caption"])
    canonical = captions["canonical"]
    return images, texts, torch.tensor([[a == b for b in canonical] for a in canonical])


def retrieval(model, processor, test, batch_size, out: Path, show: int = 4) -> dict:
    images, texts, relevant = _pairs(model, processor, test, batch_size)
    results = zs.retrieval_metrics(images, texts, relevant)
    results["num_pairs"] = len(test)
    # The top images for a few captions, to look at.
    shown, labels = [], []
    for q in range(min(show, len(test))):
        for rank, i in enumerate((texts[q] @ images.T).argsort(descending=True)[:5].tolist()):
            shown.append(test[i]["image"])
            mark = "ok" if relevant[i, q] else "x"
            labels.append(f"{test[q]['caption']} #{rank + 1} {mark}" if rank == 0 else f"#{rank + 1} {mark}")
    plots.image_grid_png(shown, labels, out / "retrieval_examples.png", columns=5)
    return results


def image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"search_folder {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    return files


def search(model, processor, folder: Path, queries: list[str], top_k: int, batch_size: int, out: Path) -> dict:
    """Rank the images of `folder` for each query; writes search_<n>.png grids and search_results.json."""
    from PIL import Image

    files = image_files(folder)
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                images.append(im.convert("RGB"))
        except OSError as err:
            raise ValueError(f"search_folder: cannot read image {f}: {err}. Remove or replace the file.") from err
    embeds = zs.embed_images(model, processor, images, batch_size, desc="search: images")
    found = {}
    for n, query in enumerate(queries):
        scores = embeds @ zs.embed_texts(model, processor, [query])[0]
        top = scores.argsort(descending=True)[:top_k].tolist()
        found[query] = [{"path": str(files[i]), "score": round(scores[i].item(), 4)} for i in top]
        labels = [f"{scores[i].item():.3f} {files[i].name}" for i in top]
        plots.image_grid_png([images[i] for i in top], labels, out / f"search_{n}.png")
    (out / "search_results.json").write_text(json.dumps(found, indent=2) + "\n")
    return {"num_images": len(files), "queries": queries, "folder": str(folder)}


def write_search_folder(data_args: ImageDataArguments, seed: int, folder: Path, n: int = 96) -> Path:
    """Held-out synthetic images as files, for the offline demo of `search` over a folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(
        synthetic.make_caption_dataset(n, seed=seed + 2, image_size=data_args.synthetic_image_size)
    ):
        row["image"].save(folder / f"{i:03d}_{row['canonical'].replace(' ', '_')}.png")
    return folder


def _ood_images(args: ZeroShotArguments, n: int, seed: int):
    """Up to `n` out-of-distribution images (as many as in-distribution ones, when the source has that many)."""
    if args.ood_dataset_name == "digits":
        digits = digits_dataset().shuffle(seed=seed)
        return digits.select(range(min(n, len(digits))))["image"]
    if args.ood_dataset_name == "synthetic":
        return synthetic.make_caption_dataset(n, seed=seed + 3)["image"]
    data = ImageDataArguments(
        dataset_name=args.ood_dataset_name,
        dataset_config=args.ood_dataset_config,
        image_column=args.ood_image_column,
        max_eval_samples=n,
    )
    _, test, _ = load_classification(data, seed, with_train=False)
    return test["image"]


def ood(model, processor, test, class_names, templates, args: ZeroShotArguments, out: Path) -> dict:
    """In-distribution = the classification test images; OOD = `ood_dataset_name` images (as many)."""
    class_embeds = zs.class_embeddings(model, processor, class_names, templates)
    id_embeds = zs.embed_images(model, processor, test["image"], args.batch_size, desc="ood: in-distribution")
    ood_embeds = zs.embed_images(
        model, processor, _ood_images(args, len(test), args.seed), args.batch_size, desc="ood: out-of-distribution"
    )
    id_scores = zs.ood_scores(id_embeds, class_embeds, args.ood_temperature)
    ood_scores = zs.ood_scores(ood_embeds, class_embeds, args.ood_temperature)
    results = {"ood_dataset": args.ood_dataset_name, "num_in": len(id_embeds), "num_out": len(ood_embeds)}
    for score in id_scores:
        results[score] = zs.detection_metrics(id_scores[score], ood_scores[score])
        plots.histograms_png(
            {"in-distribution": id_scores[score], f"OOD ({args.ood_dataset_name})": ood_scores[score]},
            out / f"ood_{score}_histogram.png",
            f"{score}: AUROC {results[score]['auroc']:.3f}, AUPRC {results[score]['auprc']:.3f}",
            "1 - max cosine" if score == "max_cosine" else "- max softmax(cosine / T)",
        )
    return results


# Probe name -> (true caption column, distractor column) of synthetic.make_binding_dataset.
PROBES = {
    "swapped_attributes": ("caption", "swapped"),
    "replaced_attribute": ("caption", "replaced"),
    "swapped_relation": ("relation", "relation_swapped"),
}


def failures(model, processor, args: ZeroShotArguments, out: Path, show: int = 12) -> dict:
    """Caption-selection accuracy per probe (chance 0.5), and a PNG of the images where the model preferred the
    wrong caption."""
    probes = synthetic.make_binding_dataset(args.binding_samples, seed=args.seed + 4)
    images = zs.embed_images(model, processor, probes["image"], args.batch_size, desc="failures: images")
    results: dict = {"num_probes": len(probes), "chance": 0.5}
    shown, labels = [], []
    for name, (true, distractor) in PROBES.items():
        correct = zs.caption_selection(
            images,
            zs.embed_texts(model, processor, probes[true]),
            zs.embed_texts(model, processor, probes[distractor]),
        )
        results[f"{name}_accuracy"] = float(correct.mean())
        wrong = [i for i in range(len(probes)) if not correct[i]]
        results[f"{name}_examples"] = [
            {"true": probes[i][true], "preferred": probes[i][distractor]} for i in wrong[:5]
        ]
        for i in wrong[: show // len(PROBES)]:
            shown.append(probes[i]["image"])
            labels.append(f"{name}: chose '{probes[i][distractor]}'")
    if shown:
        plots.image_grid_png(shown, labels, out / "failure_cases.png", columns=4, cell=180)
    return results


def run_zero_shot(data_args: ImageDataArguments, model_args: ContrastiveModelArguments, args: ZeroShotArguments):
    started = time.time()
    with run_directory(args.output_dir, args.overwrite_output_dir) as (out, _):
        model, processor = load(model_args, args.use_cpu)
        templates = tuple(args.templates or zs.TEMPLATES)
        results: dict = {"model_name_or_path": model_args.model_name_or_path, "dataset_name": data_args.dataset_name}
        test = class_names = None
        if {"classify", "ood"} & set(args.tasks):
            _, test, class_names = load_classification(data_args, args.seed, with_train=False)
        if "classify" in args.tasks:
            results["classify"] = classify(model, processor, test, class_names, templates, args.batch_size, out)
        if "retrieval" in args.tasks:
            caption_args = ImageDataArguments(
                dataset_name=args.caption_dataset_name,
                caption_column=data_args.caption_column,
                max_eval_samples=data_args.max_eval_samples,
                synthetic_image_size=data_args.synthetic_image_size,
            )
            _, captions = load_captions(caption_args, args.seed, with_train=False)
            results["retrieval"] = retrieval(model, processor, captions, args.batch_size, out)
        if "search" in args.tasks:
            folder = Path(args.search_folder) if args.search_folder else None
            if folder is None:
                folder = write_search_folder(data_args, args.seed, out / "search_images")
            elif not folder.is_dir():
                raise ValueError(f"search_folder {folder} is not a directory of images.")
            results["search"] = search(model, processor, folder, args.search_queries, args.top_k, args.batch_size, out)
        if "ood" in args.tasks:
            results["ood"] = ood(model, processor, test, class_names, templates, args, out)
        if "failures" in args.tasks:
            results["failures"] = failures(model, processor, args, out)
        results["wall_time_seconds"] = round(time.time() - started, 1)
        (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    print_zero_shot_summary(results, out)
    return results


def print_zero_shot_summary(results: dict, out: Path) -> None:
    lines = [f"\nZero-shot results of {results['model_name_or_path']}:"]
    if "classify" in results:
        c = results["classify"]
        for name in ("bare_name", "single_template", "ensemble"):
            top5 = f", top-5 {c[name]['top5']:.3f}" if "top5" in c[name] else ""
            lines.append(
                f"  classify ({name}): top-1 {c[name]['top1']:.3f}{top5}, "
                f"mean per-class recall {c[name]['mean_per_class_recall']:.3f}"
            )
    if "retrieval" in results:
        r = results["retrieval"]
        lines.append(
            "  retrieval: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items() if k.startswith(("image_", "text_")))
        )
    if "ood" in results:
        o = results["ood"]
        for score in ("mcm", "max_cosine"):
            lines.append(
                f"  ood vs {o['ood_dataset']} ({score}): AUROC {o[score]['auroc']:.3f}, AUPRC {o[score]['auprc']:.3f}"
            )
    if "failures" in results:
        f = results["failures"]
        probes = ", ".join(f"{name} {f[name + '_accuracy']:.3f}" for name in PROBES)
        lines.append(f"  caption selection (chance 0.5): {probes}")
    lines.append(f"Wrote {out / RESULTS_FILE} and the plots to {out}")
    print("\n".join(lines))


# --- contrastive training ------------------------------------------------------------------------------------------


def zero_shot_figures(model, processor, captions, batch_size, classes=None, class_names=None, templates=()) -> dict:
    """The before/after figures of contrastive training: retrieval recall@1/5 on held-out pairs and, when there
    are classes, zero-shot top-1 with the template ensemble."""
    images, texts, relevant = _pairs(model, processor, captions, batch_size)
    recall = zs.retrieval_metrics(images, texts, relevant, ks=(1, 5))
    figures = {k.replace("recall@", "r"): v for k, v in recall.items()}
    if classes is not None:
        images = zs.embed_images(model, processor, classes["image"], batch_size, desc="zero-shot top-1")
        similarity = images @ zs.class_embeddings(model, processor, class_names, templates).T
        figures["zero_shot_top1"] = zs.classification_metrics(similarity, classes["label"], len(class_names))["top1"]
    return figures


def run_contrastive_training(
    data_args: ImageDataArguments, model_args: ContrastiveModelArguments, training_args: ContrastiveTrainingArguments
) -> dict:
    """Train a CLIP/SigLIP model on image/caption pairs; zero-shot figures on held-out data before and after."""
    started = time.time()
    set_seed(training_args.seed)
    push = hub.take_over_push(training_args)  # checks hub_model_id now; our card, not Trainer's, is published
    with run_directory(
        training_args.output_dir, training_args.overwrite_output_dir, training_args.resume_from_checkpoint
    ) as (out, resume):
        model, processor = load(model_args, training_args.use_cpu)
        train, test_captions = load_captions(data_args, training_args.seed)
        templates = tuple(training_args.eval_templates or zs.TEMPLATES)
        # Zero-shot classification needs classes: the synthetic shapes when training on them; else retrieval only.
        test_classes, class_names = None, None
        if data_args.dataset_name == "synthetic":
            class_data = ImageDataArguments(max_eval_samples=data_args.max_eval_samples)
            _, test_classes, class_names = load_classification(class_data, training_args.seed + 10, with_train=False)

        def figures():
            batch_size = training_args.per_device_eval_batch_size
            return zero_shot_figures(model, processor, test_captions, batch_size, test_classes, class_names, templates)

        before = figures()
        logger.info("Held-out before training: %s", before)
        training_args.remove_unused_columns = False
        trainer = ContrastiveTrainer(
            model=model,
            args=training_args,
            train_dataset=train,
            data_collator=ContrastiveCollator(processor),
            loss_name=training_args.loss,
            callbacks=hub.callbacks(training_args, push),
        )
        train_output = trainer.train(resume_from_checkpoint=resume)
        model = trainer.model
        after = figures()
        results = {f"{k}_{when}": v for when, res in (("before", before), ("after", after)) for k, v in res.items()}
        results.update(
            {
                "loss": training_args.loss,
                "train_loss": train_output.training_loss,
                "train_steps": train_output.global_step,
                "num_train_samples": len(train),
                "num_eval_pairs": len(test_captions),
                "model_name_or_path": model_args.model_name_or_path,
                "dataset_name": data_args.dataset_name,
                "wall_time_seconds": round(time.time() - started, 1),
            }
        )
        trainer.save_model(str(out))  # every rank: under ZeRO-3 saving gathers the shards collectively
        if trainer.is_world_process_zero():
            training_args.push_to_hub = push
            save_run(trainer, processor, training_args, results, out)
            print("\nHeld-out before -> after training:")
            for key in before:
                print(f"  {key}: {before[key]:.3f} -> {after[key]:.3f}")
            print(f"Wrote {out / RESULTS_FILE}, the model and the processor to {out}")
            card = hub.model_card(
                repo_id=training_args.hub_model_id or out.name,
                base_model=model_args.model_name_or_path,
                method=f"contrastive image-text training ({training_args.loss} loss)",
                tags=[training_args.loss, "contrastive"],
                datasets=[data_args.dataset_name],
                results=results,
                training_args=training_args,
                adapter=False,
                pipeline_tag="zero-shot-image-classification",
            )
            hub.publish(out, training_args, push, card)
    return results
