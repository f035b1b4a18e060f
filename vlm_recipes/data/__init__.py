"""Data: datasets as `images` + conversation rows, the offline synthetic tasks, image decoding, and the collators
that turn rows into token batches with the label masking VLM training needs.

- `loading`: local files, image folders and Hub datasets as train / held-out splits (SFT, preference, prompt rows).
- `synthetic`: the procedural shapes tasks every offline default trains and evaluates on.
- `images`: decoding with named errors, size guards, conversion to RGB.
- `collators`: `VisionChatCollator` (SFT), `PreferenceCollator` (DPO/MPO), `PromptCollator` (generation).
"""
