"""Benchmark definitions: one YAML file per benchmark (`tasks/<name>.yaml` in this package), parsed into a
`BenchmarkTask` record and checked before any data or model is loaded.

A task file says where the data is (Hub dataset id, configuration, split), how its columns map onto a prompt
(question, options, hint, images), the benchmark's own prompt and generation budget, and the rule that scores an
answer (`metric`, a name of `scorers.SCORERS`). Names follow lmms-eval's task names (`mmbench_en_dev`, `mmmu_val`,
...). A path to a YAML file of the same form works wherever a name does, for a benchmark we do not ship.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from ...settings.common import current_dataset_id
from .scorers import CHOICE_METRICS, SCORERS

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
CIRCULAR = ("none", "stored", "rotate")
ANSWER_FORMATS = ("letter", "index", "text")
# Rows of a stored circular benchmark (MMBench) whose `id_column` values agree modulo this are one question asked
# with its options rotated (VLMEvalKit / lmms-eval: index, index + 1e6, index + 2e6, ...).
CIRCULAR_MODULO = 1_000_000


@dataclass(frozen=True)
class BenchmarkTask:
    """One benchmark, as its YAML file declares it.

    Args:
        name: the benchmark's name (the file's stem), as lmms-eval names the task.
        title: a readable name for reports.
        dataset_name: the Hub dataset id; offline runs read `<dataset root>/<dataset_name>` instead.
        dataset_config: the dataset's configuration (None: its only one).
        split: the split evaluated (only its files are read).
        metric: how an answer is scored, a name of `scorers.SCORERS` (multiple-choice accuracy, MMMU, MathVista,
            OCRBench, or a free-form metric module: relaxed_accuracy, anls, vqa_accuracy, exact_match).
        prompt: the benchmark's prompt, a template filled with the row's columns plus `{options}` ("A. ..." lines),
            `{hint}` (`hint_template` filled, or empty when the row has no hint) and `{question}`.
        card: the dataset card the columns were read from.
        reference: where the prompt and the scoring rule come from.
        image_columns: the columns holding the row's image(s); `<image k>` in the prompt places image k there
            (MMMU), otherwise the images come first.
        question_column / answer_column: the question and the reference answer.
        answer_format: multiple choice only: the reference is a `letter`, an `index` into the options, or the
            option's `text` (MathVista).
        option_columns: one column per option, in letter order (MMBench: A, B, C, D; empty cells end the list).
        options_column: one column holding the options: a list, or the text of a Python list (MMMU).
        options_in_question: the options are written into the question ("Options: A: ..., B: ...", MMStar).
        hint_column / hint_template: optional context placed by `{hint}`.
        id_column: the row's id (default: its position).
        category_column: reported per category as well.
        stratum_column: the dataset's stated strata (ChartQA: human_or_machine, its human-written and augmented
            halves): a `--limit` sample keeps each stratum's share, and the score is the mean of the strata's scores
            (the official ChartQA figure averages the two halves).
        question_type_column: MMMU ("multiple-choice" / "open") and MathVista ("multi_choice" / "free_form").
        answer_type_column / precision_column: MathVista's integer / float / list / text and decimal places.
        source_column: OCRBench's source dataset (HME100k answers are compared without spaces).
        open_prompt: MMMU: the prompt of its open (not multiple-choice) questions.
        circular: multiple choice only: `none`; `stored` (the dataset holds each question again with its options
            rotated, ids equal modulo 1,000,000: MMBench) or `rotate` (we ask each question once per rotation of
            its options). A circular question counts only when every rotation is answered right.
        max_new_tokens: the benchmark's generation budget.
        metric_options: passed to a free-form metric module (e.g. anls: threshold).
    """

    name: str
    title: str
    dataset_name: str
    split: str
    metric: str
    prompt: str
    dataset_config: str | None = None
    card: str = ""
    reference: str = ""
    image_columns: tuple[str, ...] = ("image",)
    question_column: str = "question"
    answer_column: str = "answer"
    answer_format: str = "letter"
    option_columns: tuple[str, ...] = ()
    options_column: str | None = None
    options_in_question: bool = False
    hint_column: str | None = None
    hint_template: str = "{hint}\n"
    id_column: str | None = None
    category_column: str | None = None
    stratum_column: str | None = None
    question_type_column: str | None = None
    answer_type_column: str | None = None
    precision_column: str | None = None
    source_column: str | None = None
    open_prompt: str | None = None
    circular: str = "none"
    max_new_tokens: int = 16
    metric_options: dict = field(default_factory=dict)
    path: str = ""

    def __post_init__(self):
        where = f"benchmark {self.name!r} ({self.path or 'in code'})"
        object.__setattr__(self, "dataset_name", current_dataset_id(self.dataset_name, f"{where}: dataset_name"))
        if self.metric not in SCORERS:
            raise ValueError(f"{where}: unknown metric {self.metric!r}; choose from {sorted(SCORERS)}.")
        needs = SCORERS[self.metric].needs
        missing = [n for n in needs if getattr(self, n) in (None, "", ())]
        if missing:
            raise ValueError(f"{where}: metric {self.metric!r} needs {', '.join(missing)}; set it in the task file.")
        sources = [bool(self.option_columns), bool(self.options_column), self.options_in_question]
        if self.metric in CHOICE_METRICS and sum(sources) != 1:
            raise ValueError(
                f"{where}: a multiple-choice benchmark takes its options from exactly one of option_columns, "
                f"options_column and options_in_question (got {sum(sources)})."
            )
        if self.circular not in CIRCULAR:
            raise ValueError(f"{where}: circular must be one of {CIRCULAR}, got {self.circular!r}.")
        if self.circular != "none" and self.metric != "choice_accuracy":
            raise ValueError(f"{where}: circular evaluation applies to multiple choice (metric choice_accuracy) only.")
        if self.circular == "stored" and not self.id_column:
            raise ValueError(f"{where}: circular: stored groups rows by id_column; set it (MMBench: index).")
        if self.circular == "rotate" and self.options_in_question:
            raise ValueError(f"{where}: circular: rotate cannot reorder options written into the question text.")
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"{where}: answer_format must be one of {ANSWER_FORMATS}, got {self.answer_format!r}.")
        if self.max_new_tokens < 1:
            raise ValueError(f"{where}: max_new_tokens must be >= 1.")

    @property
    def fingerprint(self) -> str:
        """A hash of everything that decides the prompts and scores (not `path`): a changed task file is rerun."""
        settings = {k: v for k, v in asdict(self).items() if k != "path"}
        return hashlib.sha256(json.dumps(settings, sort_keys=True, default=list).encode()).hexdigest()[:16]

    @property
    def columns(self) -> list[str]:
        """Every column the task reads (checked against the dataset before any generation)."""
        named = [
            self.question_column,
            self.answer_column,
            self.options_column,
            self.hint_column,
            self.id_column,
            self.category_column,
            self.stratum_column,
            self.question_type_column,
            self.answer_type_column,
            self.precision_column,
            self.source_column,
        ]
        return [c for c in (*self.image_columns, *named, *self.option_columns) if c]


def shipped_tasks() -> list[str]:
    """The names of the benchmarks this package ships a task file for."""
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


def task_path(name: str) -> Path:
    """The task file of `name` (a shipped benchmark's name, or a path to a YAML file)."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"Benchmark task file {name!r} not found.")
        return path
    shipped = TASKS_DIR / f"{name}.yaml"
    if not shipped.is_file():
        close = difflib.get_close_matches(name, shipped_tasks(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"Unknown benchmark {name!r}{hint}; shipped: {shipped_tasks()}, or give the path of a task YAML file."
        )
    return shipped


def load_task(name: str) -> BenchmarkTask:
    """The `BenchmarkTask` of a shipped benchmark's name or of a task YAML file; unknown keys are refused."""
    path = task_path(name)
    content = yaml.safe_load(path.read_text())
    if not isinstance(content, dict):
        raise ValueError(f"{path}: a benchmark task file is a YAML mapping of the fields of BenchmarkTask.")
    known = {f.name for f in fields(BenchmarkTask)} - {"path"}
    unknown = sorted(set(content) - known)
    if unknown:
        close = {k: difflib.get_close_matches(k, known, n=1) for k in unknown}
        named = ", ".join(f"{k!r}" + (f" (did you mean {close[k][0]!r}?)" if close[k] else "") for k in unknown)
        raise ValueError(f"{path}: unknown key(s) {named}; the fields are those of BenchmarkTask (tasks.py).")
    content.setdefault("name", path.stem)
    for key in ("image_columns", "option_columns"):
        if key in content:
            content[key] = tuple(content[key])
    try:
        return BenchmarkTask(**content, path=str(path))
    except TypeError as err:  # a required field is missing
        raise ValueError(f"{path}: {err}") from None


def check_benchmark_names(names) -> None:
    """Fail fast (before any model is loaded) on a benchmark that is neither shipped nor a readable task file."""
    for name in names:
        load_task(name)


def check_data_source(source: str, field: str = "dataset_source") -> None:
    """'hub', 'standins' or an existing folder of local copies (<folder>/<hub id>), else an error naming the fix."""
    if source not in ("hub", "standins") and not Path(source).is_dir():
        raise ValueError(
            f"{field} {source!r} is neither 'hub', 'standins' nor a folder; a folder holds local copies at "
            "<folder>/<hub id> (python -m vlm_recipes.data.standins <folder> writes them)."
        )
