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
    """Loose word normalisation: `normalize_answer`, articles dropped, number words 0-10 as digits (option texts of
    multiple-choice answers, rewards). VQA accuracy uses the VQA evaluation's own rules: `vqa_eval_normalize`.
    """
    words = [_NUMBER_WORDS.get(w, w) for w in normalize_answer(text).split() if w not in _ARTICLES]
    return " ".join(words)


# -- VQA accuracy (VQAv2, TextVQA) ------------------------------------------------------------------------------------

# The VQA evaluation's answer normalisation (VQA's vqaEval.py, the EvalAI processor that lmms-eval's textvqa and
# vqav2 tasks use), rule by rule: lower case; ',' and '?' dropped and "'s" split off; these punctuation marks
# removed where the mark stands next to a space in the answer, else replaced by a space (the script's exception for
# digit-comma-digit cannot fire: commas are gone by then); a
# period not followed by a digit removed (so '3.5' stays); number words (none, zero .. ten) as digits; articles
# dropped; contractions written without their apostrophe ('dont') given it ('don't').
_VQA_PUNCT = ';/[]"{}()=+\\_-><@`,?!'
_VQA_PERIOD = re.compile(r"\.(?!\d)")
_VQA_NUMBERS = {"none": "0", **_NUMBER_WORDS}
_VQA_CONTRACTIONS = {
    c.replace("'", ""): c
    for c in (
        "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't he'd "
        "he'd've he's how'd how'll how's isn't it'd it'd've it'll ma'am mightn't mightn't've "
        "might've mustn't must've needn't not've o'clock oughtn't shan't she'd've should've shouldn't shouldn't've "
        "somebody'll somebody's someone'd someone'll someone's something'd something'll that's there'd there're "
        "there's they'd they'd've they'll they're they've wasn't we'd've we've weren't what'll what're what's "
        "what've when's where'd where's where've who'd who'll who's who've why'll why're why's won't would've "
        "wouldn't wouldn't've y'all you'd you'd've you'll you're you've"
    ).split()
}
VQA_MIN_HUMANS = 4  # leave-one-out over 3 answers caps a unanimous, right answer at 2/3


def vqa_eval_normalize(text: str) -> str:
    """The VQA evaluation's answer normalisation (the rules are listed above `_VQA_PUNCT`), what `vqa_accuracy_score`
    compares.

    'The Two dogs.' -> '2 dogs'; 'dont' -> "don't"; '3.5' -> '3.5'; 'new-york' -> 'new york'; '1,000' -> '1000'.
    Ours, written from the VQA evaluation's rules; the contractions are the common English ones (the script's
    table also lists a few rare forms such as "'twas", and capitalised keys like 'Im' that never match its lower-cased
    text, which we leave out for the same effect).
    """
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's")
    text = text.replace("\n", " ").replace("\t", " ").strip()
    given = text
    for mark in _VQA_PUNCT:  # decided on the answer as given: 'x - y' -> 'x y', 'x-y' -> 'x y', 'x (1)' -> 'x 1'
        text = text.replace(mark, "" if f"{mark} " in given or f" {mark}" in given else " ")
    text = _VQA_PERIOD.sub("", text)
    words = [_VQA_NUMBERS.get(w, w) for w in text.split()]
    return " ".join(_VQA_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def vqa_accuracy_score(prediction: str, human_answers) -> float:
    """VQA accuracy as the official VQA evaluation computes it (VQAv2, TextVQA): for each of the n human answers, the
    other n - 1 are a subset, scored min(#humans in it who gave the prediction / 3, 1); the mean over the n subsets.
    Answers are compared after `vqa_eval_normalize`.

    Of 10 humans, an answer given by 1, 2, 3 or 4+ scores 0.3, 0.6, 0.9, 1.0 (not the VQA paper's shorthand
    min(k / 3, 1), which gives 1/3, 2/3, 1, 1: we do not ship that variant). Fewer than `VQA_MIN_HUMANS` answers is
    refused: a unanimous, right answer could not score 1.
    """
    answers = [vqa_eval_normalize(a) for a in _as_list(human_answers)]
    if len(answers) < VQA_MIN_HUMANS:
        raise ValueError(
            f"VQA accuracy needs a list of human answers per question, at least {VQA_MIN_HUMANS} (VQAv2 and TextVQA "
            f"have 10); got {len(answers)}. For data with one reference answer use exact_match."
        )
    pred = vqa_eval_normalize(prediction)
    matches = sum(pred == a for a in answers)
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


# -- final answers of reasoning traces (GRPO) ------------------------------------------------------------------

_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)
# "... the answer is A.", "Final answer: 6", "the correct answer is $\frac{3}{4}$." (up to the end of its line)
_ANSWER_IS = re.compile(r"\b(?:final\s+|correct\s+)?answer\s*(?:is|:)\s*:?\s*([^\n]+)", re.IGNORECASE)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# A multiple-choice answer: "A", "(B)", "C.", "D:", optionally "option"/"choice" before it.
_CHOICE = re.compile(r"^(?:option|choice)?\s*\(?([A-Z])\)?\s*[.:)]?$", re.IGNORECASE)
_CHOICE_LEAD = re.compile(r"^(?i:option\s+|choice\s+)?\(?([A-Z])\)?(?:[.:)]|\s|$)")
_MATH_HINT = re.compile(r"[\d\\^√π]")


def _last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (nested braces allowed), or None."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    depth, start = 1, starts[-1]
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i].strip()
    return text[start:].strip()  # unclosed (a truncated generation): the rest


def final_answer_text(text: str) -> str:
    """The final answer stated in `text` (a reasoning trace, a completion or a bare answer), in this order:
    the content of the last `<answer>...</answer>` (an unclosed last tag: the rest of the text), the last
    "the answer is ..." / "Answer: ..." (to the end of its line, a trailing full stop dropped), the last
    `\\boxed{...}`, else the whole text. Inside an `<answer>` block a "the answer is" or a box is unwrapped too.

    '<think>12 apples, minus 6</think> <answer>6</answer>' -> '6';
    '... so the correct answer is A.' -> 'A'; 'hence $\\boxed{\\frac{3}{4}}$' -> '\\frac{3}{4}'.
    """
    text = text.strip()
    tagged = _ANSWER_TAG.findall(text)
    if tagged:
        text = tagged[-1].strip()
    stated = _ANSWER_IS.findall(text)
    if stated:
        answer = stated[-1].split("</")[0].strip()  # "... answer is A.</think>" without <answer> tags
        answer = answer[:-1].rstrip() if answer.endswith(".") and not answer[:-1].endswith(".") else answer
        return _last_boxed(answer) or answer
    return _last_boxed(text) or text


def _choice_letter(answer: str, whole: bool) -> str | None:
    """The option letter of a multiple-choice answer: the whole answer ('A', '(B)', 'c.') when `whole`, else its
    leading capital letter followed by a separator ('C. 45°', 'B) 12')."""
    match = (_CHOICE if whole else _CHOICE_LEAD).match(answer.strip())
    return match.group(1).upper() if match else None


def _math(answer: str) -> list:
    """math-verify's parse of an answer; LaTeX without delimiters is wrapped in $...$ first (math-verify only reads
    LaTeX between delimiters: a bare '2\\sqrt{3}' would parse as 2). [] when it does not parse, or holds no digit
    and no LaTeX (words are compared as strings, not as sympy symbols)."""
    if not _MATH_HINT.search(answer):
        return []
    from math_verify import parse

    if "\\" in answer and not any(d in answer for d in ("$", "\\(", "\\[")):
        answer = f"${answer}$"
    try:
        return parse(answer)
    except Exception:  # math-verify raises on some malformed LaTeX: treat as unparsable
        return []


def answer_match_score(prediction: str, reference) -> float:
    """1.0 when the final answer of `prediction` is the final answer of a reference (`final_answer_text` on both
    sides), else 0.0:

    - a reference that is an option letter ('A', '(B)') needs that letter (the prediction's leading letter);
    - when math-verify parses both answers, mathematical equivalence ('0.75' = '3/4' = '\\frac{3}{4}');
    - otherwise (either side does not parse, e.g. words) equality after `normalize_answer`.

    Ours: math-verify (HuggingFace's) decides the equivalence; the extraction and the fallbacks are ours.
    """
    from math_verify import verify

    pred = final_answer_text(prediction)
    for ref in _as_list(reference):
        gold = final_answer_text(ref)
        letter = _choice_letter(gold, whole=True)
        if letter is not None:
            hit = (_choice_letter(pred, whole=True) or _choice_letter(pred, whole=False)) == letter
        else:
            gold_math, pred_math = _math(gold), _math(pred)
            if gold_math and pred_math:
                try:
                    hit = bool(verify(gold_math, pred_math))
                except Exception:  # a sympy failure on exotic input: fall back to the strings
                    hit = normalize_answer(pred) == normalize_answer(gold)
            else:
                hit = normalize_answer(pred) == normalize_answer(gold)
        if hit:
            return 1.0
    return 0.0


# -- grounding (boxes) -----------------------------------------------------------------------------------------------


def box_iou_score(prediction: str, reference) -> float:
    """IoU of the first box stated in `prediction` with the box of the reference (best over a list of references);
    0.0 when the prediction states no proper box (vlm_recipes.grounding.boxes.parse_box: JSON `bbox_2d`, a list of
    four numbers, "(x1,y1),(x2,y2)"; never a repaired guess).

    Both sides must be in the same frame, the row's box convention (the trained answer is): IoU does not change when
    both boxes are scaled by the same factors along x and y, so this equals the IoU in pixels of the image, up to
    the rounding of each box to the convention's integer grid. A reference without a box is an error (the data is
    wrong, not the model)."""
    from ...grounding.boxes import box_iou, parse_box

    guess = parse_box(prediction)
    best = 0.0
    for ref in _as_list(reference):
        gold = parse_box(ref)
        if gold is None:
            raise ValueError(f"Reference {ref!r} states no box: grounding metrics need box references.")
        if guess is not None:
            best = max(best, box_iou(guess, gold))
    return best


def iou_at_50_score(prediction: str, reference, threshold: float = 0.5) -> float:
    """1.0 when the IoU of the predicted box with the reference box is at least `threshold` (0.5: RefCOCO's
    Acc@0.5), else 0.0 (also for an answer without a box)."""
    return float(box_iou_score(prediction, reference) >= threshold)
