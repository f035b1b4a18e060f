"""ViT image classification (`recipes/vit_baseline.py`): from scratch offline, or fine-tuning a pretrained checkpoint.

transformers supplies the model (`ViTForImageClassification`, or any `AutoModelForImageClassification`
checkpoint), the image processor and the Trainer. This module adds the from-scratch configuration for small
offline images (scikit-learn's 8x8 digits, synthetic shapes), a collator, and the held-out report every recipe
writes: top-1 / top-5 / mean per-class recall before and after training, a confusion-matrix PNG and
eval_results.json.
"""

from __future__ import annotations

import logging
import time

import torch
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    Trainer,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessor,
    set_seed,
)

from .. import hub
from ..outputs import RESULTS_FILE, run_directory, save_run
from ..outputs.checkpoints import CompleteCheckpoints
from ..settings.baselines import SCRATCH, ImageDataArguments, ViTModelArguments, ViTTrainingArguments
from . import plots
from . import zero_shot as zs
from .image_data import load_classification

logger = logging.getLogger(__name__)


def build(model_args: ViTModelArguments, class_names: list[str]):
    """(model, image processor): a new ViT, or a checkpoint with a new head for `class_names`."""
    labels = {"id2label": dict(enumerate(class_names)), "label2id": {n: i for i, n in enumerate(class_names)}}
    if model_args.model_name_or_path == SCRATCH:
        size = model_args.image_size
        config = ViTConfig(
            image_size=size,
            patch_size=model_args.patch_size,
            hidden_size=model_args.hidden_size,
            num_hidden_layers=model_args.num_hidden_layers,
            num_attention_heads=model_args.num_attention_heads,
            intermediate_size=model_args.intermediate_size,
            hidden_dropout_prob=model_args.dropout,
            attention_probs_dropout_prob=model_args.dropout,
            num_labels=len(class_names),
            **labels,
        )
        processor = ViTImageProcessor(size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
        return ViTForImageClassification(config), processor
    common = {"revision": model_args.model_revision, "trust_remote_code": model_args.trust_remote_code}
    processor = AutoImageProcessor.from_pretrained(model_args.model_name_or_path, **common)
    model = AutoModelForImageClassification.from_pretrained(
        model_args.model_name_or_path,
        num_labels=len(class_names),
        ignore_mismatched_sizes=True,  # the new classification head replaces the checkpoint's
        use_safetensors=True,
        **labels,
        **common,
    )
    return model, processor


class ViTTrainer(CompleteCheckpoints, Trainer):
    """transformers' Trainer with complete-marked checkpoints (no pickled training arguments in them)."""


class ImageClassificationCollator:
    """Rows {image: PIL image, label: int} -> {pixel_values [B, 3, H, W], labels [B]}."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, rows: list[dict]) -> dict:
        pixels = self.processor(images=[r["image"].convert("RGB") for r in rows], return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixels, "labels": torch.tensor([r["label"] for r in rows])}


def held_out(trainer: Trainer, test, num_classes: int) -> tuple[dict, torch.Tensor]:
    """Top-1 / top-5 / mean per-class recall on `test`, and the predicted classes."""
    logits = torch.as_tensor(trainer.predict(test).predictions)
    metrics = zs.classification_metrics(logits, test["label"], num_classes)
    return metrics, logits.argmax(dim=1)


def run_vit(data_args: ImageDataArguments, model_args: ViTModelArguments, training_args: ViTTrainingArguments):
    started = time.time()
    set_seed(training_args.seed)  # before the model is built: a scratch ViT's initial weights come from it
    push = hub.take_over_push(training_args)  # checks hub_model_id now; our card, not Trainer's, is published
    with run_directory(
        training_args.output_dir, training_args.overwrite_output_dir, training_args.resume_from_checkpoint
    ) as (out, resume):
        train, test, class_names = load_classification(data_args, training_args.seed)
        model, processor = build(model_args, class_names)
        training_args.remove_unused_columns = False
        trainer = ViTTrainer(
            model=model,
            args=training_args,
            train_dataset=train,
            data_collator=ImageClassificationCollator(processor),
            callbacks=hub.callbacks(training_args, push),
        )
        n = len(class_names)
        before, _ = held_out(trainer, test, n)
        logger.info("Held-out before training: %s", before)
        train_output = trainer.train(resume_from_checkpoint=resume)
        after, predicted = held_out(trainer, test, n)
        results = {f"{k}_{when}": v for when, res in (("before", before), ("after", after)) for k, v in res.items()}
        counts = zs.confusion_matrix(predicted, test["label"], n)
        results.update(
            {
                "per_class_recall": {
                    name: float(counts[i, i] / max(counts[i].sum(), 1)) for i, name in enumerate(class_names)
                },
                "num_classes": n,
                "num_train_samples": len(train),
                "num_eval_samples": len(test),
                "train_loss": train_output.training_loss,
                "train_steps": train_output.global_step,
                "num_parameters": model.num_parameters(),
                "model_name_or_path": model_args.model_name_or_path,
                "dataset_name": data_args.dataset_name,
                "wall_time_seconds": round(time.time() - started, 1),
            }
        )
        trainer.save_model(str(out))  # every rank: under ZeRO-3 saving gathers the shards collectively
        if trainer.is_world_process_zero():
            title = f"{data_args.dataset_name}: held-out top-1 {after['top1']:.3f} ({len(test)} images)"
            plots.confusion_matrix_png(counts, class_names, out / "confusion_matrix.png", title)
            training_args.push_to_hub = push
            save_run(trainer, processor, training_args, results, out)
            print(
                f"\nHeld-out top-1 ({len(test)} images, {n} classes): "
                f"before {before['top1']:.3f} -> after {after['top1']:.3f}"
            )
            print(f"Wrote {out / RESULTS_FILE}, confusion_matrix.png, the model and the processor to {out}")
            card = hub.model_card(
                repo_id=training_args.hub_model_id or out.name,
                base_model=model_args.model_name_or_path,
                method="image classification" + (" from scratch" if model_args.model_name_or_path == SCRATCH else ""),
                tags=["vit", "image-classification"],
                datasets=[data_args.dataset_name],
                results=results,
                training_args=training_args,
                adapter=False,
                pipeline_tag="image-classification",
            )
            hub.publish(out, training_args, push, card)
    return results
