"""Caption metrics as the COCO caption evaluation computes them: CIDEr-D and BLEU-1..4 (corpus level, pure Python).

The COCO caption toolkit (pycocoevalcap) scores captions that its Java PTB tokenizer has lower-cased and split,
with punctuation removed. Java is not available on our machines, and its METEOR and SPICE need Java too; this module
is our own implementation of the two metrics that need none, from the papers' definitions:

- CIDEr-D (Vedantam et al. 2015, the variant COCO reports as "CIDEr"): each caption is a vector of TF-IDF weights of
  its 1- to 4-grams, the document frequency of an n-gram being the number of images of the *scored corpus* whose
  references contain it (so a caption's score depends on the other images scored with it, and a corpus of one image
  scores 0: every reference n-gram then has an IDF of log(1/1) = 0). Per order n, the candidate's similarity to
  each reference is the dot product of the candidate weights clipped at the reference's (min) with the reference
  weights, over the product of the two norms, times a Gaussian length penalty exp(-(l_c - l_r)^2 / (2 sigma^2)),
  sigma = 6; the four orders are averaged, the references averaged, and the result multiplied by 10. As in the COCO
  scorer the lengths compared are the numbers of bigrams (words - 1 for a non-empty caption). A test checks that
  this equals pycocoevalcap's `CiderScorer` (to 1e-6) on the same pre-tokenized captions.
- BLEU-1..4 (Papineni et al. 2002) as `scoring.bleu` computes corpus BLEU without smoothing: the closest reference
  length (ties to the shorter) for the brevity penalty, as the COCO scorer's "closest" option. Equal to
  pycocoevalcap's `Bleu(4)` when every order has a match (the COCO scorer adds 1e-15 / 1e-9 to avoid log 0, so a
  corpus without a single matching 4-gram scores about 1e-4 there and 0 here).

What differs from the official toolkit: tokenization. Ours is `scoring.tokenize` (Unicode NFKC, case folding, every
ASCII punctuation character becomes a space), not the PTB tokenizer: "don't" becomes "don t" (PTB: "do n't"),
"close-up" two words (PTB: one), "dog's" "dog s" (PTB: "dog 's"). Figures on plain lower-case captions are
identical; on real COCO captions they differ slightly from published numbers, so compare runs with each other.
METEOR and SPICE are not provided (they need Java).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from .scoring import bleu, tokenize

CIDER_ORDER = 4
CIDER_SIGMA = 6.0


def _as_list(reference) -> list[str]:
    return [reference] if isinstance(reference, str) else list(reference)


def _words(text: str, pretokenized: bool) -> list[str]:
    return text.split() if pretokenized else tokenize(text)


def ngram_counts(words: list[str], max_order: int) -> Counter:
    """Counts of every n-gram (as a tuple of words) of orders 1..max_order."""
    return Counter(tuple(words[i : i + n]) for n in range(1, max_order + 1) for i in range(len(words) - n + 1))


def _tfidf(counts: Counter, doc_freq: Counter, log_images: float, order: int):
    """Per order: {n-gram: tf * idf}, the vector norms, and the length the penalty compares (number of bigrams)."""
    vectors: list[dict] = [{} for _ in range(order)]
    squares = [0.0] * order
    for gram, tf in counts.items():
        # An n-gram no reference has gets the IDF of one image: a made-up word weighs on the candidate's norm.
        weight = tf * (log_images - math.log(max(1.0, doc_freq[gram])))
        vectors[len(gram) - 1][gram] = weight
        squares[len(gram) - 1] += weight * weight
    length = sum(tf for gram, tf in counts.items() if len(gram) == 2)
    return vectors, [math.sqrt(s) for s in squares], length


def _similarity(candidate, reference, sigma: float) -> list[float]:
    (c_vec, c_norm, c_len), (r_vec, r_norm, r_len) = candidate, reference
    penalty = math.exp(-((c_len - r_len) ** 2) / (2 * sigma**2))
    values = []
    for n in range(len(c_vec)):
        # CIDEr-D's clipping: a candidate cannot gain by repeating an n-gram more often than the reference has it.
        dot = sum(min(w, r_vec[n].get(g, 0.0)) * r_vec[n].get(g, 0.0) for g, w in c_vec[n].items())
        if c_norm[n] and r_norm[n]:
            dot /= c_norm[n] * r_norm[n]
        values.append(dot * penalty)
    return values


def cider_d(
    predictions: Sequence[str],
    references: Sequence,
    order: int = CIDER_ORDER,
    sigma: float = CIDER_SIGMA,
    pretokenized: bool = False,
) -> dict:
    """CIDEr-D of a corpus: {"cider": the mean over images, "scores": one value per image}.

    `references[i]` is one caption or a list of captions of image i; document frequencies come from all of them.
    `pretokenized`: the captions are already tokens separated by spaces (as the COCO scorer expects them).

    >>> round(cider_d(["a red circle on the left", "two blue squares"],
    ...               [["a red circle on the left"], ["three green triangles"]])["scores"][0], 3)
    10.0
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references.")
    if not predictions:
        return {"cider": 0.0, "scores": []}
    refs = [[ngram_counts(_words(r, pretokenized), order) for r in _as_list(ref)] for ref in references]
    empty = next((i for i, r in enumerate(refs) if not r), None)
    if empty is not None:
        raise ValueError(f"CIDEr: sample {empty} has no reference caption; give at least one per image.")
    doc_freq: Counter = Counter()
    for image_refs in refs:
        doc_freq.update(set().union(*image_refs))  # each image counts once per n-gram
    log_images = math.log(len(refs))
    scores = []
    for prediction, image_refs in zip(predictions, refs):
        candidate = _tfidf(ngram_counts(_words(prediction, pretokenized), order), doc_freq, log_images, order)
        total = [0.0] * order
        for counts in image_refs:
            sims = _similarity(candidate, _tfidf(counts, doc_freq, log_images, order), sigma)
            total = [t + s for t, s in zip(total, sims)]
        scores.append(10.0 * (sum(total) / order) / len(image_refs))
    return {"cider": sum(scores) / len(scores), "scores": scores}


def coco_bleu(predictions: Sequence[str], references: Sequence, max_order: int = 4) -> dict:
    """Corpus BLEU-1..max_order without smoothing, as the COCO caption evaluation reports them: {"bleu_1": ...}."""
    return {
        f"bleu_{n}": bleu(predictions, [_as_list(r) for r in references], max_order=n, smooth=False)["bleu"]
        for n in range(1, max_order + 1)
    }


def caption_metrics(predictions: Sequence[str], references: Sequence) -> dict:
    """The figures the captioning recipes report: CIDEr-D (headline; per-image `cider_scores`) and BLEU-1..4."""
    cider = cider_d(predictions, references)
    return {"cider": cider["cider"], **coco_bleu(predictions, references), "cider_scores": cider["scores"]}
