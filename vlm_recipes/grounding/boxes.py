"""Bounding boxes in each model family's answer convention: conversions both ways, and parsing model answers.

A dataset's boxes are kept in one common form, `bbox`: [x1, y1, x2, y2] in pixels of the image as stored (xyxy,
origin top left), with the image's size. What the model reads and writes is the family's convention:

| convention | answer | coordinates |
|---|---|---|
| `qwen2-vl` | `<|object_ref_start|>red circle<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>` | 0-999 grid |
| `qwen2.5-vl` | `[{"bbox_2d": [x1, y1, x2, y2], "label": "red circle"}]` | integer pixels of the resized input image |
| `smolvlm` | `[x1, y1, x2, y2]` | integers on a 0-100 grid: percent of the image's width / height |
| `qwen3-vl` | `[{"bbox_2d": [x1, y1, x2, y2], "label": "red circle"}]` | integers on a 0-1000 grid of the sides |

The `qwen2-vl` grid: integers in [0, 1000) of the image's width / height (an edge on the border is 999).

The `qwen3-vl` grid: round(x / width * 1000), clamped to [0, 1000] (Qwen's `convert_to_qwen2vl_format`, which the
Qwen3-VL maintainers point to for training data), whatever the processor's resize.

The resized input image of `qwen2.5-vl` is the one the processor feeds the model: transformers' smart_resize to
multiples of patch_size x merge_size (28) within the processor's min/max pixels.

Why these frames. Qwen2-VL was pre-trained on boxes "normalized within [0, 1000)" of the image, written
"(x_top_left,y_top_left),(x_bottom_right,y_bottom_right)" between `<|box_start|>` and `<|box_end|>`, with the
object's text between `<|object_ref_start|>` and `<|object_ref_end|>` (Qwen2-VL technical report, arXiv 2409.12191,
section 2.3; the four are special tokens of its tokenizer, ids 151646-151649).
Qwen2.5-VL was trained on absolute coordinates of its input image, and its input image is the
resized one (the Qwen2.5-VL cookbooks scale predictions back with the input width/height the processor chose), so
the same answer means the same place only in that frame; the frame depends on min_pixels/max_pixels, so it is
computed from the processor the run uses (`frame_size`). SmolVLM has no documented grounding format and splits
images into tiles of varying number, so no pixel frame is stable: coordinates are normalised. A 0-100 integer grid
(Molmo points use 0-100 too) keeps answers short (at most three digits per number; a tiny BPE tokenizer spends one
token per digit) at 1% of the side, which moves an IoU by at most a few percent; 0-1 with two decimals is the same
grid with more characters.
Qwen3-VL went back to a relative grid: "Using relative position coordinates" (QwenLM/Qwen3-VL README); the
maintainers: training coordinates must be normalised to 1000, independent of the resolution (QwenLM/Qwen3-VL#2008,
#1623), written as Qwen2.5-VL's JSON `bbox_2d` (the repository's spatial-understanding cookbook plots `bbox_2d` /
`point_2d` values / 1000 x the image's size).

IoU is unchanged when both boxes are scaled by the same factors along x and y, and every convention here is such a
scaling of the pixel frame (plus rounding), so an IoU computed between two answers in one convention equals the IoU
of the boxes converted back to pixels (up to the rounding of each to the convention's integer grid).

What the libraries already do: transformers' `smart_resize` (Qwen2-VL's image processor) gives the resized frame;
`json` reads and writes the answers. What this module adds: the conventions as records, looked up by name (an
unknown name is refused), conversions both ways, and a lenient parser that finds a box in a model's answer (JSON
with or without ```json fences, a bare list of four numbers, "(x1,y1),(x2,y2)") and returns None, never a guess,
when there is no proper box.

Control tokens written on purpose. The four Qwen2-VL markers are control tokens of the real tokenizer, and
vlm_recipes.data.chat_encoding keeps every control-token string found in message text as plain text. So the answer
comes in two forms: `answer` (the text, as the model writes it and as it is scored) and `answer_message` (the same
text with each marker the convention writes wrapped in KEEP_START / KEEP_END, `keep_control`): the chat encoder
turns a wrapped marker into the control token (when the tokenizer has it) and everything else, the label included,
stays text. Only this module writes the wrappers; data loading refuses them in a dataset's own text.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from ..settings.data import BOX_FORMATS

Box = tuple[float, float, float, float]

_NUMBER = r"-?\d+(?:\.\d+)?"
# Four numbers inside brackets or parentheses ("[1, 2, 3, 4]", "(1,2,3,4)"), or Qwen2-VL's "(x1,y1),(x2,y2)".
_FOUR = re.compile(rf"[\[(]\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*[\])]")
_PAIRS = re.compile(rf"\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)\s*,\s*\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)\s*(?:```|$)", re.DOTALL)

# Private-use characters around a control token a box convention writes on purpose (see the module docstring);
# U+F0000 / U+F0001 are chat_encoding's marks for control strings kept as text, so these are the next two.
KEEP_START, KEEP_END = "\U000f0002", "\U000f0003"
RESERVED_CHARACTERS = ("\U000f0000", "\U000f0001", KEEP_START, KEEP_END)
OBJECT_REF_START, OBJECT_REF_END = "<|object_ref_start|>", "<|object_ref_end|>"
BOX_START, BOX_END = "<|box_start|>", "<|box_end|>"
QWEN2_VL_MARKERS = (OBJECT_REF_START, OBJECT_REF_END, BOX_START, BOX_END)
_QWEN2_VL_ANSWER = re.compile(
    rf"{re.escape(OBJECT_REF_START)}(?P<label>.*?){re.escape(OBJECT_REF_END)}{re.escape(BOX_START)}"
    rf"\((\d+),(\d+)\),\((\d+),(\d+)\){re.escape(BOX_END)}",
    re.DOTALL,
)
# The same answer decoded with skip_special_tokens=True by a tokenizer in which the markers are special tokens (the
# real Qwen2-VL's): the label followed directly by the two points.
_QWEN2_VL_DECODED = re.compile(r"(?P<label>.*?)\((\d+),(\d+)\),\((\d+),(\d+)\)", re.DOTALL)


def keep_control(token: str) -> str:
    """`token` marked as a control token written on purpose (vlm_recipes.data.chat_encoding keeps it one)."""
    return f"{KEEP_START}{token}{KEEP_END}"


def unkept(text: str) -> str:
    """`text` without the KEEP_START / KEEP_END wrappers (the answer as the model writes it)."""
    return text.replace(KEEP_START, "").replace(KEEP_END, "")


def reserved_in(text) -> bool:
    """Whether `text` holds a private-use character this package reserves for marking control tokens."""
    return isinstance(text, str) and any(c in text for c in RESERVED_CHARACTERS)


def _round(value: float) -> int:
    """Half up (Python's round() rounds halves to even, which would move boxes at .5 both ways)."""
    return int(math.floor(value + 0.5))


def as_box(values) -> Box | None:
    """Four finite numbers with x2 > x1 and y2 > y1 as a box, else None."""
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        return None
    try:
        box = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in box) or box[2] <= box[0] or box[3] <= box[1]:
        return None
    return box


def xywh_to_xyxy(box) -> Box:
    """COCO's [x, y, width, height] as [x1, y1, x2, y2]."""
    x, y, w, h = (float(v) for v in box)
    return (x, y, x + w, y + h)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two xyxy boxes (0 when they do not overlap)."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_giou(a: Box, b: Box) -> float:
    """Generalized IoU (Rezatofighi et al. 2019): IoU minus the share of the smallest box enclosing both that neither
    covers. In [-1, 1]: 1 for identical boxes, 0 for two boxes that touch without overlapping, towards -1 as two small
    boxes move apart; unlike IoU it still ranks boxes that do not overlap, by how far apart they are."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    if union <= 0 or hull <= 0:
        return 0.0
    return inter / union - (hull - union) / hull


def _on_grid(coords, width, height) -> bool:
    """Four integers x1 < x2, y1 < y2 inside a frame of `width` x `height`: what `BoxConvention.format` writes."""
    if not isinstance(coords, list) or len(coords) != 4:
        return False
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in coords):
        return False
    x1, y1, x2, y2 = coords
    return 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


def _boxes_in_json(value) -> list[Box]:
    """Boxes in a parsed JSON value: a list of 4 numbers, {"bbox_2d": [...]} (or "bbox"), or lists of those."""
    if isinstance(value, dict):
        for key in ("bbox_2d", "bbox", "box"):
            if key in value:
                box = as_box(value[key])
                return [box] if box else []
        return []
    if isinstance(value, list):
        box = as_box(value) if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) else None
        if box:
            return [box]
        return [b for item in value if isinstance(item, (dict, list)) for b in _boxes_in_json(item)]
    return []


def parse_boxes(text) -> list[Box]:
    """Every box a model's answer states, in order, in the answer's own coordinates (no frame conversion).

    Read, in this order: the answer as JSON (inside ```json fences if any): a list of 4 numbers, an object with
    `bbox_2d` (Qwen2.5-VL) or `bbox`, or a list of such objects; otherwise each "[x1, y1, x2, y2]" /
    "(x1, y1, x2, y2)" / "(x1,y1),(x2,y2)" in the text. A group that is not a proper box (x2 <= x1, y2 <= y1, not 4
    numbers) is skipped, never repaired. A list or tuple of 4 numbers passes through as one box.
    """
    if isinstance(text, (list, tuple)):
        box = as_box(text)
        return [box] if box else []
    text = str(text)
    if BOX_START in text:  # Qwen2-VL's markers: the boxes are between them (a label may hold numbers of its own)
        inside = re.findall(rf"{re.escape(BOX_START)}(.*?){re.escape(BOX_END)}", text, re.DOTALL)
        return [b for part in inside for b in parse_boxes(part)]
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    try:
        return _boxes_in_json(json.loads(body))
    except (json.JSONDecodeError, ValueError):
        pass
    found = []
    for match in sorted([*_FOUR.finditer(body), *_PAIRS.finditer(body)], key=lambda m: m.start()):
        box = as_box(match.groups())
        if box and box not in found:
            found.append(box)
    return found


def parse_box(text) -> Box | None:
    """The first box of `parse_boxes`, or None when the answer states none (an unparsable answer: no box)."""
    boxes = parse_boxes(text)
    return boxes[0] if boxes else None


@dataclass(frozen=True)
class BoxConvention:
    """How one family reads and writes a box.

    Args:
        name: the `box_format` value that selects it.
        summary: one line for errors and the README.
        needs_processor: whether the frame depends on the processor's resize settings.
        grid: the side of the fixed grid the coordinates are on (e.g. 100: a 0-100 grid of each image side); None:
            pixels of the image as the processor resizes it.
        syntax: how a box is written: "list" (`[x1, y1, x2, y2]`), "json" (`[{"bbox_2d": [...], "label": ...}]`) or
            "qwen2-vl" (`<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`).
        half_open: coordinates lie in [0, grid) rather than [0, grid]: a box edge on the image's right or bottom
            border is written as grid - 1 (Qwen2-VL's "[0, 1000)").
        control_tokens: the control tokens an answer holds on purpose (`answer_message` wraps them, `keep_control`).
    """

    name: str
    summary: str
    needs_processor: bool
    grid: int | None = None
    syntax: str = "list"
    half_open: bool = False
    control_tokens: tuple[str, ...] = ()

    def frame_size(self, image_size: tuple[int, int], processor=None) -> tuple[int, int]:
        """(width, height) of the frame the answer's coordinates are in, for an image of `image_size` (w, h)."""
        if self.grid is not None:
            return (self.grid, self.grid)
        return qwen_input_size(image_size, processor)

    def to_frame(self, box, image_size, frame) -> tuple[int, int, int, int]:
        """A pixel box of an image of `image_size` in this convention's frame of size `frame`, rounded to integers
        (the answer's grid)."""
        sx, sy = frame[0] / image_size[0], frame[1] / image_size[1]
        box = (_round(box[0] * sx), _round(box[1] * sy), _round(box[2] * sx), _round(box[3] * sy))
        if self.half_open:  # [0, grid): the last cell is grid - 1
            box = (
                min(box[0], frame[0] - 1),
                min(box[1], frame[1] - 1),
                min(box[2], frame[0] - 1),
                min(box[3], frame[1] - 1),
            )
        return box

    @staticmethod
    def from_frame(box, image_size, frame) -> Box:
        """A box in the frame of size `frame` back in pixels of the image of `image_size`."""
        sx, sy = image_size[0] / frame[0], image_size[1] / frame[1]
        return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)

    def format(self, frame_box, label: str | None = None, keep=None) -> str:
        """The answer text for a box already in the frame (`to_frame`). `keep` wraps each control token the
        convention writes (`keep_control` for the assistant message; default: the token as is)."""
        coords = [int(v) for v in frame_box]
        if self.syntax == "qwen2-vl":
            keep = keep or (lambda token: token)
            x1, y1, x2, y2 = coords
            return (
                f"{keep(OBJECT_REF_START)}{label or ''}{keep(OBJECT_REF_END)}"
                f"{keep(BOX_START)}({x1},{y1}),({x2},{y2}){keep(BOX_END)}"
            )
        if self.syntax == "list":
            return json.dumps(coords)
        # json.dumps escapes the label: text of the dataset stays text inside the answer.
        return json.dumps([{"bbox_2d": coords, "label": label or ""}], ensure_ascii=False)

    def answer(self, box, image_size, processor=None, label: str | None = None) -> tuple[str, tuple[int, int]]:
        """(answer text, frame size) for a pixel `box` of an image of `image_size`."""
        frame = self.frame_size(image_size, processor)
        return self.format(self.to_frame(box, image_size, frame), label), frame

    def answer_message(self, box, image_size, processor=None, label: str | None = None) -> str:
        """The answer as the assistant message holds it: `answer`'s text with the convention's control tokens wrapped
        (`keep_control`), so that they, and only they, are encoded as control tokens."""
        frame = self.frame_size(image_size, processor)
        return self.format(self.to_frame(box, image_size, frame), label, keep=keep_control)

    def is_answer(self, text: str, frame=None) -> bool:
        """Whether `text` is, as a whole, an answer in this convention for a frame of size `frame` (width, height;
        a grid convention's own grid when it has one): what `format` writes, up to spacing. "list": a JSON list of
        four integers on the frame with x1 < x2, y1 < y2; "json": a JSON list of one or more objects, each with
        `bbox_2d` (four such integers) and a text `label`, optionally in ```json fences (as Qwen2.5-VL answers);
        "qwen2-vl": the object-ref label and the two points between the box markers, the points on [0, grid), also
        without the four markers (what decode(skip_special_tokens=True) leaves when they are special tokens).
        Anything else, e.g. a box in prose or in another convention's syntax, is not: this is the strict check of a
        format reward, where `parse_box` is the lenient reader of the IoU rewards."""
        if self.grid is not None:
            frame = (self.grid, self.grid)
        elif frame is None:
            raise ValueError(f"box_format {self.name} answers in the processor's frame: pass the row's box_frame.")
        body = text.strip()
        if self.syntax == "qwen2-vl":
            # As written, or as decode(skip_special_tokens=True) leaves it where the markers are special tokens.
            match = _QWEN2_VL_ANSWER.fullmatch(body) or _QWEN2_VL_DECODED.fullmatch(body)
            if match is None or any(marker in match.group("label") for marker in QWEN2_VL_MARKERS):
                return False
            coords = [int(v) for v in match.groups()[1:]]
            return _on_grid(coords, frame[0] - self.half_open, frame[1] - self.half_open)
        if self.syntax == "json":
            fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.DOTALL)
            body = fenced.group(1) if fenced else body
        try:
            value = json.loads(body)
        except ValueError:  # json.JSONDecodeError included
            return False
        if self.syntax == "list":
            return _on_grid(value, frame[0], frame[1])
        return (
            isinstance(value, list)
            and len(value) > 0
            and all(
                isinstance(item, dict)
                and set(item) == {"bbox_2d", "label"}
                and isinstance(item["label"], str)
                and _on_grid(item["bbox_2d"], frame[0], frame[1])
                for item in value
            )
        )

    def read(self, text, image_size, frame) -> Box | None:
        """The first box of a model's answer, back in pixels of the image; None if it states none."""
        box = parse_box(text)
        return None if box is None else self.from_frame(box, image_size, frame)


CONVENTIONS: dict[str, BoxConvention] = {
    c.name: c
    for c in (
        BoxConvention(
            "qwen2-vl",
            "<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|> as integers on a "
            "0-1000 grid of the image's sides",
            needs_processor=False,
            grid=1000,
            syntax="qwen2-vl",
            half_open=True,
            control_tokens=QWEN2_VL_MARKERS,
        ),
        BoxConvention(
            "qwen2.5-vl",
            'JSON [{"bbox_2d": [x1, y1, x2, y2], "label": ...}] in integer pixels of the resized input image',
            needs_processor=True,
            syntax="json",
        ),
        BoxConvention("smolvlm", "[x1, y1, x2, y2] as integers on a 0-100 grid of the image's sides", False, grid=100),
        BoxConvention(
            "qwen3-vl",
            'JSON [{"bbox_2d": [x1, y1, x2, y2], "label": ...}] as integers on a 0-1000 grid of the image\'s sides',
            needs_processor=False,
            grid=1000,
            syntax="json",
        ),
    )
}
if tuple(CONVENTIONS) != BOX_FORMATS:  # the settings refuse other names before any convention is looked up
    raise ImportError(f"box conventions {tuple(CONVENTIONS)} differ from settings.data.BOX_FORMATS {BOX_FORMATS}")


def get_convention(name: str) -> BoxConvention:
    """The convention called `name`; an unknown name is refused, listing the known ones."""
    if name not in CONVENTIONS:
        known = "; ".join(f"{c.name}: {c.summary}" for c in CONVENTIONS.values())
        raise ValueError(f"Unknown box_format {name!r}; known box conventions: {known}.")
    return CONVENTIONS[name]


def qwen_input_size(image_size: tuple[int, int], processor) -> tuple[int, int]:
    """(width, height) of the image Qwen2-VL / Qwen2.5-VL's processor feeds the model for an image of `image_size`:
    transformers' `smart_resize` with the processor's factor (patch_size x merge_size) and pixel bounds."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    ip = getattr(processor, "image_processor", None)
    size = getattr(ip, "size", None)
    if ip is None or size is None or not hasattr(ip, "merge_size") or size.get("shortest_edge") is None:
        raise ValueError(
            "box_format qwen2.5-vl writes boxes in pixels of the image as the Qwen2-VL / Qwen2.5-VL processor resizes "
            f"it, but the processor is {type(processor).__name__}: use box_format smolvlm (normalised) for this model."
        )
    width, height = image_size
    h, w = smart_resize(
        height,
        width,
        factor=ip.patch_size * ip.merge_size,
        min_pixels=size["shortest_edge"],
        max_pixels=size["longest_edge"],
    )
    return (w, h)
