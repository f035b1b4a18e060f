"""The two BLIP flows: zero-shot (`recipes/blip_zero_shot.py`) and fine-tuning (`recipes/blip_train.py`).

Zero-shot, per task:
- `caption`: captions for image files, a folder or a dataset's held-out split, conditional (`prompt`) or not;
  scored with CIDEr-D and BLEU-1..4 when the rows have references;
- `vqa`: answers to a dataset's questions (or one `question` about image files / a folder); scored with VQA
  accuracy (the official leave-one-out average) when rows have 4 or more human answers, else exact match;
- `retrieval`: ITC ranking, then the top_k re-ranked with the ITM head; recall@1/5/10 both ways, before and after.

Fine-tuning (caption or vqa; LoRA or full, transformers' Trainer): the same held-out figures before and after
training, in eval_results.json and the model card; the adapter or the model (safetensors) and the processor.

Both write into `output_dir` under the output-directory policy of every recipe (`vlm_recipes.outputs`):
`eval_results.json`, `predictions.jsonl` (zero-shot) or `eval_predictions.jsonl` (training: before and after per
row), and, for rows with references, `gallery.html` (each image with its references, the prediction(s) and the
per-image score: CIDEr-D for captions).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from transformers import Trainer, set_seed

from .. import hub
from ..data.sampling import rows_of
from ..evaluation.compare import gallery_html
from ..evaluation.inference import write_jsonl
from ..evaluation.metrics import score
from ..evaluation.metrics.captions import caption_metrics
from ..evaluation.metrics.scoring import VQA_MIN_HUMANS
from ..outputs import EVAL_ROWS_FILE, RESULTS_FILE, run_directory, save_training_config
from ..outputs.checkpoints import CompleteCheckpoints
from ..settings.blip import (
    BlipDataArguments,
    BlipModelArguments,
    BlipTrainingArguments,
    BlipZeroShotArguments,
    check_synthetic_task,
)
from .data import image_files, images_dataset, load_task_splits
from .generation import CaptionCollator, VQACollator, answer_questions, generate_captions
from .modeling import base_model, load_blip, prepare_for_training
from .retrieval import retrieval

logger = logging.getLogger(__name__)


# -- held-out figures -------------------------------------------------------------------------------------------


def predict(model, processor, rows, args) -> list[str]:
    """Captions or answers for every row, in batches."""
    batch = getattr(args, "batch_size", None) or args.per_device_eval_batch_size
    if args.task == "caption":
        return generate_captions(
            model, processor, rows["image"], args.prompt, batch, args.max_new_tokens, args.num_beams
        )
    questions = rows["question"] if "question" in rows.column_names else [args.question] * len(rows)
    return answer_questions(model, processor, rows["image"], questions, batch, args.max_new_tokens, args.num_beams)


def vqa_metric(rows) -> tuple[str, str]:
    """(metric, reason): the official VQA accuracy where every question has at least `VQA_MIN_HUMANS` human answers
    (VQAv2, TextVQA: 10), else exact match."""
    fewest = min((len(a) for a in rows["answers"]), default=0)
    if fewest >= VQA_MIN_HUMANS:
        return "vqa_accuracy", (
            f"every question has {fewest}+ human answers: VQA accuracy, min(#humans who gave it / 3, 1) averaged "
            "over the leave-one-out subsets (the official VQA evaluation)"
        )
    return "exact_match", f"some questions have {fewest} reference answer(s): normalised exact match against any"


def figures(task: str, predictions: list[str], rows) -> tuple[dict, list[float], str]:
    """(held-out figures, per-row headline score, headline metric) of predictions for labelled rows."""
    if task == "caption":
        out = caption_metrics(predictions, rows["captions"])
        return {k: v for k, v in out.items() if k != "cider_scores"}, out["cider_scores"], "cider"
    name, reason = vqa_metric(rows)
    scored = score(name, predictions, rows["answers"])
    return (
        {"accuracy": scored[name], "accuracy_metric": name, "accuracy_metric_reason": reason},
        scored["scores"],
        name,
    )


def _references(rows) -> list:
    if "captions" in rows.column_names:
        return rows["captions"]
    return rows["answers"] if "answers" in rows.column_names else [None] * len(rows)


def _gallery(out: Path, title: str, rows, prompts, entries: list[tuple[str, list[str], list | None]], metric, n):
    """gallery.html through evaluate_models.py's page: image, references, each entry's prediction and score."""
    references = _references(rows)
    shown = [{"images": [rows[i]["image"]], "reference": references[i] or "(none)"} for i in range(min(n, len(rows)))]
    results = []
    for label, predictions, scores in entries:
        records = [
            {"prediction": predictions[i], "score": scores[i] if scores else 0.0, "prompt": prompts[i]}
            for i in range(len(shown))
        ]
        summary = {metric: sum(scores) / len(scores)} if scores else {}
        results.append({"label": label, "records": records, "metrics": summary})
    report = {"dataset_name": title, "num_samples": len(rows), "metrics": [metric]}
    (out / "gallery.html").write_text(gallery_html(report, shown, results, n))


def write_eval_rows(out: Path, rows) -> None:
    """eval_rows.json: which held-out rows were scored (the sample record of data/sampling.py), as every recipe
    writes it; nothing for rows that were not drawn from a dataset (image files given on the command line)."""
    sample = rows_of(rows)
    if sample is not None:
        (out / EVAL_ROWS_FILE).write_text(json.dumps(sample, indent=2) + "\n")


def _prompts(args, rows) -> list[str]:
    if args.task == "caption":
        return [args.prompt or "(unconditional)"] * len(rows)
    return rows["question"] if "question" in rows.column_names else [args.question] * len(rows)


# -- zero-shot --------------------------------------------------------------------------------------------------


def run_blip_zero_shot(data_args: BlipDataArguments, model_args: BlipModelArguments, args: BlipZeroShotArguments):
    started = time.time()
    check_synthetic_task(data_args, args.task)
    with run_directory(args.output_dir, args.overwrite_output_dir) as (out, _):
        files = image_files(args.image, args.image_dir) if (args.image or args.image_dir) else None
        model, processor = load_blip(model_args, args.task, args.use_cpu)
        results: dict = {
            "task": args.task,
            "model_name_or_path": model_args.model_name_or_path,
            "adapter_path": model_args.adapter_path,
        }
        if args.task == "retrieval":
            _, rows = load_task_splits(data_args, "retrieval", args.seed, with_train=False)
            results["dataset_name"] = data_args.dataset_name
            results["retrieval"] = retrieval(
                base_model(model), processor, rows, args.top_k, args.rerank_score, args.batch_size
            )
        else:
            if files is not None:
                rows = images_dataset(files)
                results["inputs"] = args.image_dir or "image files"
            else:
                _, rows = load_task_splits(data_args, args.task, args.seed, with_train=False)
                results["dataset_name"] = data_args.dataset_name
            predictions = predict(model, processor, rows, args)
            references = _references(rows)
            labelled = references[0] is not None
            scores, metric = None, "cider" if args.task == "caption" else "accuracy"
            if labelled:
                held_out, scores, metric = figures(args.task, predictions, rows)
                results.update(held_out)
            results.update({"prompt": args.prompt, "num_samples": len(rows)})
            records = [
                {"id": files[i].name if files else i, "prediction": p, "references": references[i]}
                | ({metric: scores[i]} if scores else {})
                | ({"question": rows[i]["question"]} if args.task == "vqa" and files is None else {})
                for i, p in enumerate(predictions)
            ]
            write_jsonl(out / "predictions.jsonl", records)
            if labelled:  # a page of scores: images without references have none to show
                entries = [(model_args.model_name_or_path, predictions, scores)]
                prompts = _prompts(args, rows)
                _gallery(out, data_args.dataset_name, rows, prompts, entries, metric, args.gallery_samples)
        results["wall_time_seconds"] = round(time.time() - started, 1)
        (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
        write_eval_rows(out, rows)
    print_summary(results, out)
    return results


def print_summary(results: dict, out: Path) -> None:
    lines = [f"\nBLIP zero-shot {results['task']} with {results['model_name_or_path']}:"]
    if "retrieval" in results:
        r = results["retrieval"]
        lines.append(f"  {r['num_images']} images, {r['num_texts']} captions; ITM re-ranks the top {r['top_k']}:")
        for key, value in r["itc"].items():
            lines.append(f"  {key}: ITC {value:.3f} -> ITM re-ranked {r['itm_rerank'][key]:.3f}")
    for key in ("cider", "bleu_4", "accuracy"):
        if key in results:
            lines.append(f"  {key}: {results[key]:.3f}")
    lines.append(f"Wrote {out / RESULTS_FILE} to {out}")
    print("\n".join(lines))


# -- fine-tuning ------------------------------------------------------------------------------------------------


class BlipTrainer(CompleteCheckpoints, Trainer):
    """transformers' Trainer with BLIP's own loss (its decoder's mean cross-entropy, label smoothing included)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # BLIP's forward takes **kwargs, so the Trainer would pass num_items_in_batch down (into the vision tower)
        # and skip dividing the mean loss by the gradient accumulation steps: neither holds for BLIP.
        self.model_accepts_loss_kwargs = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        return (outputs.loss, outputs) if return_outputs else outputs.loss


USAGE = {
    "caption": (
        "BlipForConditionalGeneration",
        'inputs = processor(images=image, text="{prompt}", return_tensors="pt")',
    ),
    "vqa": (
        "BlipForQuestionAnswering",
        'inputs = processor(images=image, text="What is shown?", return_tensors="pt")',
    ),
}


def _usage(task: str, base: str, repo_id: str, adapter: bool, prompt: str | None) -> str:
    cls, call = USAGE[task]
    call = call.replace('text="{prompt}", ', f'text="{prompt}", ' if prompt else "")
    load = (
        f'model = PeftModel.from_pretrained({cls}.from_pretrained("{base}"), "{repo_id}")'
        if adapter
        else f'model = {cls}.from_pretrained("{repo_id}")'
    )
    return "\n".join(
        [
            "```python",
            *(["from peft import PeftModel"] if adapter else []),
            f"from transformers import {cls}, BlipProcessor",
            "",
            load,
            f'processor = BlipProcessor.from_pretrained("{repo_id}")',
            call,
            "print(processor.decode(model.generate(**inputs, max_new_tokens=30)[0], skip_special_tokens=True))",
            "```",
        ]
    )


def run_blip_training(
    data_args: BlipDataArguments, model_args: BlipModelArguments, training_args: BlipTrainingArguments
) -> dict:
    """Fine-tune BLIP for captioning or VQA; held-out figures before and after, saved with the model card."""
    started = time.time()
    task = training_args.task
    check_synthetic_task(data_args, task)
    if model_args.adapter_path:
        raise ValueError(
            "adapter_path: blip_train.py trains from model_name_or_path; merge the adapter into its base first, or "
            "train a new adapter on the base."
        )
    set_seed(training_args.seed)
    push = hub.take_over_push(training_args)
    with run_directory(
        training_args.output_dir, training_args.overwrite_output_dir, training_args.resume_from_checkpoint
    ) as (out, resume):
        train, held_out = load_task_splits(data_args, task, training_args.seed)
        model, processor = load_blip(model_args, task, training_args.use_cpu)
        model = prepare_for_training(model, training_args)
        before = predict(model, processor, held_out, training_args)
        before_figures, before_scores, metric = figures(task, before, held_out)
        logger.info("Held-out before training: %s", before_figures)

        bos = base_model(model).config.text_config.bos_token_id
        collator = (
            CaptionCollator(processor, bos, training_args.prompt, seed=training_args.seed)
            if task == "caption"
            else VQACollator(processor, bos)
        )
        training_args.remove_unused_columns = False  # the collator reads the raw columns
        trainer = BlipTrainer(
            model=model,
            args=training_args,
            train_dataset=train,
            data_collator=collator,
            callbacks=hub.callbacks(training_args, push),
        )
        train_output = trainer.train(resume_from_checkpoint=resume)
        model = trainer.model
        after = predict(model, processor, held_out, training_args)
        after_figures, after_scores, _ = figures(task, after, held_out)

        results = {
            f"{k}_{when}": v
            for when, fig in (("before", before_figures), ("after", after_figures))
            for k, v in fig.items()
            if not isinstance(v, str)
        }
        results.update({k: v for k, v in after_figures.items() if isinstance(v, str)})
        results.update(
            {
                "task": task,
                "method": "lora" if training_args.use_peft else "full",
                "prompt": training_args.prompt,
                "train_loss": train_output.training_loss,
                "train_steps": train_output.global_step,
                "num_train_samples": len(train),
                "num_eval_samples": len(held_out),
                "model_name_or_path": model_args.model_name_or_path,
                "dataset_name": data_args.dataset_name,
                "wall_time_seconds": round(time.time() - started, 1),
            }
        )
        trainer.save_model(str(out))
        if trainer.is_world_process_zero():
            processor.save_pretrained(out)
            save_training_config(training_args, out)
            references = _references(held_out)
            records = [
                {
                    "id": i,
                    "references": references[i],
                    "before": before[i],
                    "after": after[i],
                    f"{metric}_before": before_scores[i],
                    f"{metric}_after": after_scores[i],
                }
                for i in range(len(held_out))
            ]
            write_jsonl(out / "eval_predictions.jsonl", records)
            entries = [("before", before, before_scores), ("after", after, after_scores)]
            _gallery(
                out,
                data_args.dataset_name,
                held_out,
                _prompts(training_args, held_out),
                entries,
                metric,
                training_args.gallery_samples,
            )
            (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
            write_eval_rows(out, held_out)
            repo_id = training_args.hub_model_id or out.name
            card = hub.model_card(
                repo_id=repo_id,
                base_model=model_args.model_name_or_path,
                method=f"BLIP {'captioning' if task == 'caption' else 'VQA'} fine-tuning ({results['method']})",
                tags=["blip", "image-captioning" if task == "caption" else "visual-question-answering"],
                datasets=[data_args.dataset_name],
                results=results,
                training_args=training_args,
                adapter=training_args.use_peft,
                pipeline_tag="image-to-text" if task == "caption" else "visual-question-answering",
                usage=_usage(
                    task, model_args.model_name_or_path, repo_id, training_args.use_peft, training_args.prompt
                ),
            )
            training_args.push_to_hub = push
            hub.publish(out, training_args, push, card)
            print(f"\nHeld-out ({len(held_out)} samples) before -> after training:")
            for key, value in before_figures.items():
                if not isinstance(value, str):
                    print(f"  {key}: {value:.3f} -> {after_figures[key]:.3f}")
            saved = "adapter" if training_args.use_peft else "model"
            print(f"Wrote {out / RESULTS_FILE}, the {saved}, the processor and gallery.html to {out}")
    return results
