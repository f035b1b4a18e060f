"""Recipe configuration: dataclasses that extend TRL's, parsed by `TrlParser` from YAML plus command-line overrides.

TRL already gives us `ModelConfig` (model path, dtype, LoRA and quantisation fields) and `SFTConfig` (every
training argument). We add only what VLM recipes need: where the data comes from and how columns become
conversations (`DataArguments`), image resolution and freezing controls (`VLMModelConfig`), separate learning
rates for the vision tower and projector and an output-dir guard (`SFTConfig`). Every field has a help text;
`__post_init__` validates early, before any model is loaded.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import trl
import yaml

from .evaluation.benchmarks.tasks import check_benchmark_names, check_data_source
from .evaluation.metrics import check_metric_names
from .grounding.boxes import get_convention
from .training.bypassed import refuse_bypassed
from .training.rewards import get_reward_funcs

GROUNDING_TASKS = ("grounding", "grounding_free")  # synthetic tasks answered with a box (box_format)
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class DataArguments:
    dataset_name: str = field(
        default="synthetic",
        metadata={
            "help": "'synthetic' (offline shapes task), 'synthetic_video' (offline video task), a Hub dataset id, "
            "a local image folder with a metadata.jsonl/.csv, or a local .jsonl/.json file of rows with image paths."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str | None = field(
        default="test",
        metadata={
            "help": "Held-out split; if the dataset has none (or this is null), eval_fraction of train is held out."
        },
    )
    eval_fraction: float = field(
        default=0.1, metadata={"help": "Fraction of the train split held out when there is no test split."}
    )
    synthetic_task: str = field(
        default="color_shape",
        metadata={
            "help": 'Synthetic task: color, shape, color_shape, count, position, caption, grounding ("Where is '
            'the red circle?" answered with a box; needs box_format; shapes on a 4x4 grid) or grounding_free (the '
            "same with boxes of any size and place); with synthetic_video: first_color (which "
            "colour appears first?) or motion (which way does the shape move?), and their *_middle_frame baselines "
            "(the middle frame alone, as an image)."
        },
    )
    synthetic_image_size: int = field(default=64, metadata={"help": "Side in pixels of synthetic images."})
    synthetic_train_samples: int = field(default=3000, metadata={"help": "Number of synthetic training rows."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Cap on training rows (None: all)."})
    max_eval_samples: int = field(
        default=200, metadata={"help": "Held-out rows used for the before/after accuracy (synthetic: generated)."}
    )
    image_column: str = field(
        default="images", metadata={"help": "Column with a list of images (or one image, e.g. 'image')."}
    )
    messages_column: str = field(
        default="messages", metadata={"help": "Column with conversations ({role, content} lists)."}
    )
    question_column: str | None = field(
        default=None, metadata={"help": "If set with answer_column, build conversations from these two columns."}
    )
    answer_column: str | None = field(default=None, metadata={"help": "Column with the reference answer."})
    system_prompt: str | None = field(
        default=None, metadata={"help": "System prompt prepended to every conversation."}
    )
    padding_side: str = field(default="right", metadata={"help": "Padding side of training batches: right or left."})
    on_overflow: str = field(
        default="error",
        metadata={"help": "What to do with a sample whose image tokens exceed max_length: 'error' or 'drop'."},
    )
    eval_max_new_tokens: int = field(default=16, metadata={"help": "Generation budget for held-out accuracy."})
    eval_metrics: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Held-out metrics besides exact match (names of vlm_recipes/evaluation/metrics, e.g. anls, "
            "relaxed_accuracy, vqa_accuracy): each gets <metric>_before/_after in eval_results.json and the model "
            "card, scored by the modules recipes/evaluate_models.py uses."
        },
    )
    eval_references_column: str | None = field(
        default=None,
        metadata={
            "help": "Column with the reference answer(s) eval_metrics score against, a string or a list (e.g. "
            "TextVQA's `answers`); default: the answer the model is trained on."
        },
    )
    max_image_pixels: int = field(
        default=64_000_000,
        metadata={
            "help": "Refuse images with more pixels (width x height) than this, before decoding them where possible: "
            "guards against huge images and decompression bombs. 64 M is 8000 x 8000."
        },
    )
    image_processing: str = field(
        default="processor",
        metadata={
            "help": "Where training images are processed (vlm_recipes/data/pipeline.py). 'processor': the processor's "
            "own call in the collator. 'worker': decode and resize, then tiles/patches, rescale+normalize and padding "
            "as batched tensor ops, all in the collator: bit-identical tensors, faster on a CPU. 'device': the "
            "dataloader workers decode and resize (uint8), the trainer does the rest on the training device (SFT, "
            "DPO, MPO). Numbers in the README (Data pipeline)."
        },
    )
    video_column: str | None = field(
        default=None,
        metadata={
            "help": "Column with each row's video (a file path or a list of frames) or list of videos; with "
            "question_column / answer_column the user turn gets one {'type': 'video'} part before the question."
        },
    )
    video_root: str | None = field(
        default=None,
        metadata={
            "help": "Folder that relative video paths (or bare video names) of video_column are read from, e.g. "
            "where the dataset's video archive was extracted. A name without extension matches <name>.mp4/.mkv/..."
        },
    )
    video_fps: float | None = field(
        default=None,
        metadata={
            "help": "Videos (a `videos` column of file paths or frame lists, {'type': 'video'} parts): frames taken "
            "per second of video, evenly spaced and in order (None: every frame). vlm_recipes/data/video.py."
        },
    )
    video_max_frames: int | None = field(
        default=None, metadata={"help": "Videos: at most this many frames per video, evenly spaced (None: no cap)."}
    )
    video_frame_list_fps: float = field(
        default=1.0,
        metadata={"help": "Videos given as frame lists: their frame rate (the timestamps SmolVLM writes per frame)."},
    )
    box_format: str | None = field(
        default=None,
        metadata={
            "help": "Grounding: the box convention of the answers, qwen2.5-vl (JSON bbox_2d in pixels of the resized "
            "input image) or smolvlm (integers on a 0-100 grid); see vlm_recipes/grounding/boxes.py. When set, each "
            "row's bbox_column becomes the answer in this convention."
        },
    )
    bbox_column: str = field(
        default="bbox", metadata={"help": "Grounding: the column with the object's box, in pixels of the image."}
    )
    bbox_layout: str = field(
        default="xyxy", metadata={"help": "Grounding: layout of bbox_column, xyxy or xywh (COCO, RefCOCO)."}
    )
    grounding_query_column: str | None = field(
        default=None,
        metadata={
            "help": "Grounding: the column naming the object (text, or a list of referring expressions: the first "
            "is used); fills {query} in grounding_prompt and the label of qwen2.5-vl answers."
        },
    )
    grounding_prompt: str = field(
        default="Locate the {query} in the image and output its bounding box.",
        metadata={"help": "Grounding: the question, with {query} replaced by the grounding_query_column value."},
    )
    preflight: bool = field(
        default=True,
        metadata={"help": "Check data rows against the processor at start-up, before the model is loaded."},
    )
    preflight_rows: str = field(
        default="64",
        metadata={"help": "How many rows (a random sample) of each split the start-up check reads, or 'all'."},
    )

    def __post_init__(self):
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}.")
        if self.on_overflow not in ("error", "drop"):
            raise ValueError(f"on_overflow must be 'error' or 'drop', got {self.on_overflow!r}.")
        if self.image_processing not in ("processor", "worker", "device"):
            raise ValueError(
                f"image_processing must be 'processor', 'worker' or 'device', got {self.image_processing!r}."
            )
        if (self.question_column is None) != (self.answer_column is None):
            raise ValueError("Set both question_column and answer_column, or neither.")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}.")
        if self.max_image_pixels < 1:
            raise ValueError(f"max_image_pixels must be positive, got {self.max_image_pixels}.")
        if self.video_fps is not None and self.video_fps <= 0 or self.video_frame_list_fps <= 0:
            raise ValueError("video_fps and video_frame_list_fps must be positive (video_fps null: every frame).")
        if self.video_max_frames is not None and self.video_max_frames < 1:
            raise ValueError(f"video_max_frames must be >= 1 (or null), got {self.video_max_frames}.")
        if self.preflight_rows != "all" and not (self.preflight_rows.isdigit() and int(self.preflight_rows) > 0):
            raise ValueError(f"preflight_rows must be a positive number or 'all', got {self.preflight_rows!r}.")
        check_metric_names(self.eval_metrics)
        self._check_grounding()

    def _check_grounding(self) -> None:
        """Grounding settings that would be ignored, or contradict each other, are refused here."""
        if self.box_format is None:
            if self.synthetic_task in GROUNDING_TASKS and self.dataset_name == "synthetic":
                raise ValueError(
                    "synthetic_task grounding answers with boxes: set box_format (qwen2.5-vl or smolvlm)."
                )
            defaults = {f.name: f.default for f in fields(self)}
            unused = [
                name
                for name in ("bbox_column", "bbox_layout", "grounding_query_column", "grounding_prompt")
                if getattr(self, name) != defaults[name]
            ]
            if unused:
                raise ValueError(f"{', '.join(unused)} only apply to grounding data: set box_format, or remove them.")
            return
        get_convention(self.box_format)  # an unknown convention fails here, before any model is loaded
        if self.bbox_layout not in ("xyxy", "xywh"):
            raise ValueError(f"bbox_layout must be 'xyxy' or 'xywh' (COCO), got {self.bbox_layout!r}.")
        if self.dataset_name == "synthetic" and self.synthetic_task not in GROUNDING_TASKS:
            raise ValueError(
                f"box_format is set but synthetic_task is {self.synthetic_task!r}: use synthetic_task grounding."
            )
        if self.question_column is not None:
            raise ValueError(
                "box_format builds questions from grounding_prompt and answers from bbox_column: remove "
                "question_column / answer_column (the object's name goes in grounding_query_column)."
            )

    @property
    def video_settings(self) -> dict:
        """The frame sampling of videos (`vlm_recipes.data.video.load_video`'s keyword arguments)."""
        return {
            "fps": self.video_fps,
            "max_frames": self.video_max_frames,
            "frame_list_fps": self.video_frame_list_fps,
        }

    @property
    def preflight_num_rows(self) -> int | None:
        """Rows per split the start-up check reads (None: all)."""
        return None if self.preflight_rows == "all" else int(self.preflight_rows)


@dataclass
class VLMModelConfig(trl.ModelConfig):
    freeze_vision_tower: bool = field(
        default=False, metadata={"help": "Keep the vision encoder frozen (no LoRA on it, no gradient)."}
    )
    freeze_projector: bool = field(
        default=False, metadata={"help": "Keep the projector/connector frozen (not trained, not in modules_to_save)."}
    )
    min_pixels: int | None = field(default=None, metadata={"help": "Qwen2-VL: minimum pixels per image."})
    max_pixels: int | None = field(
        default=None, metadata={"help": "Qwen2-VL: maximum pixels per image (caps image tokens: pixels / 28^2)."}
    )
    longest_edge: int | None = field(
        default=None, metadata={"help": "SmolVLM: resize the longest image edge to this before splitting into tiles."}
    )
    image_splitting: bool | None = field(
        default=None, metadata={"help": "SmolVLM: split images into tiles (more tokens, more detail)."}
    )
    video_min_pixels: int | None = field(
        default=None, metadata={"help": "Qwen2-VL: minimum pixels per video frame (the video processor's)."}
    )
    video_max_pixels: int | None = field(
        default=None,
        metadata={
            "help": "Qwen2-VL: maximum pixels per video frame; a video costs frames / 2 x pixels / 28^2 tokens (two "
            "frames per temporal patch)."
        },
    )
    max_image_tiles: int | None = field(
        default=None,
        metadata={
            "help": "LLaVA-OneVision, LLaVA-NeXT: encode an image as at most this many anyres tiles (plus the base "
            "image); caps image tokens at about (tiles + 1) x 729 (OneVision) or 576 (NeXT) on the real "
            "checkpoints. Set on the processor and the model."
        },
    )
    quantize_vision_tower: bool = field(
        default=False,
        metadata={
            "help": "QLoRA (load_in_4bit / load_in_8bit): quantize the vision tower too. By default the vision tower, "
            "the projector and the output head stay in the compute dtype (dtype): 4-bit vision towers are reported "
            "to degrade what the model sees."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.model_name_or_path is None:
            raise ValueError(
                "model_name_or_path is required (a Hub id, a local path, or a tiny model such as tiny:smolvlm)."
            )
        if self.quantize_vision_tower and not (self.load_in_4bit or self.load_in_8bit):
            raise ValueError(
                "quantize_vision_tower only applies to quantized (QLoRA) loading: set load_in_4bit (or load_in_8bit), "
                "or remove it."
            )


@dataclass
class RecipeField:
    """The recipe a config file is for, declared in the file (never guessed from its name)."""

    recipe: str | None = field(
        default=None,
        metadata={
            "help": "The recipe this config is for (sft, dpo, mpo, grpo, generate, evaluate_models, benchmark, "
            "clip_zero_shot, clip_train, vit_baseline, blip_zero_shot, blip_train); checked against the recipe "
            "launched. Every YAML of the repository declares it."
        },
    )


@dataclass
class _VLMTrainingFields(RecipeField):
    """Fields every recipe's training config adds to TRL's."""

    vision_tower_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate for the vision tower (None: learning_rate)."}
    )
    projector_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate for the projector/connector (None: learning_rate)."}
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow writing into an output_dir that already holds a finished run."}
    )
    hub_private: bool = field(
        default=False, metadata={"help": "With push_to_hub: create the Hub repository as private."}
    )
    benchmarks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Benchmarks (names of vlm_recipes/evaluation/benchmarks/tasks, e.g. ai2d, mmbench_en_dev) run on "
            "the model before and after training, as recipes/benchmark.py runs them; the figures go to "
            "eval_results.json and the model card."
        },
    )
    benchmark_limit: int | None = field(
        default=None, metadata={"help": "With benchmarks: only the first N questions of each benchmark."}
    )
    benchmark_data: str = field(
        default="hub",
        metadata={
            "help": "With benchmarks: where their datasets are read: 'hub', 'standins' or a folder (see "
            "recipes/benchmark.py's dataset_source)."
        },
    )

    def __post_init__(self):
        if self.hub_private:
            self.hub_private_repo = True
        check_benchmark_names(self.benchmarks)  # an unknown benchmark fails here, before any model is loaded
        check_data_source(self.benchmark_data, "benchmark_data")
        if not self.benchmarks and (self.benchmark_limit is not None or self.benchmark_data != "hub"):
            raise ValueError(
                "benchmark_limit / benchmark_data are set but benchmarks is empty, so no benchmark would run: name "
                "the benchmarks (e.g. benchmarks: [ai2d, mmbench_en_dev]) or remove those settings."
            )
        if self.benchmark_limit is not None and self.benchmark_limit < 1:
            raise ValueError(f"benchmark_limit must be >= 1 (or unset), got {self.benchmark_limit}.")
        super().__post_init__()


@dataclass
class SFTConfig(_VLMTrainingFields, trl.SFTConfig):
    pass


@dataclass
class DPOConfig(_VLMTrainingFields, trl.DPOConfig):
    """DPO and MPO (MPO = DPO with `loss_type: [sigmoid, bco_pair, sft]` and `loss_weights`).

    Adds one check TRL lacks: TRL 1.16 reads `label_smoothing` only in the losses listed in
    `LABEL_SMOOTHED_LOSSES`; with any other loss (the default `sigmoid` included, which older TRL smoothed as
    conservative DPO) it is silently ignored, so it is refused there."""

    LABEL_SMOOTHED_LOSSES = ("robust", "exo_pair", "aot", "aot_unpaired")

    def __post_init__(self):
        super().__post_init__()
        losses = [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)
        if self.label_smoothing and not set(losses) & set(self.LABEL_SMOOTHED_LOSSES):
            raise ValueError(
                f"label_smoothing: {self.label_smoothing} has no effect with loss_type {losses} (TRL reads it only in "
                f"the {', '.join(self.LABEL_SMOOTHED_LOSSES)} losses); for conservative DPO on noisy preferences "
                f"add `robust` to loss_type, or remove label_smoothing."
            )


@dataclass
class GRPOConfig(_VLMTrainingFields, trl.GRPOConfig):
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy"],
        metadata={"help": "Reward functions by name (see vlm_recipes.rewards.REWARDS); weights in reward_weights."},
    )

    def __post_init__(self):
        get_reward_funcs(self.reward_funcs)  # unknown names fail here, before any model is loaded
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
            raise ValueError(
                f"reward_weights has {len(self.reward_weights)} values for {len(self.reward_funcs)} reward_funcs."
            )
        super().__post_init__()


def parse(
    dataclass_types: tuple, default_config: str | Path, argv: list[str] | None = None, recipe: str | None = None
):
    """Parse `--config <yaml>` plus overrides; without `--config`, the recipe's offline default config is used.

    `recipe` is the recipe being launched: a config that declares another one (`recipe: dpo` given to grpo.py) is
    refused, naming the script to use; a config that declares none is taken as this recipe's."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv:
        argv = ["--config", str(default_config), *argv]
    config = argv[argv.index("--config") + 1]
    if recipe is not None:  # before parsing: another recipe's config fails on its fields, with a misleading message
        _check_recipe(config, _declared_recipe(config), recipe)
    _refuse_bypassed_settings(dataclass_types, config, argv, recipe)
    try:
        parsed = trl.TrlParser(dataclass_types).parse_args_and_config(argv)
    except ValueError as err:
        unknown = re.findall(r"'--([A-Za-z0-9_.-]+)'", str(err))
        if not unknown or not ("Unknown arguments" in str(err) or "not used by" in str(err)):
            raise
        raise ValueError(_unknown_keys_message(unknown, dataclass_types, config)) from err
    if recipe is not None:
        for args in parsed:
            if isinstance(args, RecipeField):
                _check_recipe(config, args.recipe, recipe)  # `--recipe` on the command line too
                args.recipe = recipe
    return parsed


def _settings(config: str | Path, argv: list[str]) -> dict:
    """The values a config file and then the command line set, by key (command-line values read as YAML scalars:
    "false" -> False, "10" -> 10; a flag without a value -> True)."""
    try:
        content = yaml.safe_load(Path(config).read_text())
    except (OSError, yaml.YAMLError):
        content = None
    settings = dict(content) if isinstance(content, dict) else {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--"):
            continue
        key, eq, inline = arg[2:].partition("=")
        values = [inline] if eq else []
        while not eq and i < len(argv) and not argv[i].startswith("--"):
            values.append(argv[i])
            i += 1
        read = [_scalar(v) for v in values]
        settings[key] = True if not read else read[0] if len(read) == 1 else read
    return settings


def _scalar(text: str):
    """A command-line value as YAML reads it ("false" -> False, "10" -> 10), or the text itself."""
    try:
        value = yaml.safe_load(text) if text else text
    except yaml.YAMLError:
        return text
    return value if isinstance(value, str | int | float | bool) or value is None else text


def _refuse_bypassed_settings(dataclass_types: tuple, config, argv: list[str], recipe: str | None) -> None:
    """A TRL / Trainer field the recipe's flow does not read is refused, naming it, before the configs are built
    (their own checks would otherwise speak first, without saying what to use instead)."""
    settings = _settings(config, argv)
    method = recipe or settings.get("recipe")
    for cls in dataclass_types:
        if isinstance(cls, type) and issubclass(cls, _VLMTrainingFields) and method:
            refuse_bypassed(cls, settings, method, where=f"{config} (or the command line): ")


def _declared_recipe(config: str | Path) -> str | None:
    try:
        content = yaml.safe_load(Path(config).read_text())
    except (OSError, yaml.YAMLError):
        return None  # the parser reports an unreadable file itself
    return content.get("recipe") if isinstance(content, dict) else None


def _check_recipe(config, declared: str | None, recipe: str) -> None:
    if declared not in (None, recipe):
        raise ValueError(
            f"{config} is a config for recipe {declared!r} (its `recipe:` field), not {recipe!r}: launch it with "
            f"recipes/{declared}.py, or pick a {recipe} config."
        )


def _unknown_keys_message(unknown: list[str], dataclass_types: tuple, config: str) -> str:
    """One line naming each unknown key, the closest real field, and where the fields are listed."""
    known = [f.name for cls in dataclass_types for f in fields(cls)]
    parts = []
    for key in unknown:
        # Among similar names prefer the one sharing the longest prefix (lora_rank -> lora_r, not local_rank).
        close = difflib.get_close_matches(key, known, n=5, cutoff=0.6)
        close.sort(key=lambda name: len(os.path.commonprefix([key, name])), reverse=True)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    classes = ", ".join(cls.__name__ for cls in dataclass_types)
    return (
        f"{config} (or the command line): unknown key(s) {', '.join(parts)}: not a field of {classes}; "
        "fix the spelling or remove it (the recipe's --help lists every field)."
    )


# -- inference and evaluation (recipes/generate.py, recipes/evaluate_models.py) -----------------------------------


@dataclass
class _InferenceFields(RecipeField):
    """Fields generation and evaluation share."""

    batch_size: int = field(default=8, metadata={"help": "Prompts generated at once (left-padded, greedy)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Generation budget per prompt."})
    device: str = field(
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
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}.")


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
        check_metric_names(self.metrics)


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
        default=None, metadata={"help": "Evaluate only the first N questions of each benchmark (a quick look)."}
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
    device: str = field(
        default="auto", metadata={"help": "'auto' (a GPU if there is one, else the CPU), 'cpu' or 'cuda'."}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run model code from the checkpoint's repository (off unless you trust it)."}
    )
    resume: bool = field(
        default=True,
        metadata={
            "help": "Keep the results of benchmarks that already finished in output_dir with the same settings "
            "(model and its settings, adapter, the weights of local folders, task file, limit, budget); false: run "
            "every benchmark again."
        },
    )
    gallery_samples: int = field(
        default=8, metadata={"help": "Failed prompts shown per benchmark in leaderboard.html."}
    )
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
        check_benchmark_names(self.benchmarks)
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 (or unset for every question), got {self.limit}.")
        if self.batch_size < 1 or (self.max_new_tokens is not None and self.max_new_tokens < 1):
            raise ValueError("batch_size and max_new_tokens must be >= 1.")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}.")
        check_data_source(self.dataset_source, "dataset_source")
