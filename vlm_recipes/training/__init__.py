"""Training: the method registry and the one train -> evaluate -> save flow every VLM recipe shares.

- `methods`: one frozen `Method` record per training method (SFT, DPO, MPO, GRPO, RLOO); look methods up here.
- `run`: the flow, a sequence of named steps.
- `trainers`: the Trainer mixins (complete checkpoints, vision forward on every rank, per-part learning rates) and
  the ZeRO-3 weight gather.
- `checkpoints`: checkpoints that survive a crash.
- `rewards`: GRPO and RLOO reward functions by name.
- `preflight`: data checks against the processor before any GPU time is spent.
- `batching`: padded, length-grouped, padding-free or packed batches, from the TRL / Trainer fields.
- `lengths`: tokens per row (image tokens included), counted like preflight and cached, for grouping and packing.
"""
