"""Group Relative Policy Optimization of a vision language model with verifiable rewards, on TRL's GRPOTrainer.

Rewards are chosen by name and weight in YAML (`reward_funcs`, `reward_weights`) from vlm_recipes.rewards:
format, accuracy, math_accuracy, iou, length_penalty. Unknown names fail before any model is loaded.

Offline default (tiny SmolVLM after a short SFT warm-up; synthetic colour/shape questions; CPU):

    accelerate launch recipes/grpo.py

A real model:

    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/grpo.py \
        --config recipes/configs/qwen2.5-vl-3b-instruct/grpo.yaml

Writes <output_dir>/eval_results.json with held-out reward and exact-match accuracy before and after.
"""

import logging
from pathlib import Path

from vlm_recipes.configs import DataArguments, GRPOConfig, VLMModelConfig, parse
from vlm_recipes.run import run_grpo

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "tiny-smolvlm" / "grpo.yaml"
PARSER_TYPES = (DataArguments, GRPOConfig, VLMModelConfig)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_args, training_args, model_args = parse(PARSER_TYPES, DEFAULT_CONFIG, argv)
    return run_grpo(data_args, training_args, model_args)


if __name__ == "__main__":
    main()
