"""The BLIP recipes' configuration: dataclasses parsed by `vlm_recipes.settings.parse` (YAML plus command line).

`recipes/blip_zero_shot.py` parses (BlipDataArguments, BlipModelArguments, BlipZeroShotArguments);
`recipes/blip_train.py` parses (BlipDataArguments, BlipModelArguments, BlipTrainingArguments), the last extending
transformers' `TrainingArguments`. Every field has a help text and is checked in `__post_init__`, before any model
is loaded; Trainer fields this flow does not read are refused (`BlipTrainingArguments.NOT_HONOURED`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from .common import RecipeField, current_dataset_id, dataset_config_field, test_split_field, train_split_field

TASKS = ("caption", "vqa", "retrieval")
TRAINABLE_TASKS = ("caption", "vqa")
SYNTHETIC_TASKS = {"caption": ("position", "caption"), "retrieval": ("caption", "position"), "vqa": ("vqa",)}
RERANK_SCORES = ("itm+itc", "itm")


@dataclass
class BlipModelArguments:
    model_name_or_path: str = field(
        default="tiny:blip",
        metadata={
            "help": "BLIP checkpoint of the task's class: a Hub id (Salesforce/blip-image-captioning-base, "
            "Salesforce/blip-vqa-base, Salesforce/blip-itm-base-coco), a local directory, or tiny:blip / "
            "tiny:blip-vqa / tiny:blip-itm (offline)."
        },
    )
    model_revision: str = field(default="main", metadata={"help": "Hub revision."})
    adapter_path: str | None = field(
        default=None,
        metadata={
            "help": "Zero-shot recipe: a LoRA adapter written by recipes/blip_train.py (its output_dir), applied on "
            "model_name_or_path. (A full fine-tune's output_dir is a model: pass it as model_name_or_path.)"
        },
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Run code from the checkpoint's repository."})


@dataclass
class BlipDataArguments:
    dataset_name: str = field(
        default="synthetic",
        metadata={
            "help": "'synthetic' (shapes, offline), a Hub dataset id, a local folder laid out like one (Parquet), or "
            "a local image folder with a metadata.jsonl/.csv (file_name + caption or question/answer columns)."
        },
    )
    dataset_config: str | None = dataset_config_field()
    dataset_train_split: str = train_split_field()
    dataset_test_split: str | None = test_split_field("test_fraction")
    test_fraction: float = field(default=0.1, metadata={"help": "Held-out fraction when there is no test split."})
    synthetic_task: str = field(
        default="position",
        metadata={
            "help": "Synthetic data: 'position' (captions naming where the shape is, 3 references per image), "
            "'caption' (colour and shape only: what the tiny BLIP was pre-trained on) or 'vqa' (colour/shape "
            "questions, for task vqa)."
        },
    )
    synthetic_train_samples: int = field(default=2000, metadata={"help": "Synthetic training images."})
    synthetic_image_size: int = field(default=64, metadata={"help": "Side in pixels of synthetic images."})
    image_column: str = field(default="image", metadata={"help": "Column with the image (one per row)."})
    caption_column: str = field(
        default="caption",
        metadata={"help": "Column with the reference caption(s): a string or a list of strings per image."},
    )
    question_column: str = field(default="question", metadata={"help": "VQA: column with the question."})
    answer_column: str = field(
        default="answer",
        metadata={"help": "VQA: column with the answer, or a list of human answers (VQAv2, TextVQA: 10)."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Cap on training rows (None: all)."})
    max_eval_samples: int | None = field(default=200, metadata={"help": "Cap on held-out rows (None: all)."})

    def __post_init__(self):
        self.dataset_name = current_dataset_id(self.dataset_name)
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}.")
        known = sorted({t for tasks in SYNTHETIC_TASKS.values() for t in tasks})
        if self.synthetic_task not in known:
            raise ValueError(f"Unknown synthetic_task {self.synthetic_task!r}; choose one of {known}.")


def check_synthetic_task(data_args: BlipDataArguments, task: str) -> None:
    """Synthetic data must be of the task's kind (a VQA run cannot score captions)."""
    if data_args.dataset_name == "synthetic" and data_args.synthetic_task not in SYNTHETIC_TASKS[task]:
        raise ValueError(
            f"task {task!r} with dataset_name synthetic needs synthetic_task in {list(SYNTHETIC_TASKS[task])}, "
            f"got {data_args.synthetic_task!r}."
        )


@dataclass
class _BlipFields(RecipeField):
    """What the zero-shot and training recipes share."""

    task: str = field(
        default="caption",
        metadata={
            "help": "caption (BlipForConditionalGeneration), vqa (BlipForQuestionAnswering) or, zero-shot only, "
            "retrieval (BlipForImageTextRetrieval: ITC, then the top_k re-ranked with the ITM head)."
        },
    )
    prompt: str | None = field(
        default=None,
        metadata={
            "help": "Captioning: a text prefix the caption continues, e.g. 'a picture of' (BLIP's); not part of the "
            "prediction. null (or '' on the command line): unconditional captioning."
        },
    )
    max_new_tokens: int = field(default=20, metadata={"help": "Generation budget of a caption or an answer."})
    num_beams: int = field(default=1, metadata={"help": "Beam search width (1: greedy; BLIP's paper uses 3)."})
    gallery_samples: int = field(default=24, metadata={"help": "Rows shown in gallery.html."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a finished run in output_dir."})

    def _check(self, tasks) -> None:
        if self.prompt is not None and self.prompt.strip().lower() in ("", "none", "null"):
            self.prompt = None  # `--prompt null` on the command line arrives as the string "null"
        if self.task not in tasks:
            raise ValueError(f"Unknown task {self.task!r} for this recipe; choose one of {list(tasks)}.")
        if self.prompt is not None and self.task != "caption":
            raise ValueError(f"prompt is a captioning prefix; task {self.task!r} does not use it: remove it.")
        if self.max_new_tokens < 1 or self.num_beams < 1:
            raise ValueError("max_new_tokens and num_beams must be >= 1.")


@dataclass
class BlipZeroShotArguments(_BlipFields):
    image: list[str] | None = field(
        default=None, metadata={"help": "Image file(s) to caption or ask about (instead of a dataset split)."}
    )
    image_dir: str | None = field(
        default=None, metadata={"help": "A folder of images (searched recursively) instead of a dataset split."}
    )
    question: str | None = field(
        default=None, metadata={"help": "VQA over image / image_dir: the question asked about every image."}
    )
    batch_size: int = field(default=32, metadata={"help": "Images per forward pass."})
    top_k: int = field(
        default=16, metadata={"help": "Retrieval: candidates per query re-ranked with the ITM head (ALBEF/BLIP: 128)."}
    )
    rerank_score: str = field(
        default="itm+itc",
        metadata={
            "help": "Retrieval: the re-ranking score of a top-k pair: 'itm+itc' (the ITM match logit plus the ITC "
            "cosine, as BLIP's evaluation) or 'itm' (the ITM match logit alone, as ALBEF's)."
        },
    )
    output_dir: str = field(default="outputs/blip_zero_shot-tiny-blip", metadata={"help": "Where results go."})
    seed: int = field(default=42, metadata={"help": "Seed of the synthetic data and of held-out splits."})
    use_cpu: bool = field(default=False, metadata={"help": "Run on the CPU even if a GPU is available."})

    def __post_init__(self):
        self._check(TASKS)
        if self.image and self.image_dir:
            raise ValueError("Give image or image_dir, not both.")
        if (self.image or self.image_dir) and self.task == "retrieval":
            raise ValueError("Retrieval ranks a dataset's images and captions: drop image / image_dir.")
        if self.task == "vqa" and (self.image or self.image_dir) and not self.question:
            raise ValueError("VQA over image / image_dir needs the question: set --question 'What is shown?'.")
        if self.question and not (self.task == "vqa" and (self.image or self.image_dir)):
            raise ValueError("question applies to task vqa over image / image_dir (a dataset has its own questions).")
        if self.rerank_score not in RERANK_SCORES:
            raise ValueError(f"rerank_score must be one of {list(RERANK_SCORES)}, got {self.rerank_score!r}.")
        if self.top_k < 1 or self.batch_size < 1:
            raise ValueError("top_k and batch_size must be >= 1.")


@dataclass
class BlipTrainingArguments(_BlipFields, TrainingArguments):
    use_peft: bool = field(default=True, metadata={"help": "Train LoRA adapters (peft); false: train in full."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Module names LoRA adapts (BLIP: qkv, projection, fc1, fc2 in the vision tower; query, key, "
            "value, dense in the text towers). None: every linear layer but the output head (peft's all-linear)."
        },
    )
    freeze_vision_tower: bool = field(
        default=False, metadata={"help": "Keep the vision encoder frozen (no LoRA on it, no gradient)."}
    )
    label_smoothing: float | None = field(
        default=None,
        metadata={
            "help": "Label smoothing of BLIP's decoder loss (BLIP fine-tunes captioning with 0.1); None: the "
            "checkpoint's own (its config's label_smoothing)."
        },
    )

    # Trainer fields the flow does not read (the held-out figures are measured before and after training, by
    # generation; the loss is BLIP's own): field -> (default, what to use instead).
    NOT_HONOURED = {
        "eval_strategy": ("no", "max_eval_samples (held-out figures before and after training)"),
        "eval_steps": (None, "max_eval_samples"),
        "do_predict": (False, "recipes/blip_zero_shot.py with model_name_or_path: <output_dir>"),
        "load_best_model_at_end": (False, "save_strategy + recipes/blip_zero_shot.py on each checkpoint"),
        "metric_for_best_model": (None, "save_strategy + recipes/blip_zero_shot.py on each checkpoint"),
        "label_smoothing_factor": (0.0, "label_smoothing (applied inside BLIP's decoder loss)"),
    }

    def __post_init__(self):
        self._check(TRAINABLE_TASKS)
        for name, (default, instead) in self.NOT_HONOURED.items():
            value = getattr(self, name)
            if getattr(value, "value", value) != default:
                raise ValueError(
                    f"{name}: {getattr(value, 'value', value)!r} has no effect in the BLIP training recipe; use "
                    f"{instead}, or remove it."
                )
        if self.label_smoothing is not None and not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}.")
        super().__post_init__()
