"""Public benchmarks in one command: MMMU, MMBench (circular), MMStar, AI2D, ScienceQA-IMG, MathVista, OCRBench,
ChartQA, DocVQA and TextVQA on the base model, each adapter and other models (`recipes/benchmark.py`).

What the toolkits do: lmms-eval and VLMEvalKit (behind the OpenVLM leaderboard) run these benchmarks with a single
command, each benchmark a task file (dataset, prompt, metric); both extract multiple-choice answers with string rules
and fall back to an LLM judge (GPT) and then to a guess. What this package adds for our recipes: the same benchmarks
run through our own loading and batched generation, on our adapters, offline on stand-ins; rules only (no judge, no
guess: an unreadable answer scores 0 and the share of them is reported); a leaderboard (Markdown, JSON and an HTML
page with each benchmark's failures), per-sample predictions, a `--limit`, resumable runs, and before/after figures
of a fine-tune in its model card (`benchmarks:` in a training YAML).

- `tasks`: the task files (`tasks/<name>.yaml`) as `BenchmarkTask` records, checked when parsed.
- `extraction`: reading answers out of free text (option letters, numbers, MMMU open answers, OCRBench containment).
- `samples`: a benchmark's split as prompts (options, hints, interleaved images, circular rotations).
- `scorers`: the scoring rule of each metric and the per-benchmark figures.
- `runner`: the benchmark command and the training runs' before/after step; `report`: leaderboard files.
"""

from __future__ import annotations

from importlib import import_module

# Imported on first use: the configs import `tasks` (cheap), which must not pull in datasets, torch or the models.
_EXPORTS = {
    "BenchmarkTask": ".tasks",
    "load_task": ".tasks",
    "shipped_tasks": ".tasks",
    "extract_choice": ".extraction",
    "prepare": ".samples",
    "run_benchmarks": ".runner",
    "evaluate_on_benchmarks": ".runner",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name], __name__), name)
