"""Image classification and image/caption data for the CLIP and ViT recipes.

datasets does the loading (`imagefolder` for local folders: class = subfolder, or a metadata.jsonl/.csv with a
`file_name` column; any Hub id for users online, or a local folder laid out like one). This module adds the offline
sources (synthetic shapes, scikit-learn's real 8x8 handwritten digits), a held-out split when the data has none
(stratified by class, seeded), and one shape for every source: an `image` column plus `label` (int) or `caption`
(str). Only the splits a run needs are read from a Hub dataset, rows are capped before anything is decoded, and
images stay as the dataset stores them (no decoding and re-encoding on the way).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value, load_dataset
from PIL import Image as PILImage

from ..data import synthetic
from ..data.loading import held_out_plan, hold_out, hub_split_files, load_hub_splits
from ..settings.baselines import ImageDataArguments

OFFLINE_SOURCES = ("synthetic", "digits")


def digits_dataset() -> Dataset:
    """scikit-learn's handwritten digits (real scans, 8x8, 17 grey levels) as greyscale PIL images 0-255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (digits.images * (255 / 16)).round().astype(np.uint8)
    names = [str(d) for d in range(10)]
    return Dataset.from_dict(
        {"image": [PILImage.fromarray(p, mode="L") for p in pixels], "label": digits.target.tolist()},
        features=Features({"image": Image(), "label": ClassLabel(names=names)}),
    )


def _plan(args: ImageDataArguments, splits: list[str], with_train: bool) -> tuple[str | None, str | None]:
    """(train split or None, held-out split or None: hold out test_fraction of train), by the loaders' one rule
    (`vlm_recipes.data.loading.held_out_plan`): a zero-shot run (no training) given the train split, or no held-out
    split, scores the rows a training run of the same settings holds out, never the rows it trains on."""
    test = held_out_plan(
        args.dataset_name,
        splits,
        args.dataset_train_split,
        args.dataset_test_split,
        "test_fraction",
        args.test_fraction,
        needs_train=with_train,
    )
    return (args.dataset_train_split if with_train or test is None else None), test


def _load(args: ImageDataArguments, with_train: bool) -> tuple[Dataset | None, Dataset | None]:
    """(train, test) as stored, reading only the splits needed; test None: hold out part of train."""
    name = args.dataset_name
    path = Path(name)
    local = None
    if name == "digits":
        local = DatasetDict({"train": digits_dataset()})
    elif path.is_file():
        raise ValueError(f"dataset_name {name}: expected an image folder (class = subfolder, or metadata file).")
    elif path.is_dir() and not any(path.glob("**/*.parquet")):  # an image folder (a Hub-like folder has Parquet)
        local = load_dataset("imagefolder", data_dir=str(path))
    files = None if local is not None else hub_split_files(name, args.dataset_config)
    train, test = _plan(args, list(local if local is not None else files), with_train)
    wanted = [s for s in dict.fromkeys((train, test)) if s is not None]
    loaded = local if local is not None else load_hub_splits(name, args.dataset_config, wanted, files)
    return (loaded[train] if train else None), (loaded[test] if test else None)


def _split(
    args: ImageDataArguments, seed: int, stratify: str | None, with_train: bool
) -> tuple[Dataset | None, Dataset]:
    train, test = _load(args, with_train)
    if test is None:
        stratify = stratify if stratify and isinstance(train.features.get(stratify), ClassLabel) else None
        train, test = hold_out(train, args.test_fraction, seed, args.dataset_train_split, stratify)
    return train, test


def _cap(ds: Dataset | None, n: int | None, seed: int) -> Dataset | None:
    """At most `n` rows, drawn at random (files are often sorted by class: the first n would be one class).
    Selecting rows decodes nothing: cap before reading a column."""
    if ds is None or n is None or n >= len(ds):
        return ds
    return ds.shuffle(seed=seed).select(range(n))


def _require(ds: Dataset, columns: list[str], args: ImageDataArguments, what: str) -> None:
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"{args.dataset_name}: no column {missing} for {what} (columns: {ds.column_names}); "
            "set image_column / label_column / caption_column."
        )


def load_classification(
    args: ImageDataArguments, seed: int = 0, with_train: bool = True
) -> tuple[Dataset | None, Dataset, list[str]]:
    """(train, test, class_names) with columns `image`, `label`; zero-shot uses pass with_train=False."""
    if args.dataset_name == "synthetic":
        size = args.synthetic_image_size
        n_train = args.synthetic_train_samples if with_train else 1
        train = synthetic.make_classification_dataset(n_train, seed=seed, image_size=size)
        test = synthetic.make_classification_dataset(args.max_eval_samples or 500, seed=seed + 1, image_size=size)
    else:
        train, test = _split(args, seed, args.label_column, with_train)
        rename = {args.image_column: "image", args.label_column: "label"}
        for ds in (train, test):
            if ds is not None:
                _require(ds, [args.image_column, args.label_column], args, "classification")
        train, test = (
            ds.rename_columns({k: v for k, v in rename.items() if k != v}) if ds is not None else None
            for ds in (train, test)
        )
    feature = test.features["label"]
    if feature.dtype == "string":  # e.g. a metadata file with label names: number them (class_names order first)
        seen = set(test.unique("label")) | (set(train.unique("label")) if train is not None else set())
        unknown = sorted(seen - set(args.class_names or []))
        names = list(args.class_names or []) + unknown
        if args.class_names and unknown:
            raise ValueError(f"{args.dataset_name}: labels {unknown} are not in class_names {args.class_names}.")
        encode = ClassLabel(names=names)
        train, test = (ds.cast_column("label", encode) if ds is not None else None for ds in (train, test))
        feature = test.features["label"]
    if args.class_names:
        names = list(args.class_names)
    elif isinstance(feature, ClassLabel):
        names = list(feature.names)
    else:
        raise ValueError(f"{args.dataset_name}: label column is not a ClassLabel; list the names in class_names.")
    labels = set(test.unique("label")) | (set(train.unique("label")) if train is not None else set())
    if max(labels) >= len(names):
        raise ValueError(f"{args.dataset_name}: label {max(labels)} has no name; class_names lists {len(names)}.")
    train = train if with_train else None
    return _cap(train, args.max_train_samples, seed), _cap(test, args.max_eval_samples, seed), names


def load_captions(args: ImageDataArguments, seed: int = 0, with_train: bool = True) -> tuple[Dataset | None, Dataset]:
    """(train, test) with columns `image`, `caption` and `canonical` (equal for captions of the same content;
    the caption itself when the data has no such column)."""
    if args.dataset_name == "synthetic":
        size = args.synthetic_image_size
        n_train = args.synthetic_train_samples if with_train else 1
        train = synthetic.make_caption_dataset(n_train, seed=seed, image_size=size)
        test = synthetic.make_caption_dataset(args.max_eval_samples or 500, seed=seed + 1, image_size=size)
        return (_cap(train, args.max_train_samples, seed) if with_train else None), test
    train, test = _split(args, seed, None, with_train)
    train, test = _cap(train, args.max_train_samples, seed), _cap(test, args.max_eval_samples, seed)
    return tuple(None if ds is None else _caption_pairs(ds, args) for ds in (train, test))


def _caption_pairs(ds: Dataset, args: ImageDataArguments) -> Dataset:
    """Columns `image` (undecoded on the way: no re-encoding), `caption` (the first one when the data has several
    per image, as Flickr30k and COCO do) and `canonical`."""
    _require(ds, [args.image_column, args.caption_column], args, "image/caption pairs")
    keep = [args.image_column, args.caption_column] + (["canonical"] if "canonical" in ds.column_names else [])
    ds = ds.select_columns(keep).cast_column(args.image_column, Image(decode=False))

    def first(caption, *canonical):
        caption = caption[0] if isinstance(caption, list) else caption
        return {"caption": caption, "canonical": canonical[0] if canonical else caption}

    columns = [args.caption_column] + (["canonical"] if "canonical" in keep else [])
    drop = [c for c in keep if c not in (args.image_column, "canonical")]
    ds = ds.map(first, input_columns=columns, remove_columns=drop)
    if args.image_column != "image":
        ds = ds.rename_column(args.image_column, "image")
    features = Features({"image": Image(), "caption": Value("string"), "canonical": Value("string")})
    return ds.select_columns(list(features)).cast(features)
