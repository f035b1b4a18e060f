"""Memory planning: how much memory a training step needs per device, predicted and measured.

- `memory`: the model of the peak, term by term (weights, trainable states, inputs, activations, logits), and the
  largest batch that fits a budget.
- `architecture`: what the model needs from an architecture, read from its config on the meta device (no weights).
- `shapes`: each row's shape as the collator makes it, and the longest batch a batching mode can form.
- `recipe`: a recipe's plan from its config (architecture, trainable parts, text).
- `measure`: the measured peak CPU tensor memory of a block of work (PyTorch's profiler memory events).

docs/memory.md describes the model, its measured constants and its validation against measured peaks.
"""
