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

from vlm_recipes.launch import training_recipe

METHOD, PARSER_TYPES, DEFAULT_CONFIG, main = training_recipe("dpo", "tiny-smolvlm/dpo.yaml")

if __name__ == "__main__":
    main()
