"""How a benchmark's answers are scored, chosen by the task file's `metric`, and how per-prompt scores become the
benchmark's figures.

One signature for every scorer: `(predictions, samples, options) -> list[Scored]`, one per prompt. Multiple choice
(`choice_accuracy`), MMMU and MathVista read an answer out of the text (`extraction.py`); what could not be read
scores 0 and is counted as unparsable. OCRBench uses its containment rule; the free-form benchmarks (ChartQA,
DocVQA, TextVQA) score with our local `evaluate` metric modules (relaxed_accuracy, anls, vqa_accuracy, exact_match),
the very modules `recipes/evaluate_models.py` and the training recipes use.

`summarize` turns per-prompt scores into the figures: a question's score is the minimum over its prompts (a circular
question counts only when every rotation of its options is answered right; other questions have one prompt), the
benchmark's score is the mean over questions, next to the share of unparsable answers and, for circular benchmarks,
the accuracy on each question's first prompt alone (what a non-circular evaluation would report).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..metrics import METRICS, load_metric
from .extraction import extract_choice, mathvista_hit, mmmu_open_hit, ocrbench_hit


@dataclass(frozen=True)
class Scored:
    """One prompt's score, what the rules read from the answer (`parsed`; None: nothing readable) and the rule;
    `error`: why the prompt could not be scored at all (it then scores 0 and the report lists it)."""

    score: float
    parsed: str | None
    rule: str
    error: str | None = None


@dataclass(frozen=True)
class Scorer:
    """A scoring rule: `fn(predictions, samples, options) -> list[Scored]`; `extracts`: it reads an answer out of
    free text (so unparsable answers are counted); `needs`: the task fields it requires."""

    fn: Callable
    extracts: bool
    needs: tuple[str, ...] = ()
    label: str = "accuracy"


def _choice(prediction: str, sample) -> Scored:
    choice = extract_choice(prediction, sample.options)
    return Scored(float(choice.letter == sample.answer), choice.letter, choice.rule)


def choice_accuracy(predictions, samples, options) -> list[Scored]:
    """The option read from the answer (extraction.extract_choice) is the reference letter."""
    return [_choice(p, s) for p, s in zip(predictions, samples)]


def mmmu_accuracy(predictions, samples, options) -> list[Scored]:
    """MMMU: multiple-choice questions as `choice_accuracy`; open questions by extraction.mmmu_open_hit."""
    scored = []
    for prediction, sample in zip(predictions, samples):
        if sample.options:
            scored.append(_choice(prediction, sample))
        else:
            hit, read = mmmu_open_hit(prediction, sample.answer)
            scored.append(Scored(float(hit), read, "open answer"))
    return scored


def mathvista_accuracy(predictions, samples, options) -> list[Scored]:
    """MathVista: multi_choice questions as `choice_accuracy` (no nearest-option fallback); free_form questions by
    their answer type and precision (extraction.mathvista_hit)."""
    scored = []
    for prediction, sample in zip(predictions, samples):
        if sample.options:
            scored.append(_choice(prediction, sample))
        else:
            info = sample.info
            hit, read = mathvista_hit(prediction, sample.answer, info["answer_type"], info.get("precision"))
            scored.append(Scored(float(hit), read, info["answer_type"]))
    return scored


def ocrbench_accuracy(predictions, samples, options) -> list[Scored]:
    """OCRBench: a reference answer contained in the prediction (extraction.ocrbench_hit)."""
    return [
        Scored(float(ocrbench_hit(p, s.answer, s.info.get("source"))), p, "containment")
        for p, s in zip(predictions, samples)
    ]


def metric_module(name: str) -> Callable:
    """A free-form scorer backed by our local `evaluate` metric module `name`, scored in one batch."""

    def score(predictions, samples, options) -> list[Scored]:
        if not predictions:
            return []
        references = [[s.answer] if isinstance(s.answer, str) else list(s.answer) for s in samples]
        out = load_metric(name).compute(
            predictions=list(predictions), references=references, return_per_sample=True, **options
        )
        return [Scored(float(v), p, name) for v, p in zip(out["scores"], predictions)]

    return score


CHOICE_METRICS = ("choice_accuracy", "mmmu_accuracy", "mathvista_accuracy")
SCORERS: dict[str, Scorer] = {
    "choice_accuracy": Scorer(choice_accuracy, extracts=True),
    "mmmu_accuracy": Scorer(
        mmmu_accuracy, extracts=True, needs=("options_column", "question_type_column", "open_prompt")
    ),
    "mathvista_accuracy": Scorer(
        mathvista_accuracy,
        extracts=True,
        needs=("options_column", "question_type_column", "answer_type_column", "precision_column"),
    ),
    "ocrbench_accuracy": Scorer(ocrbench_accuracy, extracts=False),
    **{
        name: Scorer(metric_module(name), extracts=False, label=name)
        for name in ("exact_match", "relaxed_accuracy", "anls", "vqa_accuracy")
        if name in METRICS
    },
}


def score_answers(task, predictions: Sequence[str], samples: Sequence) -> list[Scored]:
    """Every prompt of `task` scored by its metric. A prompt whose reference the rule cannot score (a ValueError:
    e.g. a VQA question with too few human answers, an answer type MathVista does not define) scores 0 with the
    `error`, and the others are scored: one bad row does not lose the run."""
    if len(predictions) != len(samples):
        raise ValueError(f"{task.name}: {len(predictions)} predictions for {len(samples)} prompts.")
    fn, options = SCORERS[task.metric].fn, dict(task.metric_options)
    try:
        return fn(list(predictions), list(samples), options)
    except (ValueError, TypeError, KeyError):
        pass  # some prompt cannot be scored: score them one by one to find which
    scored = []
    for prediction, sample in zip(predictions, samples):
        try:
            scored += fn([prediction], [sample], options)
        except (ValueError, TypeError, KeyError) as err:
            scored.append(Scored(0.0, None, "unscorable", error=f"{type(err).__name__}: {err}"))
    return scored


def summarize(task, samples: Sequence, scored: Sequence[Scored], bad_rows: Sequence = ()) -> dict:
    """The benchmark's figures from its per-prompt scores (see the module docstring). `bad_rows` (rows that could not
    become prompts, `samples.BadRow`) count as questions scored 0; they and the prompts that could not be scored are
    counted (`num_bad_rows`) and listed with their reasons (`bad_rows`). With a `stratum_column` the score is the mean
    of the strata's scores (`strata`)."""
    by_question: dict[str, list[float]] = defaultdict(list)
    category: dict[str, str] = {}
    stratum: dict[str, object] = {}
    listed = []
    for sample, s in zip(samples, scored):
        by_question[sample.question_id].append(s.score)
        if sample.info.get("category") is not None:
            category[sample.question_id] = str(sample.info["category"])
        stratum[sample.question_id] = sample.info.get("stratum")
        if s.error is not None:
            listed.append({"id": sample.id, "row": sample.row, "stage": "scoring", "reason": s.error})
    for bad in bad_rows:
        by_question[bad.question_id].append(0.0)
        stratum[bad.question_id] = bad.stratum
        listed.append({"id": bad.id, "row": bad.row, "stage": "reading", "reason": bad.reason})
    question_scores = {q: min(v) for q, v in by_question.items()}
    n = len(question_scores)
    figures = {
        "score": sum(question_scores.values()) / n if n else 0.0,
        "metric": ("circular " if task.circular != "none" else "") + SCORERS[task.metric].label,
        "num_questions": n,
        "num_prompts": len(samples),
        "unparsable_rate": (
            sum(s.parsed is None for s in scored) / len(scored) if SCORERS[task.metric].extracts and scored else None
        ),
        "num_bad_rows": len(listed),
        "bad_rows": listed,
    }
    if getattr(task, "stratum_column", None):
        per_stratum: dict[str, list[float]] = defaultdict(list)
        for q, value in question_scores.items():
            per_stratum[str(stratum.get(q))].append(value)
        figures["strata"] = {k: sum(v) / len(v) for k, v in sorted(per_stratum.items())}
        figures["score"] = sum(figures["strata"].values()) / len(per_stratum) if per_stratum else 0.0
    if task.circular != "none":
        firsts = {}
        for sample, s in zip(samples, scored):
            firsts.setdefault(sample.question_id, s.score)
        for bad in bad_rows:
            firsts.setdefault(bad.question_id, 0.0)
        figures["first_prompt_score"] = sum(firsts.values()) / n if n else 0.0
    if category:
        per: dict[str, list[float]] = defaultdict(list)
        for q, value in question_scores.items():
            per[category.get(q, "uncategorized")].append(value)
        figures["categories"] = {c: sum(v) / len(v) for c, v in sorted(per.items())}
    return figures
