"""Image-text retrieval the ALBEF/BLIP way: rank by the contrastive (ITC) similarity, then re-rank each query's
top k candidates with the image-text matching (ITM) head.

transformers' `BlipForImageTextRetrieval` scores one batch of (image, text) pairs per call, either way
(`use_itm_head`), and encodes the images again on every call. For retrieval over N images and M captions we encode
each image and caption once, compute the N x M ITC cosines, and run the ITM head (the text encoder cross-attending
to the stored image tokens) only on the top k pairs of each query, as ALBEF's and BLIP's evaluation code do. The
re-ranked score is the ITM match logit plus the ITC cosine (BLIP's evaluation, `itm+itc`) or the match logit alone
(ALBEF's, `itm`). The other candidates keep their ITC order below the top k: re-ranking only reorders the top k, so
recall@k for k >= top_k is unchanged by construction (a test checks it).

Memory: the image tokens of every image are kept for the ITM pass (BLIP base: 577 x 768 floats per image, about
1.8 GB for 1,000 images in float32), on the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..baselines.zero_shot import recall_at_k

KS = (1, 5, 10)


def _device(model):
    return next(model.parameters()).device


@torch.no_grad()
def encode(model, processor, images, texts: list[str], batch_size: int = 32):
    """(image tokens [N, P, D] on the CPU, ITC image features [N, E], ITC text features [M, E], text ids, mask)."""
    model.eval()
    device = _device(model)
    tokens, image_feats = [], []
    for start in tqdm(range(0, len(images), batch_size), desc="retrieval: images", leave=False):
        chunk = [images[i].convert("RGB") for i in range(start, min(start + batch_size, len(images)))]
        pixels = processor(images=chunk, return_tensors="pt")["pixel_values"].to(device)
        hidden = model.vision_model(pixel_values=pixels).last_hidden_state
        image_feats.append(F.normalize(model.vision_proj(hidden[:, 0]), dim=-1).float().cpu())
        tokens.append(hidden.cpu())
    text = processor.tokenizer(texts, padding=True, truncation=True, max_length=35, return_tensors="pt")
    text_feats = []
    for start in range(0, len(texts), batch_size):
        ids = text["input_ids"][start : start + batch_size].to(device)
        mask = text["attention_mask"][start : start + batch_size].to(device)
        hidden = model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        text_feats.append(F.normalize(model.text_proj(hidden[:, 0]), dim=-1).float().cpu())
    return torch.cat(tokens), torch.cat(image_feats), torch.cat(text_feats), text["input_ids"], text["attention_mask"]


@torch.no_grad()
def itm_logits(model, image_tokens, text_ids, text_mask, image_index, text_index, batch_size: int = 64):
    """The ITM head's match logit (class 1) of each pair (image_index[p], text_index[p])."""
    device = _device(model)
    out = []
    for start in range(0, len(image_index), batch_size):
        images = image_tokens[image_index[start : start + batch_size]].to(device)
        ids = text_ids[text_index[start : start + batch_size]].to(device)
        mask = text_mask[text_index[start : start + batch_size]].to(device)
        hidden = model.text_encoder(
            input_ids=ids,
            attention_mask=mask,
            encoder_hidden_states=images,
            encoder_attention_mask=torch.ones(images.shape[:-1], dtype=torch.long, device=device),
        ).last_hidden_state
        out.append(model.itm_head(hidden[:, 0])[:, 1].float().cpu())
    return torch.cat(out) if out else torch.empty(0)


def rerank(similarity: torch.Tensor, top_k: int, pair_scores, add_similarity: bool = True) -> torch.Tensor:
    """Scores [queries, candidates] after re-ranking each query's top_k candidates by `pair_scores`.

    `pair_scores(query_index, candidate_index) -> tensor` scores the given pairs (1-D index tensors of equal length).
    The top_k get that score (plus their similarity when `add_similarity`), shifted above every other candidate;
    the others keep their similarity order below them.
    """
    k = min(top_k, similarity.shape[1])
    top = similarity.topk(k, dim=1).indices
    queries = torch.arange(similarity.shape[0]).repeat_interleave(k)
    candidates = top.reshape(-1)
    scores = pair_scores(queries, candidates).float().reshape(-1, k)
    if add_similarity:
        scores = scores + similarity.gather(1, top)
    # Above the rest, whatever the range of the new scores: the top k only change places among themselves.
    lift = scores.min(dim=1, keepdim=True).values - similarity.max(dim=1, keepdim=True).values
    out = similarity.clone().float()
    out.scatter_(1, top, scores - lift.clamp(max=0) + 1.0)
    return out


def recalls(similarity: torch.Tensor, relevant: torch.Tensor, ks=KS) -> dict:
    """Image->text and text->image recall@k of an [images, texts] score matrix."""
    out = {f"image_to_text_{k}": v for k, v in recall_at_k(similarity, relevant, ks).items()}
    out.update({f"text_to_image_{k}": v for k, v in recall_at_k(similarity.T, relevant.T, ks).items()})
    return out


def retrieval(model, processor, rows, top_k: int, rerank_score: str, batch_size: int = 32) -> dict:
    """ITC recall@1/5/10 both ways, and the same after ITM re-ranking of the top_k. `rows` are caption rows (every
    reference of every image is a text; a text is relevant to the images whose `canonical` equals its own's)."""
    texts, owner = [], []
    for i, captions in enumerate(rows["captions"]):
        texts += captions
        owner += [i] * len(captions)
    canonical = rows["canonical"]
    relevant = torch.tensor([[canonical[i] == canonical[j] for j in owner] for i in range(len(rows))])
    tokens, image_feats, text_feats, ids, mask = encode(model, processor, rows["image"], texts, batch_size)
    similarity = image_feats @ text_feats.T  # [images, texts]
    add = rerank_score == "itm+itc"

    def image_to_text(query, candidate):
        return itm_logits(model, tokens, ids, mask, query, candidate)

    def text_to_image(query, candidate):
        return itm_logits(model, tokens, ids, mask, candidate, query)

    i2t = rerank(similarity, top_k, image_to_text, add)
    t2i = rerank(similarity.T, top_k, text_to_image, add)
    itc = recalls(similarity, relevant)
    reranked = {f"image_to_text_{k}": v for k, v in recall_at_k(i2t, relevant, KS).items()}
    reranked.update({f"text_to_image_{k}": v for k, v in recall_at_k(t2i, relevant.T, KS).items()})
    return {
        "itc": itc,
        "itm_rerank": reranked,
        "top_k": top_k,
        "rerank_score": rerank_score,
        "num_images": len(rows),
        "num_texts": len(texts),
        "examples": _examples(rows, texts, similarity, i2t),
    }


def _examples(rows, texts, similarity, reranked, n: int = 8) -> list[dict]:
    """For a few images: the top caption by ITC and after re-ranking (for the report)."""
    return [
        {
            "image": i,
            "references": rows[i]["captions"],
            "itc_top": texts[int(similarity[i].argmax())],
            "itm_top": texts[int(reranked[i].argmax())],
        }
        for i in range(min(n, len(rows)))
    ]
