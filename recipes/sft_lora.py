"""Supervised fine-tuning of a vision language model with LoRA (or QLoRA), on TRL's SFTTrainer.

Offline default (tiny SmolVLM, synthetic colour/shape questions, CPU, a few minutes):

    accelerate launch recipes/sft_lora.py

A real model and overrides on the command line:

    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/sft_lora.py \
        --config recipes/configs/smolvlm-256m-instruct/sft_lora.yaml --learning_rate 1e-4

Writes <output_dir>/eval_results.json (held-out accuracy before/after), the adapter, the processor and
TensorBoard logs.
"""

import logging
from pathlib import Path

from vlm_recipes.configs import DataArguments, SFTConfig, VLMModelConfig, parse
from vlm_recipes.run import run_sft

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "tiny-smolvlm" / "sft_lora.yaml"
PARSER_TYPES = (DataArguments, SFTConfig, VLMModelConfig)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_args, training_args, model_args = parse(PARSER_TYPES, DEFAULT_CONFIG, argv)
    if not model_args.use_peft:
        raise SystemExit("sft_lora.py trains adapters: set use_peft: true (for full fine-tuning use sft_full.py).")
    return run_sft(data_args, training_args, model_args)


if __name__ == "__main__":
    main()
