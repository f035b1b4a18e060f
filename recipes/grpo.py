"""Group Relative Policy Optimization of a vision language model with verifiable rewards, on TRL's GRPOTrainer.

Rewards are chosen by name and weight in YAML (`reward_funcs`, `reward_weights`) from vlm_recipes.training.rewards:
format, accuracy, math_accuracy, iou, length_penalty. Unknown names fail before any model is loaded.

Offline default (tiny SmolVLM after a short SFT warm-up; synthetic colour/shape questions; CPU):

    accelerate launch recipes/grpo.py

A real model:

    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/grpo.py \
        --config recipes/configs/qwen2.5-vl-3b-instruct/grpo.yaml

Writes <output_dir>/eval_results.json with held-out reward and exact-match accuracy before and after.
"""

from vlm_recipes.launch import training_recipe

METHOD, PARSER_TYPES, DEFAULT_CONFIG, main = training_recipe("grpo", "tiny-smolvlm/grpo.yaml")

if __name__ == "__main__":
    main()
