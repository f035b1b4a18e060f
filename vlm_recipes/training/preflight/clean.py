"""`--write_clean`: a copy of a local .jsonl / .json data file without the rows preflight found bad, and a manifest
of the kept and dropped row ids."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .report import Report, RowProblem


def clean_source(dataset_name: str, out: Path) -> Path:
    """The local data file `--write_clean` copies, or an error saying what it works on."""
    source = Path(dataset_name)
    if not source.is_file() or source.suffix not in (".jsonl", ".json"):
        raise ValueError(
            f"--write_clean copies a local .jsonl or .json data file; dataset_name {dataset_name!r} is not one (for a "
            "Hub dataset or an image folder, filter the rows the report names yourself)."
        )
    if out.resolve() == source.resolve():
        raise ValueError(f"--write_clean {out} is the data file itself; write the clean copy to another path.")
    return source


def _file_rows(source: Path) -> list[tuple[str, str, dict]]:
    """(row_id as the loader names it, raw text, parsed row) for each row of a .jsonl / .json data file."""
    from ...data.loading import row_names

    if source.suffix == ".jsonl":
        texts = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
        parsed = [json.loads(t) for t in texts]
    else:
        parsed = json.loads(source.read_text(encoding="utf-8"))
        if not isinstance(parsed, list):
            raise ValueError(f"{source}: --write_clean needs a JSON array of rows (or JSON lines)")
        texts = [json.dumps(r, ensure_ascii=False) for r in parsed]
    return list(zip(row_names(source, len(parsed)), texts, parsed))


def _rebased(row: dict, column: str, source_dir: Path, out_dir: Path) -> dict:
    """`row` with its relative image paths (in `column`) made relative to `out_dir` instead of `source_dir`."""
    value = row.get(column)
    if value is None:
        return row

    def rebase(p):
        if not isinstance(p, str) or Path(p).is_absolute():
            return p
        return os.path.relpath(source_dir / p, out_dir)

    return {**row, column: [rebase(p) for p in value] if isinstance(value, list) else rebase(value)}


def write_clean(source: Path, out: Path, reports: list[Report], image_column: str) -> str:
    """Write `source` without the rows `reports` found bad to `out`, with `out`.manifest.json (kept and dropped row
    ids, the defects of each dropped row); each file appears complete or not at all. Returns a summary line."""
    rows = _file_rows(source)
    columns = {column for r in reports for column, _ in r.checked_ids} or {"row_id"}
    if len(columns) != 1:
        raise ValueError(f"rows are named by several columns ({sorted(columns)}); cannot match them to the file")
    (column,) = columns
    # The loader names rows "<file>:<line>" unless the data has an id column of its own.
    keys = [parsed.get(column, name) for name, _, parsed in rows]
    if len({repr(k) for k in keys}) != len(keys):
        raise ValueError(f"the values of {column!r} are not unique in {source}; cannot tell the rows apart")
    checked = {repr(value) for r in reports for _, value in r.checked_ids}
    unchecked = [k for k in keys if repr(k) not in checked]
    if unchecked:
        raise ValueError(
            f"{len(unchecked)} row(s) of {source} were not checked (e.g. {unchecked[:3]}); nothing written"
        )
    bad: dict[str, list[RowProblem]] = {}
    for problem in (p for r in reports for p in r.errors):
        bad.setdefault(repr(problem.id_value), []).append(problem)
    kept = [(key, text, parsed) for key, (_, text, parsed) in zip(keys, rows) if repr(key) not in bad]
    out_dir, source_dir = out.resolve().parent, source.resolve().parent
    lines = [
        text if out_dir == source_dir else json.dumps(_rebased(parsed, image_column, source_dir, out_dir))
        for _, text, parsed in kept
    ]
    if source.suffix == ".jsonl":
        content = "".join(line + "\n" for line in lines)
    else:
        content = "[\n" + ",\n".join(lines) + "\n]\n"
    dropped = [
        {"row": key, "defects": [p.kind for p in bad[repr(key)]], "errors": [p.message for p in bad[repr(key)]]}
        for key in keys
        if repr(key) in bad
    ]
    manifest = {"source": str(source), "id_column": column, "kept": [k for k, _, _ in kept], "dropped": dropped}
    manifest_path = out.with_name(out.name + ".manifest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, text in ((manifest_path, json.dumps(manifest, indent=2, default=str) + "\n"), (out, content)):
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)  # atomic: a crash never leaves a half-written file under the final name
    names = [str(d["row"]) for d in dropped]
    shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
    return (
        f"Wrote {out}: {len(kept)} of {len(keys)} rows kept, {len(dropped)} dropped ({shown or 'none'}); the kept and "
        f"dropped row ids are listed in {manifest_path}"
    )
