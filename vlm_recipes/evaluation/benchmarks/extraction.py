"""Answers read out of free text: the option a multiple-choice answer names, MathVista's numbers, MMMU's open answers,
OCRBench's containment rule.

What the reference toolkits do: lmms-eval and VLMEvalKit read an option letter with string rules and, when those
fail, ask an LLM judge (GPT). When nothing is found, MMMU's official script picks an option at random, MathVista's
takes the option nearest to the text (edit distance) and VLMEvalKit draws one at random after its judge fails: a
model that answered nothing readable is credited with about 1/k of those questions. Here: rules only, no judge, and
no guess. An answer the rules cannot read scores 0 and is counted (per benchmark, the share of unparsable answers
is reported next to the score).

Multiple choice, `extract_choice(text, options)` (options in the order shown, lettered A, B, ...). The first rule
that decides wins:

1. clean-up: `<think>` blocks dropped; markdown emphasis and LaTeX wrappers unwrapped (`**B**`, `$\\text{(B)}$`);
2. a stated answer: the last `<answer>` block, the last "the (final / correct / best) answer / option / choice is
   ..." or "Answer: ...", else the last `\\boxed{}` (`scoring.final_answer_text`, widened to option/choice
   phrasing); rules 4-7 read inside that statement, and among several letters there the first one counts (the
   statement names its answer first: "the answer is C, not A");
3. a refusal ("I cannot determine", "none of the options", "I'm sorry", "unable to answer", ...): no choice,
   unless the refusal is itself the text of an option the answer gives ("None of the above");
4. the whole answer is a letter: "B", "b", "(B)", "B.", "[B]", "Option B", "choice b";
5. a leading letter with a separator: "B. cat", "(B) cat", "B: cat", "B) cat";
6. letters standing alone in the text ("(C)", "C.", "C,", "C" between spaces): one letter -> it; several -> the last
   one mentioned (a rationale ends with its conclusion). A capital "A" or "I" followed by a lower-case word reads as
   a word ("A cat sits", "I think"), not an option, unless that word says it is one ("A is correct");
7. option text: the options whose text appears in the answer as whole words, after `normalize_vqa` (case,
   punctuation, Unicode, articles, number words: "three" is "3"); an option contained in a longer matching one is
   dropped ("red" inside "dark red"); exactly one -> it, several -> no choice;
8. otherwise no choice (unparsable).

Where this differs from the references (the literal cases are in tests/test_benchmarks.py, and
tests/test_benchmark_lmms_eval.py runs lmms-eval's own functions on the same answers): MMMU's rule counts any "A "
in the text ("A cat" is option A) and matches option text only in answers longer than 5 words; lmms-eval's generic
extractor prefers a letter that opens or ends the answer over "the answer is C" further on; both then fall back to
a guess. VLMEvalKit's `can_infer` needs exactly one letter, else one option text, else asks its judge.
"""

from __future__ import annotations

import ast
import math
import re
import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from ..metrics.scoring import final_answer_text, normalize_answer, normalize_vqa

LETTERS = string.ascii_uppercase

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_EMPHASIS = re.compile(r"\*\*|__|`")
_LATEX_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|operatorname)\s*\{([^{}]*)\}")
# "the correct option is C", "my choice would be (B)", "Answer: D" (to the end of the line).
_STATEMENT = re.compile(
    r"\b(?:final\s+|correct\s+|best\s+|right\s+)?(?:answer|option|choice)\s*(?:is|would\s+be|should\s+be|:)\s*:?\s*"
    r"([^\n]+)",
    re.IGNORECASE,
)
_WHOLE_LETTER = re.compile(r"^(?:(?:option|choice|answer)\s*:?\s*)?[(\[]?([A-Za-z])[)\]]?[.:,;!]?$", re.IGNORECASE)
_LEADING_LETTER = re.compile(r"^(?:(?:option|choice)\s+)?(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Z])[.:)])\s*\S")
_LETTER_TOKEN = re.compile(r"(?<![A-Za-z0-9_\\])(\()?([A-Z])(\))?(?![A-Za-z0-9_'’])")
# Words after a capital A / I that make it an option ("A is correct"), not an article or a pronoun ("A cat").
_CHOOSING_WORDS = {"is", "was", "would", "should", "seems", "appears", "looks", "matches", "fits", "best", "and", "or"}
_REFUSAL = re.compile(
    r"\b(?:i\s*(?:am|['’]m)\s+sorry|i\s+apologi[sz]e|(?:i\s+)?(?:can\s*not|can['’]t|cannot|could\s+not|couldn['’]t|am\s+unable\s+"
    r"to|unable\s+to)\s+(?:determine|answer|tell|see|identify|help|provide|infer|decide|say)|not\s+(?:possible|able)\s+"
    r"to\s+(?:determine|tell|answer)|none\s+of\s+the\s+(?:options|choices|above|answers)|cannot\s+be\s+determined|"
    r"there\s+is\s+no\s+(?:image|correct\s+(?:answer|option)))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Choice:
    """What `extract_choice` read: the option `letter` (None: none) and the `rule` that decided."""

    letter: str | None
    rule: str


def clean(text: str) -> str:
    """The answer without `<think>` blocks, markdown emphasis, `$` and LaTeX text wrappers (`\\text{B}` -> B)."""
    text = _THINK.sub(" ", text)
    text = _EMPHASIS.sub("", text)
    for _ in range(3):  # nested wrappers: \text{\textbf{B}}
        text = _LATEX_WRAPPER.sub(r"\1", text)
    return text.replace("$", "").strip()


def stated_answer(text: str) -> str | None:
    """The part of `text` that states the final answer (see the module docstring, rule 2), or None."""
    found = final_answer_text(text)
    if found != text.strip():
        return found
    statements = _STATEMENT.findall(text)
    return statements[-1].strip() if statements else None


def _whole_letter(text: str, letters: str) -> str | None:
    match = _WHOLE_LETTER.match(text.strip().rstrip(".").strip())
    letter = match.group(1).upper() if match else None
    return letter if letter is not None and letter in letters else None


def _leading_letter(text: str, letters: str) -> str | None:
    match = _LEADING_LETTER.match(text.strip())
    if not match:
        return None
    letter = next(g for g in match.groups() if g).upper()
    return letter if letter in letters else None


def _letter_mentions(text: str, letters: str) -> list[str]:
    """Option letters standing alone in `text`, in order (rule 6)."""
    found = []
    for match in _LETTER_TOKEN.finditer(text):
        opened, letter, closed = match.groups()
        if letter not in letters:
            continue
        if letter in "AI" and not (opened or closed):
            following = re.match(r"\s+([a-z]+)", text[match.end() :])
            if following and following.group(1) not in _CHOOSING_WORDS:
                continue  # "A cat", "I think": a word, not an option
        found.append(letter)
    return found


def _option_text(text: str, options: Sequence[str], letters: str) -> tuple[str | None, bool]:
    """(letter of the one option whose text the answer contains, whether several did)."""
    answer = f" {normalize_vqa(text)} "
    normalized = [normalize_vqa(str(o)) for o in options]
    hits = [i for i, o in enumerate(normalized) if o and f" {o} " in answer]
    # "red" inside "dark red": the longer matching option is the one meant.
    hits = [i for i in hits if not any(j != i and f" {normalized[i]} " in f" {normalized[j]} " for j in hits)]
    if len(hits) == 1:
        return letters[hits[0]], False
    return None, len(hits) > 1


def _read(text: str, options: Sequence[str], letters: str, first: bool) -> Choice | None:
    """Rules 4-7 on `text`; `first`: among several letters the first counts (inside a statement), else the last."""
    letter = _whole_letter(text, letters)
    if letter:
        return Choice(letter, "letter")
    letter = _leading_letter(text, letters)
    if letter:
        return Choice(letter, "leading letter")
    mentions = _letter_mentions(text, letters)
    if len(set(mentions)) == 1:
        return Choice(mentions[0], "letter in text")
    if mentions:
        return Choice(mentions[0] if first else mentions[-1], "first of several letters" if first else "last letter")
    letter, several = _option_text(text, options, letters)
    if letter:
        return Choice(letter, "option text")
    if several:
        return Choice(None, "several option texts")
    return None


def extract_choice(text: str, options: Sequence[str]) -> Choice:
    """The option a free-text answer names (rules in the module docstring); `options` are the option texts in the order
    they were shown (letters A, B, ...). Choice(None, rule) when no option can be read: it scores 0, never a guess.

    >>> extract_choice("The answer is (B).", ["cat", "dog"])
    Choice(letter='B', rule='letter')
    >>> extract_choice("It is a dog.", ["cat", "dog"]).letter
    'B'
    >>> extract_choice("I cannot determine this from the image.", ["cat", "dog"])
    Choice(letter=None, rule='refusal')
    """
    letters = LETTERS[: len(options)]
    text = clean(text)
    if not text:
        return Choice(None, "empty")
    statement = stated_answer(text)
    if statement:
        read = _read(statement, options, letters, first=True)
        if read is not None and read.letter is not None:
            return Choice(read.letter, f"stated: {read.rule}")
    refusal = _REFUSAL.search(text)
    if refusal and not any(
        _REFUSAL.search(str(o)) and normalize_answer(str(o)) in normalize_answer(text) for o in options
    ):
        return Choice(None, "refusal")
    read = _read(text, options, letters, first=False)
    return read if read is not None else Choice(None, "no answer")


def parse_inline_options(question: str) -> list[str]:
    """Option texts written into a question, as MMStar does ("...\\nOptions: A: 5, B: 6, C: 7, D: 8"); [] if none."""
    head, sep, tail = question.rpartition("Options:")
    if not sep:
        return []
    parts = re.split(r"(?:^|,|\n)\s*([A-Z])\s*[:.]\s*", tail.strip())
    # parts: ['', 'A', 'text', 'B', 'text', ...]
    letters, texts = parts[1::2], [p.strip().rstrip(",").strip() for p in parts[2::2]]
    if not letters or letters != list(LETTERS[: len(letters)]):
        return []
    return texts


# -- numbers (MathVista, MMMU open questions) ---------------------------------------------------------------------

_FRACTION = re.compile(r"\\[dt]?frac\s*\{([^{}]+)\}\s*\{([^{}]+)\}")
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?(?![\w])|-?\.\d+")


def _value(token: str) -> float | None:
    token = token.replace(",", "").replace(" ", "")
    try:
        if "/" in token:
            numerator, denominator = token.split("/")
            value = float(numerator) / float(denominator)
        else:
            value = float(token)
    except (ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None


def numbers_in(text: str) -> list[float]:
    """The numbers in `text` in order: integers, decimals, thousands separators ("1,234"), fractions ("3/4",
    `\\frac{3}{4}`), negatives; percent signs and units are ignored ("45%" -> 45)."""
    text = _FRACTION.sub(r"\1/\2", unicodedata.normalize("NFKC", text).replace("−", "-"))
    values = [_value(m.group(0)) for m in _NUMBER.finditer(text)]
    return [v for v in values if v is not None]


def extract_number(text: str) -> float | None:
    """The number a free-text answer gives: the first number of its stated answer (rule 2 above), else the last number
    of the text (a rationale ends with its result: "7 + 7 = 14" -> 14); None when there is none."""
    text = clean(text)
    statement = stated_answer(text)
    if statement:
        found = numbers_in(statement)
        if found:
            return found[0]
    found = numbers_in(text)
    return found[-1] if found else None


def parse_list(text: str) -> list | None:
    """A list answer ("[2007, 2008]", "(1.2, 3)") as a list of numbers or strings; None when there is none."""
    text = clean(text)
    statement = stated_answer(text) or text
    match = re.findall(r"[\[(]([^\[\]()]*)[\])]", statement)
    if not match:
        return None
    items = [item.strip().strip("'\"") for item in match[-1].split(",") if item.strip()]
    return [_value(item) if _value(item) is not None else item.lower() for item in items]


def mathvista_hit(prediction: str, answer: str, answer_type: str, precision: float | None) -> tuple[bool, str | None]:
    """(right?, what was read) for a MathVista free-form question, by its `answer_type`:

    - integer: the number read, truncated as the official `int(float(x))`, equals the answer ("14.0" -> 14);
    - float: the number read and the answer agree when both are rounded to `precision` decimals (the official script
      compares `str(round(x, precision))` with the answer's text; we compare the rounded values, so "1.50" and 1.5
      agree);
    - list: the same numbers (or words), in order;
    - text: equal after `normalize_answer`.
    """
    if answer_type == "integer":
        number = extract_number(prediction)
        read = None if number is None else str(int(number))
        return read is not None and read == str(int(float(answer))), read
    if answer_type == "float":
        number = extract_number(prediction)
        if number is None:
            return False, None
        digits = int(precision or 0)
        return round(number, digits) == round(float(answer), digits), f"{round(number, digits):g}"
    if answer_type == "list":
        read = parse_list(prediction)
        gold = parse_list(answer)
        if read is None:
            return False, None
        same = gold is not None and len(read) == len(gold)
        same = same and all(
            (math.isclose(a, b) if isinstance(a, float) and isinstance(b, float) else a == b)
            for a, b in zip(read, gold)
        )
        return same, str(read)
    read = final_answer_text(clean(prediction))
    return normalize_answer(read) == normalize_answer(answer), read


def mmmu_open_hit(prediction: str, answer: str) -> tuple[bool, str | None]:
    """(right?, what was read) for an MMMU open question. The answer's text is its stated answer, else the whole text
    (MMMU's script splits it at "so", "thus", "answer", "=" ...); a numeric reference is right when a number read
    equals it at 2 decimals, a text reference when it appears in the answer as whole words (case-insensitive). A
    reference written as a list ("['24', '24.0']") accepts any of its items."""
    references = [answer]
    if answer.strip().startswith("["):
        try:
            references = [str(a) for a in ast.literal_eval(answer.strip())]
        except (ValueError, SyntaxError):
            pass
    text = clean(prediction)
    region = stated_answer(text) or text
    numbers = [round(n, 2) for n in (numbers_in(region) or numbers_in(text))]
    words = f" {normalize_answer(region)} "
    for reference in references:
        gold = _value(reference.strip())
        if gold is not None:
            if round(gold, 2) in numbers:
                return True, f"{round(gold, 2):g}"
        elif normalize_answer(reference) and f" {normalize_answer(reference)} " in words:
            return True, reference
    return False, (f"{numbers[-1]:g}" if numbers else region.strip() or None)


def _fold_fullwidth(text: str) -> str:
    """Full-width ASCII (U+FF01-FF5E) and the ideographic space as their ASCII forms; nothing else changes."""
    return "".join(" " if c == "\u3000" else chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else c for c in text)


def ocrbench_hit(prediction: str, answers, source: str | None = None) -> bool:
    """OCRBench's rule: right when a reference answer is contained in the prediction. Handwritten mathematical
    expressions (source HME100k) are compared with all whitespace removed, case kept; every other question after
    folding full-width characters, lower-casing and turning newlines into spaces."""
    answers = [answers] if isinstance(answers, str) else list(answers)
    if source == "HME100k":
        predicted = re.sub(r"\s+", "", prediction)
        return any(re.sub(r"\s+", "", a) in predicted for a in answers if a.strip())
    predicted = _fold_fullwidth(prediction).lower().strip().replace("\n", " ")
    return any(_fold_fullwidth(a).lower().strip().replace("\n", " ") in predicted for a in answers if a.strip())
