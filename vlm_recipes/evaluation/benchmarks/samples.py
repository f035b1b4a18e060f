"""A benchmark's split as prompts: the data read (split only, capped before any image is decoded), each row turned
into the benchmark's prompt with its options, hint and images, and the reference answer in the form its scorer reads.

`datasets` reads the split (Parquet from the Hub, or a local folder laid out like the Hub repository: the offline
stand-ins). What this module adds: the column mapping of the task file, checked against the split before anything
is generated; options from columns (MMBench), a list column (AI2D, ScienceQA, MathVista), the text of a list (MMMU)
or the question itself (MMStar), rendered as "A. ..." lines; references as option letters whatever the dataset
stores (a letter, an index, the option's text); MMMU's `<image k>` placeholders as images placed where the text
names them; circular evaluation's rotations (stored ones grouped, or generated); and errors that name the
benchmark, its task file, the row and the fix.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datasets import ClassLabel, Dataset

from ...data.loading import hub_split_files, load_hub_splits
from ...data.sampling import rows_of, rows_record, sample_indices, sample_rows, stamp_rows
from .extraction import LETTERS, parse_inline_options
from .tasks import CIRCULAR_MODULO, BenchmarkTask

logger = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"<image (\d+)>")
_EMPTY = (None, "", "nan", "NaN", "None")


@dataclass
class Sample:
    """One prompt of a benchmark.

    Args:
        id: unique per prompt (a generated rotation adds "/rot<k>" to the row's id).
        question_id: the question it belongs to: a circular question's rotations share it.
        prompt: the text of the user turn.
        answer: the reference: an option letter (multiple choice), a string, or a list of accepted strings.
        options: the option texts in the order shown (letters A, B, ...); empty for a free-form question.
        row: the dataset row it was made from.
        image_columns: the columns whose images the prompt shows, in order.
        messages: the conversation (one user turn, image parts where the images go).
        info: what the scorer and the report need besides: category, answer_type, precision, source.
    """

    id: str
    question_id: str
    prompt: str
    answer: object
    options: list[str]
    row: int
    image_columns: list[str]
    messages: list[dict]
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BadRow:
    """A row of the benchmark that could not be turned into a prompt: it counts as a question answered wrong, and the
    report lists it with its `reason` (an MMStar row whose options do not parse, a MathVista answer that is not one
    of its choices, ...). `row`: its index in the rows given to `build_samples`; `prepare` makes it the index in the
    split. `stratum`: its value of the task's stratum_column."""

    id: str
    question_id: str
    row: int
    reason: str
    stratum: object = None


def dataset_location(task: BenchmarkTask, root: str | Path | None) -> str:
    """Where the task's dataset is read: its Hub id, or `<root>/<hub id>` (a local copy, e.g. the stand-ins)."""
    if root is None:
        return task.dataset_name
    local = Path(root) / task.dataset_name
    if not local.is_dir():
        raise FileNotFoundError(
            f"benchmark {task.name!r}: no local copy of {task.dataset_name} at {local}. Write the offline stand-ins "
            f"there (python -m vlm_recipes.data.standins {root}), use dataset_source: standins, or read the Hub "
            "(dataset_source: hub)."
        )
    return str(local)


def load_split(task: BenchmarkTask, root: str | Path | None = None) -> Dataset:
    """The task's split alone (its files only), with every column the task names checked."""
    where = f"benchmark {task.name!r} ({task.path})"
    name = dataset_location(task, root)
    files = hub_split_files(name, task.dataset_config)
    if task.split not in files:
        raise ValueError(f"{where}: {name} has no split {task.split!r} (splits: {sorted(files)}); fix `split`.")
    ds = load_hub_splits(name, task.dataset_config, [task.split], files)[task.split]
    missing = [c for c in task.columns if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"{where}: {name} ({task.split}) has no column(s) {missing} (columns: {ds.column_names}); fix the "
            "task file's column names."
        )
    return ds


def limit_rows(task: BenchmarkTask, ds: Dataset, limit: int | None, seed: int = 0) -> Dataset:
    """`limit` questions (all rows when None): a seeded random sample (vlm_recipes.data.sampling), stratified by the
    task's `stratum_column`, in the split's order; the rows drawn are stamped into the result (`rows_of`). A stored
    circular benchmark samples questions and keeps every stored rotation of each, and must hold some: otherwise it is
    not circular and saying so is the fix."""
    if task.circular != "stored":
        return sample_rows(ds, limit, seed, task.stratum_column)
    groups: dict[int, list[int]] = {}
    for i, value in enumerate(ds[task.id_column]):  # reads the id column only: no image is decoded
        groups.setdefault(int(value) % CIRCULAR_MODULO, []).append(i)
    questions = list(groups.values())
    if questions and all(len(rows) == 1 for rows in questions):
        raise ValueError(
            f"benchmark {task.name!r} ({task.path}): circular: stored, but no question of {task.dataset_name} "
            f"({task.split}) is stored with its options rotated (rows whose {task.id_column} agree modulo "
            f"{CIRCULAR_MODULO:,}); use circular: rotate to rotate the options ourselves, or circular: none."
        )
    strata = None
    if task.stratum_column is not None and limit is not None and limit < len(questions):
        values = ds[task.stratum_column]
        strata = [values[rows[0]] for rows in questions]
    kept = [questions[q] for q in sample_indices(len(questions), limit, seed, strata)]
    indices = sorted(i for rows in kept for i in rows)
    subset = ds.select(indices)
    return stamp_rows(subset, rows_record(ds, indices, limit, seed, task.stratum_column))


def _options(task: BenchmarkTask, row: dict, where: str) -> list[str]:
    if task.option_columns:
        options = []
        for column in task.option_columns:
            if row[column] in _EMPTY:
                break  # 2- and 3-option questions leave the last columns empty
            options.append(str(row[column]))
        return options
    if task.options_in_question:
        options = parse_inline_options(row[task.question_column])
        if not options:
            raise ValueError(f"{where}: no 'Options: A: ..., B: ...' in column {task.question_column!r}.")
        return options
    value = row[task.options_column]
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as err:
            raise ValueError(f"{where}: column {task.options_column!r} is not a list: {value[:80]!r}.") from err
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where}: column {task.options_column!r} holds {type(value).__name__}, not a list.")
    return [str(v) for v in value]


def _gold_letter(task: BenchmarkTask, answer, options: list[str], where: str) -> str:
    letters = LETTERS[: len(options)]
    if task.answer_format == "index":
        try:
            index = int(answer)
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < len(options):
            raise ValueError(f"{where}: answer {answer!r} is not an index into its {len(options)} options.")
        return letters[index]
    if task.answer_format == "text":
        if answer not in options:
            raise ValueError(f"{where}: answer {answer!r} is not one of its options {options}.")
        return letters[options.index(answer)]
    letter = str(answer).strip().upper()
    if len(letter) != 1 or letter not in letters:
        raise ValueError(f"{where}: answer {answer!r} is not a letter of its {len(options)} options ({letters}).")
    return letter


def _is_multiple_choice(task: BenchmarkTask, row: dict) -> bool:
    if task.metric == "choice_accuracy":
        return True
    if task.metric == "mmmu_accuracy":
        return row[task.question_type_column] == "multiple-choice"
    if task.metric == "mathvista_accuracy":
        return row[task.question_type_column] == "multi_choice"
    return False


def _content(prompt: str, task: BenchmarkTask, row_images: dict, where: str) -> tuple[list[dict], list[str]]:
    """The user turn's parts and the image columns shown: `<image k>` (first mention) becomes image k, in place;
    without placeholders every image of the row comes first."""
    placed = [int(k) for k in _PLACEHOLDER.findall(prompt)]
    if not placed:
        columns = [c for c in task.image_columns if row_images[c]]
        if not columns:
            raise ValueError(f"{where}: no image in {list(task.image_columns)}.")
        return [*({"type": "image", "text": None} for _ in columns), {"type": "text", "text": prompt}], columns
    parts, columns, seen, start = [], [], set(), 0
    for match in _PLACEHOLDER.finditer(prompt):
        k = int(match.group(1))
        if k in seen:
            continue  # a later mention stays text: the image is shown once
        if not 1 <= k <= len(task.image_columns) or not row_images[task.image_columns[k - 1]]:
            raise ValueError(f"{where}: the prompt names <image {k}>, but the row has no such image.")
        seen.add(k)
        if prompt[start : match.start()].strip():
            parts.append({"type": "text", "text": prompt[start : match.start()].strip()})
        parts.append({"type": "image", "text": None})
        columns.append(task.image_columns[k - 1])
        start = match.end()
    if prompt[start:].strip():
        parts.append({"type": "text", "text": prompt[start:].strip()})
    return parts, columns


def build_samples(task: BenchmarkTask, ds: Dataset, bad_rows: list | None = None) -> list[Sample]:
    """The prompts of `ds`'s rows (see the module docstring); images are not decoded here. A row that cannot be
    turned into a prompt (options that do not parse, an answer that is not among its options, ...) raises, or, given
    a `bad_rows` list, is appended to it as a `BadRow` (scored as wrong, listed in the report) and the rest go on."""
    # Which rows have which images, from the Arrow validity bits: nothing is decoded.
    table = ds.select_columns(list(task.image_columns)).with_format("arrow")[:]
    present = {c: table.column(c).is_valid().to_pylist() for c in task.image_columns}
    text_rows = ds.remove_columns(list(task.image_columns))
    category = ds.features[task.category_column] if task.category_column else None
    category_name = category.int2str if isinstance(category, ClassLabel) else (lambda value: value)
    samples = []
    for i, row in enumerate(text_rows):
        row_id = str(row[task.id_column]) if task.id_column else str(i)
        where = f"benchmark {task.name!r} ({task.path}), row {i} (id {row_id})"
        try:
            samples += _row_samples(task, row, i, row_id, where, present, category_name)
        except ValueError as err:
            if bad_rows is None:
                raise
            stratum = row.get(task.stratum_column) if task.stratum_column else None
            reason = str(err).removeprefix(f"{where}: ")
            bad_rows.append(BadRow(row_id, _question_id(task, row, row_id), i, reason, stratum))
    return samples


def _question_id(task: BenchmarkTask, row: dict, row_id: str) -> str:
    if task.circular == "stored":
        try:
            return str(int(row[task.id_column]) % CIRCULAR_MODULO)
        except (TypeError, ValueError):
            return row_id
    return row_id


def _row_samples(task: BenchmarkTask, row: dict, i: int, row_id: str, where: str, present, category_name):
    """The prompt(s) of one row: one, or one per rotation of its options (circular: rotate)."""
    hint = row.get(task.hint_column) if task.hint_column else None
    fields = {
        **row,
        "question": row[task.question_column],
        "hint": task.hint_template.format(hint=hint) if hint not in _EMPTY else "",
    }
    info = {
        "category": category_name(row[task.category_column]) if task.category_column else None,
        "answer_type": row.get(task.answer_type_column) if task.answer_type_column else None,
        "precision": row.get(task.precision_column) if task.precision_column else None,
        "source": row.get(task.source_column) if task.source_column else None,
        "stratum": row.get(task.stratum_column) if task.stratum_column else None,
    }
    images = {c: present[c][i] for c in task.image_columns}
    multiple_choice = _is_multiple_choice(task, row)
    answer = row[task.answer_column]
    if answer is None:
        raise ValueError(f"{where}: no reference answer in column {task.answer_column!r} (a withheld split?).")
    if not multiple_choice:
        template = task.open_prompt if task.metric == "mmmu_accuracy" else task.prompt
        prompt = _fill(template, {**fields, "options": ""}, where)
        parts, columns = _content(prompt, task, images, where)
        messages = [{"role": "user", "content": parts}]
        return [Sample(row_id, row_id, prompt, answer, [], i, columns, messages, info)]
    options = _options(task, row, where)
    gold = LETTERS.index(_gold_letter(task, answer, options, where))
    question_id = _question_id(task, row, row_id)
    turns = range(len(options)) if task.circular == "rotate" else range(1)
    samples = []
    for k in turns:
        shown = options[k:] + options[:k]
        lines = "\n".join(f"{LETTERS[j]}. {text}" for j, text in enumerate(shown))
        prompt = _fill(task.prompt, {**fields, "options": lines}, where)
        parts, columns = _content(prompt, task, images, where)
        sample_id = f"{row_id}/rot{k}" if task.circular == "rotate" else row_id
        letter = LETTERS[(gold - k) % len(options)]
        messages = [{"role": "user", "content": parts}]
        samples.append(Sample(sample_id, question_id, prompt, letter, shown, i, columns, messages, info))
    return samples


def _fill(template: str, fields: dict, where: str) -> str:
    try:
        return template.format_map(fields)
    except KeyError as err:
        raise ValueError(
            f"{where}: the prompt template names {{{err.args[0]}}}, which is no column of the row ({sorted(fields)})."
        ) from None


@dataclass
class BenchmarkData:
    """A benchmark ready to run: its task, the rows evaluated, their prompts and where the data came from."""

    task: BenchmarkTask
    dataset: Dataset
    samples: list[Sample]
    location: str
    bad_rows: list[BadRow] = field(default_factory=list)

    @property
    def num_questions(self) -> int:
        return len({s.question_id for s in self.samples} | {b.question_id for b in self.bad_rows})

    @property
    def rows_used(self) -> dict:
        """Which rows of the split were drawn (`vlm_recipes.data.sampling.rows_record`): what rows.json holds."""
        return rows_of(self.dataset)

    def images(self, sample: Sample) -> list:
        row = self.dataset[sample.row]
        return [row[c].convert("RGB") for c in sample.image_columns]

    def rows(self) -> Sequence[dict]:
        """The prompts as the generation code reads them (`images`, `messages`, `id`), images decoded on access."""
        return _PromptRows(self)


class _PromptRows(Sequence):
    def __init__(self, data: BenchmarkData):
        self.data, self._cached = data, (None, None)

    def __len__(self) -> int:
        return len(self.data.samples)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        sample = self.data.samples[i]
        if self._cached[0] != sample.row:  # rotations of one row follow each other: decode its images once
            self._cached = (sample.row, self.data.dataset[sample.row])
        row = self._cached[1]
        images = [row[c].convert("RGB") for c in sample.image_columns]
        return {"id": sample.id, "images": images, "messages": sample.messages}


def prepare(
    task: BenchmarkTask, root: str | Path | None = None, limit: int | None = None, seed: int = 0
) -> BenchmarkData:
    """Load `task`'s split (the Hub, or `<root>/<hub id>`), draw `limit` questions (seeded, stratified where the
    task names a stratum), build the prompts. Rows that cannot become prompts are kept as `bad_rows` (scored as
    wrong); when no row of the whole split can (a task file that does not fit the data), that is an error naming the
    first reason."""
    ds = limit_rows(task, load_split(task, root), limit, seed)
    bad_rows: list[BadRow] = []
    samples = build_samples(task, ds, bad_rows)
    drawn = rows_of(ds)
    whole_split = len(drawn["indices"]) == drawn["num_rows"]  # a --limit sample may draw only bad rows: it goes on
    if bad_rows and not samples and whole_split:
        first = bad_rows[0]
        raise ValueError(
            f"benchmark {task.name!r} ({task.path}): none of its {len(ds)} rows could be turned into a prompt; "
            f"row {first.row} (id {first.id}): {first.reason}"
        )
    split_rows = drawn["indices"]  # a bad row is reported by its index in the split, not in the sample
    bad_rows = [dataclasses.replace(bad, row=split_rows[bad.row]) for bad in bad_rows]
    for bad in bad_rows:
        logger.warning("%s: row %d (id %s) scored as wrong: %s", task.name, bad.row, bad.id, bad.reason)
    return BenchmarkData(task, ds, samples, dataset_location(task, root), bad_rows)
