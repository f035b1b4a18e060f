"""Evaluation subsets: which rows a capped evaluation (`max_eval_samples`, a benchmark's `--limit`) scores.

`datasets` can select rows; what we add is the choice. The first N rows of a file are no sample: files are often
sorted (ChartQA's test split holds its human-written questions, then the augmented ones, and its official figure
averages the two halves), so a capped evaluation draws a seeded random sample instead, stratified where the dataset
has a stated stratum (each stratum keeps its share of the rows, the remainder going to the largest remainders), and
says which rows it drew: `rows_record` is what runs write beside their results (`eval_rows.json`, a benchmark's
`rows.json`).

The rows drawn travel with the subset: `select` keeps a dataset's `info` through `map`, `add_column` and
`remove_columns`, so the sample is stamped into `info.description` (after `ROWS_MARK`) and read back by
`rows_of`, whichever loader built the held-out split.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence

from datasets import Dataset

ROWS_MARK = "\n[vlm-recipes evaluated rows] "
# Columns that identify a row in the datasets we ship configs for (VQAv2/TextVQA question_id, DocVQA questionId,
# MathVista pid, MMBench/MMStar index); the first one present is recorded next to the row indices.
ID_COLUMNS = ("question_id", "questionId", "id", "pid", "index")


def sample_indices(num_rows: int, n: int | None, seed: int, strata: Sequence | None = None) -> list[int]:
    """Sorted indices of a seeded random sample of `n` of `num_rows` rows (all rows, in order, when `n` is None or
    at least `num_rows`). With `strata` (one value per row) every stratum gets its proportional share: floor(n *
    size / num_rows), the rows left over going to the strata with the largest remainders (ties: the stratum seen
    first), and each stratum's rows are drawn at random within it.

    >>> sample_indices(10, 4, seed=0, strata=["h"] * 5 + ["a"] * 5)  # two from each half
    [3, 4, 5, 7]
    """
    if n is None or n >= num_rows:
        return list(range(num_rows))
    if n < 0:
        raise ValueError(f"A sample of {n} rows: the cap must be >= 0.")
    rng = random.Random(seed)
    if strata is None:
        return sorted(rng.sample(range(num_rows), n))
    if len(strata) != num_rows:
        raise ValueError(f"{len(strata)} stratum values for {num_rows} rows.")
    groups: dict[object, list[int]] = defaultdict(list)
    for i, value in enumerate(strata):
        groups[value].append(i)
    shares = {value: n * len(rows) / num_rows for value, rows in groups.items()}
    counts = {value: int(share) for value, share in shares.items()}
    order = sorted(groups, key=lambda value: -(shares[value] - counts[value]))  # stable: first seen wins ties
    for value in order[: n - sum(counts.values())]:
        counts[value] += 1
    chosen = []
    for value, rows in groups.items():
        chosen += rng.sample(rows, counts[value])
    return sorted(chosen)


def sample_rows(ds: Dataset, n: int | None, seed: int, stratum_column: str | None = None) -> Dataset:
    """`ds` capped at `n` rows by `sample_indices` (stratified by `stratum_column`, read alone: no image is decoded),
    the rows drawn stamped into the subset (`rows_of`)."""
    if stratum_column is not None and stratum_column not in ds.column_names:
        raise ValueError(
            f"Stratum column {stratum_column!r} is not in the data (columns: {ds.column_names}); fix the setting "
            "that names it (eval_stratum_column, or a benchmark task's stratum_column)."
        )
    strata = ds[stratum_column] if stratum_column is not None and n is not None and n < len(ds) else None
    indices = sample_indices(len(ds), n, seed, strata)
    subset = ds if len(indices) == len(ds) else ds.select(indices)
    return stamp_rows(subset, rows_record(ds, indices, n, seed, stratum_column))


def rows_record(ds: Dataset, indices: list[int], n: int | None, seed: int, stratum_column: str | None) -> dict:
    """What a run writes beside its results: the cap, seed and stratum, the indices drawn (into the split as
    loaded) and, where the data has an id column, their ids."""
    record = {"num_rows": len(ds), "cap": n, "seed": seed, "stratum_column": stratum_column, "indices": indices}
    id_column = next((c for c in ID_COLUMNS if c in ds.column_names), None)
    if id_column is not None:
        ids = ds[id_column]
        record.update(id_column=id_column, ids=[ids[i] for i in indices])
    if stratum_column is not None:
        values = ds[stratum_column]
        counts: dict[str, int] = defaultdict(int)
        for i in indices:
            counts[str(values[i])] += 1
        record["strata"] = dict(counts)
    return json.loads(json.dumps(record, default=str))


def stamp_rows(ds: Dataset, record: dict) -> Dataset:
    """`ds` with `record` kept in its `info` (see the module docstring); any earlier stamp is replaced."""
    description = ds.info.description or ""
    ds.info.description = description.split(ROWS_MARK)[0] + ROWS_MARK + json.dumps(record)
    return ds


def rows_of(ds: Dataset) -> dict | None:
    """The sample record stamped into `ds` by `sample_rows`, or None (rows not drawn by it)."""
    description = ds.info.description or ""
    if ROWS_MARK not in description:
        return None
    return json.loads(description.split(ROWS_MARK, 1)[1])
