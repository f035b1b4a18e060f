"""Settings of the inference, evaluation and benchmark recipes (recipes/generate.py, recipes/evaluate_models.py,
recipes/benchmark.py). Metric and benchmark names are checked when a recipe parses its config (vlm_recipes.launch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .common import RecipeField, allow_overlap_field, check_choices, check_overlap_settings, max_overlap_field

Device = Literal["auto", "cpu", "cuda"]


# -- inference and evaluation (recipes/generate.py, recipes/evaluate_models.py) -----------------------------------


@dataclass
class _InferenceFields(RecipeField):
    """Fields generation and evaluation share."""

    batch_size: int = field(default=8, metadata={"help": "Prompts generated at once (left-padded, greedy)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Generation budget per prompt."})
    device: Device = field(
        default="auto", metadata={"help": "'auto' (a GPU if there is one, else the CPU), 'cpu' or 'cuda'."}
    )
    seed: int = field(
        default=42, metadata={"help": "Seed of the held-out split of a dataset without a test split (as in training)."}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run model code from the checkpoint's repository (off unless you trust it)."}
    )

    def __post_init__(self):
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be >= 1.")
        check_choices(self)


@dataclass
class GenerateArguments(_InferenceFields):
    adapter_path: str | None = field(
        default=None,
        metadata={"help": "A LoRA adapter directory written by a training recipe (holds adapter_config.json)."},
    )
    image: list[str] | None = field(default=None, metadata={"help": "Image file(s); one prompt per image."})
    image_dir: str | None = field(
        default=None,
        metadata={
            "help": "A folder of images, one prompt each; an optional metadata.jsonl (file_name + columns such as "
            "name/category) fills prompt_template."
        },
    )
    video: str | None = field(
        default=None, metadata={"help": "A local video file: num_frames frames, evenly spaced, go in as images."}
    )
    num_frames: int = field(default=8, metadata={"help": "Frames sampled from the video."})
    native_video: bool = field(
        default=False,
        metadata={
            "help": "With video: give the model the video itself (one {'type': 'video'} part: Qwen2-VL's "
            "pixel_values_videos, SmolVLM2's timestamped frames), num_frames evenly spaced, instead of the frames "
            "as separate images."
        },
    )
    prompt: str | None = field(
        default=None,
        metadata={"help": "The user prompt (default: the dataset's question, or 'Describe the image.')."},
    )
    prompt_template: str | None = field(
        default=None,
        metadata={"help": "A prompt with {column} fields filled per row, e.g. 'Describe this {category}: {name}.'"},
    )
    chat_file: str | None = field(
        default=None,
        metadata={"help": "A JSON file with a conversation ([{role, content}, ...]); the answer continues it."},
    )
    output_file: str = field(
        default="outputs/generate/predictions.jsonl", metadata={"help": "Where the predictions are written (JSONL)."}
    )

    def __post_init__(self):
        super().__post_init__()
        given = [n for n in ("image", "image_dir", "video") if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"Give one input: image, image_dir, video or a dataset; got {given}.")
        if sum(x is not None for x in (self.prompt, self.prompt_template, self.chat_file)) > 1:
            raise ValueError("Set at most one of prompt, prompt_template and chat_file.")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}.")
        if self.native_video and not self.video:
            raise ValueError("native_video applies to a video input: set video (a local file) or remove it.")


@dataclass
class EvaluateArguments(_InferenceFields):
    adapter_paths: list[str] = field(
        default_factory=list,
        metadata={"help": "Adapter directories (training outputs) to evaluate on top of model_name_or_path."},
    )
    other_models: list[str] = field(
        default_factory=list,
        metadata={"help": "Further full models (Hub ids, local directories or tiny:<name>) to compare."},
    )
    evaluate_base: bool = field(
        default=True, metadata={"help": "Also evaluate model_name_or_path alone (the 'before' row)."}
    )
    labels: list[str] = field(
        default_factory=list,
        metadata={"help": "Row names of the report, in order: base, adapters, other models (default: derived)."},
    )
    metrics: list[str] = field(
        default_factory=lambda: ["exact_match"],
        metadata={"help": "Metric names of vlm_recipes/evaluation/metrics; the first is the headline of the gallery."},
    )
    references_column: str | None = field(
        default=None,
        metadata={"help": "Column of reference answer(s), a string or a list (default: answer_column / answer)."},
    )
    gallery_samples: int = field(default=24, metadata={"help": "Rows shown in gallery.html."})
    output_dir: str = field(
        default="outputs/evaluate", metadata={"help": "Where report.md/.json, gallery.html and predictions go."}
    )

    def __post_init__(self):
        super().__post_init__()
        if not self.metrics:
            raise ValueError(
                "metrics is empty: name at least one of vlm_recipes/evaluation/metrics (e.g. exact_match)."
            )


# -- benchmarks (recipes/benchmark.py) -----------------------------------------------------------------------------


@dataclass
class BenchmarkArguments(RecipeField):
    benchmarks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Benchmarks to run: names of vlm_recipes/evaluation/benchmarks/tasks (mmmu_val, mmbench_en_dev, "
            "mmstar, ai2d, scienceqa_img, mathvista_testmini, ocrbench, chartqa, docvqa_val, textvqa_val) or paths "
            "of task YAML files of the same form."
        },
    )
    limit: int | None = field(
        default=None,
        metadata={
            "help": "Evaluate N questions of each benchmark (a quick look): a random sample drawn with limit_seed, "
            "stratified where the task names a stratum (ChartQA: human / augmented); <benchmark>/rows.json lists them."
        },
    )
    limit_seed: int = field(
        default=0, metadata={"help": "Seed of the --limit sample (the training runs' benchmark step uses 0)."}
    )
    dataset_source: str = field(
        default="hub",
        metadata={
            "help": "Where the benchmarks' datasets are read: 'hub' (their Hub ids), 'standins' (offline stand-ins "
            "with the same columns and types, written to a temporary folder: their figures are no benchmark results), "
            "or a folder holding local copies laid out like the Hub repositories, at <folder>/<hub id>."
        },
    )
    adapter_paths: list[str] = field(
        default_factory=list,
        metadata={"help": "Adapter directories (training outputs) to evaluate on top of model_name_or_path."},
    )
    other_models: list[str] = field(
        default_factory=list,
        metadata={"help": "Further full models (Hub ids, local directories or tiny:<name>) to evaluate."},
    )
    evaluate_base: bool = field(default=True, metadata={"help": "Also evaluate model_name_or_path alone."})
    labels: list[str] = field(
        default_factory=list,
        metadata={"help": "Row names of the leaderboard, in order: base, adapters, other models (default: derived)."},
    )
    batch_size: int = field(default=8, metadata={"help": "Prompts generated at once (left-padded, greedy)."})
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "Generation budget for every benchmark (default: each benchmark's own)."}
    )
    device: Device = field(
        default="auto", metadata={"help": "'auto' (a GPU if there is one, else the CPU), 'cpu' or 'cuda'."}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run model code from the checkpoint's repository (off unless you trust it)."}
    )
    resume: bool = field(
        default=True,
        metadata={
            "help": "Keep the results of benchmarks that already finished in output_dir with the same settings "
            "(model and its settings, adapter, the weights of local folders, task file, limit and its seed, budget); "
            "false: run every benchmark again."
        },
    )
    gallery_samples: int = field(
        default=8, metadata={"help": "Failed prompts shown per benchmark in leaderboard.html."}
    )
    allow_overlap: bool = allow_overlap_field()
    max_overlap: float = max_overlap_field()
    output_dir: str = field(
        default="outputs/benchmark",
        metadata={"help": "Where leaderboard.md/.json/.html and <benchmark>/<model>.jsonl predictions go."},
    )

    def __post_init__(self):
        self.benchmarks = [b for b in self.benchmarks if b]
        if not self.benchmarks:
            raise ValueError("benchmarks is empty: name at least one (e.g. --benchmarks mmbench_en_dev ai2d).")
        if len(set(self.benchmarks)) != len(self.benchmarks):
            raise ValueError(f"benchmarks lists a benchmark twice: {self.benchmarks}.")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 (or unset for every question), got {self.limit}.")
        if self.batch_size < 1 or (self.max_new_tokens is not None and self.max_new_tokens < 1):
            raise ValueError("batch_size and max_new_tokens must be >= 1.")
        check_choices(self)
        check_overlap_settings(self)
