"""Data for the BLIP recipes: image/caption rows (several references per image) and VQA rows, from the synthetic
shapes, a Hub dataset (or a local folder laid out like one), a local image folder with a metadata file, or plain
image files.

The loading itself is the CLIP/ViT baselines' (`vlm_recipes.baselines.image_data`): only the splits a run needs are
read, a split the dataset lacks is an error naming the ones it has, a dataset without a held-out split holds out
`test_fraction` of its train split, and rows are capped before any image is decoded. What this module adds is the
two row shapes BLIP trains and is scored on, keeping every reference:

- captions: `image`, `captions` (list of str: a single caption becomes a list of one), `canonical` (rows with the
  same canonical show the same content; for real data each image is its own);
- VQA: `image`, `question`, `answers` (list of str: one answer, or the human answers of VQAv2 / TextVQA).
"""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, Features, Image, List, Value

from ..baselines.image_data import _cap, _require, _split
from ..data.sampling import sample_rows
from ..settings.blip import BlipDataArguments
from . import synthetic

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
CAPTION_FEATURES = Features({"image": Image(), "captions": List(Value("string")), "canonical": Value("string")})
VQA_FEATURES = Features({"image": Image(), "question": Value("string"), "answers": List(Value("string"))})
# Seeds of the synthetic splits, offset from the run's seed: held-out images are fresh random draws.
TRAIN_SEED_OFFSET, EVAL_SEED_OFFSET = 0, 1


def _strings(value, column: str, row: int, dataset: str) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise ValueError(
            f"{dataset}: row {row}, column {column!r}: expected a non-empty string or list of strings, got "
            f"{value!r}; fix or remove the row, or set the column (caption_column / answer_column)."
        )
    return values


def _caption_rows(ds: Dataset, args: BlipDataArguments) -> Dataset:
    _require(ds, [args.image_column, args.caption_column], args, "image/caption pairs")
    ds = ds.select_columns([args.image_column, args.caption_column]).cast_column(
        args.image_column, Image(decode=False)
    )

    def convert(caption, index):
        return {"captions": _strings(caption, args.caption_column, index, args.dataset_name), "canonical": f"#{index}"}

    ds = ds.map(convert, input_columns=[args.caption_column], with_indices=True, remove_columns=[args.caption_column])
    if args.image_column != "image":
        ds = ds.rename_column(args.image_column, "image")
    return ds.select_columns(list(CAPTION_FEATURES)).cast(CAPTION_FEATURES)


def _vqa_rows(ds: Dataset, args: BlipDataArguments) -> Dataset:
    columns = [args.image_column, args.question_column, args.answer_column]
    _require(ds, columns, args, "visual question answering")
    ds = ds.select_columns(columns).cast_column(args.image_column, Image(decode=False))

    def convert(question, answer, index):
        if not isinstance(question, str) or not question.strip():
            raise ValueError(
                f"{args.dataset_name}: row {index}, column {args.question_column!r}: no question ({question!r})."
            )
        return {"q": question, "answers": _strings(answer, args.answer_column, index, args.dataset_name)}

    ds = ds.map(
        convert,
        input_columns=[args.question_column, args.answer_column],
        with_indices=True,
        remove_columns=[c for c in columns if c != args.image_column],
    )
    ds = ds.rename_columns({"q": "question", **({args.image_column: "image"} if args.image_column != "image" else {})})
    return ds.select_columns(list(VQA_FEATURES)).cast(VQA_FEATURES)


def _synthetic(args: BlipDataArguments, task: str, n: int, seed: int) -> Dataset:
    size = args.synthetic_image_size
    if task == "vqa":
        ds = synthetic.make_vqa_dataset(n, seed=seed, image_size=size)
        return ds.map(lambda a: {"answers": [a]}, input_columns=["answer"], remove_columns=["answer"]).cast(
            VQA_FEATURES
        )
    return synthetic.make_caption_dataset(args.synthetic_task, n, seed=seed, image_size=size)


def load_task_splits(args: BlipDataArguments, task: str, seed: int, with_train: bool = True):
    """(train or None, held-out) in the task's row shape: captions for caption/retrieval, VQA rows for vqa."""
    # The held-out rows: a seeded random sample (data/sampling.sample_rows, as the VLM recipes draw theirs), stamped
    # with the rows drawn, which the recipes write beside their results (eval_rows.json).
    if args.dataset_name == "synthetic":
        train = _synthetic(args, task, args.synthetic_train_samples, seed + TRAIN_SEED_OFFSET) if with_train else None
        test = _synthetic(args, task, args.max_eval_samples or 200, seed + EVAL_SEED_OFFSET)
        return _cap(train, args.max_train_samples, seed), sample_rows(test, None, seed)
    train, test = _split(args, seed, None, with_train)
    train, test = (
        _cap(train if with_train else None, args.max_train_samples, seed),
        sample_rows(test, args.max_eval_samples, seed),
    )
    convert = _vqa_rows if task == "vqa" else _caption_rows
    return tuple(None if ds is None else convert(ds, args) for ds in (train, test))


def image_files(paths: list[str] | None, folder: str | None) -> list[Path]:
    """The image files named, or every image under `folder` (sorted); a missing or empty input names itself."""
    if folder:
        root = Path(folder)
        if not root.is_dir():
            raise ValueError(f"image_dir {root} is not a directory of images.")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"image_dir {root} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        return files
    files = [Path(p) for p in paths or []]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise ValueError(f"image file(s) not found: {missing}; fix the path(s).")
    return files


def images_dataset(files: list[Path]) -> Dataset:
    """Image files as a dataset with `image` (decoded on access, stored bytes kept) and `file`."""
    from PIL import Image as PILImage

    for f in files:  # fail on an unreadable file now, naming it, rather than inside a batch
        try:
            with PILImage.open(f) as im:
                im.verify()
        except OSError as err:
            raise ValueError(f"{f}: not a readable image ({err}); replace or remove the file.") from err
    ds = Dataset.from_dict({"image": [str(f) for f in files], "file": [str(f) for f in files]})
    return ds.cast_column("image", Image())
