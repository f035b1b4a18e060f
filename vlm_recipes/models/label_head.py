"""The language-model head applied only where the loss reads it: at positions whose next-token label is not -100.

What the libraries already do. transformers' VLM classes (SmolVLM/Idefics3, Qwen2-VL, LLaVA, LLaVA-OneVision,
LLaVA-NeXT) are a backbone, `model.model` (vision tower, projector and language model, returning the last hidden
states), and a head, `lm_head` (`get_output_embeddings()`); their forward projects every position to the whole
vocabulary unless `logits_to_keep` names positions, which are then shared by every row of the batch. TRL 1.16's SFT,
DPO and GRPO trainers replace the model's forward (`trl.trainer.utils.add_fused_lm_head`): called with
`fused_lm_head=True` it runs the backbone, projects the hidden states through the head in tiles of 4,096 tokens x
32,768 vocabulary entries folded into an online log-sum-exp (`trl.kernels.ChunkedLogProbFunction`, whose backward
recomputes each tile), and returns per-token log-probabilities, entropy and top-1 flags (`FusedCausalLMOutput`,
zero where the label is -100). It projects only the label positions on CUDA / XPU with Triton; on every other device
(the CPU, Apple's MPS) it projects every position of the batch, ignored ones included, and masks them afterwards.

What this module adds:

- `add_label_only_head(model)`: the same fused forward, projecting only the label positions on every device: the
  backbone's hidden states at those positions are gathered first (for a VLM row: the answer's 10-50 tokens instead of
  the 200-1,000 image and prompt tokens before it), then TRL's kernel runs on them. Outputs, loss and their meaning
  are TRL's. Calls without `fused_lm_head` (generation, plain forwards) go to the forward it wraps, unchanged.
- `completion_logps(model, batch, mask)`: the summed log-probability of the masked tokens of each row, the same way
  and without gradient, for held-out figures that otherwise build the full (batch, length, vocabulary) logits.

A model whose head output is rescaled by a setting TRL reads but this path does not (`logit_scale`,
`output_multiplier`, `lm_head_multiplier`, `logits_scaling`: text families such as Cohere or Granite, none of ours)
is refused by `check_head`; a final-logit soft cap (Gemma) is applied.
"""

from __future__ import annotations

import functools
import types

import torch
from trl.kernels import ChunkedLogProbFunction
from trl.trainer.utils import FusedCausalLMOutput, maybe_gather_lm_head_ctx

# Vocabulary entries per projection tile at most (TRL's own width): with a 151,936-entry vocabulary no tile holds more
# than a fifth of it, so no full-vocabulary tensor exists for the label tokens, however many there are. TRL allocates
# its tile buffer this wide whatever the vocabulary; here it is as wide as the vocabulary when that is smaller.
VOCAB_CHUNK = 32768
# Head-output scalings transformers' text configs declare; TRL's fused head applies them, this one does not.
UNSUPPORTED_SCALINGS = ("logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")
SFT_OUTPUTS = ("log_probs", "entropy", "is_top1")  # what TRL's SFTTrainer asks of its fused head


def check_head(model) -> None:
    """Refuse a model whose logits this path would compute differently from the model's own head."""
    text_config = model.config.get_text_config()
    scaled = [name for name in UNSUPPORTED_SCALINGS if getattr(text_config, name, None) not in (None, 1, 1.0)]
    if scaled:
        raise ValueError(
            f"logits_at_labels: {type(model).__name__} rescales its logits ({', '.join(scaled)}), which the "
            "label-position head does not apply: set logits_at_labels: false."
        )
    if getattr(text_config, "output_router_logits", False):
        raise ValueError(
            f"logits_at_labels: {type(model).__name__} adds a mixture-of-experts router loss, which the "
            "label-position head does not add: set logits_at_labels: false."
        )
    if not hasattr(model, "base_model") or model.get_output_embeddings() is None:
        raise ValueError(
            f"logits_at_labels: {type(model).__name__} exposes no backbone (`base_model`) and output head "
            "(`get_output_embeddings()`): set logits_at_labels: false."
        )


def has_label_head(model) -> bool:
    """Whether `model` (or the model inside a PEFT wrapper) is a backbone plus an output head this path can use."""
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        check_head(core)
    except (ValueError, AttributeError):
        return False
    return True


def _head_tensors(model):
    head = model.get_output_embeddings()
    weight, bias = head.weight, head.bias
    from torch.distributed.tensor import DTensor

    if isinstance(weight, DTensor):  # FSDP2 shards the head; the hidden states are plain tensors
        weight = weight.full_tensor()
        bias = bias.full_tensor() if bias is not None else None
    return weight, bias


def label_log_probs(
    model,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    outputs: tuple[str, ...] = ("log_probs",),
    temperature: float = 1.0,
) -> tuple[torch.Tensor, ...]:
    """Per-token fields of `FusedCausalLMOutput` (`log_probs` first, then `entropy`, `log_sum_sq_probs`,
    `mean_logits`, `is_top1`; None where not asked), of shape `targets.shape`, zero where `targets` is -100.

    `hidden` (..., H) are the backbone's hidden states aligned with `targets` (already shifted); only the positions
    whose target is not -100 are projected through the model's head."""
    mask = targets != -100
    weight, bias = _head_tensors(model)
    text_config = model.config.get_text_config()
    softcap = getattr(text_config, "final_logit_softcapping", None)
    picked = hidden[mask].to(weight.device)
    with maybe_gather_lm_head_ctx(weight, bias):
        fields = ChunkedLogProbFunction.apply(
            picked,
            weight,
            bias,
            targets[mask].to(weight.device),
            temperature,
            min(weight.shape[0], VOCAB_CHUNK),
            softcap,
            1.0,
            outputs,
        )
    mask = mask.to(weight.device)
    # masked_scatter keeps the result connected to the graph even when no label is valid (a zero loss, not an error).
    return tuple(None if x is None else x.new_zeros(mask.shape).masked_scatter(mask, x) for x in fields)


def add_label_only_head(model, outputs: tuple[str, ...] = SFT_OUTPUTS, temperature: float = 1.0) -> None:
    """Patch `model` (a transformers VLM, not a PEFT wrapper: pass `get_base_model()`) so that
    `model(..., labels=labels, fused_lm_head=True)` returns TRL's `FusedCausalLMOutput` computed at the label positions
    only. Other calls go to the forward the model had (TRL's fused forward or the class's own)."""
    check_head(model)
    inner = model.forward

    @functools.wraps(type(model).forward)  # keep the signature: `generate` validates its kwargs against it
    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        if not fused_lm_head:
            given = {"labels": labels, "shift_labels": shift_labels, "num_items_in_batch": num_items_in_batch}
            return inner(*args, **kwargs, **{k: v for k, v in given.items() if v is not None})
        if kwargs.get("output_router_logits"):
            raise ValueError(
                "logits_at_labels: the label-position head does not add a mixture-of-experts router loss: set "
                "logits_at_labels: false."
            )
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        if shift_labels is None:
            hidden, targets = hidden[:, :-1], labels[:, 1:]
        else:  # pre-shifted (context / sequence parallelism)
            targets = shift_labels
        log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1 = label_log_probs(
            self, hidden, targets, outputs, temperature
        )
        mask = (targets != -100).to(log_probs.device)
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / count,
            log_probs=log_probs,
            entropy=entropy,
            log_sum_sq_probs=log_sum_sq_probs,
            mean_logits=mean_logits,
            is_top1=is_top1,
            label_mask=mask,
        )

    model.forward = types.MethodType(forward, model)
    model._label_only_head = True  # what tests and the memory planner read


def completion_logps(model, batch: dict, mask: torch.Tensor) -> torch.Tensor:
    """Sum of the log-probabilities of the tokens where `mask` (B, L) is 1, one value per row, without gradient:
    the model's backbone, then its head at those positions only (the first position is never predicted)."""
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    check_head(core)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        hidden = core.base_model(**inputs, use_cache=False).last_hidden_state[:, :-1]
        targets = batch["input_ids"][:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        (log_probs, *_) = label_log_probs(core, hidden, targets)
    return log_probs.sum(dim=1)
