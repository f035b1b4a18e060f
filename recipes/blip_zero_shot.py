"""Zero-shot BLIP: captioning (conditional on a text prefix, or not), VQA, and image-text retrieval with ITM
re-ranking, over image files, a folder or a dataset split, batched.

Offline default (the tiny BLIP, pre-trained once on synthetic captions, about a minute the first time):

    python recipes/blip_zero_shot.py                                     # captions of held-out synthetic images
    python recipes/blip_zero_shot.py --config recipes/configs/tiny-blip/itm_retrieval.yaml

Real models (Hub), e.g. captions of your photos and Flickr30k retrieval:

    python recipes/blip_zero_shot.py \
        --config recipes/configs/blip-image-captioning-base/caption_zero_shot_flickr30k.yaml \
        --image_dir ~/photos --prompt "a picture of"
    python recipes/blip_zero_shot.py --config recipes/configs/blip-itm-base-coco/itm_retrieval_flickr30k.yaml

Writes <output_dir>/eval_results.json (CIDEr-D / BLEU-1..4, VQA accuracy, or recall@1/5/10 before and after
re-ranking), predictions.jsonl and gallery.html.
"""

import logging
from pathlib import Path

from vlm_recipes.captioning.run import run_blip_zero_shot
from vlm_recipes.launch import parse
from vlm_recipes.processes import ends_process_group
from vlm_recipes.settings.blip import BlipDataArguments, BlipModelArguments, BlipZeroShotArguments

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "tiny-blip" / "caption_zero_shot.yaml"
PARSER_TYPES = (BlipDataArguments, BlipModelArguments, BlipZeroShotArguments)


@ends_process_group
def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_args, model_args, args = parse(PARSER_TYPES, DEFAULT_CONFIG, argv, recipe="blip_zero_shot")
    return run_blip_zero_shot(data_args, model_args, args)


if __name__ == "__main__":
    main()
