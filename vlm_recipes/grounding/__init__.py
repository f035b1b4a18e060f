"""Object grounding: boxes in each family's answer convention (`boxes`), grounding rows (`data`) and a gallery of
predicted and reference boxes (`gallery`). The IoU metrics are `iou_accuracy` / `mean_iou` of
vlm_recipes.evaluation.metrics; the GRPO reward is `iou` of vlm_recipes.training.rewards."""
