"""Datasets for the recipes: the offline synthetic task, or user data, turned into `images` + `messages` rows.

`datasets` already loads Hub datasets, image folders with a metadata file (`imagefolder`) and JSON lines; this
module adds what a VLM recipe needs on top: resolving image paths relative to the data file, mapping question /
answer columns to conversations with an optional system prompt, and errors that name the column and the fix.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, Image, List, load_dataset, load_dataset_builder

from ..grounding.boxes import reserved_in
from ..settings import DataArguments
from . import synthetic
from .sampling import sample_rows

logger = logging.getLogger(__name__)

RESERVED_HELP = (
    "holds a private-use character U+F0000-U+F0003, which vlm_recipes reserves to mark control tokens in message "
    "text (vlm_recipes/data/chat_encoding.py); remove it from the row."
)

# Seeds of the synthetic splits: different seeds, so held-out scenes are fresh random draws.
SYNTHETIC_TRAIN_SEED, SYNTHETIC_EVAL_SEED = 0, 1


def _load_local(args: DataArguments) -> DatasetDict | None:
    """A local .jsonl/.json file or image folder with a metadata file, loaded whole (its one split, `train`); None
    for a Hub id or a folder laid out like a Hub dataset repository (Parquet files, a dataset card)."""
    path = Path(args.dataset_name)
    if path.is_file():
        if path.suffix not in (".jsonl", ".json"):
            raise ValueError(f"{path}: local data files must be .jsonl or .json (rows with image paths).")
        ds = load_dataset("json", data_files=str(path), split="train")
        return DatasetDict({"train": _resolve_image_paths(ds, path.parent, args.image_column, path)})
    if path.is_dir() and any((path / name).exists() for name in ("metadata.jsonl", "metadata.csv")):
        return load_dataset("imagefolder", data_dir=str(path))
    if path.is_dir() and not any(path.glob("**/*.parquet")) and not (path / "README.md").exists():
        raise ValueError(
            f"{path}: a local folder must be an image folder (images plus a metadata.jsonl or metadata.csv with a "
            "file_name column and the question/answer or messages columns) or laid out like a Hub dataset "
            "(Parquet files under data/ or <config>/, optionally a README.md dataset card)."
        )
    return None


def hub_split_files(name: str, config: str | None) -> dict[str, list[str]]:
    """Which files hold each split of a Hub dataset (or of a local folder laid out like its repository), as
    `datasets` resolves them from the dataset card's `configs:` and the file names. Nothing is downloaded."""
    try:
        builder = load_dataset_builder(name, config)
    except ValueError as err:
        if "BuilderConfig" in str(err) or "Config name is missing" in str(err):
            raise ValueError(
                f"{name}: no configuration {config!r} ({err}); set dataset_config to one of its configurations."
            ) from err
        raise
    files = builder.config.data_files
    if not files:
        raise ValueError(f"{name} (config {config!r}) names no data files; it cannot be loaded split by split.")
    # As paths inside the repository ("data/validation-00000-of-00007.parquet"), the form `data_files` takes for a
    # Hub id and for a local folder alike; `base_path` is the repository root (hf://datasets/<id>@<revision>).
    root = str(builder.base_path).rstrip("/") + "/"
    return {str(split): [p[len(root) :] if p.startswith(root) else p for p in paths] for split, paths in files.items()}


def load_hub_splits(name: str, config: str | None, splits: list[str], files=None) -> dict[str, Dataset]:
    """Only the named splits of a Hub dataset: `load_dataset` is given those splits' files, so the other splits
    are neither downloaded nor prepared (scoring 500 validation rows of TextVQA must not fetch its 8 GB of train)."""
    files = files or hub_split_files(name, config)
    loaded = load_dataset(name, config, data_files={s: files[s] for s in splits}, split=list(splits))
    return dict(zip(splits, loaded))


def held_out_plan(
    name: str,
    splits: list[str],
    train: str,
    test: str | None,
    fraction_field: str,
    fraction: float,
    needs_train: bool = True,
) -> str | None:
    """The one rule by which every loader (VLM recipes, CLIP/ViT baselines, BLIP) picks its held-out rows: the split
    to score on, or None to hold out `fraction` of the train split (`hold_out`, seeded).

    - a held-out split that is the train split is never scored as it stands (its rows are the training rows): part
      of it is held out instead, and an evaluation-only run scores those same rows;
    - a null held-out split, or a dataset whose only split is the train split, holds out part of it too;
    - the part held out is whole groups where rows share a video (`hold_out`'s group_by_column: the VLM loader's
      `video_column`), so that no video is both trained on and scored;
    - a split name the dataset does not have is an error naming the splits it has (never a silent fallback); the
      train split may be absent only when nothing is trained and the held-out split is another one (`needs_train`
      False: a zero-shot run of the baselines).
    """
    if train not in splits and (needs_train or test is None or test == train or test not in splits):
        raise ValueError(f"{name}: no split {train!r} (splits: {splits}); set dataset_train_split to one of them.")
    if test == train:
        logger.warning(
            "%s: dataset_test_split %r is the train split: %s=%s of it is held out (and never trained on) instead.",
            name,
            test,
            fraction_field,
            fraction,
        )
        return None
    if test is None or test in splits:
        return test
    if splits == [train]:  # a dataset with one split (a .jsonl, merve/vqav2-small): hold out part of it
        return None
    raise ValueError(
        f"{name}: no split {test!r} (splits: {splits}); set dataset_test_split to one of them, or to null to hold out "
        f"{fraction_field}={fraction} of {train!r}."
    )


def hold_out(
    train: Dataset,
    fraction: float,
    seed: int,
    split: str,
    stratify_by_column: str | None = None,
    group_by_column: str | None = None,
):
    """(rest, held-out): `fraction` of `train` drawn with `seed` (stratified by a class column when given), the same
    rows for a training run and an evaluation-only run of the same settings.

    With `group_by_column` (video rows: their video column) whole groups are held out: `fraction` of the distinct
    values (at least one, and at least one left to train on), drawn with `seed`, and every row of them, so that no
    video has questions on both sides (ActivityNet-QA asks several questions per video)."""
    if group_by_column is None:
        parts = train.train_test_split(test_size=fraction, seed=seed, stratify_by_column=stratify_by_column)
        logger.info("No held-out split: held out %d of %d rows of %r.", len(parts["test"]), len(train), split)
        return parts["train"], parts["test"]
    keys = [repr(value) for value in train[group_by_column]]
    groups = sorted(set(keys))
    if len(groups) < 2:
        raise ValueError(
            f"{split!r}: all {len(train)} rows share one {group_by_column} value: no whole group can be held out; "
            "name a held-out split (dataset_test_split) or use more data."
        )
    count = min(len(groups) - 1, max(1, round(fraction * len(groups))))
    held = set(random.Random(seed).sample(groups, count))
    test_rows = [i for i, key in enumerate(keys) if key in held]
    train_rows = [i for i, key in enumerate(keys) if key not in held]
    logger.info(
        "No held-out split: held out %d of %d rows of %r, every row of %d of its %d %s values.",
        len(test_rows), len(train), split, count, len(groups), group_by_column,
    )  # fmt: skip
    return train.select(train_rows), train.select(test_rows)


def _raw_splits(args: DataArguments, with_train: bool = True) -> tuple[Dataset | None, Dataset | None]:
    """(train, held-out split or None) as loaded, reading only the splits needed: the held-out split alone when
    `with_train` is False and the dataset has one."""
    local = _load_local(args)
    files = None if local is not None else hub_split_files(args.dataset_name, args.dataset_config)
    splits = list(local if local is not None else files)
    test = held_out_plan(
        args.dataset_name,
        splits,
        args.dataset_train_split,
        args.dataset_test_split,
        "eval_fraction",
        args.eval_fraction,
        needs_train=with_train,  # evaluation only: a train split the data lacks leaves the held-out split whole
    )
    wanted = [args.dataset_train_split] if with_train or test is None else []
    wanted += [test] if test is not None and test not in wanted else []
    loaded = local if local is not None else load_hub_splits(args.dataset_name, args.dataset_config, wanted, files)
    return (loaded[args.dataset_train_split] if args.dataset_train_split in wanted else None), (
        loaded[test] if test is not None else None
    )


def row_names(source: Path, num_rows: int) -> list[str]:
    """The `row_id` of each row of a local data file: `<file>:<line>` for JSON lines (blank lines, which the JSON
    reader skips, are counted: the number is the line a text editor shows), `<file>[<index>]` for a JSON array."""
    if source.suffix == ".jsonl":
        with source.open("rb") as f:
            lines = [n for n, line in enumerate(f, start=1) if line.strip()]
        if len(lines) == num_rows:
            return [f"{source.name}:{n}" for n in lines]
    return [f"{source.name}[{i}]" for i in range(num_rows)]


# Set by `keep_bad_rows_for_preflight`: preflight reports such rows one by one instead of stopping at the first.
_KEEP_BAD_ROWS = ContextVar("keep_bad_rows_for_preflight", default=False)


@contextmanager
def keep_bad_rows_for_preflight():
    """Inside the block, rows of a local data file that name missing or empty (0-byte) image files, or whose text holds
    the characters reserved to mark control tokens, are loaded anyway, keeping their paths and text, so that preflight
    can name every bad row in one pass (decoding them fails later, naming the file; its row checks name the reserved
    characters). Training never loads data this way: it stops at the first such row."""
    token = _KEEP_BAD_ROWS.set(True)
    try:
        yield
    finally:
        _KEEP_BAD_ROWS.reset(token)


def _resolve_image_paths(ds: Dataset, root: Path, column: str, source: Path) -> Dataset:
    """Absolute image paths, checked to exist and be non-empty (cheap: no decoding); rows get a `row_id`
    ("data.jsonl:3") so that later errors name the file and line."""
    if column not in ds.column_names:
        raise ValueError(f"{source}: no column {column!r} (columns: {ds.column_names}); set image_column.")
    names = row_names(source, len(ds))
    problems, resolved = [], []
    for name, value in zip(names, ds[column]):
        paths = [] if value is None else value if isinstance(value, list) else [value]
        row = []
        for p in paths:
            full = Path(p) if Path(p).is_absolute() else root / p
            if not full.is_file():
                problems.append(f"{name}: image {p!r} not found (looked at {full})")
            elif full.stat().st_size == 0:
                problems.append(f"{name}: image {p!r} is an empty (0-byte) file")
            row.append(str(full))
        resolved.append(row)
    if problems and not _KEEP_BAD_ROWS.get():
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        error = FileNotFoundError if "not found" in problems[0] else ValueError
        raise error(
            f"{problems[0]}{more}. Fix the path (relative to {source.parent}) or the file, or remove the row; "
            "`python -m vlm_recipes.launch.preflight --config <yaml>` lists every bad row."
        )
    ds = ds.map(lambda v, i: {column: resolved[i]}, input_columns=[column], with_indices=True)
    if not {"row_id", "id", "idx"} & set(ds.column_names):
        ds = ds.add_column("row_id", names)
    return ds.cast_column(column, List(Image()))


def question_messages(
    question: str, answer: str | None, system: str | None, num_images: int = 1, num_videos: int = 0
) -> list[dict]:
    """[system,] user (images, videos, then the question)[, assistant answer] in typed-parts form."""
    messages = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
    media = [{"type": "image", "text": None}] * num_images + [{"type": "video", "text": None}] * num_videos
    messages.append({"role": "user", "content": [*media, {"type": "text", "text": question}]})
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


def images_as_list_column(ds: Dataset, column: str) -> Dataset:
    """`column` as the `images` column the collators read: a list of images per row (one image becomes [image]).

    The images are moved undecoded ({bytes, path}): a decoded image written back would be re-encoded by `datasets`
    (a JPEG at PIL's default quality), so training would see other pixels than the dataset's."""
    if column == "images":
        return ds
    if isinstance(ds.features[column], Image):
        ds = ds.cast_column(column, Image(decode=False))
        # A row without an image (null) is a text-only row: no images, not one missing image.
        ds = ds.map(
            lambda im: {"images": [im] if im is not None else []}, input_columns=[column], remove_columns=[column]
        )
        return ds.cast_column("images", List(Image()))
    return ds.rename_column(column, "images")


def videos_as_list_column(ds: Dataset, args: DataArguments) -> Dataset:
    """`video_column` as the `videos` column the collators read: a list of videos per row, decoded only when a batch
    is collated. With `video_path_template` each row's one video file is the template filled from the row's columns
    (ActivityNet-QA's default: `v_{video_name}.mp4`); without it, the column's paths (or frame lists) as they are.
    Relative paths are joined to `video_root`."""
    column = args.video_column
    if column not in ds.column_names:
        raise ValueError(f"Dataset has no video column {column!r} (columns: {ds.column_names}); set video_column.")
    root, template = args.video_root, args.video_path_template
    named = args.video_template_columns
    missing = [name for name in named if name not in ds.column_names]
    if missing:
        raise ValueError(
            f"video_path_template {template!r} names column(s) {missing} that the dataset lacks (columns: "
            f"{ds.column_names}); write the file layout with its columns (e.g. '{{{column}}}' to read {column!r} as "
            "the path), or set video_path_template: null."
        )

    def join(v):
        return str(Path(root) / v) if root and isinstance(v, str) else v

    def from_template(*values, index):
        if not all(isinstance(v, (str, int)) for v in values):
            bad = next(v for v in values if not isinstance(v, (str, int)))
            raise ValueError(
                f"row {index}: video_path_template {template!r} fills a file name from column values, got "
                f"{type(bad).__name__} {bad!r}; set video_path_template: null for a column of paths or frame lists."
            )
        return {"videos": [join(template.format(**dict(zip(named, values))))]}

    def as_list(value):
        if isinstance(value, list) and value and isinstance(value[0], (str, list)):
            videos = value  # several videos: paths or frame lists
        else:
            videos = [value]  # one video: a path or a frame list
        return {"videos": [join(v) for v in videos]}

    if template is None:
        return ds.map(as_list, input_columns=[column], remove_columns=[column] if column != "videos" else [])
    # The columns the template reads stay (ActivityNet's video_name names the video in reports).
    drop = [column] if column not in (*named, "videos") else []
    return ds.map(
        lambda *v: from_template(*v[:-1], index=v[-1]), input_columns=named, with_indices=True, remove_columns=drop
    )


def to_conversations(ds: Dataset, args: DataArguments) -> Dataset:
    """Give `ds` the columns the collators read: `images` (list), `videos` (list, with `video_column`) and
    `messages`, plus `answer` when known."""
    num_images, num_videos = 1, 0
    if args.video_column is not None:
        ds = videos_as_list_column(ds, args)
        num_videos = 1  # question/answer rows: one video part (a `messages` column places its own parts)
        if args.image_column not in ds.column_names:
            num_images = 0  # a video dataset without images
    if num_images and args.image_column not in ds.column_names:
        raise ValueError(
            f"Dataset has no image column {args.image_column!r} (columns: {ds.column_names}); set image_column."
        )
    if num_images:
        ds = images_as_list_column(ds, args.image_column)
    if args.question_column is not None:
        for name, col in (("question_column", args.question_column), ("answer_column", args.answer_column)):
            if col not in ds.column_names:
                raise ValueError(
                    f"Dataset has no column {col!r} (columns: {ds.column_names}); set {name} to one of them."
                )
        named = "row_id" in ds.column_names
        # Each row's own number of images (two, one, none: a text-only row), one placeholder each, counted without
        # decoding any image.
        counts = [1] * len(ds)
        if num_images:
            images = ds.with_format("arrow")["images"]
            if pa.types.is_list(images.type) or pa.types.is_large_list(images.type):
                counts = pc.list_value_length(images).fill_null(0).to_pylist()
            else:  # one image (or path) per row, as the column holds it; a null is a text-only row
                counts = images.is_valid().cast(pa.int64()).to_pylist()

        def build(question, answer, *row_id, index):
            if isinstance(answer, list) and answer and all(isinstance(a, str) for a in answer):
                # Several accepted answers (ChartQA's label, DocVQA's / TextVQA's answers): train on the most common
                # one (the first among ties); eval_references_column can still score against all of them.
                answer = Counter(answer).most_common(1)[0][0]
            for column, text in ((args.question_column, question), (args.answer_column, answer)):
                if reserved_in(text) and not _KEEP_BAD_ROWS.get():
                    row = f"row_id={row_id[0]!r}" if row_id else f"row {index}"
                    raise ValueError(f"{row}: column {column!r} {RESERVED_HELP}")
            if not isinstance(answer, str):
                row = f"row_id={row_id[0]!r}" if row_id else f"row {index}"
                raise ValueError(
                    f"{row}: column {args.answer_column!r} must hold strings, got {type(answer).__name__} "
                    f'{answer!r}; store answers as text (e.g. "{answer}"), several accepted answers as a list of text.'
                )
            messages = question_messages(
                question, answer, args.system_prompt, counts[index] if num_images else 0, num_videos
            )
            return {"messages": messages, "answer": answer}

        columns = [args.question_column, args.answer_column] + (["row_id"] if named else [])
        return ds.map(lambda *v: build(*v[:-1], index=v[-1]), input_columns=columns, with_indices=True)
    if args.messages_column not in ds.column_names:
        raise ValueError(
            f"Dataset has no {args.messages_column!r} column (columns: {ds.column_names}); set "
            "messages_column, or question_column and answer_column."
        )
    if args.messages_column != "messages":
        ds = ds.rename_column(args.messages_column, "messages")

    rows = [] if _KEEP_BAD_ROWS.get() else ds.select_columns(["messages"])  # preflight: row by row
    for index, row in enumerate(rows):  # text only: no image is decoded
        for message in row["messages"] or []:
            content = message.get("content")
            parts = [content] if isinstance(content, str) else [p.get("text") for p in content or []]
            if any(reserved_in(text) for text in parts):
                raise ValueError(f"row {index}: column {args.messages_column!r} {RESERVED_HELP}")
    if args.system_prompt:

        def add_system(messages):
            if not messages or messages[0]["role"] == "system":
                return {"messages": messages}
            # Match the dataset's content format (plain strings or typed parts): Arrow cannot mix them.
            text = args.system_prompt
            content = text if isinstance(messages[0]["content"], str) else [{"type": "text", "text": text}]
            return {"messages": [{"role": "system", "content": content}, *messages]}

        ds = ds.map(add_system, input_columns=["messages"])
    return ds


def final_answer(example: dict) -> str:
    """The reference answer of a row: its `answer` column, else the text of its last assistant turn."""
    if example.get("answer") is not None:
        return example["answer"]
    for message in reversed(example.get("messages") or example.get("chosen") or []):
        if message["role"] == "assistant":
            content = message["content"]
            if isinstance(content, str):
                return content
            return "".join(part.get("text") or "" for part in content if part.get("type") == "text")
    raise ValueError("Row has no assistant turn to take the reference answer from.")


def reference_answer(row: dict, column: str | None = None):
    """What a prediction for `row` is scored against: the value of `column` when given (a string, or a list of
    references; VQA-style lists of {'answer': ...} become strings), else the row's final answer."""
    if column is None:
        return final_answer(row)
    value = row.get(column)
    if value is None:
        raise ValueError(f"Row has no reference answer in column {column!r}.")
    if isinstance(value, (list, tuple)):
        value = [v["answer"] if isinstance(v, dict) else v for v in value]
    return value


def _hold_out(train: Dataset, args: DataArguments, seed: int) -> tuple[Dataset, Dataset]:
    # Video rows are held out by whole videos (several questions per video: none on both sides).
    video = args.video_column if args.video_column in train.column_names else None
    return hold_out(train, args.eval_fraction, seed, args.dataset_train_split, group_by_column=video)


def _user_splits(args: DataArguments, seed: int) -> tuple[Dataset, Dataset]:
    train, test = _raw_splits(args)
    return (train, test) if test is not None else _hold_out(train, args, seed)


def _cap(train: Dataset, test: Dataset, args: DataArguments, seed: int) -> tuple[Dataset, Dataset]:
    # The held-out rows: a seeded random sample (stratified by eval_stratum_column), not the first ones of the file.
    test = sample_rows(test, args.max_eval_samples, seed, args.eval_stratum_column)
    if args.max_train_samples is not None and len(train) > args.max_train_samples:
        train = train.select(range(args.max_train_samples))
    return train, test


SYNTHETIC_VIDEO = "synthetic_video"


def synthetic_video_dataset(task: str, num_samples: int, seed: int, image_size: int) -> Dataset:
    """The offline video task (vlm_recipes/data/synthetic_video.py): `motion` as video files, `motion_middle_frame`
    the same clips' middle frames as images (the single-frame baseline)."""
    from .synthetic_video import VIDEO_TASKS, make_video_dataset

    base = task.removesuffix("_middle_frame")
    if base not in VIDEO_TASKS:
        choices = [t for b in VIDEO_TASKS for t in (b, f"{b}_middle_frame")]
        raise ValueError(f"dataset_name synthetic_video: unknown synthetic_task {task!r}; choose one of {choices}.")
    return make_video_dataset(base, num_samples, seed, image_size, middle_frame=task != base)


def _synthetic_splits(make, args: DataArguments) -> tuple[Dataset, Dataset]:
    size = args.synthetic_image_size
    train = make(args.synthetic_task, args.synthetic_train_samples, SYNTHETIC_TRAIN_SEED, size)
    test = make(args.synthetic_task, args.max_eval_samples, SYNTHETIC_EVAL_SEED, size)
    return _cap(train, test, args, SYNTHETIC_EVAL_SEED)


def load_splits(args: DataArguments, seed: int = 42, processor=None) -> tuple[Dataset, Dataset]:
    """Train and held-out datasets in conversational form (`images` + `messages`). Grounding data (`box_format`) is
    answered in that box convention, whose frame may depend on the `processor` (vlm_recipes/grounding/data.py)."""
    if args.box_format is not None:
        return _grounding_splits(args, seed, processor)
    if args.dataset_name == "synthetic":
        return _synthetic_splits(synthetic.make_dataset, args)
    if args.dataset_name == SYNTHETIC_VIDEO:
        return _synthetic_splits(synthetic_video_dataset, args)
    train, test = _user_splits(args, seed)
    return _cap(to_conversations(train, args), to_conversations(test, args), args, seed)


def _grounding_splits(args: DataArguments, seed: int, processor) -> tuple[Dataset, Dataset]:
    """Grounding rows (the synthetic task, or data with a box column): boxes become answers in `box_format`."""
    from ..grounding.data import add_box_answers, describe_scoring

    if args.dataset_name == "synthetic":
        size = args.synthetic_image_size
        free = args.synthetic_task == "grounding_free"
        make = synthetic.make_grounding_free_dataset if free else synthetic.make_grounding_dataset
        noise = {"mirrored_fraction": args.synthetic_mirrored_boxes} if args.synthetic_mirrored_boxes else {}
        train = make(args.synthetic_train_samples, SYNTHETIC_TRAIN_SEED, size, **noise)
        test = make(args.max_eval_samples, SYNTHETIC_EVAL_SEED, size)
    else:
        train, test = _user_splits(args, seed)
    splits = []
    for scored, ds in enumerate(_cap(train, test, args, seed)):
        if args.image_column not in ds.column_names:
            raise ValueError(
                f"Dataset has no image column {args.image_column!r} (columns: {ds.column_names}); set image_column."
            )
        # The scored split: one row per referring expression (RefCOCO's Acc@0.5 scores every one); training: one
        # row per object.
        ds = add_box_answers(images_as_list_column(ds, args.image_column), args, processor, every_expression=scored)
        # The assistant message holds the convention's control tokens wrapped (written on purpose, `answer_message`).
        pairs = zip(ds["question"], ds["answer_message"])
        messages = [question_messages(q, a, args.system_prompt) for q, a in pairs]
        ds = ds.remove_columns([c for c in ("messages",) if c in ds.column_names])
        splits.append(ds.add_column("messages", messages))
    logger.info(describe_scoring(splits[1], scored_split_name(args)))
    return tuple(splits)


def scored_split_name(args: DataArguments) -> str:
    """The split the held-out figures are on, as reports name it."""
    if args.dataset_name == "synthetic":
        return "synthetic held-out scenes"
    test = args.dataset_test_split
    if test is not None and test != args.dataset_train_split:
        return test
    return f"{args.dataset_train_split} (held-out {args.eval_fraction:g})"


def load_preference_splits(args: DataArguments, seed: int = 42, processor=None) -> tuple[Dataset, Dataset]:
    """Train and held-out preference datasets: `images`, `prompt`, `chosen`, `rejected`."""
    if args.box_format is not None:
        raise ValueError("box_format (grounding) has no preference version: use recipes/sft.py or recipes/grpo.py.")
    if args.dataset_name == "synthetic":
        return _synthetic_splits(synthetic.make_preference_dataset, args)
    train, test = _user_splits(args, seed)
    for split in (train, test):
        missing = [c for c in ("prompt", "chosen", "rejected") if c not in split.column_names]
        if missing:
            raise ValueError(
                f"{args.dataset_name}: preference data needs columns prompt, chosen and rejected; "
                f"missing {missing} (columns: {split.column_names})."
            )
    if args.image_column in train.column_names:
        train, test = (images_as_list_column(d, args.image_column) for d in (train, test))
    return _cap(train, test, args, seed)


def load_prompt_splits(args: DataArguments, seed: int = 42, processor=None) -> tuple[Dataset, Dataset]:
    """Train and held-out prompts for RL (GRPO): `images` + `prompt` (the conversation without its final answer),
    with the reference kept in `answer` (and any other column, e.g. `solution`, for the reward functions)."""

    def to_prompt(messages):
        return {"prompt": messages[:-1] if messages and messages[-1]["role"] == "assistant" else messages}

    return tuple(
        d.map(to_prompt, input_columns=["messages"], remove_columns=["messages"])
        for d in load_splits(args, seed, processor)
    )


def load_eval_split(args: DataArguments, seed: int = 42) -> Dataset:
    """The held-out split alone, its columns as loaded, capped at `max_eval_samples`: the same rows, in the same
    order, that the training recipes evaluate on (same seed), without building the training split."""
    if args.box_format is not None:
        raise ValueError(
            "box_format (grounding): recipes/evaluate_models.py does not convert boxes yet; the training recipes "
            "report held-out iou_accuracy / mean_iou before and after (eval_metrics) and draw grounding_gallery.png."
        )
    if args.dataset_name == "synthetic":
        return synthetic.make_dataset(
            args.synthetic_task, args.max_eval_samples, SYNTHETIC_EVAL_SEED, args.synthetic_image_size
        )
    if args.dataset_name == SYNTHETIC_VIDEO:
        return synthetic_video_dataset(
            args.synthetic_task, args.max_eval_samples, SYNTHETIC_EVAL_SEED, args.synthetic_image_size
        )
    train, test = _raw_splits(args, with_train=False)  # the held-out split alone when the dataset has one
    if test is None:
        _, test = _hold_out(train, args, seed)  # held out of the train split, as training does
    return sample_rows(test, args.max_eval_samples, seed, args.eval_stratum_column)  # as training draws them
