"""Will it fit? The predicted peak memory per device of a recipe's training steps, before anything is loaded.

    python -m vlm_recipes.launch.plan --config recipes/configs/qwen2-vl-2b-instruct/sft_lora.yaml --gpu 80
    make plan CONFIG=recipes/configs/qwen2-vl-2b-instruct/sft_lora.yaml GPU=80 [ACCELERATE=zero3 NPROC=8]

The model's architecture is read from its config (built on the meta device: no weights; a `tiny:` name is built
from its spec, a Hub id needs only its config.json and processor files); the rows are encoded by the recipe's own
collator, as preflight encodes them, and the longest batch the batching mode can form is sized. The model of memory
is vlm_recipes.training.planning.memory (docs/memory.md: its terms, its measured constants and its validation).
Preflight prints the same plan.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..models.modeling import load_processor
from ..training.methods import METHODS, get_method
from ..training.planning.recipe import plan_of_reports
from ..training.preflight import check_recipe_data
from . import parse
from .preflight import recipe_of

# accelerate_configs/<name>.yaml -> (ZeRO stage, FSDP). zero3_offload is left out: its states live in CPU memory,
# which this plan does not size.
ACCELERATE_SETUPS = {
    "cpu": (0, False),
    "multi_cpu": (0, False),
    "single_gpu": (0, False),
    "multi_gpu": (0, False),
    "zero2": (2, False),
    "zero3": (3, False),
    "fsdp2": (0, True),
}


# -- command line -------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    cli.add_argument("--config", required=True, type=Path, help="The recipe's YAML config.")
    cli.add_argument("--recipe", choices=sorted(METHODS), help="Default: the config's `recipe:` field.")
    cli.add_argument("--gpu", type=float, help="GPU memory in GiB: say what fits (batch, max_length).")
    cli.add_argument("--accelerate", default="cpu", choices=sorted(ACCELERATE_SETUPS), help="accelerate_configs/*.")
    cli.add_argument("--num_processes", type=int, default=1, help="World size (ZeRO / FSDP shard across it).")
    cli.add_argument("--num_rows", type=int, default=256, help="Train rows sized (a random sample; 0: all).")
    args, overrides = cli.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if "--use_cpu" not in overrides:
        overrides += ["--use_cpu", "true"]  # nothing is trained; lets bf16 GPU configs parse on any machine
    try:
        method = get_method(recipe_of(args.config, args.recipe))
        data_args, training_args, model_args = parse(
            method.parser_types, args.config, ["--config", str(args.config), *overrides], recipe=method.name
        )
        processor = load_processor(model_args)
        train_ds, eval_ds = method.load_splits(data_args, seed=training_args.seed, processor=processor)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"plan: {args.config}: {err}", file=sys.stderr)
        return 2
    reports = check_recipe_data(
        method, train_ds, eval_ds.select([]) if eval_ds is not None else eval_ds, processor, data_args,
        getattr(training_args, "max_length", None), args.num_rows or None, training_args.seed,
    )  # fmt: skip
    zero, fsdp = ACCELERATE_SETUPS[args.accelerate]
    train = reports[0]
    print(f"Plan of {args.config} ({method.name}, {model_args.model_name_or_path}): {len(train.shapes)} rows sized")
    if train.errors:
        print(f"  {len(train.errors)} row(s) could not be encoded (make preflight names them); sized without them")
    print(
        plan_of_reports(
            method, model_args, training_args, reports, args.gpu, zero_stage=zero, fsdp=fsdp,
            world_size=args.num_processes,
        )
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
