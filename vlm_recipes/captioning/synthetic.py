"""Synthetic image/caption and VQA rows for the BLIP recipes, drawn with the shapes of `vlm_recipes.data.synthetic`.

- `caption`: one shape ("a red circle", "red circle", "the red circle") or two ("a red circle and a blue square",
  in either order): what the tiny BLIP is pre-trained on.
- `position`: one shape confined to the left or the right half of the image, described with its side, three
  references per image ("a red circle on the left", "a red circle in the left half", "the left half shows a red
  circle"): a caption task the pre-trained tiny BLIP does not know (its captions never name a position), the offline
  fine-tuning default. Only left and right: a shape confined to the left half may also lie in the top half, so with
  top/bottom as well the side to name would be ambiguous (a model could not learn it from the image).
- VQA rows: "What color is the shape?" / "What shape is this?" with a one-word answer.

Every row has `image`, `captions` (the references, a list) and `canonical` (equal for rows showing the same
content: retrieval counts any of them as a match). The same seed always gives the same rows; train and held-out
rows are drawn with different seeds.
"""

from __future__ import annotations

import random

from datasets import Dataset, Features, Image, List, Value

from ..data.synthetic import COLORS, POSITIONS, QUESTIONS, SHAPES, make_example, render_scene

CAPTION_TASKS = ("caption", "position")
SIDES = ("left", "right")  # see `position` above
ONE_SHAPE_FORMS = ("a {color} {shape}", "{color} {shape}", "the {color} {shape}")
TWO_SHAPE_FORM = "a {c1} {s1} and a {c2} {s2}"
POSITION_FORMS = (
    "a {color} {shape} on the {position}",
    "a {color} {shape} in the {position} half",
    "the {position} half shows a {color} {shape}",
)
CAPTION_FEATURES = Features({"image": Image(), "captions": List(Value("string")), "canonical": Value("string")})
VQA_FEATURES = Features({"image": Image(), "question": Value("string"), "answer": Value("string")})


def _caption_row(rng: random.Random, task: str, image_size: int, two_shape_fraction: float) -> dict:
    color, shape = rng.choice(list(COLORS)), rng.choice(SHAPES)
    if task == "position":
        position = rng.choice(SIDES)
        image = render_scene(rng, image_size, [(color, shape)], region=position)
        captions = [f.format(color=color, shape=shape, position=position) for f in POSITION_FORMS]
        return {"image": image, "captions": captions, "canonical": f"{color} {shape} {position}"}
    if rng.random() < two_shape_fraction:
        (c1, c2), (s1, s2) = rng.sample(list(COLORS), 2), rng.sample(list(SHAPES), 2)
        image = render_scene(rng, image_size, [(c1, s1), (c2, s2)])
        captions = [
            TWO_SHAPE_FORM.format(c1=c1, s1=s1, c2=c2, s2=s2),
            TWO_SHAPE_FORM.format(c1=c2, s1=s2, c2=c1, s2=s1),
        ]
        canonical = " and ".join(sorted([f"{c1} {s1}", f"{c2} {s2}"]))
        return {"image": image, "captions": captions, "canonical": canonical}
    image = render_scene(rng, image_size, [(color, shape)])
    captions = [f.format(color=color, shape=shape) for f in ONE_SHAPE_FORMS]
    return {"image": image, "captions": captions, "canonical": f"{color} {shape}"}


def make_caption_dataset(
    task: str = "position", num_samples: int = 1000, seed: int = 0, image_size: int = 64, two_shape_fraction=0.3
) -> Dataset:
    """`num_samples` rows of `task` (see the module docstring), reproducible from `seed`."""
    if task not in CAPTION_TASKS:
        raise ValueError(f"Unknown synthetic caption task {task!r}; choose one of {list(CAPTION_TASKS)}.")
    rng = random.Random(f"blip-{task}-{seed}")
    rows = [_caption_row(rng, task, image_size, two_shape_fraction) for _ in range(num_samples)]
    return Dataset.from_list(rows, features=CAPTION_FEATURES)


def make_vqa_dataset(num_samples: int = 1000, seed: int = 0, image_size: int = 64) -> Dataset:
    """Colour and shape questions about one shape, with their one-word answers."""
    rng = random.Random(f"blip-vqa-{seed}")
    rows = []
    for _ in range(num_samples):
        example = make_example(rng, "color_shape", image_size)
        rows.append({"image": example["images"][0], "question": example["question"], "answer": example["answer"]})
    return Dataset.from_list(rows, features=VQA_FEATURES)


def corpus_words() -> list[str]:
    """Every word these rows use, for the tiny BLIP's tokenizer."""
    words = set(" ".join(POSITION_FORMS + ONE_SHAPE_FORMS + (TWO_SHAPE_FORM,)).replace("{", " ").split())
    words = {w.strip("}") for w in words if not w.endswith("}")}
    words |= set(COLORS) | set(SHAPES) | set(POSITIONS)  # every side, so the vocabulary stays the same
    words |= {w.strip("?.").lower() for q in QUESTIONS.values() for w in q.split()}
    return sorted(words)
