"""Mixed Preference Optimization: DPO with a mixed loss (sigmoid DPO + BCO pair + SFT), on TRL's DPOTrainer.

MPO differs from DPO only in its loss configuration (`loss_type: [sigmoid, bco_pair, sft]`, `loss_weights`): one
record of the method registry (vlm_recipes.training.methods) that shares DPO's trainer, collator and data.

    accelerate launch recipes/mpo.py
    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/mpo.py \
        --config recipes/configs/qwen2.5-vl-3b-instruct/mpo.yaml
"""

from vlm_recipes.launch import training_recipe

METHOD, PARSER_TYPES, DEFAULT_CONFIG, main = training_recipe("mpo", "tiny-smolvlm/mpo.yaml")

if __name__ == "__main__":
    main()
