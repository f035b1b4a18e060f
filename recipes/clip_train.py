"""Contrastive image-text training (CLIP loss, or SigLIP's sigmoid loss) on transformers' Trainer.

Offline default (a randomly initialised tiny CLIP trained on synthetic shape captions, CPU, about a minute):

    accelerate launch recipes/clip_train.py

Fine-tune a real CLIP on image/caption pairs (Hub, GPU):

    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/clip_train.py \
        --config recipes/configs/clip-vit-base-patch32/clip_train.yaml

Writes <output_dir>/eval_results.json (held-out retrieval recall and, for the synthetic shapes, zero-shot top-1,
before and after), the model (safetensors) and the processor.
"""

import logging
from pathlib import Path

from vlm_recipes.baselines.clip import (
    ContrastiveModelArguments,
    ContrastiveTrainingArguments,
    run_contrastive_training,
)
from vlm_recipes.baselines.image_data import ImageDataArguments
from vlm_recipes.launch import parse
from vlm_recipes.processes import ends_process_group

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "tiny-clip" / "clip_train.yaml"
PARSER_TYPES = (ImageDataArguments, ContrastiveModelArguments, ContrastiveTrainingArguments)


@ends_process_group
def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_args, model_args, training_args = parse(PARSER_TYPES, DEFAULT_CONFIG, argv, recipe="clip_train")
    return run_contrastive_training(data_args, model_args, training_args)


if __name__ == "__main__":
    main()
