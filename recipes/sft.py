"""Supervised fine-tuning of a vision language model: LoRA, QLoRA or full fine-tuning, on TRL's SFTTrainer.

The config chooses: `use_peft: true` trains LoRA adapters (add `load_in_4bit: true` for QLoRA); `use_peft: false`
trains every weight the config does not freeze (full fine-tuning).

Offline default (tiny SmolVLM, synthetic colour/shape questions, LoRA, CPU, a few minutes):

    accelerate launch recipes/sft.py

Full fine-tuning offline, and a real model with overrides on the command line:

    accelerate launch recipes/sft.py --config recipes/configs/tiny-smolvlm/sft_full.yaml
    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/sft.py \
        --config recipes/configs/smolvlm-256m-instruct/sft_lora.yaml --learning_rate 1e-4

Writes <output_dir>/eval_results.json (held-out accuracy before/after, plus the config's eval_metrics), the adapter
(or the model), the processor, a model card and TensorBoard logs.
"""

from vlm_recipes.launch import training_recipe

METHOD, PARSER_TYPES, DEFAULT_CONFIG, main = training_recipe("sft", "tiny-smolvlm/sft_lora.yaml")

if __name__ == "__main__":
    main()
