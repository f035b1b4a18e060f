"""The web demo of a training run: ask the base model and the fine-tuned model the same question about an image (or a
video), side by side, streamed; the run's held-out examples one click away (Gradio, offline).

After `make demo` (the offline SFT LoRA run):

    python recipes/demo.py --run outputs/sft_lora-tiny-smolvlm          # then open http://127.0.0.1:7860
    make demo-web RUN=outputs/sft_lora-tiny-smolvlm PORT=7861

Any run directory works: a LoRA/QLoRA adapter (the base is loaded once, the adapter on top), a merged model
(recipes/merge_adapter.py) or a full fine-tune (the base is loaded beside it). The server listens on 127.0.0.1 only,
unless --host says otherwise; uploads stay in a temporary folder removed on exit.
"""

import logging

from transformers import HfArgumentParser

from vlm_recipes.launch.demo import DemoArguments, run_demo


def main(argv=None, block: bool = True):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    (args,) = HfArgumentParser(DemoArguments).parse_args_into_dataclasses(argv)
    return run_demo(args, block=block)


if __name__ == "__main__":
    main()
