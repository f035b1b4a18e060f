"""ViT image classification: from scratch on real offline data (scikit-learn digits) or synthetic shapes, or
fine-tuning a pretrained ViT, on transformers' Trainer.

Offline default (a 0.14 M-parameter ViT trained from scratch on 1,437 real 8x8 handwritten digits, CPU):

    accelerate launch recipes/vit_baseline.py

Synthetic shapes (12 colour x shape classes), or fine-tuning google/vit-base-patch16-224 (Hub, GPU):

    accelerate launch recipes/vit_baseline.py --config recipes/configs/tiny-vit/vit_shapes.yaml
    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/vit_baseline.py \
        --config recipes/configs/vit-base-patch16-224/vit_finetune.yaml

Writes <output_dir>/eval_results.json (held-out top-1 / top-5 / mean per-class recall before and after),
confusion_matrix.png, the model (safetensors) and the image processor.
"""

import logging
from pathlib import Path

from vlm_recipes.baselines.image_data import ImageDataArguments
from vlm_recipes.baselines.vit import ViTModelArguments, ViTTrainingArguments, run_vit
from vlm_recipes.launch import parse
from vlm_recipes.processes import ends_process_group

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "tiny-vit" / "vit_digits.yaml"
PARSER_TYPES = (ImageDataArguments, ViTModelArguments, ViTTrainingArguments)


@ends_process_group
def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_args, model_args, training_args = parse(PARSER_TYPES, DEFAULT_CONFIG, argv, recipe="vit_baseline")
    return run_vit(data_args, model_args, training_args)


if __name__ == "__main__":
    main()
