"""Merge a LoRA adapter into its base model, for deployment without PEFT (safetensors + processor).

    python recipes/merge_adapter.py --adapter outputs/sft_lora-tiny-smolvlm
    python recipes/merge_adapter.py --adapter you/smolvlm-256m-vqav2-lora --output_dir merged --dtype bfloat16

Weights trained outside the adapter (modules_to_save such as SmolVLM's connector) are kept: the merged model gives
the same logits as base + adapter.
"""

import logging

from transformers import HfArgumentParser

from vlm_recipes.models.merge import MergeArguments, merge_adapter
from vlm_recipes.processes import ends_process_group


@ends_process_group
def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    (args,) = HfArgumentParser(MergeArguments).parse_args_into_dataclasses(argv)
    return merge_adapter(args)


if __name__ == "__main__":
    main()
