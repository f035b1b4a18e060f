"""Compare models and adapters on one held-out split: generate, score, and write reports a person can read.

Each entry (the base model, each adapter on top of it, other full models) generates answers to the same rows with
`inference.predict` (the batched greedy generation the training recipes evaluate with) and is scored by our local
`evaluate` metric modules (`vlm_recipes.evaluation.metrics`). Written to `output_dir`:

- `report.md`: the before/after table (one row per entry, the first row is the reference for the deltas);
- `report.json`: the same figures, machine-readable, with the run's settings;
- `eval_rows.json`: which rows of the held-out split were scored (a seeded random sample when `max_eval_samples`
  caps it: `vlm_recipes.data.sampling`);
- `predictions-<n>-<label>.jsonl`: every prediction with its reference and per-sample headline score;
- `gallery.html`: a self-contained page (thumbnails embedded as base64 PNG) with each row's image, prompt,
  reference and every entry's prediction, so a person can see what changed. All text is HTML-escaped.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import logging
import re
import time
from pathlib import Path

from datasets import Dataset

from ..data.image_hashes import HashCache
from ..data.sampling import rows_of
from ..outputs import EVAL_ROWS_FILE, run_directory
from ..settings import DataArguments, EvaluateArguments, GenerateArguments, VLMModelConfig
from .contamination import as_json, check_entries, evaluation_fingerprint, markdown_lines
from .inference import check_adapter_dir, load_for_inference, predict, rows_for, write_jsonl
from .metrics import score

logger = logging.getLogger(__name__)

THUMBNAIL_PIXELS = 160


@dataclasses.dataclass
class Entry:
    label: str
    model_args: VLMModelConfig
    adapter_path: str | None = None


def entries_of(eval_args: EvaluateArguments, model_args: VLMModelConfig) -> list[Entry]:
    """The base (if evaluated), each adapter on the base, then each other model; adapters are checked first."""
    adapters = [a for a in eval_args.adapter_paths if a]  # an empty string clears a YAML list from the command line
    others = [m for m in eval_args.other_models if m]
    for path in adapters:
        check_adapter_dir(path, field="adapter_paths")
    base = model_args.model_name_or_path
    entries = [Entry(base, model_args)] if eval_args.evaluate_base else []
    entries += [Entry(Path(a).name or a, model_args, a) for a in adapters]
    entries += [Entry(m, dataclasses.replace(model_args, model_name_or_path=m)) for m in others]
    if not entries:
        raise ValueError("Nothing to evaluate: set evaluate_base: true, adapter_paths or other_models.")
    labels = [label for label in eval_args.labels if label]
    if labels:
        if len(labels) != len(entries):
            raise ValueError(
                f"labels has {len(labels)} names for {len(entries)} entries "
                f"({[e.label for e in entries]}): give one per entry, in order (base, adapters, other models)."
            )
        for entry, label in zip(entries, labels):
            entry.label = label
    seen: dict[str, int] = {}
    for entry in entries:  # unique labels: they name files and table rows
        seen[entry.label] = seen.get(entry.label, 0) + 1
        if seen[entry.label] > 1:
            entry.label = f"{entry.label} ({seen[entry.label]})"
    return entries


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "model"


def run_evaluate(data_args: DataArguments, eval_args: EvaluateArguments, model_args: VLMModelConfig) -> dict:
    """recipes/evaluate_models.py: every entry on the same rows and metrics; writes the reports, returns the JSON."""
    entries = entries_of(eval_args, model_args)
    gen_args = GenerateArguments(
        batch_size=eval_args.batch_size,
        max_new_tokens=eval_args.max_new_tokens,
        device=eval_args.device,
        seed=eval_args.seed,
    )
    rows = rows_for(gen_args, data_args, eval_args.references_column)
    missing = [i for i in range(len(rows)) if rows[i].get("reference") is None]
    if missing:
        raise ValueError(
            f"{data_args.dataset_name}: row {missing[0]} has no reference answer to score against; set "
            "answer_column / references_column (or use a messages column that ends with the answer)."
        )
    scored = lambda: [evaluation_fingerprint(rows, data_args, HashCache())]  # noqa: E731
    # The contamination check, before any output is written (refuses above max_overlap unless allow_overlap).
    overlaps = check_entries(entries, scored, data_args.max_overlap, data_args.allow_overlap, "evaluate_models")
    # A failed run removes the directory it created; a rerun replaces the previous report and predictions.
    with run_directory(eval_args.output_dir, overwrite=True) as (out, _):
        for stale in out.glob("predictions-*.jsonl"):
            stale.unlink()
        report = _compare(entries, rows, data_args, eval_args, out, as_json(overlaps))
    print("\n" + markdown_table(report))
    print(f"Wrote {out / 'report.md'}, {out / 'report.json'} and {out / 'gallery.html'}")
    return report


def _compare(entries, rows, data_args, eval_args, out: Path, contamination: dict | None = None) -> dict:
    results = []
    for n, entry in enumerate(entries):
        started = time.time()
        model, processor = load_for_inference(
            entry.model_args, entry.adapter_path, eval_args.device, eval_args.trust_remote_code
        )
        records = predict(
            model,
            processor,
            rows,
            eval_args.batch_size,
            eval_args.max_new_tokens,
            desc=f"generating: {entry.label}",
            video=data_args.video_settings,  # video rows sampled as in training
        )
        del model
        unscored = next((r["id"] for r in records if r.get("reference") is None), None)
        if unscored is not None:
            raise ValueError(f"{data_args.dataset_name}: row id={unscored!r} has no reference answer to score.")
        predictions = [r["prediction"] for r in records]
        references = [r["reference"] for r in records]
        metrics, per_sample = {}, None
        for name in eval_args.metrics:
            scored = score(name, predictions, references)
            metrics[name] = scored[name]
            per_sample = per_sample or scored["scores"]  # the headline (first) metric's
        for record, value in zip(records, per_sample):
            record["score"] = value
        file = write_jsonl(out / f"predictions-{n}-{_slug(entry.label)}.jsonl", records)
        results.append(
            {
                "label": entry.label,
                "model_name_or_path": entry.model_args.model_name_or_path,
                "adapter_path": entry.adapter_path,
                "metrics": metrics,
                "seconds": round(time.time() - started, 1),
                "predictions_file": file.name,
                "records": records,
            }
        )
        logger.info("%s: %s", entry.label, metrics)
    report = {
        "dataset_name": data_args.dataset_name,
        "num_samples": len(rows),
        "metrics": list(eval_args.metrics),
        "max_new_tokens": eval_args.max_new_tokens,
        "models": [{k: v for k, v in r.items() if k != "records"} for r in results],
        "contamination": contamination or {},
    }
    source = getattr(rows, "source", None)  # inference.Rows over a dataset split (else images, a folder, ...)
    sample = rows_of(source) if isinstance(source, Dataset) else None
    if sample is not None:  # which rows of the held-out split were scored (a seeded sample, not the first N)
        (out / EVAL_ROWS_FILE).write_text(json.dumps(sample, indent=2, ensure_ascii=False) + "\n")
        report["rows_file"] = EVAL_ROWS_FILE
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (out / "report.md").write_text(markdown_table(report))
    (out / "gallery.html").write_text(gallery_html(report, rows, results, eval_args.gallery_samples))
    return report


def markdown_table(report: dict) -> str:
    """One row per entry, one column per metric, plus the change of the headline metric from the first row."""
    metrics, models = report["metrics"], report["models"]
    head = metrics[0]
    lines = [
        f"Dataset `{report['dataset_name']}`, {report['num_samples']} samples.",
        "",
        "| model | " + " | ".join(metrics) + f" | Δ {head} vs first row | seconds |",
        "|---|" + "---|" * (len(metrics) + 2),
    ]
    for m in models:
        delta = m["metrics"][head] - models[0]["metrics"][head]
        cells = " | ".join(f"{m['metrics'][name]:.3f}" for name in metrics)
        label = m["label"].replace("|", "\\|")
        lines.append(f"| {label} | {cells} | {delta:+.3f} | {m['seconds']} |")
    if report.get("contamination"):
        lines += markdown_lines(report["contamination"])
    return "\n".join(lines) + "\n"


def _thumbnail(image) -> str:
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    buffer = io.BytesIO()
    thumb.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def gallery_html(report: dict, rows, results: list[dict], max_rows: int) -> str:
    """A self-contained HTML page: per row its image(s), prompt, reference and each entry's prediction and score."""
    esc = html.escape
    head = report["metrics"][0]
    header = "".join(f"<th>{esc(r['label'])}</th>" for r in results)
    body = []
    for i in range(min(max_rows, len(rows))):
        row = rows[i]
        images = "".join(f'<img src="{_thumbnail(im)}" alt="row {i}">' for im in row["images"][:4])
        reference = row["reference"]
        reference = " | ".join(reference) if isinstance(reference, list) else reference
        cells = []
        for r in results:
            record = r["records"][i]
            css = "hit" if record["score"] >= 0.5 else "miss"
            small = f"<small>{esc(head)} {record['score']:.2f}</small>"
            cells.append(f'<td class="{css}">{esc(record["prediction"])}<br>{small}</td>')
        prompt = results[0]["records"][i]["prompt"]
        body.append(f"<tr><td>{images}</td><td>{esc(prompt)}</td><td>{esc(reference)}</td>{''.join(cells)}</tr>")
    summary = "".join(
        f"<li>{esc(r['label'])}: " + ", ".join(f"{esc(k)} {v:.3f}" for k, v in r["metrics"].items()) + "</li>"
        for r in results
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vlm-recipes evaluation: {esc(report["dataset_name"])}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }} img {{ margin: 2px; }}
td.hit {{ background: #e6f4e6; }} td.miss {{ background: #fbe9e9; }}
</style></head><body>
<h1>Evaluation on {esc(report["dataset_name"])} ({report["num_samples"]} samples)</h1>
<ul>{summary}</ul>
<p>First {min(max_rows, len(rows))} rows; green: {esc(head)} score of at least 0.5.</p>
<table><tr><th>image</th><th>prompt</th><th>reference</th>{header}</tr>
{chr(10).join(body)}
</table></body></html>
"""
