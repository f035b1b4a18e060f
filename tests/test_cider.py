"""CIDEr-D and COCO-style BLEU on literal captions with hand-checked values, and against the COCO caption toolkit's
own scorers (pycocoevalcap, a dev dependency: its CIDEr and BLEU scorers are pure Python) on the same tokens."""

import random

import evaluate
import pytest

from vlm_recipes.evaluation.metrics import metric_path, score
from vlm_recipes.evaluation.metrics.captions import caption_metrics, cider_d, coco_bleu

pytestmark = pytest.mark.unit

# A second image whose captions share nothing with the first: it gives the first image's n-grams a non-zero IDF.
OTHER = ("three green triangles", ["three green triangles"])


def cider(pairs) -> list[float]:
    predictions, references = zip(*pairs)
    return cider_d(list(predictions), list(references))["scores"]


def test_an_identical_caption_scores_ten_when_it_has_every_order_of_ngram():
    # 6 words: 1- to 4-grams all present, so each order's cosine is 1: 10 * mean(1, 1, 1, 1).
    assert cider([("a red circle on the left", ["a red circle on the left"]), OTHER])[0] == pytest.approx(10.0)
    # 3 words have no 4-gram: that order contributes 0, so 10 * 3/4.
    assert cider([("a red circle", ["a red circle"]), OTHER])[0] == pytest.approx(7.5)
    # Case and punctuation are not tokens.
    assert cider([("A red circle, on the LEFT.", ["a red circle on the left"]), OTHER])[0] == pytest.approx(10.0)


def test_a_disjoint_caption_scores_zero():
    assert cider([("two blue squares", ["a red circle on the left"]), OTHER])[0] == 0.0
    assert cider([("", ["a red circle on the left"]), OTHER])[0] == 0.0


def test_one_of_several_references_is_averaged_over_the_references():
    # Equal to the first reference (similarity 1 at every order), nothing in common with the second: 10 * (1 + 0) / 2.
    refs = ["a red circle on the left", "one yellow square at its bottom"]
    assert cider([("a red circle on the left", refs), OTHER])[0] == pytest.approx(5.0)
    # With both references equal to the caption it is 10 again: the average, not the sum, of the references.
    assert cider([("a red circle on the left", [refs[0], refs[0]]), OTHER])[0] == pytest.approx(10.0)


def test_a_corpus_of_one_image_scores_zero_even_for_an_exact_caption():
    # Every reference n-gram occurs in 1 of 1 images: IDF log(1/1) = 0, all weights vanish.
    assert cider([("a red circle on the left", ["a red circle on the left"])]) == [0.0]


def test_the_length_penalty_and_the_clipping():
    # Same words plus a repeat: the clipped repeated unigram cannot add, and the bigram counts differ by one,
    # so every order is scaled by exp(-1 / 72).
    exact = cider([("a red circle on the left", ["a red circle on the left"]), OTHER])[0]
    longer = cider([("a red circle on the left left", ["a red circle on the left"]), OTHER])[0]
    assert 0 < longer < exact * 2.718281828 ** (-1 / 72) + 1e-9


def _corpus(n_images=50, seed=0):
    """Pre-tokenized captions (lower case, no punctuation) of random scenes: 1-5 references per image, candidates
    that overlap them partly, repeat words, add unseen words, are longer or shorter, or are empty."""
    rng = random.Random(seed)
    colors, shapes = ["red", "green", "blue", "yellow"], ["circle", "square", "triangle"]
    places = ["on the left", "on the right", "at the top", "at the bottom", "in the middle"]
    predictions, references = [], []
    for i in range(n_images):
        c, s, p = rng.choice(colors), rng.choice(shapes), rng.choice(places)
        forms = [f"a {c} {s} {p}", f"{c} {s} {p}", f"the {s} is {c}", f"a {s} {p}", f"one {c} {s} {p} of the image"]
        references.append(rng.sample(forms, rng.randint(1, 5)))
        kind = i % 6
        if kind == 0:
            predictions.append(references[-1][0])
        elif kind == 1:
            predictions.append(f"a {c} {s}")
        elif kind == 2:
            predictions.append(f"a {c} {c} {c} {s} {s} {p}")  # repeats: clipping
        elif kind == 3:
            predictions.append(f"a {rng.choice(colors)} {rng.choice(shapes)} {rng.choice(places)} with a zebra")
        elif kind == 4:
            predictions.append(f"{s} {p} {p} and a {c} {s} next to another {s} far away from here")  # long
        else:
            predictions.append("" if i == 5 else s)
    return predictions, references


def test_cider_d_equals_the_coco_caption_toolkit_on_a_50_image_corpus():
    from pycocoevalcap.cider.cider import Cider

    predictions, references = _corpus()
    expected_mean, expected = Cider().compute_score(
        {i: refs for i, refs in enumerate(references)}, {i: [p] for i, p in enumerate(predictions)}
    )
    ours = cider_d(predictions, references, pretokenized=True)
    assert ours["scores"] == pytest.approx(list(expected), abs=1e-6)
    assert ours["cider"] == pytest.approx(expected_mean, abs=1e-6)
    assert len(set(round(s, 6) for s in ours["scores"])) > 10  # a varied corpus, not a few repeated values
    # Our default tokenizer is the identity on such captions.
    assert cider_d(predictions, references)["scores"] == pytest.approx(ours["scores"], abs=1e-12)


def test_bleu_1_to_4_equal_the_coco_caption_toolkit_on_the_same_corpus(capsys):
    from pycocoevalcap.bleu.bleu import Bleu

    predictions, references = _corpus()
    expected, _ = Bleu(4).compute_score(
        {i: refs for i, refs in enumerate(references)}, {i: [p] for i, p in enumerate(predictions)}, verbose=0
    )
    ours = coco_bleu(predictions, references)
    assert [ours[f"bleu_{n}"] for n in range(1, 5)] == pytest.approx(expected, abs=1e-6)


def test_cider_loads_as_a_local_evaluate_module():
    predictions, references = _corpus(12, seed=3)
    module = evaluate.load(str(metric_path("cider")))
    out = module.compute(predictions=predictions, references=references, return_per_sample=True)
    direct = cider_d(predictions, references)
    assert out["cider"] == pytest.approx(direct["cider"]) and out["scores"] == pytest.approx(direct["scores"])
    assert set(module.compute(predictions=predictions, references=references)) == {"cider"}
    # One reference string per sample works too, through the recipes' scoring entry point.
    single = score("cider", predictions, [refs[0] for refs in references])
    assert single["cider"] == pytest.approx(cider_d(predictions, [r[0] for r in references])["cider"])
    figures = caption_metrics(predictions, references)
    assert figures["cider"] == pytest.approx(direct["cider"]) and 0 <= figures["bleu_4"] <= figures["bleu_1"] <= 1


def test_a_sample_without_reference_is_refused_naming_it():
    with pytest.raises(ValueError, match="sample 1 has no reference"):
        cider_d(["a", "b"], [["a"], []])
