"""Direct Preference Optimization of a vision language model (LoRA, QLoRA or full), on TRL's DPOTrainer.

Offline default (tiny SmolVLM after a short SFT warm-up, synthetic preference pairs: chosen = the right answer,
rejected = a plausible wrong one; CPU, about a minute once the tiny model is cached):

    accelerate launch recipes/dpo.py

A real model:

    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/dpo.py \
        --config recipes/configs/smolvlm-256m-instruct/dpo.yaml

Writes <output_dir>/eval_results.json with held-out preference accuracy (chosen log-prob > rejected) and
generation exact match, before and after, plus the adapter and the processor.
"""

import logging
from pathlib import Path

from vlm_recipes.configs import DataArguments, DPOConfig, VLMModelConfig, parse
from vlm_recipes.run import run_preference

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "tiny-smolvlm" / "dpo.yaml"
PARSER_TYPES = (DataArguments, DPOConfig, VLMModelConfig)


def main(argv=None, default_config=DEFAULT_CONFIG):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_args, training_args, model_args = parse(PARSER_TYPES, default_config, argv)
    return run_preference(data_args, training_args, model_args)


if __name__ == "__main__":
    main()
