"""Zero-shot metrics on literal inputs with known answers."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vlm_recipes.baselines import zero_shot as zs

pytestmark = pytest.mark.unit


def test_ensemble_is_the_normalised_mean_of_normalised_template_embeddings():
    per_template = torch.tensor([[[3.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [2.0, 2.0]]])  # [classes, templates, dim]
    # Class 0: (1,0) and (0,1) -> mean (0.5,0.5) -> normalised (0.7071, 0.7071). Class 1: both (0.7071, 0.7071).
    expected = torch.tensor([[0.5**0.5, 0.5**0.5], [0.5**0.5, 0.5**0.5]])
    assert torch.allclose(zs.ensemble(per_template), expected, atol=1e-6)
    # Unlike a mean of raw embeddings, a template with a long embedding does not dominate.
    assert not torch.allclose(F.normalize(per_template.mean(dim=1), dim=-1)[0], expected[0], atol=1e-2)


def test_classification_metrics_on_a_literal_similarity_matrix():
    # 4 images, 5 classes. Top-1 predictions: 0, 1, 3, 4; labels: 0, 1, 2, 2.
    sim = torch.tensor(
        [
            [0.9, 0.1, 0.0, 0.0, 0.0],
            [0.0, 0.8, 0.1, 0.0, 0.0],
            [0.1, 0.2, 0.5, 0.9, 0.0],  # label 2 ranked 2nd
            [0.6, 0.5, 0.0, 0.2, 0.9],  # label 2 ranked 5th
        ]
    )
    metrics = zs.classification_metrics(sim, [0, 1, 2, 2])
    assert metrics["top1"] == pytest.approx(0.5)
    assert metrics["top5"] == pytest.approx(1.0)
    # Recall per present class: class 0: 1, class 1: 1, class 2: 0 -> mean 2/3.
    assert metrics["mean_per_class_recall"] == pytest.approx(2 / 3)
    assert "top5" not in zs.classification_metrics(sim[:, :3], [0, 1, 2, 2])


def test_confusion_matrix_counts_true_by_predicted():
    counts = zs.confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
    assert counts.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_recall_at_k_on_a_literal_similarity_matrix():
    sim = torch.tensor([[0.9, 0.5, 0.1], [0.8, 0.3, 0.7], [0.2, 0.6, 0.4]])
    relevant = torch.eye(3, dtype=torch.bool)
    # Query 0: item 0 ranked 1st. Query 1: ranking 0, 2, 1 -> item 1 3rd. Query 2: ranking 1, 2, 0 -> item 2 2nd.
    assert zs.recall_at_k(sim, relevant, ks=(1, 2, 3)) == pytest.approx(
        {"recall@1": 1 / 3, "recall@2": 2 / 3, "recall@3": 1.0}
    )
    # Several relevant items (duplicate captions): query 1 is also answered by item 0, ranked first.
    relevant[1, 0] = True
    assert zs.recall_at_k(sim, relevant, ks=(1,))["recall@1"] == pytest.approx(2 / 3)


def test_retrieval_metrics_cover_both_directions():
    images = torch.eye(3)
    texts = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])  # texts 1 and 2 point at the other image
    metrics = zs.retrieval_metrics(images, texts, torch.eye(3, dtype=torch.bool), ks=(1,))
    assert metrics == pytest.approx({"image_to_text_recall@1": 1 / 3, "text_to_image_recall@1": 1 / 3})


def test_detection_metrics_on_literal_scores():
    perfect = zs.detection_metrics([0.1, 0.2], [0.8, 0.9])
    assert perfect["auroc"] == 1.0 and perfect["auprc"] == 1.0 and perfect["fpr@95tpr"] == 0.0
    assert zs.detection_metrics([0.8, 0.9], [0.1, 0.2])["auroc"] == 0.0
    mixed = zs.detection_metrics([0.1, 0.4], [0.35, 0.8])
    # 3 of the 4 (out, in) pairs are ordered correctly; ranking 0.8(out) 0.4(in) 0.35(out) 0.1(in): AP = (1 + 2/3) / 2.
    assert mixed["auroc"] == pytest.approx(0.75)
    assert mixed["auprc"] == pytest.approx((1 + 2 / 3) / 2)


def test_ood_scores_from_cosines_to_the_class_prompts():
    classes = torch.eye(2)
    images = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    scores = zs.ood_scores(images, classes, temperature=1.0)
    assert scores["max_cosine"] == pytest.approx(np.array([0.0, 0.2]))
    softmax_max = [np.exp(1) / (np.exp(1) + 1), np.exp(0.8) / (np.exp(0.8) + np.exp(0.6))]
    assert scores["mcm"] == pytest.approx(-np.array(softmax_max))
    assert scores["mcm"][1] > scores["mcm"][0]  # the less certain image is the more OOD-looking one


def test_caption_selection_compares_true_with_distractor():
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    true = torch.tensor([[0.9, 0.1], [0.9, 0.1]])
    distractor = torch.tensor([[0.1, 0.9], [0.1, 0.9]])
    assert zs.caption_selection(images, true, distractor).tolist() == [True, False]
