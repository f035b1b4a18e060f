"""The contamination check of the evaluation and benchmark recipes (the figures and the refusal are
vlm_recipes/data/contamination.py's): for each model evaluated whose training data is known (an adapter, or a full
fine-tune's folder, written by our training recipes: `training_data_hashes.npz` beside the weights, or in the run
folder above a checkpoint), the overlap of that training data with each scored set; before any output is written.

A base model's training data is not known to us (its pre-training): the reports say so instead of a figure.
"""

from __future__ import annotations

import logging
from pathlib import Path

from datasets import Image as ImageFeature
from datasets import List as ListFeature

from ..data.contamination import RECORD_FILE, Fingerprint, Overlap, fingerprint_dataset, fingerprint_rows, measure
from ..data.contamination import refuse_above as _refuse_above
from ..data.image_hashes import HashCache

logger = logging.getLogger(__name__)


def training_record(entry) -> Path | None:
    """The training-data fingerprint of an evaluated entry (`compare.Entry`): in its adapter folder, or its model
    folder, or the run folder above either (a checkpoint-<step>/); None when it has none."""
    for folder in (entry.adapter_path, entry.model_args.model_name_or_path):
        if folder and Path(folder).is_dir():
            for candidate in (Path(folder) / RECORD_FILE, Path(folder).parent / RECORD_FILE):
                if candidate.is_file():
                    return candidate
            return None  # the entry's own folder: only its record (or its run's) describes it
    return None


def benchmark_fingerprint(data, cache: HashCache | None) -> Fingerprint:
    """The fingerprint of the rows a benchmark scores (`samples.BenchmarkData`): their images and raw questions."""
    task, ds = data.task, data.dataset
    for column in task.image_columns:
        feature = ds.features[column]
        if isinstance(feature, ImageFeature):
            ds = ds.cast_column(column, ImageFeature(decode=False))
        elif isinstance(feature, ListFeature) and isinstance(feature.feature, ImageFeature):
            ds = ds.cast_column(column, ListFeature(ImageFeature(decode=False)))
    columns = [*task.image_columns, task.question_column, *([task.id_column] if task.id_column else [])]
    table = ds.select_columns(columns)[:]
    images = [
        [v for c in task.image_columns for v in (table[c][i] if isinstance(table[c][i], list) else [table[c][i]])]
        for i in range(len(ds))
    ]
    ids = [
        f"{task.name}:{table[task.id_column][i]}" if task.id_column else f"{task.name}[{i}]" for i in range(len(ds))
    ]
    questions = [q if isinstance(q, str) else None for q in table[task.question_column]]
    return fingerprint_rows(f"{task.name} ({task.split})", images, questions, ids, cache)


def entry_overlaps(entries, scored, max_overlap: float, allowed: bool) -> dict[str, list]:
    """{entry label: [Overlap per scored set]} for entries with a training record, {label: []} for the others;
    `scored()` gives the scored sets' fingerprints (called only when some entry has a record)."""
    found, fingerprints = {}, None
    for entry in entries:
        record = training_record(entry)
        if record is None:
            found[entry.label] = []
            continue
        training = Fingerprint.load(record)
        fingerprints = scored() if fingerprints is None else fingerprints
        found[entry.label] = [measure(training, s, max_overlap, allowed) for s in fingerprints]
        for overlap in found[entry.label]:
            logger.info("Contamination check, %s: %s", entry.label, overlap.line())
    return found


def check_entries(entries, scored, max_overlap: float, allowed: bool, where: str) -> dict:
    """Measure every entry against every scored set (`scored()`: their fingerprints) and refuse above the threshold
    (see the module docstring); returns {label: [Overlap]}."""
    found = entry_overlaps(entries, scored, max_overlap, allowed)
    _refuse_above([o for overlaps in found.values() for o in overlaps], where)
    return found


def evaluation_fingerprint(rows, data_args, cache: HashCache | None) -> Fingerprint:
    """The fingerprint of the rows recipes/evaluate_models.py scores (`inference.Rows` over the held-out split): its
    images (`image_column`) and questions (`question_column`, else the conversation's first user turn)."""
    name = f"{data_args.dataset_name} (held-out)"
    return fingerprint_dataset(
        rows.source, name, cache, image_column=data_args.image_column, question_column=data_args.question_column
    )


def as_json(found: dict[str, list[Overlap]]) -> dict:
    """report.json / leaderboard.json's `contamination`: per model the figures, or why there are none."""
    return {
        label: [o.as_dict() for o in overlaps] if overlaps else "training data unknown (no training_data_hashes.npz)"
        for label, overlaps in found.items()
    }


def markdown_lines(figures: dict) -> list[str]:
    """The reports' "Training-data overlap" section, from `as_json`'s figures: one line per model and scored set; a
    figure above the threshold is marked."""
    lines = [
        "",
        "Training-data overlap (scored rows whose image, question, or both were in the model's training data):",
    ]
    lines.append("")
    for label, overlaps in figures.items():
        if isinstance(overlaps, str):
            lines.append(f"- {label}: {overlaps}")
            continue
        for o in overlaps:
            rows, mark = o["rows"], _mark(o)
            lines.append(
                f"- {label} on {o['scored']}: image {o['image_overlap']}/{rows} "
                f"({100 * o['image_overlap_fraction']:.1f}%){mark}, question {o['question_overlap']}/{rows}, "
                f"both {o['same_item_overlap']}/{rows}"
            )
    return lines


def _mark(o: dict) -> str:
    return f" **{o['mark']}**" if o["mark"] else ""
