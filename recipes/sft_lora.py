"""Supervised fine-tuning with LoRA adapters: the second name of recipes/sft.py, the same recipe and flow.

`sft_lora.py` is the name the project's design and older notes launch; it runs the SFT method of recipes/sft.py
with the same default config (the LoRA one, recipes/configs/tiny-smolvlm/sft_lora.yaml), so every SFT config
(LoRA, QLoRA or full: the config decides) launches under either name.

Offline default (tiny SmolVLM, synthetic colour/shape questions, LoRA, CPU, a few minutes):

    accelerate launch recipes/sft_lora.py

A real model:

    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/sft_lora.py \
        --config recipes/configs/qwen2-vl-2b-instruct/sft_lora.yaml

Writes <output_dir>/eval_results.json (held-out accuracy before/after), the adapter, the processor, a model card and
TensorBoard logs.
"""

from vlm_recipes.launch import training_recipe

METHOD, PARSER_TYPES, DEFAULT_CONFIG, main = training_recipe("sft", "tiny-smolvlm/sft_lora.yaml")

if __name__ == "__main__":
    main()
