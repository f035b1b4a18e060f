"""The contamination check of a training run, at start-up (before the model loads) and in `make preflight`: the
overlap of the training split with each set the run scores, the held-out split (disjoint by rows, but carved from the
same data it may share images: several questions per document page) and every benchmark the config names
(`benchmarks:`), by image content and question text (vlm_recipes/data/contamination.py). Above `max_overlap` the run
refuses unless `allow_overlap: true` (a held-out split carved from the training split by eval_fraction is shown and
marked, not refused: its rows are disjoint, its images may repeat); the figures go to eval_results.json
(`contamination`), and the training data's fingerprint to output_dir (`training_data_hashes.npz`), where evaluations
and benchmarks of the adapter find it."""

from __future__ import annotations

import logging
from pathlib import Path

from ...data.contamination import RECORD_FILE, Overlap, fingerprint_dataset, measure, refuse_above, report_text
from ...data.image_hashes import HashCache

logger = logging.getLogger(__name__)

GENERATED = ("synthetic", "synthetic_video")  # our generators: their held-out split is an independent draw
CARVED = "held out of the training split"


def held_out_is_carved(data_args) -> bool:
    """Whether the held-out split is `eval_fraction` of the training split (rows disjoint by construction): no test
    split named, the train split named (the one held-out rule, data/loading.held_out_plan, holds part of it out), or
    one the dataset does not have (a local file has one split)."""
    test = data_args.dataset_test_split
    if data_args.dataset_name in GENERATED:
        return False
    if test is None or test == data_args.dataset_train_split:
        return True
    path = Path(data_args.dataset_name)
    if path.is_file():
        return True  # a .jsonl / .json file: one split
    if path.is_dir() and any((path / n).exists() for n in ("metadata.jsonl", "metadata.csv")):
        return not (path / test).is_dir()  # an image folder: split folders, or one split
    from ...data.loading import hub_split_files

    return test not in hub_split_files(data_args.dataset_name, data_args.dataset_config)


def measure_run(train_ds, eval_ds, data_args, training_args, cache: HashCache | None = None):
    """(the training data's fingerprint, [Overlap with the held-out split, then with each named benchmark])."""
    cache = cache if cache is not None else HashCache()
    source = f"{data_args.dataset_name} ({data_args.dataset_train_split})"
    generated = data_args.dataset_name in GENERATED
    training = fingerprint_dataset(train_ds, source, cache, generated=generated, id_prefix="train")
    held_out = fingerprint_dataset(eval_ds, "held-out", cache)
    scored = [held_out]
    names = getattr(training_args, "benchmarks", None) or []
    if names:
        from ...evaluation.benchmarks.runner import dataset_root
        from ...evaluation.benchmarks.samples import prepare
        from ...evaluation.benchmarks.tasks import load_task
        from ...evaluation.contamination import benchmark_fingerprint

        tasks = [load_task(name) for name in names]
        with dataset_root(training_args.benchmark_data, tasks) as root:
            for task in tasks:
                scored.append(benchmark_fingerprint(prepare(task, root, training_args.benchmark_limit), cache))
    limits = (data_args.max_overlap, data_args.allow_overlap)
    carved = held_out_is_carved(data_args)
    overlaps = [measure(training, held_out, *limits, enforced=not carved, note=CARVED if carved else "")]
    overlaps += [measure(training, s, *limits) for s in scored[1:]]
    stats = training.stats
    logger.info(
        "Contamination check: %d training images (%d hashed, %d from the cache)", len(training.image_hash),
        stats.hashed, stats.cached,
    )  # fmt: skip
    return training, overlaps


def guard_overlap(train_ds, eval_ds, data_args, training_args, out: Path | None) -> list[Overlap]:
    """The start-up check: measure, log, refuse above the threshold (before anything is written), then write the
    training data's fingerprint to `out` (output_dir: the main process writes it; None: nowhere)."""
    from accelerate import PartialState

    with PartialState().main_process_first():  # one process hashes; the others read its hashes from the cache
        training, overlaps = measure_run(train_ds, eval_ds, data_args, training_args)
    logger.info("%s", report_text(overlaps))
    refuse_above(overlaps, "Contamination check")
    if out is not None and PartialState().is_main_process:
        training.save(Path(out) / RECORD_FILE)
    return overlaps
