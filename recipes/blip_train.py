"""Fine-tune BLIP for captioning or VQA, with LoRA (peft) or in full, on transformers' Trainer.

Offline default (full fine-tuning of the tiny BLIP, pre-trained on captions that never name a position, on captions
that do; held-out CIDEr-D before and after; CPU, about a minute once the tiny BLIP is cached), and LoRA:

    accelerate launch recipes/blip_train.py
    accelerate launch recipes/blip_train.py --config recipes/configs/tiny-blip/caption_lora.yaml

A real model (Hub, GPU):

    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/blip_train.py \
        --config recipes/configs/blip-image-captioning-base/caption_lora_coco.yaml

Writes <output_dir>/eval_results.json (held-out CIDEr-D and BLEU-1..4, or VQA accuracy, before and after),
eval_predictions.jsonl, gallery.html, the adapter or the model (safetensors), the processor and a model card.
"""

import logging
from pathlib import Path

from vlm_recipes.captioning.run import run_blip_training
from vlm_recipes.launch import parse
from vlm_recipes.processes import ends_process_group
from vlm_recipes.settings.blip import BlipDataArguments, BlipModelArguments, BlipTrainingArguments

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "tiny-blip" / "caption_full.yaml"
PARSER_TYPES = (BlipDataArguments, BlipModelArguments, BlipTrainingArguments)


@ends_process_group
def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_args, model_args, training_args = parse(PARSER_TYPES, DEFAULT_CONFIG, argv, recipe="blip_train")
    return run_blip_training(data_args, model_args, training_args)


if __name__ == "__main__":
    main()
