"""Zero-shot CLIP: classification with prompt ensembling, retrieval and image search, OOD detection, failure cases.

Offline default (tiny CLIP trained once on synthetic shapes, CPU, about a minute the first time, then seconds):

    python recipes/clip_zero_shot.py

A real model (Hub), e.g. MNIST zero-shot and MNIST vs FashionMNIST out-of-distribution detection:

    python recipes/clip_zero_shot.py --config recipes/configs/clip-vit-base-patch32/clip_zero_shot.yaml

Search your own photos:

    python recipes/clip_zero_shot.py --tasks search --search_folder ~/photos --search_queries "a dog on a beach" \
        --model_name_or_path openai/clip-vit-base-patch32 --output_dir outputs/search

Writes <output_dir>/eval_results.json and the plots (confusion matrix, retrieval examples, search grids, OOD
score histograms, attribute-binding failures).
"""

import logging
from pathlib import Path

from vlm_recipes.baselines.clip import ContrastiveModelArguments, ZeroShotArguments, run_zero_shot
from vlm_recipes.baselines.image_data import ImageDataArguments
from vlm_recipes.launch import parse
from vlm_recipes.processes import ends_process_group

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "tiny-clip" / "clip_zero_shot.yaml"
PARSER_TYPES = (ImageDataArguments, ContrastiveModelArguments, ZeroShotArguments)


@ends_process_group
def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_args, model_args, args = parse(PARSER_TYPES, DEFAULT_CONFIG, argv, recipe="clip_zero_shot")
    return run_zero_shot(data_args, model_args, args)


if __name__ == "__main__":
    main()
