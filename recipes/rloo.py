"""REINFORCE Leave-One-Out (RLOO) of a vision language model with verifiable rewards, on TRL's RLOOTrainer.

Each prompt gets `num_generations` completions; a completion's advantage is its reward minus the mean reward of the
other completions of the same prompt (no learned value model, no group std). Rewards are chosen by name and weight in
YAML (`reward_funcs`, `reward_weights`) from vlm_recipes.training.rewards, exactly as for GRPO; unknown names fail
before any model is loaded.

Offline default (tiny SmolVLM after a short SFT warm-up; synthetic colour/shape questions; CPU):

    accelerate launch recipes/rloo.py

A real model:

    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/rloo.py \
        --config recipes/configs/qwen2.5-vl-3b-instruct/rloo.yaml

Writes <output_dir>/eval_results.json with held-out reward and exact-match accuracy before and after.
"""

from vlm_recipes.launch import training_recipe

METHOD, PARSER_TYPES, DEFAULT_CONFIG, main = training_recipe("rloo", "tiny-smolvlm/rloo.yaml")

if __name__ == "__main__":
    main()
