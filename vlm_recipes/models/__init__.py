"""Models: what differs between model families, loading with LoRA/QLoRA and freezing, and merging adapters.

- `families`: one frozen `Family` record per model family (image tokens, end of turn, module patterns).
- `sources`: where a model name points (Hub id, local path, or a registered source such as `tiny:<name>`).
- `modeling`: processors and models by name or path (through `sources.resolve`), PEFT set-up, freezing and per-part
  parameter groups.
- `merge`: a LoRA adapter merged into its base model.
- `label_head`: the language-model head applied only at label positions (`logits_at_labels`).
- `attention`: `attn_implementation: sdpa_varlen`, SDPA run row by row on padding-free batches (a CPU varlen path).
- `chat_templates`: the chat templates TRL does not ship (LLaVA-1.5, LLaVA-OneVision) as data, with training variants.
"""
