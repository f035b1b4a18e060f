"""Data: datasets as `images` + conversation rows, the offline synthetic tasks, image decoding, and the collators
that turn rows into token batches with the label masking VLM training needs.

- `loading`: local files, image folders and Hub datasets as train / held-out splits (SFT, preference, prompt rows).
- `synthetic`: the procedural shapes tasks every offline default trains and evaluates on.
- `images`: decoding with named errors, size guards, conversion to RGB.
- `collators`: `VisionChatCollator` (SFT), `PreferenceCollator` (DPO/MPO), `PromptCollator` (generation).
- `packing`: `PaddingFreeCollator` (rows as one sequence, per-row positions, Qwen2-VL's M-RoPE per row) and the
  best-fit-decreasing bins of packed training.
- `length_mix`: a variable-length mix of rows (photos of three shapes, text-only rows, 1-80 word answers) for the
  batching benchmark and tests.
"""
