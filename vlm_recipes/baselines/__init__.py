"""Contrastive and vision-only baselines: zero-shot CLIP/SigLIP (classification, retrieval, image search, OOD
detection, failure cases), contrastive CLIP training, and ViT classifiers.

- `clip`: the zero-shot and contrastive-training flows; `zero_shot`: embeddings and their metrics;
  `contrastive`: CLIP/SigLIP losses, collator and trainer; `image_data`: image classification / caption data;
  `vit`: the ViT baseline flow; `plots`: confusion matrices, histograms, image grids.
"""
