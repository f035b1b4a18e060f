"""Preflight: check a recipe's data against the model's processor before any GPU time is spent.

    python -m vlm_recipes.training.preflight --config recipes/configs/tiny-smolvlm/sft_lora.yaml [--num_rows 1000]
    python -m vlm_recipes.training.preflight --config <yaml> --write_clean data.clean.jsonl
    make preflight CONFIG=recipes/configs/tiny-smolvlm/sft_lora.yaml

It reads every row of the train and held-out splits (`--num_rows N`: a random sample per split) and reports every bad
row in one pass, each with the fix for its own defect, and a count of bad rows by kind of defect: the image files
(missing or 0-byte files are reported row by row here, where training stops at the first), that they decode (the file
is named when the data is local), their modes (RGBA / L / CMYK / P are converted to RGB and counted; 16-bit and float
images are refused), their size (refused above `max_image_pixels`, read from the header before decoding), the
messages (roles, parts), image placeholders against images in both directions, and tokens per sample including image
tokens, rendered and expanded by the processor exactly as the collator does; rows whose image tokens (or whole
answer) would not fit in `max_length` are errors, rows whose text would be truncated are counted. Prints min / median
/ max tokens and an estimate of tokens per epoch; exits 1 when a row has an error, 2 when the config or the data
cannot be loaded. The config is parsed exactly as the recipe parses it (same dataclasses), so an unknown YAML key or
reward name fails here too.

`--write_clean <path>` writes a copy of a local .jsonl / .json data file without the bad rows (every row of the file
is checked, whatever `max_train_samples` / `max_eval_samples` say), and `<path>.manifest.json` listing the kept and
dropped row ids (with the defects of each dropped row), so a run can start at once on what is good.

Every recipe runs the same checks at start-up on a random sample of `preflight_rows` rows per split (`all` for
every row, `--preflight false` to skip), after loading the processor and data and before loading the model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import statistics
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from PIL import Image

from ..data.chat_encoding import ChatEncoder
from ..data.collators import (
    PromptCollator,
    SampleError,
    _row_name,
    conversation_of,
)
from ..data.images import ImageError, open_image, undecoded
from ..data.loading import keep_rows_with_missing_images
from ..data.video import videos_of
from ..models.families import family_of
from .methods import METHODS, get_method
from .throughput import pipeline_text

logger = logging.getLogger(__name__)


class PreflightError(ValueError):
    """Rows that would fail training; the message names the first one and the fix."""


ID_COLUMNS = ("row_id", "id", "idx")  # how rows are named in errors, in this order (see collators._row_name)


@dataclass
class RowProblem:
    """One bad row: its name in messages, the column and value that identify it, the kind of defect, the message
    (which names the row and says how to fix it)."""

    row: str
    id_column: str
    id_value: object
    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class Report:
    """What the checks found in one split."""

    split: str
    rows_total: int
    rows_checked: int = 0
    errors: list[RowProblem] = field(default_factory=list)
    checked_ids: list = field(default_factory=list)  # (id column, id value) of every checked row
    truncated: list[str] = field(default_factory=list)  # text cut by max_length (allowed, reported)
    control_text: Counter = field(default_factory=Counter)  # control-token strings found in message text, by string
    dropped: list[str] = field(default_factory=list)  # would be dropped (on_overflow: drop)
    modes: Counter = field(default_factory=Counter)
    converted: Counter = field(default_factory=Counter)
    pixels: list[int] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # per sequence (a preference row has two)
    row_tokens: list[int] = field(default_factory=list)  # per row
    image_tokens: list[int] = field(default_factory=list)
    video_frames: list[int] = field(default_factory=list)  # per video, after sampling
    video_tokens: list[int] = field(default_factory=list)  # per row with videos: tokens of its videos

    def text(self, max_length: int | None) -> str:
        def spread(values):
            if not values:
                return "n/a"
            return f"min {min(values)} / median {statistics.median(values):g} / max {max(values)}"

        lines = [f"[{self.split}] {self.rows_checked} of {self.rows_total} rows checked"]
        if self.sizes:
            small = min(self.sizes, key=lambda s: s[0] * s[1])
            big = max(self.sizes, key=lambda s: s[0] * s[1])
            lines.append(
                f"  images: {len(self.sizes)}, modes {dict(self.modes)}, smallest {small[0]}x{small[1]}, "
                f"largest {big[0]}x{big[1]}, median {statistics.median(self.pixels):,.0f} pixels"
            )
        if self.converted:
            lines.append(f"  converted to RGB: {dict(self.converted)}")
        if self.control_text:
            lines.append(
                f"  control-token strings in message text (trained and generated as plain text): "
                f"{dict(self.control_text.most_common(5))}"
            )
        if self.video_frames:
            lines.append(
                f"  videos: {len(self.video_frames)}, frames per video: {spread(self.video_frames)}; video tokens "
                f"per row with videos: {spread(self.video_tokens)}"
            )
        lines.append(
            f"  tokens per sample: {spread(self.tokens)}; image tokens per sample: {spread(self.image_tokens)}"
        )
        if max_length is not None:
            over = sum(t > max_length for t in self.tokens)
            dropped = f", {len(self.dropped)} to be dropped (on_overflow: drop)" if self.dropped else ""
            lines.append(
                f"  over max_length={max_length}: {over} sequence(s), {len(self.truncated)} with only text cut"
                + dropped
            )
        if self.row_tokens and self.split == "train":
            estimate = statistics.fmean(self.row_tokens) * self.rows_total
            lines.append(f"  estimated tokens per epoch: {estimate:,.0f} ({self.rows_total} rows x mean)")
        if self.errors:
            lines.append(f"  {len(self.errors)} bad row(s): {defect_summary(self.errors)}")
        lines += [f"  ERROR {e}" for e in self.errors]
        return "\n".join(lines)


def defect_summary(problems: list[RowProblem]) -> str:
    """'missing image file 2, unknown role 1': bad rows counted by kind of defect, most frequent first."""
    return ", ".join(f"{kind} {n}" for kind, n in Counter(p.kind for p in problems).most_common())


def _texts(messages) -> list[str]:
    """The text of every message (string content or text parts); anything malformed is left to the collator."""
    out = []
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        parts = content if isinstance(content, list) else [{"text": content}]
        out += [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return out


def _sample(n: int, num_rows: int | None, seed: int) -> list[int]:
    if num_rows is None or num_rows >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), num_rows))


@dataclass
class _Recorder:
    """Records a problem of one row into a report: `recorder(kind, message)`."""

    report: Report
    name: str
    id_column: str
    id_value: object

    def __call__(self, kind: str, message: str) -> None:
        message = message if message.startswith(self.name) else f"{self.name}: {message}"
        self.report.errors.append(RowProblem(self.name, self.id_column, self.id_value, kind, message))


def check_split(
    method,
    ds: Dataset,
    processor,
    *,
    split: str = "train",
    max_length: int | None = None,
    max_image_pixels: int | None = None,
    on_overflow: str = "error",
    num_rows: int | None = None,
    seed: int = 0,
    video: dict | None = None,
) -> Report:
    """Check `num_rows` random rows of `ds` (None: all) for training `method` (a name or a Method record): the rows
    go through the method's own collator (the prompt collator where the trainer renders prompts itself). Videos are
    opened and sampled with `video` (`load_video`'s settings): frames per video and video tokens per row are
    reported; a missing or undecodable video is a bad row."""
    method = get_method(method)
    report = Report(split=split, rows_total=len(ds))
    raw = undecoded(ds)
    image_ids = torch.tensor(family_of(processor).image_token_ids(processor.tokenizer))
    key = method.prompt_key
    if method.collator_class is not None:
        collator = method.collator_class(processor, video=video)
    else:
        collator = PromptCollator(processor, messages_key=key, video=video)
    encoder = ChatEncoder(processor)
    # Prompts the trainer renders itself are not cut to max_length by us: nothing to check against it.
    checks_length = method.collator_class is not None
    for index in _sample(len(raw), num_rows, seed):
        row = dict(raw[index])
        if not set(ID_COLUMNS) & row.keys():
            row["row_id"] = f"{split}[{index}]"
        name = _row_name(row, index)
        id_column = next((c for c in ID_COLUMNS if row.get(c) is not None), "row_id")
        report.checked_ids.append((id_column, row.get(id_column)))
        report.rows_checked += 1
        problem = _Recorder(report, name, id_column, row.get(id_column))
        try:
            values = row.pop("images", None) or ([row.pop("image")] if row.get("image") is not None else [])
            images = []
            for value in values:
                image = open_image(value, max_image_pixels)
                report.modes[image.mode] += 1
                if image.mode != "RGB":
                    report.converted[image.mode] += 1
                report.sizes.append(image.size)
                report.pixels.append(image.width * image.height)
                images.append(image)
            row["images"] = images
            # roles, parts, placeholders vs images and videos, emptiness; videos opened and sampled
            conversation = conversation_of(row, index, key, video=video)
            videos = videos_of(conversation)
            if videos and method.collator_class is None:
                raise SampleError(
                    f"{name} holds a video, but {method.name.upper()}'s trainer renders and processes prompts itself "
                    "and takes no videos: train video data with sft, dpo or mpo.",
                    "video unsupported",
                )
            if videos:
                report.video_frames += [len(v) for v in videos]
                report.video_tokens.append(sum(encoder.video_token_counts(videos)))
            responses = [m for side in ("chosen", "rejected") for m in row.get(side) or []]
            for text in _texts(conversation + responses):
                report.control_text.update(encoder.control_strings(text))
            batch = collator([row])
        except (SampleError, ImageError) as err:
            problem(err.kind, str(err))
            continue
        # A preference row is two sequences (prompt + chosen, prompt + rejected): check both.
        if "labels" in batch:
            trained = batch["labels"] != -100
        else:
            trained = batch["completion_mask"].bool() if "completion_mask" in batch else None
        report.row_tokens.append(int(batch["attention_mask"].sum()))
        for r in range(batch["input_ids"].shape[0]):
            ids = batch["input_ids"][r][batch["attention_mask"][r].bool()]
            is_image = torch.isin(ids, image_ids)
            report.tokens.append(len(ids))
            report.image_tokens.append(int(is_image.sum()))
            if max_length is None or len(ids) <= max_length or not checks_length:
                continue
            # Right-padded here, so positions of real tokens are 0..len-1.
            broken = is_image[max_length:].any() or (trained is not None and not trained[r][:max_length].any())
            if broken and on_overflow == "drop":
                report.dropped.append(name)
            elif is_image[max_length:].any():
                problem(
                    "over max_length",
                    f"{len(ids)} tokens, image tokens beyond max_length={max_length}; raise max_length, lower the "
                    "image resolution (max_pixels / longest_edge / image_splitting), or set on_overflow: drop",
                )
                break
            elif trained is not None and not trained[r][:max_length].any():
                problem(
                    "over max_length",
                    f"{len(ids)} tokens, the whole answer lies beyond max_length={max_length}; raise max_length, "
                    "shorten the prompt, or set on_overflow: drop",
                )
                break
            else:
                report.truncated.append(name)
    return report


def check_recipe_data(method, train_ds, eval_ds, processor, data_args, max_length, num_rows, seed=0):
    """Check both splits; returns their reports."""
    common = {
        "max_length": max_length,
        "max_image_pixels": data_args.max_image_pixels,
        "on_overflow": data_args.on_overflow,
        "num_rows": num_rows,
        "video": data_args.video_settings,
    }
    return [
        check_split(method, train_ds, processor, split="train", seed=seed, **common),
        check_split(method, eval_ds, processor, split="held-out", seed=seed, **common),
    ]


def guard(method, train_ds, eval_ds, processor, data_args, training_args) -> list[Report]:
    """The start-up check of every recipe: raise a one-line PreflightError naming the first bad row."""
    Image.MAX_IMAGE_PIXELS = data_args.max_image_pixels  # PIL's own decompression-bomb guard (refuses at 2x)
    if not data_args.preflight:
        return []
    max_length = getattr(training_args, "max_length", None)
    reports = check_recipe_data(
        method, train_ds, eval_ds, processor, data_args, max_length, data_args.preflight_num_rows, training_args.seed
    )
    for report in reports:
        logger.info("Preflight:\n%s", report.text(max_length))
    errors = [e for r in reports for e in r.errors]
    if errors:
        more = f" (+{len(errors) - 1} more row(s) with errors: {defect_summary(errors)})" if len(errors) > 1 else ""
        raise PreflightError(
            f"Preflight: {str(errors[0]).rstrip('.')}{more}. Full report: make preflight CONFIG=<your yaml>; "
            "skip with --preflight false."
        )
    return reports


# -- command line ----------------------------------------------------------------------------------------------
def recipe_of(config: Path, explicit: str | None = None) -> str:
    """The training method a config is for: `--recipe` if given, else the config's declared `recipe:` field."""
    import yaml

    declared = (yaml.safe_load(config.read_text()) or {}).get("recipe")
    if explicit and declared and explicit != declared:
        raise ValueError(f"{config} declares recipe: {declared}, but --recipe {explicit} was given.")
    if not (explicit or declared):
        raise ValueError(f"{config} declares no `recipe:` field: add one (e.g. recipe: sft), or pass --recipe.")
    return explicit or declared


def main(argv: list[str] | None = None) -> int:
    from ..configs import parse
    from ..models.modeling import load_processor

    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    cli.add_argument("--config", required=True, type=Path, help="The recipe's YAML config.")
    cli.add_argument("--recipe", choices=sorted(METHODS), help="Default: the config's `recipe:` field.")
    rows = cli.add_mutually_exclusive_group()
    rows.add_argument("--num_rows", type=int, help="Check a random sample of this many rows per split (default: all).")
    rows.add_argument("--all_rows", action="store_true", help="Check every row (the default).")
    cli.add_argument(
        "--pipeline_rows",
        type=int,
        default=16,
        metavar="N",
        help="Measure the data pipeline's examples/s on N sampled train rows, and the dataloader workers a GPU "
        "needs (0: skip).",
    )
    cli.add_argument(
        "--write_clean",
        type=Path,
        metavar="PATH",
        help="Write a copy of the (local .jsonl/.json) data file without the bad rows to PATH, and the kept and "
        "dropped row ids to PATH.manifest.json. Checks every row of the file.",
    )
    args, overrides = cli.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if args.write_clean is not None and args.num_rows is not None:
        print("preflight: --write_clean checks every row of the file; drop --num_rows.", file=sys.stderr)
        return 2
    if "--use_cpu" not in overrides:
        overrides += ["--use_cpu", "true"]  # nothing is trained; lets bf16 GPU configs parse on any machine
    try:
        method = get_method(recipe_of(args.config, args.recipe))
        data_args, training_args, model_args = parse(
            method.parser_types, args.config, ["--config", str(args.config), *overrides], recipe=method.name
        )
        source = None
        if args.write_clean is not None:
            source = clean_source(data_args.dataset_name, args.write_clean)
            # Every row of the file, not only those the run would use.
            data_args = dataclasses.replace(data_args, max_train_samples=None, max_eval_samples=sys.maxsize)
        processor = load_processor(model_args, trust_remote_code=training_args.trust_remote_code)
        with keep_rows_with_missing_images():  # reported row by row below
            train_ds, eval_ds = method.load_splits(data_args, seed=training_args.seed, processor=processor)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"preflight: {args.config}: {err}", file=sys.stderr)
        return 2
    max_length = getattr(training_args, "max_length", None)
    Image.MAX_IMAGE_PIXELS = data_args.max_image_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # such images are reported row by row
        reports = check_recipe_data(
            method, train_ds, eval_ds, processor, data_args, max_length, args.num_rows, training_args.seed
        )
    print(f"Preflight of {args.config} ({method.name}, {model_args.model_name_or_path}, {data_args.dataset_name})")
    for report in reports:
        print(report.text(max_length))
    if args.pipeline_rows > 0:
        print(pipeline_text(method, train_ds, processor, data_args, training_args, model_args, args.pipeline_rows))
    errors = [e for r in reports for e in r.errors]
    print(f"{len(errors)} row(s) with errors: {defect_summary(errors)}" if errors else "OK: no errors")
    if source is not None:
        try:
            print(write_clean(source, args.write_clean, reports, data_args.image_column))
        except (ValueError, OSError) as err:
            print(f"preflight: --write_clean {args.write_clean}: {err}", file=sys.stderr)
            return 2
    return 1 if errors else 0


# -- --write_clean ------------------------------------------------------------------------------------------------
def clean_source(dataset_name: str, out: Path) -> Path:
    """The local data file `--write_clean` copies, or an error saying what it works on."""
    source = Path(dataset_name)
    if not source.is_file() or source.suffix not in (".jsonl", ".json"):
        raise ValueError(
            f"--write_clean copies a local .jsonl or .json data file; dataset_name {dataset_name!r} is not one (for a "
            "Hub dataset or an image folder, filter the rows the report names yourself)."
        )
    if out.resolve() == source.resolve():
        raise ValueError(f"--write_clean {out} is the data file itself; write the clean copy to another path.")
    return source


def _file_rows(source: Path) -> list[tuple[str, str, dict]]:
    """(row_id as the loader names it, raw text, parsed row) for each row of a .jsonl / .json data file."""
    from ..data.loading import row_names

    if source.suffix == ".jsonl":
        texts = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
        parsed = [json.loads(t) for t in texts]
    else:
        parsed = json.loads(source.read_text(encoding="utf-8"))
        if not isinstance(parsed, list):
            raise ValueError(f"{source}: --write_clean needs a JSON array of rows (or JSON lines)")
        texts = [json.dumps(r, ensure_ascii=False) for r in parsed]
    return list(zip(row_names(source, len(parsed)), texts, parsed))


def _rebased(row: dict, column: str, source_dir: Path, out_dir: Path) -> dict:
    """`row` with its relative image paths (in `column`) made relative to `out_dir` instead of `source_dir`."""
    value = row.get(column)
    if value is None:
        return row

    def rebase(p):
        if not isinstance(p, str) or Path(p).is_absolute():
            return p
        return os.path.relpath(source_dir / p, out_dir)

    return {**row, column: [rebase(p) for p in value] if isinstance(value, list) else rebase(value)}


def write_clean(source: Path, out: Path, reports: list[Report], image_column: str) -> str:
    """Write `source` without the rows `reports` found bad to `out`, with `out`.manifest.json (kept and dropped row
    ids, the defects of each dropped row); each file appears complete or not at all. Returns a summary line."""
    rows = _file_rows(source)
    columns = {column for r in reports for column, _ in r.checked_ids} or {"row_id"}
    if len(columns) != 1:
        raise ValueError(f"rows are named by several columns ({sorted(columns)}); cannot match them to the file")
    (column,) = columns
    # The loader names rows "<file>:<line>" unless the data has an id column of its own.
    keys = [parsed.get(column, name) for name, _, parsed in rows]
    if len({repr(k) for k in keys}) != len(keys):
        raise ValueError(f"the values of {column!r} are not unique in {source}; cannot tell the rows apart")
    checked = {repr(value) for r in reports for _, value in r.checked_ids}
    unchecked = [k for k in keys if repr(k) not in checked]
    if unchecked:
        raise ValueError(
            f"{len(unchecked)} row(s) of {source} were not checked (e.g. {unchecked[:3]}); nothing written"
        )
    bad: dict[str, list[RowProblem]] = {}
    for problem in (p for r in reports for p in r.errors):
        bad.setdefault(repr(problem.id_value), []).append(problem)
    kept = [(key, text, parsed) for key, (_, text, parsed) in zip(keys, rows) if repr(key) not in bad]
    out_dir, source_dir = out.resolve().parent, source.resolve().parent
    lines = [
        text if out_dir == source_dir else json.dumps(_rebased(parsed, image_column, source_dir, out_dir))
        for _, text, parsed in kept
    ]
    if source.suffix == ".jsonl":
        content = "".join(line + "\n" for line in lines)
    else:
        content = "[\n" + ",\n".join(lines) + "\n]\n"
    dropped = [
        {"row": key, "defects": [p.kind for p in bad[repr(key)]], "errors": [p.message for p in bad[repr(key)]]}
        for key in keys
        if repr(key) in bad
    ]
    manifest = {"source": str(source), "id_column": column, "kept": [k for k, _, _ in kept], "dropped": dropped}
    manifest_path = out.with_name(out.name + ".manifest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, text in ((manifest_path, json.dumps(manifest, indent=2, default=str) + "\n"), (out, content)):
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)  # atomic: a crash never leaves a half-written file under the final name
    names = [str(d["row"]) for d in dropped]
    shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
    return (
        f"Wrote {out}: {len(kept)} of {len(keys)} rows kept, {len(dropped)} dropped ({shown or 'none'}); the kept and "
        f"dropped row ids are listed in {manifest_path}"
    )


if __name__ == "__main__":
    sys.exit(main())
