"""Evaluation: generation, inference recipes, model comparisons and the metric modules they all score with.

- `generation`: batched greedy answers and the held-out metrics of the training recipes.
- `inference`: `recipes/generate.py` (images, folders, datasets, video frames).
- `compare`: `recipes/evaluate_models.py` (base vs adapters vs other models, report and gallery).
- `metrics`: local `evaluate` modules (exact match, VQA accuracy, ANLS, relaxed accuracy, BLEU, ROUGE).
- `benchmarks`: `recipes/benchmark.py` (MMMU, MMBench, MathVista, OCRBench, ... task files, answer extraction,
  circular evaluation, leaderboard) and the training runs' before/after benchmark step.
"""
