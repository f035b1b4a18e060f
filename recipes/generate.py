"""Generate with a vision language model (base, or base + LoRA adapter): an image, a folder, a dataset split, a video.

Offline default (tiny SmolVLM, 16 held-out synthetic scenes, batched greedy generation, CPU, seconds):

    python recipes/generate.py

One image, a folder, or a video (frames sampled evenly, passed as images), with your own prompt:

    python recipes/generate.py --image photo.jpg --prompt "What is in this picture?"
    python recipes/generate.py --image_dir examples/products --prompt_template "Describe this {category}: {name}."
    python recipes/generate.py --video examples/video/shapes.mp4 --num_frames 8 --prompt "What colours appear?"

With a trained adapter (any training recipe's output_dir) or a real model:

    python recipes/generate.py --adapter_path outputs/sft_lora-tiny-smolvlm
    python recipes/generate.py --config recipes/configs/smolvlm-256m-instruct/generate_product.yaml

Writes one JSON line per prompt (id, prompt, prediction, reference if known) to `output_file`.
"""

import logging
from pathlib import Path

from vlm_recipes.evaluation.inference import run_generate
from vlm_recipes.launch import parse
from vlm_recipes.processes import ends_process_group
from vlm_recipes.settings import DataArguments, GenerateArguments, VLMModelConfig

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "tiny-smolvlm" / "generate.yaml"
PARSER_TYPES = (DataArguments, GenerateArguments, VLMModelConfig)


@ends_process_group
def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_args, gen_args, model_args = parse(PARSER_TYPES, DEFAULT_CONFIG, argv, recipe="generate")
    records = run_generate(data_args, gen_args, model_args)
    for record in records[:5]:
        print(f"{record['id']}: {record['prediction']!r}")
    print(f"Wrote {len(records)} predictions to {gen_args.output_file}")
    return records


if __name__ == "__main__":
    main()
