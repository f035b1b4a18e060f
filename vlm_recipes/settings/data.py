"""Where training data comes from and how its rows become conversations (`DataArguments`).

Names checked against a registry (metrics, box conventions) are checked when a recipe parses its config
(vlm_recipes.launch.validate), not here: this module sits at the bottom of the package and imports nothing above it.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field, fields
from typing import Literal

from .common import (
    allow_overlap_field,
    check_choices,
    check_overlap_settings,
    current_dataset_id,
    dataset_config_field,
    max_overlap_field,
    test_split_field,
    train_split_field,
)

GROUNDING_TASKS = ("grounding", "grounding_free")  # synthetic tasks answered with a box (box_format)
# The box conventions by name: vlm_recipes/grounding/boxes.py defines one per name (and checks that it does).
BOX_FORMATS = ("qwen2-vl", "qwen2.5-vl", "smolvlm", "qwen3-vl")
# ActivityNet-QA's files: `video_name` holds the bare YouTube id, the extracted archive `v_<id>.mp4` (lmms-eval's
# lmms_eval/tasks/activitynetqa/utils.py reads f"v_{video_name}.mp4", trying .webm and .mkv as well).
ACTIVITYNET_VIDEO_PATH = "v_{video_name}.mp4"
# `box_format: auto`: the model family's own convention (vlm_recipes.models.families, `Family.box_formats`), resolved
# when the recipe validates its config, before the model loads.
BOX_FORMAT_AUTO = "auto"
# Where training images are processed (vlm_recipes/data/pipeline.py); the one list of the modes.
ImageProcessing = Literal["processor", "worker", "device"]
IMAGE_PROCESSING = ImageProcessing.__args__


@dataclass
class DataArguments:
    dataset_name: str = field(
        default="synthetic",
        metadata={
            "help": "'synthetic' (offline shapes task), 'synthetic_video' (offline video task), a Hub dataset id, "
            "a local image folder with a metadata.jsonl/.csv, or a local .jsonl/.json file of rows with image paths."
        },
    )
    dataset_config: str | None = dataset_config_field()
    dataset_train_split: str = train_split_field()
    dataset_test_split: str | None = test_split_field("eval_fraction", missing_is_error=False)
    eval_fraction: float = field(
        default=0.1, metadata={"help": "Fraction of the train split held out when there is no test split."}
    )
    synthetic_task: str = field(
        default="color_shape",
        metadata={
            "help": "Synthetic task: color, shape, color_shape, count, position, caption, mixed_images (rows with two "
            'images, one or none, in turn), grounding ("Where is '
            'the red circle?" answered with a box; needs box_format; shapes on a 4x4 grid) or grounding_free (the '
            "same with boxes of any size and place); with synthetic_video: first_color (which "
            "colour appears first?) or motion (which way does the shape move?), and their *_middle_frame baselines "
            "(the middle frame alone, as an image)."
        },
    )
    synthetic_image_size: int = field(default=64, metadata={"help": "Side in pixels of synthetic images."})
    synthetic_train_samples: int = field(default=3000, metadata={"help": "Number of synthetic training rows."})
    synthetic_mirrored_boxes: float = field(
        default=0.0,
        metadata={
            "help": "synthetic_task grounding: the fraction of training rows whose reference box is the target's "
            "left-right mirror (a systematic annotation error, drawn per row by seed); held-out rows are never "
            "changed. What a verifiable reward can correct that the labels taught (the offline GRPO grounding proof)."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Cap on training rows (None: all)."})
    max_eval_samples: int = field(
        default=200,
        metadata={
            "help": "Held-out rows used for the before/after accuracy (synthetic: generated): a random sample drawn "
            "with the run's seed (not the first rows), written to eval_rows.json."
        },
    )
    eval_stratum_column: str | None = field(
        default=None,
        metadata={
            "help": "Column whose values are strata of the held-out split (ChartQA: human_or_machine): the "
            "max_eval_samples sample keeps each stratum's share. None: a plain random sample."
        },
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
    padding_side: Literal["left", "right"] = field(
        default="right", metadata={"help": "Padding side of training batches: right or left."}
    )
    on_overflow: Literal["error", "drop"] = field(
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
    image_processing: ImageProcessing = field(
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
            "help": "Folder that relative video paths (video_path_template) are read from, e.g. where the dataset's "
            "video archive was extracted (ActivityNet-QA: the all_test/ folder of its archives)."
        },
    )
    video_path_template: str | None = field(
        default=ACTIVITYNET_VIDEO_PATH,
        metadata={
            "help": "With video_column: each row's video file, as a Python format string over the row's columns, "
            "relative to video_root. The default is ActivityNet-QA's layout (video_name is the bare YouTube id, the "
            "file v_<id>.mp4, as lmms-eval reads it); '{video}' reads a column `video` of paths as they are, "
            "'{split}/{clip_id}.mkv' any other layout. A file that is missing under one video extension is found "
            "under another (.mp4, .webm, .mkv, ...) when exactly one exists. null: video_column's values are the "
            "paths (or frame lists) themselves."
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
            "help": "Grounding: the box convention of the answers, qwen2-vl (Qwen2-VL's <|box_start|>(x1,y1),(x2,y2)"
            "<|box_end|> on a 0-1000 grid), qwen2.5-vl (JSON bbox_2d in pixels of the resized input image), smolvlm "
            "(integers on a 0-100 grid), or auto (the model family's own); see vlm_recipes/grounding/boxes.py. When "
            "set, each row's bbox_column becomes the answer in this convention. A convention that is not the model "
            "family's own is refused unless box_format_override is true."
        },
    )
    box_format_override: bool = field(
        default=False,
        metadata={
            "help": "Grounding: train box_format although it is not the convention the model family was pre-trained "
            "on (e.g. qwen2.5-vl on a Qwen2-VL model). Refused when box_format is the family's own."
        },
    )
    bbox_column: str = field(
        default="bbox", metadata={"help": "Grounding: the column with the object's box, in pixels of the image."}
    )
    bbox_layout: Literal["xyxy", "xywh"] = field(
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
    allow_overlap: bool = allow_overlap_field()
    max_overlap: float = max_overlap_field()

    def __post_init__(self):
        check_choices(self)
        self.dataset_name = current_dataset_id(self.dataset_name)
        check_overlap_settings(self)
        if (self.question_column is None) != (self.answer_column is None):
            raise ValueError("Set both question_column and answer_column, or neither.")
        if not 0.0 <= self.synthetic_mirrored_boxes < 1.0:
            raise ValueError(f"synthetic_mirrored_boxes must be in [0, 1), got {self.synthetic_mirrored_boxes}.")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}.")
        if self.max_image_pixels < 1:
            raise ValueError(f"max_image_pixels must be positive, got {self.max_image_pixels}.")
        if self.video_fps is not None and self.video_fps <= 0 or self.video_frame_list_fps <= 0:
            raise ValueError("video_fps and video_frame_list_fps must be positive (video_fps null: every frame).")
        if self.video_max_frames is not None and self.video_max_frames < 1:
            raise ValueError(f"video_max_frames must be >= 1 (or null), got {self.video_max_frames}.")
        self._check_video_path_template()
        if self.preflight_rows != "all" and not (self.preflight_rows.isdigit() and int(self.preflight_rows) > 0):
            raise ValueError(f"preflight_rows must be a positive number or 'all', got {self.preflight_rows!r}.")
        self._check_grounding()

    def _check_video_path_template(self) -> None:
        """A template names row columns only ({column}), and is refused where nothing reads it (no video_column)."""
        template = self.video_path_template
        if template is None:
            return
        if self.video_column is None and template != ACTIVITYNET_VIDEO_PATH:
            raise ValueError("video_path_template applies to video_column only: set video_column, or remove it.")
        try:
            parts = list(string.Formatter().parse(template))
        except ValueError as err:
            raise ValueError(f"video_path_template {template!r} is not a format string ({err}).") from err
        names = [name for _, name, _, _ in parts if name is not None]
        if not names or any(not name.isidentifier() for name in names):
            raise ValueError(
                f"video_path_template {template!r} must name row columns in braces, e.g. 'v_{{video_name}}.mp4' or "
                "'{video}' (or be null: video_column's values are the paths)."
            )

    @property
    def video_template_columns(self) -> list[str]:
        """The columns video_path_template reads (empty when it is null)."""
        if self.video_path_template is None:
            return []
        return [name for _, name, _, _ in string.Formatter().parse(self.video_path_template) if name is not None]

    def _check_grounding(self) -> None:
        """Grounding settings that would be ignored, or contradict each other, are refused here."""
        if self.synthetic_mirrored_boxes and not (
            self.dataset_name == "synthetic" and self.synthetic_task == "grounding"
        ):
            raise ValueError("synthetic_mirrored_boxes applies to synthetic_task grounding only: remove it.")
        if self.box_format is not None and self.box_format not in (*BOX_FORMATS, BOX_FORMAT_AUTO):
            raise ValueError(
                f"Unknown box_format {self.box_format!r}; known box conventions: {', '.join(BOX_FORMATS)}, or "
                f"{BOX_FORMAT_AUTO} (the model family's own; vlm_recipes/grounding/boxes.py describes each)."
            )
        if self.box_format_override and self.box_format in (None, BOX_FORMAT_AUTO):
            raise ValueError(
                f"box_format_override is for a box_format that is not the model family's own, but box_format is "
                f"{self.box_format}: remove box_format_override."
            )
        if self.box_format is None:
            if self.synthetic_task in GROUNDING_TASKS and self.dataset_name == "synthetic":
                raise ValueError(
                    "synthetic_task grounding answers with boxes: set box_format (auto, or one of "
                    f"{', '.join(BOX_FORMATS)})."
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
