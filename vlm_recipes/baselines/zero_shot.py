"""Zero-shot use of contrastive image-text models: embeddings, prompt ensembling and the metrics people report.

transformers gives the towers (`get_image_features`, `get_text_features`) and scikit-learn the ranking metrics
(`roc_auc_score`, `average_precision_score`). What this module adds, and what neither ships:
- class embeddings by prompt ensembling (the CLIP paper, sec. 3.1.4): each class's text embedding is the mean of
  its L2-normalised template embeddings, normalised again;
- top-k accuracy and mean per-class recall from a similarity matrix;
- retrieval recall@k with a relevance matrix, so that duplicate captions (several images showing "a red circle")
  count every correct match, as CLIP_benchmark does for datasets with several captions per image;
- OOD scores from similarities to the in-distribution class prompts: `1 - max cosine` and MCM (Ming et al.,
  2022: the maximum softmax of cosine / temperature; lower = more out-of-distribution);
- caption-selection accuracy for attribute-binding probes (true caption vs a distractor caption).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .contrastive import features

# Templates in the style of the CLIP paper's ImageNet prompts (a subset fits our small vocabulary). `{}` is the
# class name. Users can pass their own (e.g. the 80 ImageNet templates) in YAML.
TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a drawing of a {}.",
    "a rendering of a {}.",
    "a small {}.",
    "a big {}.",
    "a {} on a grey background.",
)


def _device(model):
    return next(model.parameters()).device


@torch.no_grad()
def embed_texts(model, processor, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    """L2-normalised text embeddings, [len(texts), dim]."""
    model.eval()
    padding = "max_length" if "siglip" in type(processor).__name__.lower() else True
    out = []
    for start in range(0, len(texts), batch_size):
        batch = processor(
            text=list(texts[start : start + batch_size]), padding=padding, truncation=True, return_tensors="pt"
        ).to(_device(model))
        out.append(F.normalize(features(model.get_text_features(**batch)).float(), dim=-1).cpu())
    return torch.cat(out)


@torch.no_grad()
def embed_images(model, processor, images, batch_size: int = 64, desc: str = "embedding images") -> torch.Tensor:
    """L2-normalised image embeddings, [len(images), dim]; `images` is any sequence of PIL images."""
    model.eval()
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, leave=False):
        chunk = [images[i].convert("RGB") for i in range(start, min(start + batch_size, len(images)))]
        pixels = processor(images=chunk, return_tensors="pt")["pixel_values"].to(_device(model))
        out.append(F.normalize(features(model.get_image_features(pixel_values=pixels)).float(), dim=-1).cpu())
    return torch.cat(out)


def ensemble(template_embeddings: torch.Tensor) -> torch.Tensor:
    """[classes, templates, dim] embeddings -> [classes, dim]: the normalised mean of the normalised templates."""
    return F.normalize(F.normalize(template_embeddings, dim=-1).mean(dim=1), dim=-1)


def class_embeddings(model, processor, class_names: list[str], templates=("{}",)) -> torch.Tensor:
    """One embedding per class: the ensemble of `templates` filled with the class name."""
    texts = [t.format(name) for name in class_names for t in templates]
    per_template = embed_texts(model, processor, texts).view(len(class_names), len(templates), -1)
    return ensemble(per_template)


def classification_metrics(similarity: torch.Tensor, labels, num_classes: int | None = None) -> dict:
    """Top-1, top-5 (when there are at least 5 classes) and mean per-class recall of [images, classes] scores."""
    labels = torch.as_tensor(labels)
    num_classes = num_classes or similarity.shape[1]
    ranked = similarity.argsort(dim=1, descending=True)
    hits = ranked == labels[:, None]
    metrics = {"top1": hits[:, :1].any(dim=1).float().mean().item()}
    if num_classes >= 5:
        metrics["top5"] = hits[:, :5].any(dim=1).float().mean().item()
    predicted = ranked[:, 0]
    recalls = [(predicted[labels == c] == c).float().mean().item() for c in range(num_classes) if (labels == c).any()]
    metrics["mean_per_class_recall"] = float(np.mean(recalls))
    return metrics


def confusion_matrix(predicted, labels, num_classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(counts, (np.asarray(labels), np.asarray(predicted)), 1)
    return counts


def recall_at_k(similarity: torch.Tensor, relevant: torch.Tensor, ks=(1, 5, 10)) -> dict:
    """Fraction of queries (rows) with at least one relevant item (True in `relevant`) among their top k."""
    ranked = similarity.argsort(dim=1, descending=True)
    hits = torch.gather(relevant.bool(), 1, ranked)
    return {f"recall@{k}": hits[:, :k].any(dim=1).float().mean().item() for k in ks if k <= similarity.shape[1]}


def retrieval_metrics(image_embeds: torch.Tensor, text_embeds: torch.Tensor, relevant: torch.Tensor, ks=(1, 5, 10)):
    """Image->text and text->image recall@k; relevant[i, j] says whether text j describes image i."""
    similarity = image_embeds @ text_embeds.T
    metrics = {f"image_to_text_{k}": v for k, v in recall_at_k(similarity, relevant, ks).items()}
    metrics.update({f"text_to_image_{k}": v for k, v in recall_at_k(similarity.T, relevant.T, ks).items()})
    return metrics


def ood_scores(image_embeds: torch.Tensor, class_embeds: torch.Tensor, temperature: float = 1.0) -> dict:
    """Per-image OOD scores (higher = more likely out-of-distribution) from cosines to the class prompts."""
    cosine = image_embeds @ class_embeds.T
    return {
        "max_cosine": (1 - cosine.max(dim=1).values).numpy(),
        "mcm": (-(cosine / temperature).softmax(dim=1).max(dim=1).values).numpy(),
    }


def detection_metrics(in_scores, out_scores) -> dict:
    """AUROC and AUPRC (out-of-distribution = positive class) of OOD scores, plus FPR at 95% TPR."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    y = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    s = np.r_[np.asarray(in_scores), np.asarray(out_scores)]
    fpr, tpr, _ = roc_curve(y, s)
    return {
        "auroc": float(roc_auc_score(y, s)),
        "auprc": float(average_precision_score(y, s)),
        "fpr@95tpr": float(fpr[np.searchsorted(tpr, 0.95)]),
    }


def caption_selection(image_embeds: torch.Tensor, true_embeds: torch.Tensor, distractor_embeds: torch.Tensor):
    """Per-image True where the true caption is more similar to the image than the distractor caption."""
    return ((image_embeds * true_embeds).sum(-1) > (image_embeds * distractor_embeds).sum(-1)).numpy()
