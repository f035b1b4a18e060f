"""Collator throughput: ours vs TRL's DataCollatorForVisionLanguageModeling vs the bare processor call.

Same batches for all three (batch 8 of 224x224 images with a question and an answer), both families, measured
in one run so the ratios are comparable on a noisy machine. The processors are the real classes built offline
with the tiny checkpoints' tokenizers; image settings are scaled to the tiny vision encoders (SmolVLM: 64 px tiles,
image splitting on with longest_edge 256 -> 17 tiles; Qwen2-VL: 224x224 pixels -> 64 image tokens).

    python benches/bench_collator.py [--batches 30]
"""

import argparse
import random
import time

import torch
from PIL import Image
from trl.chat_template_utils import get_training_chat_template
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from vlm_recipes.data import synthetic
from vlm_recipes.data.collators import VisionChatCollator, conversation_of
from vlm_recipes.models.families import set_image_resolution
from vlm_recipes.tiny import vlm as tiny


def make_batches(num_batches: int, batch_size: int = 8):
    rng = random.Random(0)
    batches = []
    for _ in range(num_batches):
        rows = []
        for _ in range(batch_size):
            ex = synthetic.make_example(rng, "color_shape", 224)
            rows.append(
                {
                    "images": ex["images"],
                    "messages": [
                        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": ex["question"]}]},
                        {"role": "assistant", "content": [{"type": "text", "text": ex["answer"]}]},
                    ],
                }
            )
        batches.append(rows)
    return batches


def bare_processor(processor):
    def collate(rows):
        convs = [conversation_of(r, i) for i, r in enumerate(rows)]
        text = processor.apply_chat_template(convs)
        images = [r["images"] for r in rows]
        if type(processor).__name__.startswith("Qwen"):
            images = [im for ims in images for im in ims]
        return processor(text=text, images=images, padding=True, return_tensors="pt")

    return collate


def trl_collator(processor):
    template = get_training_chat_template(processor) or processor.chat_template
    collator = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True, chat_template=template)
    # TRL's collator mutates the examples' messages (fills the images in): give it copies.
    return lambda rows: collator([{**r, "images": list(r["images"])} for r in rows])


def throughput(collate, batches) -> float:
    collate(batches[0])  # warm-up
    start = time.perf_counter()
    n = 0
    for rows in batches:
        collate(rows)
        n += len(rows)
    return n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    batches = make_batches(args.batches)
    assert isinstance(batches[0][0]["images"][0], Image.Image)
    print(f"{'family':<10} {'collator':<34} {'examples/s':>10} {'vs bare':>8}")
    for family in ("smolvlm", "qwen2_vl"):
        processor = tiny.build_processor(family)
        if family == "smolvlm":
            set_image_resolution(processor, longest_edge=256, image_splitting=True)
        else:
            set_image_resolution(processor, min_pixels=224 * 224, max_pixels=224 * 224)
        candidates = {
            "bare processor (no labels)": bare_processor(processor),
            "TRL DataCollatorForVisionLM": trl_collator(processor),
            "vlm_recipes VisionChatCollator": VisionChatCollator(processor),
        }
        rates = {name: throughput(fn, batches) for name, fn in candidates.items()}
        base = rates["bare processor (no labels)"]
        for name, rate in rates.items():
            print(f"{family:<10} {name:<34} {rate:>10.1f} {rate / base:>7.2f}x")
        tokens = VisionChatCollator(processor)(batches[0])["input_ids"].shape[1]
        print(f"{family:<10} (sequence length of a batch: {tokens} tokens)")


if __name__ == "__main__":
    main()
