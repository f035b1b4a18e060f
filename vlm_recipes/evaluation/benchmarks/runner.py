"""Run benchmarks: `recipes/benchmark.py` over the base model, each adapter and other models, and the before/after
step of a training run (`benchmarks:` in its YAML).

Every benchmark is prepared first (its split read, its columns checked, its prompts built), so a wrong task file
fails before any model is loaded. Then, entry by entry (one model load each), every benchmark not already finished
generates its answers with `generation.generate_answers` (the batched greedy decoding of every recipe), is scored by
its metric and written to `output_dir/<benchmark>/<model>.jsonl` (per prompt) and `.json` (the figures and the
settings they were measured with); `output_dir/rows.json` lists the rows of each split scored (a seeded sample,
stratified where the task names a stratum, under `--limit`). A row that cannot become a prompt or be scored counts
as a question answered wrong and is listed with its reason; the run goes on. A rerun with the same settings skips
what is finished (`resume`); a run that fails keeps the benchmarks it finished and leaves no half-written file. The
leaderboard (`report.py`) is written last, from the finished results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ...data.image_hashes import HashCache
from ...outputs import run_directory
from ..compare import Entry, entries_of
from ..contamination import as_json, benchmark_fingerprint, check_entries
from ..generation import generate_answers
from .report import REPORT_FILES, ROWS_FILE, leaderboard, result_paths, write_reports
from .samples import BenchmarkData, prepare
from .scorers import score_answers, summarize
from .tasks import BenchmarkTask, load_task

logger = logging.getLogger(__name__)


@contextmanager
def dataset_root(source: str, tasks: list[BenchmarkTask]) -> Iterator[str | None]:
    """Where the tasks' datasets are read from: None (the Hub), a folder of local copies, or, for 'standins', a
    temporary folder the offline stand-ins are written to (removed afterwards)."""
    if source == "hub":
        yield None
    elif source == "standins":
        from ...data.standins import write_standins

        with tempfile.TemporaryDirectory(prefix="vlm_recipes_standins_") as folder:
            write_standins(folder, sorted({t.dataset_name for t in tasks}))
            yield folder
    else:
        yield source


def evaluate_benchmark(model, processor, data: BenchmarkData, batch_size: int, max_new_tokens: int, desc: str):
    """Generate, score and summarise one benchmark with a loaded model: (per-prompt records, figures)."""
    predictions = generate_answers(model, processor, data.rows(), batch_size, max_new_tokens, desc=desc)
    scored = score_answers(data.task, predictions, data.samples)
    records = [
        {
            "id": sample.id,
            "question_id": sample.question_id,
            "prompt": sample.prompt,
            "prediction": prediction,
            "parsed": s.parsed,
            "rule": s.rule,
            "reference": sample.answer,
            "score": s.score,
        }
        for sample, prediction, s in zip(data.samples, predictions, scored)
    ]
    figures = summarize(data.task, data.samples, scored, data.bad_rows)
    split_rows = data.rows_used["indices"]
    for listed in figures["bad_rows"]:  # rows by their index in the split (prepare did so for unreadable ones)
        if listed["stage"] == "scoring":
            listed["row"] = split_rows[listed["row"]]
    return records, figures


def _rows_json(*benchmarks: BenchmarkData) -> str:
    """rows.json: per benchmark, the rows of its split it scores (indices, ids, the sample's cap, seed and strata)."""
    rows = {
        data.task.name: {"dataset_name": data.task.dataset_name, "split": data.task.split, **data.rows_used}
        for data in benchmarks
    }
    return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def has_finished_results(out: Path) -> bool:
    """Whether `out` holds a finished benchmark result (a failed run keeps its directory then: a rerun reuses them)."""
    return any(out.glob("*/*.json"))


def _weights_fingerprint(path: str | None) -> str | None:
    """What identifies the weights in a local directory, so that retraining into the same folder is noticed: the
    sha256 of an adapter's files (small), the size and modification time of a full model's weight files (large)."""
    if path is None or not Path(path).is_dir():
        return None  # a Hub id (its revision is in the model settings) or tiny:<name>
    folder = Path(path)
    adapter = sorted(folder.glob("adapter_*"))
    digest = hashlib.sha256()
    if adapter:
        for f in adapter:
            digest.update(f.name.encode() + f.read_bytes())
    else:
        for f in sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin"), *folder.glob("config.json")]):
            stat = f.stat()
            digest.update(f"{f.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _settings(task: BenchmarkTask, entry: Entry, args, data: BenchmarkData) -> dict:
    """What a result was measured with: a finished result is reused only when all of it is the same (every model
    setting: dtype, resolution, quantization, revision, ...; the weights of local directories too)."""
    settings = {
        "task": task.fingerprint,
        "model_name_or_path": entry.model_args.model_name_or_path,
        "adapter_path": entry.adapter_path,
        "weights": [_weights_fingerprint(p) for p in (entry.model_args.model_name_or_path, entry.adapter_path)],
        "model_args": dataclasses.asdict(entry.model_args),
        "limit": args.limit,
        "limit_seed": args.limit_seed,
        "max_new_tokens": args.max_new_tokens or task.max_new_tokens,
        "dataset_source": args.dataset_source,
        "num_prompts": len(data.samples),
    }
    return json.loads(json.dumps(settings, default=str))  # as it reads back from the result file


def _finished(json_path: Path, jsonl_path: Path, settings: dict) -> dict | None:
    if not (json_path.is_file() and jsonl_path.is_file()):
        return None
    result = json.loads(json_path.read_text())
    return result if result.get("settings") == settings else None


def _run_entry(entry: Entry, tasks: list[BenchmarkTask], data: dict, args, out: Path) -> None:
    todo = []
    for task in tasks:
        settings = _settings(task, entry, args, data[task.name])
        json_path, jsonl_path = result_paths(out, task.name, entry.label)
        if args.resume and _finished(json_path, jsonl_path, settings):
            logger.info("%s on %s: finished in an earlier run with the same settings, kept.", task.name, entry.label)
            continue
        if json_path.exists():
            logger.info(
                "%s on %s: settings changed since the earlier result: running it again.", task.name, entry.label
            )
        todo.append((task, settings, json_path, jsonl_path))
    if not todo:
        return
    from ..inference import load_for_inference

    model, processor = load_for_inference(entry.model_args, entry.adapter_path, args.device, args.trust_remote_code)
    for n, (task, settings, json_path, jsonl_path) in enumerate(todo, start=1):
        bench = data[task.name]
        budget = settings["max_new_tokens"]
        logger.info(
            "[%d/%d] %s on %s: %d questions, %d prompts, up to %d new tokens",
            n, len(todo), task.name, entry.label, bench.num_questions, len(bench.samples), budget,
        )  # fmt: skip
        started = time.time()
        records, figures = evaluate_benchmark(
            model, processor, bench, args.batch_size, budget, desc=f"{task.name}: {entry.label}"
        )
        figures["seconds"] = round(time.time() - started, 1)
        unparsable = figures["unparsable_rate"]
        logger.info(
            "%s on %s: %s %.3f%s%s (%.1f s)",
            task.name, entry.label, figures["metric"], figures["score"],
            "" if unparsable is None else f", unparsable answers {unparsable:.1%}",
            f", {figures['num_bad_rows']} row(s) that could not be read or scored (scored as wrong)"
            if figures["num_bad_rows"] else "",
            figures["seconds"],
        )  # fmt: skip
        # Predictions first, the figures last: a .json exists only next to its complete .jsonl.
        _write_atomically(jsonl_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        result = {"benchmark": task.name, "label": entry.label, "figures": figures, "settings": settings}
        _write_atomically(json_path, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    del model


def run_benchmarks(args, model_args) -> dict:
    """recipes/benchmark.py: every benchmark of `args.benchmarks` on every entry; writes the leaderboard and returns
    it (leaderboard.json's content)."""
    tasks = [load_task(name) for name in args.benchmarks]
    entries = entries_of(args, model_args)
    with dataset_root(args.dataset_source, tasks) as root:
        data = {task.name: prepare(task, root, args.limit, args.limit_seed) for task in tasks}
        scored = lambda: [benchmark_fingerprint(d, HashCache()) for d in data.values()]  # noqa: E731
        found = check_entries(entries, scored, args.max_overlap, args.allow_overlap, "benchmark")  # before any output
        with run_directory(args.output_dir, keep_if=has_finished_results) as (out, _):
            for name in REPORT_FILES:  # a leaderboard describes the run that wrote it: an older one goes first
                (out / name).unlink(missing_ok=True)
            for stale in out.glob("*/*.tmp"):
                stale.unlink()
            # Which rows each benchmark scores (a seeded sample under --limit).
            _write_atomically(out / ROWS_FILE, _rows_json(*data.values()))
            for entry in entries:
                _run_entry(entry, tasks, data, args, out)
            results = {
                (task.name, entry.label): json.loads(result_paths(out, task.name, entry.label)[0].read_text())
                for task in tasks
                for entry in entries
            }
            board = leaderboard(tasks, entries, data, results, args)
            board["contamination"] = as_json(found)
            text = write_reports(out, board, data, args.gallery_samples)
    print("\n" + text)
    print(f"Wrote {', '.join(str(out / n) for n in REPORT_FILES)} and the predictions under {out}/<benchmark>/")
    return board


def evaluate_on_benchmarks(model, processor, names, limit, source, batch_size, out: Path | None, when: str) -> dict:
    """The before/after step of a training run: `names` on the model as it is now; {benchmark: figures}. With `out`,
    the per-prompt records go to `out/<benchmark>-<when>.jsonl`."""
    tasks = [load_task(name) for name in names]
    figures = {}
    with dataset_root(source, tasks) as root:
        for task in tasks:
            data = prepare(task, root, limit)  # limit_seed 0: the sample benchmark.py draws by default
            records, figures[task.name] = evaluate_benchmark(
                model, processor, data, batch_size, task.max_new_tokens, desc=f"{task.name} {when}"
            )
            figures[task.name].update(title=task.title, dataset_name=task.dataset_name, dataset_source=source)
            if out is not None:
                lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
                _write_atomically(out / f"{task.name}-{when}.jsonl", lines)
                _write_atomically(out / f"{task.name}-rows.json", _rows_json(data))
    return figures


def before_after(before: dict, after: dict) -> dict:
    """eval_results.json's `benchmarks`: per benchmark its score and unparsable share before and after training."""
    return {
        name: {
            "title": figures["title"],
            "metric": figures["metric"],
            "num_questions": figures["num_questions"],
            "before": figures["score"],
            "after": after[name]["score"],
            "unparsable_before": figures["unparsable_rate"],
            "unparsable_after": after[name]["unparsable_rate"],
            "bad_rows": figures["num_bad_rows"],
            "dataset_name": figures["dataset_name"],
            "dataset_source": figures["dataset_source"],
        }
        for name, figures in before.items()
    }
