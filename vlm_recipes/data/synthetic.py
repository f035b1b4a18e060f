"""Procedural, seeded visual tasks a tiny model can really learn on a CPU.

Each scene is a small image with one or more shapes (circle, square, triangle) in a few colours at random
positions and sizes on a grey background. Tasks turn scenes into conversations (`images` + `messages`) in
the format TRL and our collators expect:

- `color`:    "What color is the shape?"          -> "red"
- `shape`:    "What shape is this?"                -> "circle"
- `color_shape`: an even mix of the two above (the default SFT task)
- `count`:    "How many shapes are there?"         -> "three" (1-4 shapes of one colour)
- `position`: "Where is the shape?"                -> "left" / "right" / "top" / "bottom"
- `caption`:  "Describe the image." (or another of CAPTION_PROMPTS) -> "a red circle" / "red circle" /
              "circle, red" (pre-trains the tiny bases)
- `mixed_images`: rows with two images, one image or none, in turn (MIXED_KINDS): "Which image shows a circle: the
              first or the second?" -> "first" (two scenes, one circle), "What color is the shape?" -> "red" (one
              scene), "Repeat the colour: blue." -> "blue" (text only). Each answer depends on its own row's images,
              so a completion scored against another row's would be scored wrongly (the GRPO mixed-row tests).

The same seed always gives the same dataset; different seeds give disjoint-by-construction random draws, so
train and held-out splits are made with different seeds.
"""

from __future__ import annotations

import random

from datasets import Dataset, Features, Image, List, Value
from PIL import Image as PILImage
from PIL import ImageDraw

COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("left", "right", "top", "bottom")
NUMBER_WORDS = ("zero", "one", "two", "three", "four")
TASKS = ("color", "shape", "color_shape", "count", "position", "caption", "mixed_images")

# Caption requests of different lengths: a base pre-trained on one fixed prompt learns where its answer sits
# relative to the image, and then fails to look at the image when the prompt changes.
CAPTION_PROMPTS = (
    "Describe the image.",
    "What is in this picture?",
    "Caption this image.",
    "Write a short caption for the picture.",
    "Tell me what you see.",
    "Describe the image in a few words, please.",
    "What does this image show?",
    "Give a brief description of this picture in your own words.",
)

# Caption forms in which each colour and shape word appears both first and after a space, so that a base
# pre-trained on captions has trained output embeddings for every spelling of the words an answer may start with
# (Qwen's template puts the answer right after a newline, SmolVLM's after a space).
CAPTION_FORMATS = ("a {color} {shape}", "{color} {shape}", "{shape}, {color}")

QUESTIONS = {
    "color": "What color is the shape?",
    "shape": "What shape is this?",
    "count": "How many shapes are there?",
    "position": "Where is the shape?",
    "caption": "Describe the image.",
}


def _grey_canvas(rng: random.Random, size: int):
    """A `size` x `size` image of a random mid grey (one draw from `rng`) and a drawing context on it."""
    grey = rng.randint(110, 150)
    image = PILImage.new("RGB", (size, size), (grey, grey, grey))
    return image, ImageDraw.Draw(image)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], rgb) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=rgb)
    elif shape == "square":
        draw.rectangle(box, fill=rgb)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=rgb)


def render_scene(rng: random.Random, size: int, shapes: list[tuple[str, str]], region: str | None = None):
    """Draw `shapes` ([(color, shape), ...]) without overlap; `region` confines a single shape to a side."""
    image, draw = _grey_canvas(rng, size)
    placed: list[tuple[int, int, int, int]] = []
    for color, shape in shapes:
        for _ in range(200):
            side = rng.randint(size // 5, size // 3) if len(shapes) > 1 else rng.randint(size // 4, size // 2)
            lo_x, hi_x, lo_y, hi_y = 1, size - side - 1, 1, size - side - 1
            half = size // 2
            if region == "left":
                hi_x = max(lo_x, half - side - 2)
            elif region == "right":
                lo_x = min(hi_x, half + 2)
            elif region == "top":
                hi_y = max(lo_y, half - side - 2)
            elif region == "bottom":
                lo_y = min(hi_y, half + 2)
            x, y = rng.randint(lo_x, hi_x), rng.randint(lo_y, hi_y)
            box = (x, y, x + side, y + side)
            if all(box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3] for b in placed):
                break
        placed.append(box)
        _draw_shape(draw, shape, box, COLORS[color])
    return image


def make_example(rng: random.Random, task: str, image_size: int) -> dict:
    """One scene and its question/answer for `task` (see module docstring)."""
    if task == "color_shape":
        task = rng.choice(("color", "shape"))
    color, shape = rng.choice(list(COLORS)), rng.choice(SHAPES)
    region = None
    if task == "count":
        n = rng.randint(1, 4)
        image = render_scene(rng, image_size, [(color, rng.choice(SHAPES)) for _ in range(n)])
        answer = NUMBER_WORDS[n]
    else:
        if task == "position":
            region = rng.choice(POSITIONS)
        image = render_scene(rng, image_size, [(color, shape)], region=region)
        caption = rng.choice(CAPTION_FORMATS).format(color=color, shape=shape) if task == "caption" else None
        answer = {"color": color, "shape": shape, "position": region, "caption": caption}[task]
    question = rng.choice(CAPTION_PROMPTS) if task == "caption" else QUESTIONS[task]
    return {
        "images": [image],
        "messages": [
            {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": question}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
        "question": question,
        "answer": answer,
        "task": task,
        "scene": {"color": color, "shape": shape},  # what is drawn (for plausible wrong answers); not a column
    }


FEATURES = Features(
    {
        "images": List(Image()),
        "messages": List(
            {"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}
        ),
        "question": Value("string"),
        "answer": Value("string"),
        "task": Value("string"),
    }
)


# The kinds of row of the `mixed_images` task, in the order rows take them (row i is of kind i % 3): any three
# consecutive rows hold a two-image row, a one-image row and a text-only row.
MIXED_KINDS = ("two_images", "one_image", "text_only")


def make_mixed_example(rng: random.Random, kind: str, image_size: int) -> dict:
    """One `mixed_images` row of `kind` (MIXED_KINDS): its images (two, one or none), question and answer."""
    color = rng.choice(list(COLORS))
    if kind == "two_images":
        first = rng.random() < 0.5
        other = rng.choice([s for s in SHAPES if s != "circle"])
        shapes = ("circle", other) if first else (other, "circle")
        images = [render_scene(rng, image_size, [(rng.choice(list(COLORS)), shape)]) for shape in shapes]
        question, answer = "Which image shows a circle: the first or the second?", "first" if first else "second"
    elif kind == "one_image":
        images = [render_scene(rng, image_size, [(color, rng.choice(SHAPES))])]
        question, answer = QUESTIONS["color"], color
    else:
        images, question, answer = [], f"Repeat the colour: {color}.", color
    content = [{"type": "image", "text": None} for _ in images] + [{"type": "text", "text": question}]
    return {
        "images": images,
        "messages": [
            {"role": "user", "content": content},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
        "question": question,
        "answer": answer,
        "task": kind,
        "scene": None,
    }


def make_dataset(task: str = "color_shape", num_samples: int = 1000, seed: int = 0, image_size: int = 64) -> Dataset:
    """A `datasets.Dataset` of `num_samples` conversations for `task`, reproducible from `seed`."""
    if task not in TASKS:
        raise ValueError(f"Unknown synthetic task {task!r}; choose one of {list(TASKS)}.")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    # Mix the task into the seed so that, e.g., the caption set and the color set with the same seed differ.
    rng = random.Random(f"{task}-{seed}")
    if task == "mixed_images":
        rows = [make_mixed_example(rng, MIXED_KINDS[i % len(MIXED_KINDS)], image_size) for i in range(num_samples)]
    else:
        rows = [make_example(rng, task, image_size) for _ in range(num_samples)]
    for row in rows:
        del row["scene"]
    return Dataset.from_list(rows, features=FEATURES)


# The values an answer of each task can take: a wrong one of the same kind is a plausible mistake.
ANSWER_VALUES = {
    "color": tuple(COLORS),
    "shape": SHAPES,
    "count": NUMBER_WORDS[1:],
    "position": POSITIONS,
}
_MESSAGES = FEATURES["messages"]
PREFERENCE_FEATURES = Features(
    {
        "images": List(Image()),
        "prompt": _MESSAGES,
        "chosen": _MESSAGES,
        "rejected": _MESSAGES,
        "question": Value("string"),
        "answer": Value("string"),
        "task": Value("string"),
    }
)


def make_preference_dataset(
    task: str = "color_shape", num_samples: int = 1000, seed: int = 0, image_size: int = 64
) -> Dataset:
    """Preference rows for DPO/MPO: `prompt` (the question with its image), `chosen` = the correct answer,
    `rejected` = a plausible wrong one: another value of the same kind, the other attribute of the scene ("red"
    to "What shape is this?") or a caption instead of an answer ("red circle"), one of the three at random."""
    if task not in ANSWER_VALUES and task != "color_shape":
        raise ValueError(
            f"No preference version of task {task!r}; choose color_shape or one of {list(ANSWER_VALUES)}."
        )
    rng = random.Random(f"preference-{task}-{seed}")
    rows = []
    for _ in range(num_samples):
        ex = make_example(rng, task, image_size)
        wrong = [v for v in ANSWER_VALUES[ex["task"]] if v != ex["answer"]]
        if ex["task"] in ("color", "shape"):
            # The mistakes a half-trained model makes: the other attribute, or a caption instead of an answer.
            scene = ex["scene"]
            other = scene["shape"] if ex["task"] == "color" else scene["color"]
            wrong = [rng.choice(wrong), other, f"{scene['color']} {scene['shape']}"]
        wrong = rng.choice(wrong)
        prompt, chosen = ex["messages"][:1], ex["messages"][1:]
        rejected = [{"role": "assistant", "content": [{"type": "text", "text": wrong}]}]
        rows.append(
            {
                "images": ex["images"],
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "question": ex["question"],
                "answer": ex["answer"],
                "task": ex["task"],
            }
        )
    return Dataset.from_list(rows, features=PREFERENCE_FEATURES)


# --- Image/caption data for contrastive (CLIP) training and zero-shot evaluation -------------------------------

# How training captions describe one shape. Zero-shot prompt templates (vlm_recipes.zero_shot) are deliberately
# different sentences, so that "bare class name vs one template vs an ensemble" measures something.
CLIP_CAPTION_FORMATS = ("a {color} {shape}", "{color} {shape}", "the {color} {shape}", "one {color} {shape}")
CLASS_NAMES = tuple(f"{color} {shape}" for color in COLORS for shape in SHAPES)  # 12 classes: "red circle", ...


def _two_shapes(rng: random.Random) -> list[tuple[str, str]]:
    """Two shapes that differ in colour and in kind, so that swapping their colours changes the scene."""
    c1, c2 = rng.sample(list(COLORS), 2)
    s1, s2 = rng.sample(list(SHAPES), 2)
    return [(c1, s1), (c2, s2)]


def describe(shapes: list[tuple[str, str]], fmt: str = "a {color} {shape}") -> str:
    return " and ".join(fmt.format(color=c, shape=s) for c, s in shapes)


def make_caption_dataset(
    num_samples: int = 1000, seed: int = 0, image_size: int = 64, two_shape_fraction: float = 0.3
) -> Dataset:
    """Image/caption pairs: one shape ("a red circle", "red circle", ...) or two ("a red circle and a blue
    square"). `canonical` is the caption in one fixed form: rows with equal `canonical` show the same content
    (retrieval counts any of them as a correct match)."""
    rng = random.Random(f"captions-{seed}")
    rows = []
    for _ in range(num_samples):
        shapes = (
            _two_shapes(rng) if rng.random() < two_shape_fraction else [(rng.choice(list(COLORS)), rng.choice(SHAPES))]
        )
        image = render_scene(rng, image_size, shapes)
        rng.shuffle(shapes)  # the caption names the shapes in either order
        caption = describe(shapes, rng.choice(CLIP_CAPTION_FORMATS))
        rows.append({"image": image, "caption": caption, "canonical": describe(sorted(shapes))})
    return Dataset.from_list(
        rows, features=Features({"image": Image(), "caption": Value("string"), "canonical": Value("string")})
    )


def make_classification_dataset(num_samples: int = 500, seed: int = 0, image_size: int = 64) -> Dataset:
    """One shape per image, labelled with its class index into CLASS_NAMES ("red circle" = 0, ...)."""
    from datasets import ClassLabel

    rng = random.Random(f"classes-{seed}")
    rows = []
    for _ in range(num_samples):
        label = rng.randrange(len(CLASS_NAMES))
        color, shape = CLASS_NAMES[label].split()
        rows.append({"image": render_scene(rng, image_size, [(color, shape)]), "label": label})
    return Dataset.from_list(rows, features=Features({"image": Image(), "label": ClassLabel(names=list(CLASS_NAMES))}))


def _render_left_right(rng: random.Random, size: int, left: tuple[str, str], right: tuple[str, str]):
    """Two shapes, `left` in the left half and `right` in the right half of the image."""
    image, draw = _grey_canvas(rng, size)
    for (color, shape), (lo, hi) in ((left, (1, size // 2 - 2)), (right, (size // 2 + 2, size - 1))):
        side = rng.randint(size // 5, size // 3)
        x, y = rng.randint(lo, hi - side), rng.randint(1, size - side - 1)
        _draw_shape(draw, shape, (x, y, x + side, y + side), COLORS[color])
    return image


def make_binding_dataset(num_samples: int = 200, seed: int = 0, image_size: int = 64) -> Dataset:
    """Compositionality probes in the spirit of SugarCrepe: a scene with two shapes, one left and one right,
    its true caption and three distractors: `swapped` (the two colours swapped: same words, wrong binding; cf.
    swap_att), `replaced` (one colour replaced by a colour not in the image: a word-level change; cf.
    replace_att) and, for the spatial relation, `relation` ("a red circle to the left of a blue square") vs
    `relation_swapped` (the two objects exchanged; cf. swap_obj)."""
    rng = random.Random(f"binding-{seed}")
    rows = []
    for _ in range(num_samples):
        (c1, s1), (c2, s2) = shapes = _two_shapes(rng)
        image = _render_left_right(rng, image_size, shapes[0], shapes[1])
        absent = rng.choice([c for c in COLORS if c not in (c1, c2)])
        order = shapes if rng.random() < 0.5 else shapes[::-1]  # the caption names either shape first
        swapped = [(c2, s1), (c1, s2)] if order is shapes else [(c1, s2), (c2, s1)]
        replaced = [(absent, order[0][1]), order[1]]
        rows.append(
            {
                "image": image,
                "caption": describe(order),
                "swapped": describe(swapped),
                "replaced": describe(replaced),
                "relation": f"a {c1} {s1} to the left of a {c2} {s2}",
                "relation_swapped": f"a {c2} {s2} to the left of a {c1} {s1}",
            }
        )
    columns = ("caption", "swapped", "replaced", "relation", "relation_swapped")
    return Dataset.from_list(rows, features=Features({"image": Image(), **{k: Value("string") for k in columns}}))


# --- Grounding: "Where is the red circle?" answered with a box ------------------------------------------------------

GROUNDING_TARGET = ("red", "circle")


def _grounding_others() -> list[tuple[str, str]]:
    """Every colour/shape pair but the grounding target: the distractors of the grounding scenes."""
    return [(c, s) for c in COLORS for s in SHAPES if (c, s) != GROUNDING_TARGET]


def make_grounding_dataset(
    num_samples: int = 1000,
    seed: int = 0,
    image_size: int = 64,
    grid: int = 4,
    max_shapes: int = 3,
    mirrored_fraction: float = 0.0,
) -> Dataset:
    """Scenes of 1 to `max_shapes` shapes, each filling one cell of a `grid` x `grid` grid (a coarse grid keeps the
    task learnable by a tiny model in a short run: with the default 4 x 4 on 64 px there are 16 possible boxes),
    exactly one of them the red circle; the others any other colour/shape pair (red squares and blue circles too, so
    colour alone or shape alone does not find it). Columns: `images` ([image]), `query` ("red circle"), `bbox`
    (the red circle's [x1, y1, x2, y2] in pixels: the extent of the drawn shape, x2/y2 exclusive), `task`.
    The answer in a model family's box convention is written by vlm_recipes.grounding (`box_format`).

    `mirrored_fraction`: that share of rows (drawn from a stream of its own, so the scenes stay those of the clean
    dataset) label the red circle's left-right mirror instead, always another cell since the grid's width is even:
    a systematic annotation error of known size."""
    if grid < 1 or image_size // grid < 4:
        raise ValueError(f"grid {grid} leaves cells under 4 px on {image_size} px images; use a smaller grid.")
    if mirrored_fraction and grid % 2:
        raise ValueError(f"mirrored boxes need an even grid (a mirrored middle column is the same cell), got {grid}.")
    rng = random.Random(f"grounding-{seed}")
    noise = random.Random(f"grounding-mirrored-{seed}")
    cell = image_size // grid
    margin = max(1, cell // 8)
    others = _grounding_others()
    rows = []
    for _ in range(num_samples):
        image, draw = _grey_canvas(rng, image_size)
        cells = rng.sample(range(grid * grid), rng.randint(1, min(max_shapes, grid * grid)))
        target_box = None
        for i, index in enumerate(cells):
            color, shape = GROUNDING_TARGET if i == 0 else rng.choice(others)
            x0, y0 = (index % grid) * cell + margin, (index // grid) * cell + margin
            side = cell - 2 * margin
            _draw_shape(draw, shape, (x0, y0, x0 + side - 1, y0 + side - 1), COLORS[color])  # PIL: inclusive
            if i == 0:
                target_box = [float(x0), float(y0), float(x0 + side), float(y0 + side)]
        if noise.random() < mirrored_fraction:
            target_box = [image_size - target_box[2], target_box[1], image_size - target_box[0], target_box[3]]
        rows.append({"images": [image], "query": " ".join(GROUNDING_TARGET), "bbox": target_box, "task": "grounding"})
    features = Features(
        {"images": List(Image()), "query": Value("string"), "bbox": List(Value("float32")), "task": Value("string")}
    )
    return Dataset.from_list(rows, features=features)


def make_grounding_free_dataset(
    num_samples: int = 1000,
    seed: int = 0,
    image_size: int = 64,
    max_shapes: int = 2,
    min_side: float = 0.3,
    max_side: float = 0.6,
) -> Dataset:
    """Like make_grounding_dataset, but with continuous boxes: each shape a random side in [`min_side`, `max_side`] of
    the image's side, placed anywhere without overlapping the others (not on a grid), so an answer can be roughly
    right (IoU@0.5) yet imprecise (mean IoU < 1): the setting in which a dense `iou` reward has something to tighten.
    Same columns as make_grounding_dataset; deterministic by seed."""
    rng = random.Random(f"grounding-free-{seed}")
    lo, hi = max(4, round(min_side * image_size)), max(4, round(max_side * image_size))
    others = _grounding_others()
    rows = []
    for _ in range(num_samples):
        image, draw = _grey_canvas(rng, image_size)
        placed: list[tuple[int, int, int, int]] = []
        for i in range(rng.randint(1, max_shapes)):
            for _attempt in range(50):
                side = rng.randint(lo, hi)
                x0, y0 = rng.randint(0, image_size - side), rng.randint(0, image_size - side)
                box = (x0, y0, x0 + side, y0 + side)
                if all(box[2] <= b[0] or b[2] <= box[0] or box[3] <= b[1] or b[3] <= box[1] for b in placed):
                    break
            else:
                continue  # no room left: fewer shapes (never the target, which is placed first)
            placed.append(box)
            color, shape = GROUNDING_TARGET if i == 0 else rng.choice(others)
            _draw_shape(draw, shape, (x0, y0, x0 + side - 1, y0 + side - 1), COLORS[color])  # PIL: inclusive
        rows.append({"images": [image], "query": " ".join(GROUNDING_TARGET), "bbox": [float(v) for v in placed[0]],
                     "task": "grounding"})  # fmt: skip
    features = Features(
        {"images": List(Image()), "query": Value("string"), "bbox": List(Value("float32")), "task": Value("string")}
    )
    return Dataset.from_list(rows, features=features)
