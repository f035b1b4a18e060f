"""Positions of one row, as a family's model computes them, for rows laid side by side in a padding-free batch.

transformers computes Qwen2-VL's M-RoPE positions for a whole padded batch (`get_rope_index`); a padding-free
sequence holds several rows, each of which must get the positions it would get alone. The family record names its
function (`Family.packed_positions`); vlm_recipes.data.packing calls it row by row.
"""

from __future__ import annotations

import itertools

import torch


def mrope_positions(
    token_types: list[int], grids: list, merge_size: int, time_steps: list | None = None
) -> torch.Tensor:
    """Qwen2-VL's M-RoPE positions (3, n) of ONE row: text runs count up on all three axes; an image (a run of image
    tokens, `token_types` 1) at position p gets temporal p + t, height p + h and width p + w over its merged
    (t, h, w) grid, and the text after it continues at p + max(h, w). `grids` holds the row's own `image_grid_thw`
    entries, in order. This is `get_rope_index` of transformers' Qwen2VLModel (and Qwen2.5-VL's, for images) for a
    row alone; the tests compare the two.

    `time_steps` (one per run of image or video tokens, in the row's order; None: all 1) spaces the temporal positions:
    temporal p + floor(t x step). Qwen2.5-VL's video (`token_types` 2) steps by tokens_per_second x
    second_per_grid_ts (absolute time), its images by 1; given as the model computes it (a float32 tensor), so that
    the floor lands where the model's does."""
    grids = iter(grids)
    steps = iter(time_steps) if time_steps is not None else None
    parts, current = [], 0
    for kind, run in itertools.groupby(token_types):
        n = len(list(run))
        if kind == 0:
            parts.append(torch.arange(current, current + n).expand(3, n))
            current += n
            continue
        t, h, w = (int(x) for x in next(grids))
        h, w = h // merge_size, w // merge_size
        if t * h * w != n:
            raise ValueError(f"An image run of {n} tokens does not match its grid {t}x{h}x{w}.")
        temporal = torch.arange(t) if steps is None else (torch.arange(t) * next(steps)).long()
        grid_t, grid_h, grid_w = torch.meshgrid(temporal, torch.arange(h), torch.arange(w), indexing="ij")
        parts.append(torch.stack([grid_t, grid_h, grid_w]).reshape(3, -1) + current)
        current += max(h, w)
    return torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.long)
