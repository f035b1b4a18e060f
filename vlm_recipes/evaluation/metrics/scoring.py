"""Per-sample scoring functions behind our local `evaluate` metric modules (one implementation, pure Python).

The metric scripts `<name>/<name>.py` of this package are thin `evaluate.Metric` wrappers around these
functions, so `evaluate.load(<local dir>)` works offline (the Hub versions of these metrics cannot be fetched
here) and the training recipes' before/after figures come from the very same code. All of it is ours, written
from the papers' definitions; where we deviate from an official script we say so below.

Every `*_score` function takes one prediction and one reference (a string or a list of acceptable strings) and
returns a float in [0, 1]; a list of references scores the best match.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = {"a", "an", "the"}
_NUMBER_WORDS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}


def _as_list(reference) -> list[str]:
    return [reference] if isinstance(reference, str) else list(reference)


def normalize_answer(text: str) -> str:
    """Unicode-normalise (NFKC), case-fold, drop ASCII punctuation, collapse whitespace.

    'A red circle.' -> 'a red circle'; 'ＲＥＤ' (full-width) -> 'red'; 'Straße' -> 'strasse'.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCT.sub(" ", text).split())


def exact_match_score(prediction: str, reference) -> float:
    """1.0 if the prediction equals a reference after `normalize_answer`, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(r) for r in _as_list(reference)))


def normalize_vqa(text: str) -> str:
    """VQA-style normalisation: `normalize_answer`, articles dropped, number words 0-10 as digits.

    Ours: a subset of the official VQA script's rules (it also expands contractions and has a longer
    punctuation rule set); enough for the short answers our recipes score.
    """
    words = [_NUMBER_WORDS.get(w, w) for w in normalize_answer(text).split() if w not in _ARTICLES]
    return " ".join(words)


def vqa_accuracy_score(prediction: str, human_answers, leave_one_out: bool = False) -> float:
    """VQA accuracy: min(#humans who gave the predicted answer / 3, 1), answers compared after `normalize_vqa`.

    This is the formula of the VQA paper (the default). The official evaluation script averages it over the
    leave-one-out subsets of the human answers (`leave_one_out=True`): for an answer given by 1, 2 or 3 of 10
    humans that gives 0.3, 0.6, 0.9 instead of 1/3, 2/3, 1; for 0 or >= 4 of 10 both give 0 and 1.
    """
    answers = [normalize_vqa(a) for a in _as_list(human_answers)]
    if len(answers) < 3:  # min(matches / 3, 1) could never reach 1: a perfect model would score 1/3
        raise ValueError(
            f"VQA accuracy needs a non-empty list of human answers per question, at least 3 (VQAv2 has 10); got "
            f"{len(answers)}. For data with one reference answer use exact_match."
        )
    pred = normalize_vqa(prediction)
    matches = sum(pred == a for a in answers)
    if not leave_one_out or len(answers) == 1:
        return min(matches / 3.0, 1.0)
    # Leaving out a human who gave the prediction removes one match; leaving out another removes none.
    subsets = [min((matches - (a == pred)) / 3.0, 1.0) for a in answers]
    return sum(subsets) / len(subsets)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of code points), two-row dynamic programming."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def anls_score(prediction: str, reference, threshold: float = 0.5) -> float:
    """ANLS (DocVQA): best over references of 1 - NL, where NL = edit distance / length of the longer string,
    and 0 where NL >= threshold. Strings are lower-cased and whitespace-collapsed first (as in the DocVQA
    script); two empty strings score 1."""

    def clean(s: str) -> str:
        return " ".join(s.strip().lower().split())

    pred = clean(prediction)
    best = 0.0
    for ref in _as_list(reference):
        ref = clean(ref)
        longest = max(len(pred), len(ref))
        nl = levenshtein(pred, ref) / longest if longest else 0.0
        best = max(best, 1.0 - nl if nl < threshold else 0.0)
    return best


def to_number(text: str) -> float | None:
    """A finite number from text like '12', '-3.5', '1,234', '45%' (-> 0.45), '$12'; None otherwise."""
    t = unicodedata.normalize("NFKC", text).strip().replace(",", "")
    percent = t.endswith("%")
    t = t.rstrip("%").strip().lstrip("$€£").strip()
    try:
        value = float(t)
    except ValueError:
        return None
    if not math.isfinite(value):  # 'nan', 'inf' parse as floats but are not numeric answers
        return None
    return value / 100.0 if percent else value


def relaxed_accuracy_score(prediction: str, reference, tolerance: float = 0.05) -> float:
    """ChartQA's relaxed accuracy: a numeric answer is right within `tolerance` relative error of a numeric
    reference; anything else must match exactly (after `normalize_answer`).

    Ours differs from ChartQA's script in two places: a reference of 0 needs a prediction of exactly 0 (the
    script falls back to string comparison, so '0.0' vs '0' is wrong there), and thousands separators, currency
    signs and surrounding spaces are ignored ('1,000' equals '1000').
    """
    pred_num = to_number(prediction)
    for ref in _as_list(reference):
        ref_num = to_number(ref)
        if pred_num is not None and ref_num is not None:
            if ref_num == 0:
                hit = pred_num == 0
            else:  # the epsilon keeps the boundary inclusive despite float rounding (10.5 vs 10 is 5.0%)
                hit = abs(pred_num - ref_num) / abs(ref_num) <= tolerance + 1e-12
        else:
            hit = normalize_answer(prediction) == normalize_answer(ref)
        if hit:
            return 1.0
    return 0.0


# -- caption overlap ------------------------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Words for BLEU/ROUGE: `normalize_answer` then split on whitespace (punctuation is not a token)."""
    return normalize_answer(text).split()


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(predictions: Sequence[str], references: Sequence, max_order: int = 4, smooth: bool = False) -> dict:
    """Corpus BLEU (Papineni et al. 2002): clipped n-gram precisions summed over the corpus, their geometric mean,
    times the brevity penalty exp(1 - r/c) when the predictions are shorter (r: the reference lengths closest to
    each prediction's, ties to the shorter). `smooth` adds 1 to the counts of orders >= 2 (Lin & Och 2004), so
    short captions without a matching 4-gram do not score 0. Ours, on `tokenize` words (no SacreBLEU
    tokeniser), so figures are comparable between our runs, not with published SacreBLEU numbers."""
    matches, totals = [0] * max_order, [0] * max_order
    pred_len = ref_len = 0
    for prediction, reference in zip(predictions, references):
        pred = tokenize(prediction)
        refs = [tokenize(r) for r in _as_list(reference)]
        pred_len += len(pred)
        ref_len += min((abs(len(r) - len(pred)), len(r)) for r in refs)[1] if refs else 0
        for n in range(1, max_order + 1):
            counts = _ngrams(pred, n)
            most = Counter()
            for r in refs:
                most |= _ngrams(r, n)  # the max count of each n-gram over the references
            matches[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            totals[n - 1] += max(len(pred) - n + 1, 0)
    precisions = []
    for n in range(max_order):
        add = 1 if smooth and n > 0 else 0
        precisions.append((matches[n] + add) / (totals[n] + add) if totals[n] + add else 0.0)
    if min(precisions) > 0:
        log_mean = sum(math.log(p) for p in precisions) / max_order
        geo_mean = math.exp(log_mean)
    else:
        geo_mean = 0.0
    if pred_len == 0:
        brevity = 0.0
    else:
        brevity = 1.0 if pred_len > ref_len else math.exp(1 - ref_len / pred_len)
    return {
        "bleu": geo_mean * brevity,
        "precisions": precisions,
        "brevity_penalty": brevity,
        "length_ratio": pred_len / ref_len if ref_len else 0.0,
        "translation_length": pred_len,
        "reference_length": ref_len,
    }


def _f1(overlap: int, pred_len: int, ref_len: int) -> float:
    if pred_len == 0 and ref_len == 0:
        return 1.0
    if overlap == 0:
        return 0.0
    precision, recall = overlap / pred_len, overlap / ref_len
    return 2 * precision * recall / (precision + recall)


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge1_score(prediction: str, reference) -> float:
    """ROUGE-1 F1: unigram overlap (clipped counts) between prediction and the best reference."""
    pred = tokenize(prediction)
    scores = []
    for ref in _as_list(reference):
        ref = tokenize(ref)
        overlap = sum((Counter(pred) & Counter(ref)).values())
        scores.append(_f1(overlap, len(pred), len(ref)))
    return max(scores, default=0.0)


def rouge_l_score(prediction: str, reference) -> float:
    """ROUGE-L F1 (beta = 1): longest common subsequence of words, against the best reference.

    Ours: the F1 form (the original paper weights recall with beta; rouge-score's default is this F1 form).
    """
    pred = tokenize(prediction)
    scores = []
    for ref in _as_list(reference):
        ref = tokenize(ref)
        scores.append(_f1(lcs_length(pred, ref), len(pred), len(ref)))
    return max(scores, default=0.0)
