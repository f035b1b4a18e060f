"""The benchmark command's leaderboard: `leaderboard.json` (every figure and setting), `leaderboard.md` (scores and
unparsable answers per model and benchmark; its header counts the rows that could not be read or scored, listed at
its end) and `leaderboard.html` (the same tables, then per benchmark a gallery of the prompts some model got wrong:
images, prompt, reference, each model's answer and what the rules read from it).
All text from data is HTML-escaped; images are embedded as base64 thumbnails, so the page is self-contained.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from ..compare import _slug, _thumbnail
from ..contamination import markdown_lines
from .extraction import LETTERS

REPORT_FILES = ("leaderboard.md", "leaderboard.json", "leaderboard.html")
ROWS_FILE = "rows.json"  # per benchmark, the rows of its split that were scored (runner.py writes it)
STANDIN_NOTE = (
    "Data: offline stand-ins (the real datasets' columns and types, a few synthetic rows): these figures check the "
    "pipeline, they are no benchmark results."
)


def leaderboard(tasks, entries, data: dict, results: dict, args) -> dict:
    """leaderboard.json: the benchmarks, and per model its figures on each (results[(benchmark, label)])."""
    benchmarks = [
        {
            "name": t.name,
            "title": t.title,
            "dataset_name": t.dataset_name,
            "dataset_config": t.dataset_config,
            "split": t.split,
            "metric": results[(t.name, entries[0].label)]["figures"]["metric"],
            "num_questions": data[t.name].num_questions,
            "num_prompts": len(data[t.name].samples),
            "num_bad_rows": results[(t.name, entries[0].label)]["figures"].get("num_bad_rows", 0),
            "reference": t.reference,
        }
        for t in tasks
    ]
    models = []
    for entry in entries:
        figures = {t.name: results[(t.name, entry.label)]["figures"] for t in tasks}
        models.append(
            {
                "label": entry.label,
                "model_name_or_path": entry.model_args.model_name_or_path,
                "adapter_path": entry.adapter_path,
                "results": figures,
                "average": sum(f["score"] for f in figures.values()) / len(figures),
            }
        )
    return {
        "dataset_source": args.dataset_source,
        "limit": args.limit,
        "limit_seed": args.limit_seed,
        "max_new_tokens": args.max_new_tokens,
        "benchmarks": benchmarks,
        "models": models,
    }


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def markdown(board: dict) -> str:
    """Scores (%) per model and benchmark with their average, then the share of unparsable answers."""
    names = [b["name"] for b in board["benchmarks"]]
    limit = (
        f", a random sample of {board['limit']} questions of each (seed {board['limit_seed']}; {ROWS_FILE} lists them)"
        if board["limit"]
        else ""
    )
    lines = [f"Benchmarks (scores in %{limit}; circular: a question counts when every rotation is right).", ""]
    lines += [bad_rows_line(board), ""]
    if board["dataset_source"] == "standins":
        lines += [STANDIN_NOTE, ""]
    lines += ["| model | " + " | ".join(names) + " | average |", "|---|" + "---|" * (len(names) + 1)]
    for m in board["models"]:
        cells = " | ".join(f"{100 * m['results'][n]['score']:.1f}" for n in names)
        lines.append(f"| {_cell(m['label'])} | {cells} | {100 * m['average']:.1f} |")
    parsed = [n for n in names if board["models"][0]["results"][n]["unparsable_rate"] is not None]
    if parsed:
        lines += [
            "",
            "Unparsable answers (% of prompts whose answer no rule could read; they score 0, never a guess):",
            "",
            "| model | " + " | ".join(parsed) + " |",
            "|---|" + "---|" * len(parsed),
        ]
        for m in board["models"]:
            cells = " | ".join(f"{100 * m['results'][n]['unparsable_rate']:.1f}" for n in parsed)
            lines.append(f"| {_cell(m['label'])} | {cells} |")
    lines += ["", "| benchmark | dataset | split | metric | questions | prompts |", "|---|---|---|---|---|---|"]
    for b in board["benchmarks"]:
        dataset = b["dataset_name"] + (f" ({b['dataset_config']})" if b["dataset_config"] else "")
        lines.append(
            f"| {b['title']} | {dataset} | {b['split']} | {b['metric']} | {b['num_questions']} | {b['num_prompts']} |"
        )
    if board.get("contamination"):  # the contamination check's figures (evaluation/contamination.py)
        lines += markdown_lines(board["contamination"])
    listed = bad_rows_listed(board)
    if listed:
        lines += [
            "",
            "Rows that could not be read or scored (each scored as wrong):",
            "",
            "| benchmark | model | row | id | stage | reason |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {b} | {_cell(label)} | {r['row']} | {_cell(r['id'])} | {r['stage']} | {_cell(r['reason'])} |"
            for b, label, r in listed
        ]
    return "\n".join(lines) + "\n"


def bad_rows_line(board: dict) -> str:
    """The header's count of rows that could not be read or scored, per benchmark (most over the models)."""
    counts = {
        b["name"]: max(m["results"][b["name"]].get("num_bad_rows", 0) for m in board["models"])
        for b in board["benchmarks"]
    }
    total = sum(counts.values())
    if not total:
        return "Rows that could not be read or scored: none."
    named = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
    return f"Rows that could not be read or scored: {total} ({named}), each scored as wrong and listed below."


def bad_rows_listed(board: dict) -> list[tuple[str, str, dict]]:
    """(benchmark, model, row) of every row that could not be read or scored; rows that could not be read are the
    same for every model and listed once (model '*')."""
    listed, seen = [], set()
    for b in board["benchmarks"]:
        for m in board["models"]:
            for r in m["results"][b["name"]].get("bad_rows", []):
                label = "*" if r["stage"] == "reading" else m["label"]
                key = (b["name"], label, r["id"], r["reason"])
                if key not in seen:
                    seen.add(key)
                    listed.append((b["name"], label, r))
    return listed


def result_paths(out: Path, benchmark: str, label: str) -> tuple[Path, Path]:
    """(figures .json, per-prompt .jsonl) of one benchmark and model: `<out>/<benchmark>/<model>.json[l]`."""
    folder = out / benchmark
    return folder / f"{_slug(label)}.json", folder / f"{_slug(label)}.jsonl"


def _records(out: Path, benchmark: str, label: str) -> list[dict]:
    return [json.loads(line) for line in result_paths(out, benchmark, label)[1].read_text().splitlines()]


def gallery_html(out: Path, board: dict, data: dict, max_rows: int) -> str:
    """leaderboard.html (see the module docstring)."""
    esc = html.escape
    names = [b["name"] for b in board["benchmarks"]]
    header = "".join(f"<th>{esc(n)}</th>" for n in names)
    summary = "".join(
        f"<tr><td>{esc(m['label'])}</td>"
        + "".join(f"<td>{100 * m['results'][n]['score']:.1f}</td>" for n in names)
        + f"<td>{100 * m['average']:.1f}</td></tr>"
        for m in board["models"]
    )
    sections = []
    labels = [m["label"] for m in board["models"]]
    for b in board["benchmarks"]:
        bench = data[b["name"]]
        records = {label: {r["id"]: r for r in _records(out, b["name"], label)} for label in labels}
        failed = [s for s in bench.samples if any(records[lab][s.id]["score"] < 1 for lab in labels)]
        rows = []
        for sample in failed[:max_rows]:
            images = "".join(f'<img src="{_thumbnail(im)}" alt="{esc(sample.id)}">' for im in bench.images(sample)[:4])
            cells = []
            for label in labels:
                r = records[label][sample.id]
                css = "hit" if r["score"] >= 1 else "miss"
                read = "unparsable" if r["parsed"] is None else f"read: {r['parsed']}"
                small = f"<small>{esc(read)} ({esc(r['rule'])}), score {r['score']:.2f}</small>"
                cells.append(f'<td class="{css}">{esc(r["prediction"])}<br>{small}</td>')
            if sample.options:  # the letter and its option's text
                reference = f"{sample.answer}. {sample.options[LETTERS.index(sample.answer)]}"
            else:
                reference = sample.answer if isinstance(sample.answer, str) else " | ".join(map(str, sample.answer))
            rows.append(
                f"<tr><td>{images}</td><td><pre>{esc(sample.prompt)}</pre></td><td>{esc(reference)}</td>"
                f"{''.join(cells)}</tr>"
            )
        scores = ", ".join(f"{esc(m['label'])} {100 * m['results'][b['name']]['score']:.1f}" for m in board["models"])
        heads = "".join(f"<th>{esc(label)}</th>" for label in labels)
        table = (
            f"<table><tr><th>image</th><th>prompt</th><th>reference</th>{heads}</tr>{''.join(rows)}</table>"
            if rows
            else "<p>No failures.</p>"
        )
        sections.append(
            f"<h2>{esc(b['title'])}</h2><p>{esc(b['dataset_name'])} ({esc(b['split'])}), {esc(b['metric'])}, "
            f"{b['num_questions']} questions: {scores}. Failures: {len(failed)} of {len(bench.samples)} prompts"
            f"{f', first {max_rows} shown' if len(failed) > max_rows else ''}. Rows that could not be read or scored "
            f"(scored as wrong): {b['num_bad_rows']}.</p>{table}"
        )
    note = f"<p>{esc(STANDIN_NOTE)}</p>" if board["dataset_source"] == "standins" else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vlm-recipes benchmarks</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }} table {{ border-collapse: collapse; margin-bottom: 1em; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }} img {{ margin: 2px; }}
pre {{ white-space: pre-wrap; max-width: 40em; margin: 0; }}
td.hit {{ background: #e6f4e6; }} td.miss {{ background: #fbe9e9; }}
</style></head><body>
<h1>Benchmarks</h1>{note}
<table><tr><th>model</th>{header}<th>average</th></tr>{summary}</table>
{"".join(sections)}
</body></html>
"""


def write_reports(out: Path, board: dict, data: dict, gallery_samples: int) -> str:
    """Write the three leaderboard files (each in one piece, the JSON last); return the Markdown."""
    text = markdown(board)
    page = gallery_html(out, board, data, gallery_samples)
    for name, content in (
        ("leaderboard.md", text),
        ("leaderboard.html", page),
        ("leaderboard.json", json.dumps(board, indent=2, ensure_ascii=False) + "\n"),
    ):
        tmp = out / f"{name}.tmp"
        tmp.write_text(content)
        tmp.replace(out / name)
    return text
