"""Preflight from the command line: check a recipe's data against the model's processor before any GPU time is spent.

    python -m vlm_recipes.launch.preflight --config recipes/configs/tiny-smolvlm/sft_lora.yaml [--num_rows 1000]
    python -m vlm_recipes.launch.preflight --config <yaml> --write_clean data.clean.jsonl
    make preflight CONFIG=recipes/configs/tiny-smolvlm/sft_lora.yaml

Reads the config exactly as the recipe does (vlm_recipes.launch.parse), runs the checks of
vlm_recipes.training.preflight on every row (or `--num_rows` sampled per split), prints the report and the data
pipeline's throughput and the contamination check's figures (the training data's overlap with the held-out split and
the named benchmarks), and with `--write_clean` writes the clean copy. Exits 1 when a row has an error or an overlap
is above max_overlap (unless allow_overlap), 2 when the config or the data cannot be loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import warnings
from pathlib import Path

from PIL import Image

from ..data.contamination import report_text
from ..data.loading import keep_bad_rows_for_preflight
from ..models.modeling import load_processor
from ..training.methods import METHODS, get_method
from ..training.planning.recipe import plan_of_reports
from ..training.preflight import check_recipe_data, clean_source, defect_summary, measure_run, write_clean
from ..training.throughput import pipeline_text
from . import parse


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
        with keep_bad_rows_for_preflight():  # reported row by row below
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
    print(plan_of_reports(method, model_args, training_args, reports))  # make plan: more (GPU sizes, world size)
    _, overlaps = measure_run(train_ds, eval_ds, data_args, training_args)  # the contamination check
    print(report_text(overlaps))
    errors = [e for r in reports for e in r.errors]
    print(f"{len(errors)} row(s) with errors: {defect_summary(errors)}" if errors else "OK: no errors")
    refused = [o.scored for o in overlaps if o.refused]
    if refused:
        print(
            f"Overlap with the training data above max_overlap (training refuses; allow_overlap: true runs): {refused}"
        )
    if source is not None:
        try:
            print(write_clean(source, args.write_clean, reports, data_args.image_column))
        except (ValueError, OSError) as err:
            print(f"preflight: --write_clean {args.write_clean}: {err}", file=sys.stderr)
            return 2
    return 1 if errors or refused else 0


if __name__ == "__main__":
    sys.exit(main())
