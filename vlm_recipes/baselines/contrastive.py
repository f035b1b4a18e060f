"""Contrastive image-text training: the CLIP and SigLIP losses, a batch collator and a Trainer that uses them.

transformers' `CLIPModel` computes its own symmetric loss when asked (`return_loss=True`); we keep the losses here,
as plain functions of embeddings, because they are what the recipes teach and test (temperature, symmetry, the
sigmoid variant), and because one Trainer can then train CLIP- and SigLIP-style models with either loss. The
Trainer (accelerate, DeepSpeed, logging, checkpoints) is transformers'; we only supply `compute_loss`.
"""

from __future__ import annotations

import typing

import torch
import torch.nn.functional as F
from transformers import Trainer

from ..outputs.checkpoints import CompleteCheckpoints
from ..settings.baselines import ContrastiveLoss

# CLIP clamps its learnable logit scale (log of the inverse temperature) at ln(100): a larger scale makes the
# softmax so sharp that training becomes unstable.
MAX_LOGIT_SCALE = 4.6052


def _normalized(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.float(), dim=-1)


def clip_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of CLIP: row i of each batch is a matching image/text pair, every other row a negative.

    `logit_scale` is the *log* of the inverse temperature (a learnable scalar); logits = exp(scale) * cosine.
    The loss is the mean of the image->text and text->image cross-entropies, so swapping the arguments gives
    the same value.
    """
    scale = logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
    logits = scale * _normalized(image_embeds) @ _normalized(text_embeds).T
    targets = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def siglip_loss(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor
) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss: every (image, text) pair is an independent binary "match?" decision.

    logits = exp(scale) * cosine + bias; label +1 on the diagonal, -1 elsewhere; the loss is the summed
    -log sigmoid(label * logit) divided by the batch size (as in the SigLIP paper), so no softmax over the batch
    is needed.
    """
    logits = logit_scale.exp() * _normalized(image_embeds) @ _normalized(text_embeds).T + logit_bias
    labels = 2 * torch.eye(logits.shape[0], device=logits.device) - 1
    return -F.logsigmoid(labels * logits).sum() / logits.shape[0]


LOSSES = typing.get_args(ContrastiveLoss)  # the names the settings accept; clip_loss / siglip_loss below


def features(output) -> torch.Tensor:
    """Embeddings from `get_image_features` / `get_text_features` (a tensor, or an output with `pooler_output`)."""
    return output.pooler_output if hasattr(output, "pooler_output") else output


class ContrastiveCollator:
    """Image/caption rows -> one processor batch.

    Input rows: {image_column: PIL image, caption_column: str}. Output keys: `input_ids`, `attention_mask` (texts
    padded to the longest), `pixel_values`. Example: 2 rows -> input_ids [2, T], pixel_values [2, 3, H, W].
    """

    def __init__(self, processor, image_column: str = "image", caption_column: str = "caption", max_length=None):
        self.processor = processor
        self.image_column = image_column
        self.caption_column = caption_column
        self.max_length = max_length

    def __call__(self, rows: list[dict]) -> dict:
        images = [row[self.image_column].convert("RGB") for row in rows]
        texts = [row[self.caption_column] for row in rows]
        padding = "max_length" if "siglip" in type(self.processor).__name__.lower() else True
        return dict(
            self.processor(
                text=texts,
                images=images,
                padding=padding,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
        )


class ContrastiveTrainer(CompleteCheckpoints, Trainer):
    """transformers' Trainer with the loss chosen by `loss_name` ('clip' or 'siglip') on the model's embeddings."""

    def __init__(self, *args, loss_name: str = "clip", **kwargs):
        if loss_name not in LOSSES:
            raise ValueError(f"Unknown contrastive loss {loss_name!r}; choose one of {list(LOSSES)}.")
        super().__init__(*args, **kwargs)
        self.loss_name = loss_name
        model = self.model
        if loss_name == "siglip" and getattr(model, "logit_bias", None) is None:
            raise ValueError(
                f"loss 'siglip' needs a model with a learnable logit_bias (e.g. SiglipModel); "
                f"{type(model).__name__} has none. Use loss: clip, or a SigLIP checkpoint."
            )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # Through the (possibly DDP/DeepSpeed-wrapped) forward, so gradient synchronisation hooks run; CLIP and
        # SigLIP models return the projected embeddings of both towers.
        outputs = model(**inputs)
        unwrapped = self.accelerator.unwrap_model(model)
        if self.loss_name == "clip":
            loss = clip_loss(outputs.image_embeds, outputs.text_embeds, unwrapped.logit_scale)
        else:
            loss = siglip_loss(outputs.image_embeds, outputs.text_embeds, unwrapped.logit_scale, unwrapped.logit_bias)
        return (loss, outputs) if return_outputs else loss
