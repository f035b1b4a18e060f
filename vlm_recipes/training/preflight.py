"""Preflight: check a recipe's data against the model's processor before any GPU time is spent.

    python -m vlm_recipes.training.preflight --config recipes/configs/tiny-smolvlm/sft_lora.yaml [--all_rows]
    make preflight CONFIG=recipes/configs/tiny-smolvlm/sft_lora.yaml

For every checked row of the train and held-out splits: the images decode (the file is named when the data is
local), their modes (RGBA / L / CMYK / P are converted to RGB and counted; 16-bit and float images are refused),
their size (refused above `max_image_pixels`, read from the header before decoding), image placeholders against
images, and tokens per sample including image tokens, rendered and expanded by the processor exactly as the
collator does; rows whose image tokens (or whole answer) would not fit in `max_length` are errors, rows whose text
would be truncated are counted. Prints a short report with min / median / max tokens and an estimate of tokens
per epoch; exits 1 when a row has an error, naming it. The config is parsed exactly as the recipe parses it (same
dataclasses), so an unknown YAML key or reward name fails here too.

Every recipe runs the same checks at start-up on a random sample of `preflight_rows` rows per split (`all` for
every row, `--preflight false` to skip), after loading the processor and data and before loading the model.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from PIL import Image

from ..data.collators import (
    PromptCollator,
    SampleError,
    _row_name,
    conversation_of,
)
from ..data.images import ImageError, open_image, undecoded
from ..models.families import family_of
from .methods import METHODS, get_method

logger = logging.getLogger(__name__)


class PreflightError(ValueError):
    """Rows that would fail training; the message names the first one and the fix."""


@dataclass
class Report:
    """What the checks found in one split."""

    split: str
    rows_total: int
    rows_checked: int = 0
    errors: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)  # text cut by max_length (allowed, reported)
    dropped: list[str] = field(default_factory=list)  # would be dropped (on_overflow: drop)
    modes: Counter = field(default_factory=Counter)
    converted: Counter = field(default_factory=Counter)
    pixels: list[int] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # per sequence (a preference row has two)
    row_tokens: list[int] = field(default_factory=list)  # per row
    image_tokens: list[int] = field(default_factory=list)

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
        lines += [f"  ERROR {e}" for e in self.errors]
        return "\n".join(lines)


def _sample(n: int, num_rows: int | None, seed: int) -> list[int]:
    if num_rows is None or num_rows >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), num_rows))


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
) -> Report:
    """Check `num_rows` random rows of `ds` (None: all) for training `method` (a name or a Method record): the rows
    go through the method's own collator (the prompt collator where the trainer renders prompts itself)."""
    method = get_method(method)
    report = Report(split=split, rows_total=len(ds))
    raw = undecoded(ds)
    image_ids = torch.tensor(family_of(processor).image_token_ids(processor.tokenizer))
    key = method.prompt_key
    if method.collator_class is not None:
        collator = method.collator_class(processor)
    else:
        collator = PromptCollator(processor, messages_key=key)
    # Prompts the trainer renders itself are not cut to max_length by us: nothing to check against it.
    checks_length = method.collator_class is not None
    for index in _sample(len(raw), num_rows, seed):
        row = dict(raw[index])
        if not {"row_id", "id", "idx"} & row.keys():
            row["row_id"] = f"{split}[{index}]"
        name = _row_name(row, index)
        report.rows_checked += 1
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
            conversation_of(row, index, key)  # placeholders vs images, empty conversation
            batch = collator([row])
        except (SampleError, ImageError) as err:
            message = str(err)
            report.errors.append(message if message.startswith("row ") else f"{name}: {message}")
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
                report.errors.append(
                    f"{name}: {len(ids)} tokens, image tokens beyond max_length={max_length}; raise max_length, "
                    "lower the image resolution (max_pixels / longest_edge / image_splitting), or set "
                    "on_overflow: drop"
                )
            elif trained is not None and not trained[r][:max_length].any():
                report.errors.append(
                    f"{name}: {len(ids)} tokens, the whole answer lies beyond max_length={max_length}"
                )
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
        more = f" (+{len(errors) - 1} more row(s) with errors)" if len(errors) > 1 else ""
        raise PreflightError(
            f"Preflight: {errors[0].rstrip('.')}{more}. Full report: make preflight CONFIG=<your yaml>; "
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
    rows.add_argument("--num_rows", type=int, default=1000, help="Random rows checked per split (default 1000).")
    rows.add_argument("--all_rows", action="store_true", help="Check every row.")
    args, overrides = cli.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if "--use_cpu" not in overrides:
        overrides += ["--use_cpu", "true"]  # nothing is trained; lets bf16 GPU configs parse on any machine
    try:
        method = get_method(recipe_of(args.config, args.recipe))
        data_args, training_args, model_args = parse(
            method.parser_types, args.config, ["--config", str(args.config), *overrides], recipe=method.name
        )
        processor = load_processor(model_args, trust_remote_code=training_args.trust_remote_code)
        train_ds, eval_ds = method.load_splits(data_args, seed=training_args.seed)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"preflight: {args.config}: {err}", file=sys.stderr)
        return 2
    num_rows = None if args.all_rows else args.num_rows
    max_length = getattr(training_args, "max_length", None)
    Image.MAX_IMAGE_PIXELS = data_args.max_image_pixels
    reports = check_recipe_data(
        method, train_ds, eval_ds, processor, data_args, max_length, num_rows, training_args.seed
    )
    print(f"Preflight of {args.config} ({method.name}, {model_args.model_name_or_path}, {data_args.dataset_name})")
    for report in reports:
        print(report.text(max_length))
    errors = sum(len(r.errors) for r in reports)
    print(f"{errors} row(s) with errors" if errors else "OK: no errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
