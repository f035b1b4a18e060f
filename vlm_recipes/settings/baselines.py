"""Settings of the CLIP / SigLIP and ViT baseline recipes (recipes/clip_zero_shot.py, recipes/clip_train.py,
recipes/vit_baseline.py) and of the image data they read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from transformers import TrainingArguments

from .common import (
    RecipeField,
    check_choices,
    current_dataset_id,
    dataset_config_field,
    test_split_field,
    train_split_field,
)

CLIP_TASKS = ("classify", "retrieval", "search", "ood", "failures")
ContrastiveLoss = Literal["clip", "siglip"]  # vlm_recipes.baselines.contrastive.LOSSES implements each
SCRATCH = "scratch"  # ViT: a new model sized by the fields of ViTModelArguments


@dataclass
class ImageDataArguments:
    dataset_name: str = field(
        default="synthetic",
        metadata={
            "help": "'synthetic' (shapes, offline), 'digits' (scikit-learn's 1,797 real 8x8 digits, offline), a local "
            "image folder (class = subfolder, or metadata.jsonl/.csv with file_name + label/caption) or a Hub id."
        },
    )
    dataset_config: str | None = dataset_config_field()
    dataset_train_split: str = train_split_field()
    dataset_test_split: str | None = test_split_field("test_fraction")
    test_fraction: float = field(
        default=0.2, metadata={"help": "Held-out fraction when the dataset has no test split (stratified by class)."}
    )
    image_column: str = field(default="image", metadata={"help": "Column with the image."})
    label_column: str = field(default="label", metadata={"help": "Column with the class (ClassLabel or int)."})
    caption_column: str = field(default="caption", metadata={"help": "Column with the caption (contrastive data)."})
    class_names: list[str] | None = field(
        default=None, metadata={"help": "Names used in prompts, in label order (default: the dataset's label names)."}
    )
    synthetic_train_samples: int = field(default=3000, metadata={"help": "Synthetic training rows."})
    synthetic_image_size: int = field(default=64, metadata={"help": "Side in pixels of synthetic images."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Cap on training rows (None: all)."})
    max_eval_samples: int | None = field(default=500, metadata={"help": "Cap on held-out rows (None: all)."})

    def __post_init__(self):
        self.dataset_name = current_dataset_id(self.dataset_name)
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}.")


@dataclass
class ContrastiveModelArguments:
    model_name_or_path: str = field(
        default="tiny:clip",
        metadata={"help": "CLIP/SigLIP checkpoint: a Hub id, a local path, tiny:clip or tiny:clip-random (offline)."},
    )
    model_revision: str = field(default="main", metadata={"help": "Hub revision."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run code from the checkpoint's repository."})


@dataclass
class ZeroShotArguments(RecipeField):
    tasks: list[str] = field(
        default_factory=lambda: list(CLIP_TASKS), metadata={"help": f"Any of {list(CLIP_TASKS)}."}
    )
    templates: list[str] | None = field(
        default=None,
        metadata={"help": "Prompt templates with '{}' for the class name (default: zero_shot.TEMPLATES)."},
    )
    caption_dataset_name: str = field(
        default="synthetic",
        metadata={
            "help": "Image/caption pairs for retrieval: 'synthetic', a local folder with metadata, or a Hub id."
        },
    )
    ood_dataset_name: str = field(
        default="digits",
        metadata={"help": "Out-of-distribution images: 'digits', 'synthetic', a local folder or a Hub id."},
    )
    ood_dataset_config: str | None = field(default=None, metadata={"help": "Hub configuration of the OOD dataset."})
    ood_image_column: str = field(default="image", metadata={"help": "Image column of the OOD dataset."})
    ood_temperature: float = field(default=1.0, metadata={"help": "Softmax temperature of the MCM score."})
    search_folder: str | None = field(
        default=None,
        metadata={"help": "Folder of images to search (default: held-out synthetic images written to output_dir)."},
    )
    search_queries: list[str] = field(
        default_factory=lambda: ["a red circle", "a blue square and a yellow triangle"],
        metadata={"help": "Text queries of the search task."},
    )
    top_k: int = field(default=8, metadata={"help": "Images returned per search query."})
    binding_samples: int = field(default=200, metadata={"help": "Attribute-binding probes (synthetic)."})
    batch_size: int = field(default=64, metadata={"help": "Images per forward pass."})
    output_dir: str = field(default="outputs/clip_zero_shot-tiny-clip", metadata={"help": "Where results go."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a finished run in output_dir."})
    seed: int = field(default=42, metadata={"help": "Seed of the synthetic data and splits."})
    use_cpu: bool = field(default=False, metadata={"help": "Run on the CPU even if a GPU is available."})

    def __post_init__(self):
        self.caption_dataset_name = current_dataset_id(self.caption_dataset_name, "caption_dataset_name")
        self.ood_dataset_name = current_dataset_id(self.ood_dataset_name, "ood_dataset_name")
        unknown = sorted(set(self.tasks) - set(CLIP_TASKS))
        if unknown:
            raise ValueError(f"Unknown zero-shot task(s) {unknown}; choose from {list(CLIP_TASKS)}.")
        if self.templates is not None and not all("{}" in t for t in self.templates):
            raise ValueError("Every template needs a '{}' where the class name goes, e.g. 'a photo of a {}.'.")


@dataclass
class ContrastiveTrainingArguments(RecipeField, TrainingArguments):
    loss: ContrastiveLoss = field(
        default="clip", metadata={"help": "Contrastive loss: clip (softmax) or siglip (sigmoid)."}
    )
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a finished run in output_dir."})
    eval_templates: list[str] | None = field(
        default=None, metadata={"help": "Templates of the before/after zero-shot accuracy (default: ensemble)."}
    )

    def __post_init__(self):
        check_choices(self)
        super().__post_init__()


@dataclass
class ViTModelArguments:
    model_name_or_path: str = field(
        default=SCRATCH,
        metadata={"help": "'scratch' (a new ViT sized by the fields below) or a checkpoint to fine-tune (Hub/path)."},
    )
    model_revision: str = field(default="main", metadata={"help": "Hub revision."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run code from the checkpoint's repository."})
    image_size: int = field(default=32, metadata={"help": "scratch: input side in pixels (images are resized)."})
    patch_size: int = field(default=4, metadata={"help": "scratch: patch side; (image_size / patch_size)^2 tokens."})
    hidden_size: int = field(default=64, metadata={"help": "scratch: width."})
    num_hidden_layers: int = field(default=4, metadata={"help": "scratch: depth."})
    num_attention_heads: int = field(default=4, metadata={"help": "scratch: attention heads."})
    intermediate_size: int = field(default=128, metadata={"help": "scratch: MLP width."})
    dropout: float = field(default=0.0, metadata={"help": "scratch: dropout on hidden states and attention."})

    def __post_init__(self):
        if self.model_name_or_path == SCRATCH and self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}.")


@dataclass
class ViTTrainingArguments(RecipeField, TrainingArguments):
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a finished run in output_dir."})
