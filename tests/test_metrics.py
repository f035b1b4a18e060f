"""Our local `evaluate` metric modules on literal predictions and references with hand-computed expected values.

Every metric is loaded the way users load it, `evaluate.load(<local dir>)`, offline.
"""

import inspect
import math

import evaluate
import pytest

from vlm_recipes.evaluation.metrics import METRICS, check_metric_names, metric_path, score
from vlm_recipes.evaluation.metrics.scoring import (
    bleu,
    levenshtein,
    normalize_answer,
    to_number,
    vqa_accuracy_score,
    vqa_eval_normalize,
)

pytestmark = pytest.mark.unit


def load(name):
    return evaluate.load(str(metric_path(name)))


def per_sample(name, pairs, **options):
    predictions, references = zip(*pairs)
    out = load(name).compute(
        predictions=list(predictions), references=list(references), return_per_sample=True, **options
    )
    assert out[name] == pytest.approx(sum(out["scores"]) / len(out["scores"]))
    return out["scores"]


def test_every_metric_is_a_local_evaluate_module():
    for name in METRICS:
        assert (metric_path(name) / f"{name}.py").is_file()
        module = load(name)
        assert isinstance(module, evaluate.Metric)
        if name in ("iou_accuracy", "mean_iou"):  # grounding: answers and references are boxes
            assert name in module.compute(predictions=["[0, 0, 2, 2]"], references=[["[0, 0, 2, 2]", "[1, 1, 3, 3]"]])
            continue
        assert name in module.compute(predictions=["red"], references=[["red", "red", "blue", "red"]])


def test_exact_match_normalises_case_punctuation_whitespace_and_unicode():
    pairs = [
        ("Red.", "red"),
        ("  blue   circle ", "Blue circle"),
        ("", ""),
        ("Café", "CAFÉ"),
        ("ＲＥＤ", "red"),  # full-width letters (NFKC)
        ("cafe\u0301", "café"),  # combining accent vs precomposed (NFKC)
        ("Straße", "STRASSE"),  # case folding
        ("reds", "red"),
        ("", "red"),
        ("red", ""),
    ]
    assert per_sample("exact_match", pairs) == [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    assert per_sample("exact_match", [("green", ["blue", "Green!"]), ("red", ["blue", "green"])]) == [1, 0]
    assert normalize_answer("A red, circle!") == "a red circle"


def test_vqa_accuracy_is_the_official_leave_one_out_average():
    """1, 2, 3 of 10 annotators: 0.3, 0.6, 0.9 (the official VQA evaluation, lmms-eval's textvqa/vqav2), not the
    min(k/3, 1) shorthand's 1/3, 2/3, 1 that evaluate_textvqa, sft_lora_textvqa and BLIP VQA reported before."""
    humans = [["x"] * k + ["y"] * (10 - k) for k in (0, 1, 2, 3, 4, 10)]
    assert per_sample("vqa_accuracy", [("x", h) for h in humans]) == pytest.approx([0.0, 0.3, 0.6, 0.9, 1.0, 1.0])
    assert "leave_one_out" not in inspect.signature(vqa_accuracy_score).parameters  # one variant, one name
    pairs = [
        ("two", ["2", "2", "two", "3", "3", "3", "3", "3", "3", "3"]),  # number words as digits: 3 humans
        ("The dog.", ["dog", "a dog", "cat", "cat"]),  # articles and a final period dropped: 2 of 4 humans
        ("cat", ["dog"] * 10),
        ("dont", ["don't"] * 4),  # contractions get their apostrophe
    ]
    # 3 of 10: 7 subsets keep 3 (1.0), 3 keep 2 (2/3) -> 0.9; 2 of 4: 2 subsets keep 2, 2 keep 1 -> (2/3 + 1/3) / 2.
    assert per_sample("vqa_accuracy", pairs) == pytest.approx([0.9, 0.5, 0.0, 1.0])
    with pytest.raises(ValueError, match="at least 4"):
        load("vqa_accuracy").compute(predictions=["a"], references=[[]])
    with pytest.raises(ValueError, match="use exact_match"):  # three references: a perfect answer would score 2/3
        load("vqa_accuracy").compute(predictions=["red"], references=[["red"] * 3])


@pytest.mark.parametrize(
    "answer, normalised",
    [
        ("The Two dogs.", "2 dogs"),
        ("Yes!", "yes"),
        ("new-york", "new york"),  # a mark inside a word becomes a space
        ("x - y", "x y"),  # a mark next to a space is dropped
        ("1,000", "1000"),
        ("3.5", "3.5"),  # a decimal point stays
        ("it's red", "it 's red"),
        ("dont", "don't"),
        ("None", "0"),
        ("ＲＥＤ", "ｒｅｄ"),  # no Unicode normalisation in the VQA evaluation (exact_match has NFKC)
    ],
)
def test_vqa_answer_normalisation_follows_the_vqa_evaluation(answer, normalised):
    assert vqa_eval_normalize(answer) == normalised


def test_anls_threshold_and_edge_cases():
    pairs = [
        ("hello", "hello"),
        ("helo", "hello"),  # distance 1 / 5
        ("abc", "abcd"),  # 1 / 4
        ("ab", "abcd"),  # 2 / 4 = 0.5: at the threshold, scores 0
        ("abc", "xyz"),
        ("", ""),
        ("", "a"),
        ("café", "cafe"),  # one code point differs
        ("  Hello   World ", "hello world"),  # lower-cased, whitespace collapsed
    ]
    assert per_sample("anls", pairs) == pytest.approx([1, 0.8, 0.75, 0, 0, 1, 0, 0.75, 1])
    # With several references the best one counts (one call holds all-string or all-list references).
    assert per_sample("anls", [("helo", ["xyz", "hello"]), ("abc", ["abc"])]) == pytest.approx([0.8, 1])
    assert per_sample("anls", [("ab", "abcd")], threshold=0.6) == pytest.approx([0.5])
    assert levenshtein("kitten", "sitting") == 3 and levenshtein("", "abc") == 3


def test_relaxed_accuracy_numeric_tolerance_and_strings():
    pairs = [
        ("10.4", "10"),  # 4% off
        ("10.6", "10"),  # 6% off
        ("10.5", "10"),  # exactly 5%: inclusive
        ("9.5", "10"),
        ("0", "0"),
        ("0.0", "0"),
        ("0.01", "0"),  # a zero reference needs exactly zero
        ("1,000", "1000"),
        ("45%", "0.45"),
        ("45", "45%"),  # 45 vs 0.45
        ("-5", "5"),
        ("1e3", "1000"),
        ("Yes", "yes"),
        ("", ""),
        ("", "0"),
        ("abc", "10"),
        ("inf", "1e400"),  # not finite: compared as strings
    ]
    expected = [1, 0, 1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0]
    assert per_sample("relaxed_accuracy", pairs) == expected
    assert per_sample("relaxed_accuracy", [("10.6", "10")], tolerance=0.1) == [1]
    assert to_number(" $12 ") == 12 and to_number("nan") is None and to_number("") is None


def test_bleu_hand_computed():
    # Unsmoothed bigram BLEU of a 2-word prefix of a 6-word reference: precisions 1, brevity penalty exp(1 - 6/2).
    out = bleu(["the cat"], ["the cat sat on the mat"], max_order=2, smooth=False)
    assert out["precisions"] == [1.0, 1.0] and out["bleu"] == pytest.approx(math.exp(-2))
    # The module's default: BLEU-4 with add-one smoothing from bigrams on. 'a red circle' vs 'a red square':
    # p1 = 2/3, p2 = (1+1)/(2+1), p3 = (0+1)/(1+1), p4 = (0+1)/(0+1); equal lengths, no brevity penalty.
    res = load("bleu").compute(predictions=["a red circle"], references=["a red square"])
    assert res["bleu"] == pytest.approx((2 / 3 * 2 / 3 * 1 / 2 * 1) ** 0.25)
    assert load("bleu").compute(predictions=["same words here"], references=[["x", "Same words, here."]])[
        "bleu"
    ] == pytest.approx(1.0)
    assert bleu([""], ["red"])["bleu"] == 0.0  # an empty prediction has no precision and full brevity penalty


def test_rouge_hand_computed():
    out = load("rouge").compute(
        predictions=["a red circle on grey", "circle red", "", ""],
        references=["red circle", "red circle", "", "red"],
        return_per_sample=True,
    )
    # LCS 2 of 5 and 2 words: F1 = 2 * 0.4 * 1 / 1.4; reordered words: LCS 1 of 2, but unigram overlap 2 of 2.
    assert out["scores"] == pytest.approx([0.8 / 1.4, 0.5, 1.0, 0.0])
    assert out["rouge1"] == pytest.approx((0.8 / 1.4 + 1.0 + 1.0 + 0.0) / 4)


def test_score_helper_mixes_single_and_listed_references():
    # A lone string among lists is one reference, not a list of characters.
    out = score("relaxed_accuracy", ["10.4", "red"], ["10", ["blue", "red"]])
    assert out["scores"] == [1.0, 1.0]
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        score("exact_match", ["a", "b"], ["a"])


def test_unknown_metric_names_the_choices():
    with pytest.raises(ValueError, match=r"Unknown metric\(s\) \['accuracy'\]; choose from .*exact_match"):
        check_metric_names(["exact_match", "accuracy"])
