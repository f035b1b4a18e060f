"""BLIP: captioning and VQA (zero-shot and fine-tuned, LoRA or full) and ALBEF-style image-text retrieval.

No training framework we build on supports BLIP (TRL's trainers are for chat VLMs), so these recipes use
transformers' BLIP classes and Trainer directly:

- `arguments`: the recipes' config dataclasses; `data`: caption rows (several references per image) and VQA rows
  from synthetic shapes, Hub datasets, local folders or image files; `synthetic`: the offline caption/VQA tasks;
- `modeling`: a checkpoint loaded as its task's class (refusing a checkpoint of another head), LoRA;
- `generation`: batched captioning (conditional on a prompt, or not) and VQA, and the training collators;
- `retrieval`: ITC ranking re-ranked by the ITM head, recall@1/5/10 before and after;
- `run`: the zero-shot and fine-tuning flows (`recipes/blip_zero_shot.py`, `recipes/blip_train.py`).

Captions are scored with CIDEr-D and BLEU-1..4 (`vlm_recipes.evaluation.metrics.captions`); the offline tiny BLIP
is built by `vlm_recipes.tiny.blip`.
"""
