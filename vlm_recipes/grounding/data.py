"""Grounding rows: an image, a question naming an object, and its box as the answer in the family's convention.

`datasets` loads the data (the offline synthetic task, a Hub dataset, local files: vlm_recipes.data.loading); this
module turns each row's common box (`bbox_column`, xyxy or COCO's xywh in pixels of the stored image) into the
conversation the recipes train on. Every row gets:

- `question` (`grounding_prompt` with `{query}` filled) and `answer` (the box in `box_format`,
  vlm_recipes/grounding/boxes.py), which vlm_recipes.data.loading turns into `messages` as for any question/answer
  data, with `answer_message` (the answer with the control tokens the convention writes on purpose wrapped, so that
  they and only they become control tokens: Qwen2-VL's box markers) as the assistant's text;
- `bbox` (xyxy pixels of the stored image, floats), `image_size` ([width, height]) and `box_frame` ([width,
  height] of the frame the answer's coordinates are in: the resized input for qwen2.5-vl, 100 x 100 for smolvlm),
  so that rewards, metrics and the gallery convert answers back to pixels (`BoxConvention.from_frame`);
- `box_format`, the name of the convention the answer is written in (the `box_format` GRPO reward checks it).

A row whose box is not a box (not 4 numbers, x2 <= x1, outside the image) fails here, naming the row and the field,
before any model is loaded.

Scoring every referring expression. In RefCOCO a row is one object with a list of referring expressions (about three;
lmms-lab/RefCOCO's `answer`), and the published Acc@0.5 (and lmms-eval's refcoco_bbox_rec tasks, which explode each
row into one per expression) scores every expression. `add_box_answers(..., every_expression=True)`, used for the
scored split, does the same: one row per expression, each with `object_index` (the object's row in the split as
loaded) and `expression_index`; training rows keep one row per object (the first expression).

Image overlap. A training split and a scored split that share images (RefCOCO holds several objects per image, so a
held-out fraction of one split does; lmms-lab's RefCOCO `val` has 8,811 rows, 3,811 + 5,000, where RefCOCO-UNC val
has 3,811 objects) score a model on photos it was trained on. That figure is the contamination check's, one
implementation for every recipe (vlm_recipes/data/contamination.py, run at start-up by training/preflight/overlap.py:
perceptual hashes, so re-encoded or resized copies count too); grounding results quote it, never recompute it.
"""

from __future__ import annotations

import io
import logging

from datasets import Dataset, Image, List
from PIL import Image as PILImage

from ..settings import DataArguments
from ..settings.data import BOX_FORMAT_AUTO
from .boxes import as_box, get_convention, reserved_in, xywh_to_xyxy

logger = logging.getLogger(__name__)


def _image_size(value) -> tuple[int, int]:
    """(width, height) of an undecoded image ({bytes, path}); PIL reads the header only."""
    if isinstance(value, PILImage.Image):
        return value.size
    source = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
    with PILImage.open(source) as im:
        return im.size


def _row_name(i: int, row_ids) -> str:
    return f"row_id={row_ids[i]!r}" if row_ids is not None else f"row {i}"


def _query_text(value, i: int, row_ids, column: str) -> str:
    if isinstance(value, (list, tuple)):  # several referring expressions (RefCOCO's `answer`): the first
        value = value[0] if value else None
    if reserved_in(value):
        raise ValueError(
            f"{_row_name(i, row_ids)}: column {column!r} holds a private-use character U+F0000-U+F0003, which "
            "vlm_recipes reserves to mark control tokens in message text; remove it from the row."
        )
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"{_row_name(i, row_ids)}: column {column!r} must hold the object's name or referring expression (text, "
            f"or a list of them), got {value!r}; fix the row or set grounding_query_column."
        )
    return value.strip()


def every_expression_rows(ds: Dataset, column: str) -> Dataset:
    """One row per referring expression: a row whose `column` holds a list of expressions becomes one row per
    expression (`column` then holds that one expression), with `object_index` (the row in `ds`) and
    `expression_index` (its position in the list). A row with one expression (text) stays one row."""
    order, chosen, positions = [], [], []
    for i, value in enumerate(ds[column]):
        expressions = list(value) if isinstance(value, (list, tuple)) and value else [value]
        for k, expression in enumerate(expressions):
            order.append(i)
            chosen.append(expression)
            positions.append(k)
    out = ds.select(order).remove_columns([column]).flatten_indices()
    out = out.add_column(column, chosen).add_column("object_index", order)
    return out.add_column("expression_index", positions)


def add_box_answers(ds: Dataset, args: DataArguments, processor=None, every_expression: bool = False) -> Dataset:
    """`ds` (with an `images` list column) plus the grounding columns listed in the module docstring, and `question`
    (`grounding_prompt` with its `{query}` filled); vlm_recipes.data.loading then builds `messages` from `question`
    and `answer` as for any question/answer data. `every_expression`: one row per referring expression of each object
    (`every_expression_rows`; the scored split), else one row per object, asking for its first expression."""
    if args.box_format == BOX_FORMAT_AUTO:
        raise ValueError(
            "box_format auto is resolved from the model when the recipe validates its config "
            "(vlm_recipes.launch.validate); outside a recipe, name the convention (qwen2-vl, qwen2.5-vl, smolvlm)."
        )
    convention = get_convention(args.box_format)
    if convention.needs_processor and processor is None:
        raise ValueError(
            f"box_format {convention.name} writes boxes in pixels of the image as the processor resizes it: load the "
            "splits with the run's processor (load_splits(args, processor=...))."
        )
    if args.bbox_column not in ds.column_names:
        raise ValueError(f"Dataset has no column {args.bbox_column!r} (columns: {ds.column_names}); set bbox_column.")
    query_column = args.grounding_query_column
    if query_column is not None and query_column not in ds.column_names:
        raise ValueError(
            f"Dataset has no column {query_column!r} (columns: {ds.column_names}); set grounding_query_column."
        )
    if "{query}" in args.grounding_prompt and query_column is None:
        raise ValueError(
            f"grounding_prompt {args.grounding_prompt!r} names {{query}} but grounding_query_column is not set; set "
            "it to the column naming the object, or write a prompt without {query}."
        )
    if every_expression and query_column is not None:
        ds = every_expression_rows(ds, query_column)
    raw = ds.cast_column("images", List(Image(decode=False)))
    row_ids = ds["row_id"] if "row_id" in ds.column_names else None
    images, boxes = raw["images"], ds[args.bbox_column]
    queries = ds[query_column] if query_column is not None else [None] * len(ds)
    built = {
        "answer": [],
        "answer_message": [],
        "bbox": [],
        "image_size": [],
        "box_frame": [],
        "box_format": [],
        "label": [],
        "question": [],
    }
    for i, (row_images, value, query) in enumerate(zip(images, boxes, queries)):
        where = _row_name(i, row_ids)
        if not row_images or len(row_images) != 1:
            raise ValueError(f"{where}: a grounding row needs exactly one image, got {len(row_images or [])}.")
        size = _image_size(row_images[0])
        box = as_box(value) if args.bbox_layout == "xyxy" else as_box(xywh_to_xyxy(value)) if value else None
        if box is None:
            raise ValueError(
                f"{where}: {args.bbox_column}={value!r} is not a box in layout {args.bbox_layout} (four numbers, "
                "positive width and height); fix the row, or set bbox_layout (xyxy or COCO's xywh)."
            )
        slack = 1.0  # annotation tools round outwards; a box further outside the image is a wrong layout or image
        if box[0] < -slack or box[1] < -slack or box[2] > size[0] + slack or box[3] > size[1] + slack:
            raise ValueError(
                f"{where}: {args.bbox_column}={list(value)} ({args.bbox_layout}) lies outside its {size[0]}x{size[1]} "
                "image; check bbox_layout (xyxy or xywh) and that boxes are in pixels of the stored image."
            )
        label = _query_text(query, i, row_ids, query_column) if query_column is not None else None
        answer, frame = convention.answer(box, size, processor, label=label)
        built["answer"].append(answer)
        built["answer_message"].append(convention.answer_message(box, size, processor, label=label))
        built["bbox"].append(list(box))
        built["image_size"].append(list(size))
        built["box_frame"].append(list(frame))
        built["box_format"].append(convention.name)
        built["label"].append(label or "")
        built["question"].append(args.grounding_prompt.format(query=label) if label else args.grounding_prompt)
    ds = ds.remove_columns([c for c in built if c in ds.column_names])
    for name, values in built.items():
        ds = ds.add_column(name, values)
    return ds


def describe_scoring(scored: Dataset, split: str) -> str:
    """One line on what is scored (printed by the grounding loader); its image overlap with the training data is the
    contamination check's line, logged before training."""
    objects = len(set(scored["object_index"])) if "object_index" in scored.column_names else len(scored)
    return (
        f"Grounding: scoring {len(scored)} referring expressions of {objects} objects of split {split!r} (image "
        "overlap with the training data: the contamination check's figure)."
    )
