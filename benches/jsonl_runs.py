"""What the benches that run one training at a time share (bench_grpo_variants, bench_grounding_rewards): each run
appends one JSON line to --out, so runs can be made one at a time (e.g. each under a shared lock) and the table printed
from the file (`--table`, nothing run). Not a bench itself."""

import argparse
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """--seeds, --out (default outputs/<name>.jsonl), --runs_dir (outputs/<name>/), --set key=value, --table."""
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / f"{name}.jsonl")
    parser.add_argument("--runs_dir", type=Path, default=ROOT / "outputs" / name)
    parser.add_argument("--set", action="append", default=[], help="a config override, key=value (all runs)")
    parser.add_argument("--table", action="store_true", help="print the table of --out and run nothing")


def overrides(args: argparse.Namespace) -> list[str]:
    """The --set key=value pairs as command-line overrides of the recipe: ["--key", "value", ...]."""
    return [part for kv in args.set for part in (f"--{kv.split('=', 1)[0]}", kv.split("=", 1)[1])]


def record(args: argparse.Namespace, row: dict) -> None:
    """Append one run's row to --out and print it."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def rows(args: argparse.Namespace) -> list[dict]:
    """Every row of --out."""
    return [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]


def markdown_table(columns: list[str], cells: list[list[str]]) -> str:
    """A Markdown table: a header of `columns`, then one line per row of `cells`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def main(parser: argparse.ArgumentParser, name: str, runs: Callable[[argparse.Namespace], Iterable], table) -> None:
    """A bench's command line: `parser` (with the bench's own arguments) plus `add_arguments`; unless --table, each of
    `runs(args)`, pairs (folder name under --runs_dir, `run(output_dir, overrides) -> row`), is run and its row
    recorded; then `table(rows)` of every row of --out is printed."""
    add_arguments(parser, name)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.table:
        for folder, run in runs(args):
            record(args, run(args.runs_dir / folder, overrides(args)))
    print(table(rows(args)))
