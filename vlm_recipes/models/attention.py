"""`attn_implementation: sdpa_varlen`: PyTorch SDPA run row by row on a padding-free batch (a CPU varlen path).

transformers 5.23 gives a padding-free batch (one sequence, `position_ids` restarting at every row, no attention
mask) a block-diagonal causal mask for SDPA and eager: exact, but the kernel still computes every (query, key) pair
of the whole sequence, L^2 of them, and throws the cross-row ones away. FlashAttention-2 and the `kernels` varlen
kernels skip them (GPU only); `flex_attention` skips masked blocks once compiled.

This attention function does what a varlen kernel does with plain SDPA: on a causal layer of a one-row batch whose
position ids restart, it runs SDPA on each row's slice (`is_causal`), so the work is the sum of the rows' n^2 and no
L^2 mask is read. Everything else (padded batches, generation with a cache, bidirectional vision layers) goes to
transformers' own SDPA function unchanged. Registered with transformers' `AttentionInterface` (and SDPA's mask
builder) on import of `vlm_recipes.models`; select it with `attn_implementation: sdpa_varlen` in a recipe's YAML.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "sdpa_varlen"


def row_spans(position_ids: torch.Tensor) -> list[tuple[int, int]]:
    """(start, end) of each row of a one-row packed sequence: a row starts wherever the position does not grow by 1.

    >>> row_spans(torch.tensor([[0, 1, 2, 0, 1, 0]]))
    [(0, 3), (3, 5), (5, 6)]
    """
    positions = position_ids.reshape(-1)
    steps = torch.diff(positions, prepend=positions[:1] - 1)
    starts = (steps != 1).nonzero().flatten().tolist()
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    return list(zip(starts, [*starts[1:], positions.numel()]))


def sdpa_varlen_attention(module, query, key, value, attention_mask, position_ids=None, **kwargs):
    """SDPA per row of a padding-free batch; transformers' SDPA for anything else (same signature and outputs)."""
    packed = (
        position_ids is not None
        and getattr(module, "is_causal", False)
        and query.shape[0] == 1
        and query.shape[2] == key.shape[2] == position_ids.shape[-1]
    )
    spans = row_spans(position_ids) if packed else []
    if len(spans) < 2:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    # Each row alone, causal within itself: the cross-row pairs the block-diagonal mask would discard are never
    # computed. Outputs are (batch, sequence, heads, head_dim), like sdpa_attention_forward's.
    outputs = [
        sdpa_attention_forward(module, query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], None, **kwargs)[0]
        for s, e in spans
    ]
    return torch.cat(outputs, dim=1), None


AttentionInterface.register(NAME, sdpa_varlen_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # padded batches and generation use SDPA's own masks
