"""Data pipeline throughput at real settings: can the dataloader workers keep a GPU fed?

Real processor classes with the image settings of the configs we ship (vlm_recipes.tiny.real_size: SmolVLM-256M at
longest_edge 1024 with image splitting, Qwen2-VL-2B at max_pixels 401,408), real photographs (scikit-learn's two
sample photos, cropped and resized to a spread of sizes: 640x427, 427x640, 640x200, 1024x768) stored as JPEG bytes
the way an undecoded dataset row holds them, batch 8. Candidates, measured in interleaved rounds (median):

- bare processor: decode + `apply_chat_template` + `processor(text, images)` (no labels);
- TRL: decode + `DataCollatorForVisionLanguageModeling(assistant_only_loss=True)`;
- ours: `VisionChatCollator` (decodes, labels, control-text safety);
- ours, `image_processing: worker` (vlm_recipes.data.pipeline): decode and resize, then tiles, rescale+normalize and
  padding as batched tensor ops, all in the collator (the same tensors, bit for bit);
- ours, the worker stage of `image_processing: device`: what is left to a dataloader worker when tiles,
  rescale+normalize and padding run on the training device.

Then the time per batch split into decode / resize / tiles+normalize+pad / template+tokenize, the throughput through a
torch DataLoader with 1 and 2 workers, and the workers a GPU needs (FLOP arithmetic printed).

    OMP_NUM_THREADS=1 python benches/bench_data_pipeline.py [--rounds 5] [--batches 2] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import time

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_sample_images
from trl.chat_template_utils import get_training_chat_template
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from vlm_recipes.data.collators import VisionChatCollator, conversation_of, rgb_images
from vlm_recipes.data.pipeline import ImageStage, finish_images
from vlm_recipes.models.families import family_for_model_type, family_of
from vlm_recipes.tiny.real_size import REAL_SIZE, build_model, build_processor
from vlm_recipes.training.throughput import flops_per_sample, gpu_samples_per_second

SIZES = [(640, 427), (427, 640), (640, 200), (1024, 768)]  # width x height
QUESTIONS = ["What is in the picture?", "Describe the scene in one sentence.", "What colour dominates?"]
ANSWERS = ["A building among trees.", "A flower in close-up, with a blurred background.", "Red and green."]


def photos() -> list[bytes]:
    """The spread of sizes cut from the two real photos, as JPEG bytes (quality 90)."""
    out = []
    for k, array in enumerate(load_sample_images().images):  # 427x640 RGB each
        photo = Image.fromarray(array)
        for width, height in SIZES:
            # Crop to the target aspect ratio around the centre, then resize (up or down) to the target size.
            w, h = photo.size
            scale = min(w / width, h / height)
            cw, ch = int(width * scale), int(height * scale)
            left, top = (w - cw) // 2 + 7 * k, (h - ch) // 2
            left = min(left, w - cw)
            image = photo.crop((left, top, left + cw, top + ch)).resize((width, height), Image.BICUBIC)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=90)
            out.append(buffer.getvalue())
    return out


def make_rows(num_batches: int, batch_size: int = 8) -> list[list[dict]]:
    data = photos()
    batches = []
    for b in range(num_batches):
        rows = []
        for i in range(batch_size):
            k = b * batch_size + i
            rows.append(
                {
                    "row_id": k,
                    "images": [{"path": None, "bytes": data[k % len(data)]}],
                    "messages": [
                        {
                            "role": "user",
                            "content": [{"type": "image"}, {"type": "text", "text": QUESTIONS[k % len(QUESTIONS)]}],
                        },
                        {"role": "assistant", "content": [{"type": "text", "text": ANSWERS[k % len(ANSWERS)]}]},
                    ],
                }
            )
        batches.append(rows)
    return batches


def decoded(rows: list[dict]) -> list[dict]:
    return [{**r, "images": rgb_images(r, i)} for i, r in enumerate(rows)]


def bare_processor(processor):
    def collate(rows):
        rows = decoded(rows)
        text = processor.apply_chat_template([conversation_of(r, i) for i, r in enumerate(rows)])
        images = [r["images"] for r in rows]
        if family_of(processor).pixel_layout == "patches":  # a flat list of images, not one list per row
            images = [im for ims in images for im in ims]
        return processor(text=text, images=images, padding=True, return_tensors="pt")

    return collate


def trl_collator(processor):
    template = get_training_chat_template(processor) or processor.chat_template
    collator = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True, chat_template=template)
    return lambda rows: collator(decoded(rows))  # TRL fills images into the messages: give it fresh rows


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def rounds_of(candidates: dict, batches, rounds: int) -> dict[str, float]:
    """Median examples/s of each candidate over `rounds` interleaved rounds (the order rotates each round)."""
    names = list(candidates)
    for fn in candidates.values():
        fn(batches[0])  # warm-up
    rates = {n: [] for n in names}
    examples = sum(len(rows) for rows in batches)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seconds = sum(timed(candidates[name], rows) for rows in batches)
            rates[name].append(examples / seconds)
    return {n: statistics.median(v) for n, v in rates.items()}


def stage_split(processor, batches, rounds: int) -> dict[str, dict[str, float]]:
    """Seconds per batch of 8 (median over rounds) of each stage, today's collator and the split pipeline."""
    plain = VisionChatCollator(processor)
    deferred = VisionChatCollator(processor, image_processing="device")
    stage = deferred.image_stage
    ip = processor.image_processor
    as_processor = ImageStage(processor, channels_last=False)  # the processor's resize calls on its memory layout
    keys = ("decode", "processor images", "processor resize", "resize", "finish", "deferred collate", "ours")
    times = {k: [] for k in keys}
    for _ in range(rounds):
        for rows in batches:
            start = time.perf_counter()
            ready = decoded(rows)
            times["decode"].append(time.perf_counter() - start)
            images = [im for r in ready for im in r["images"]]
            nested = [r["images"] for r in ready]
            times["processor images"].append(timed(lambda x=nested: ip(images=x, return_tensors="pt")))
            times["resize"].append(timed(lambda x=images: [stage.prepare(im) for im in x]))
            times["processor resize"].append(timed(lambda x=images: [as_processor.prepare(im) for im in x]))
            batch = deferred(ready)
            times["finish"].append(timed(finish_images, batch, stage))
            times["deferred collate"].append(timed(deferred, ready))
            times["ours"].append(timed(plain, rows))
    m = {k: statistics.median(v) for k, v in times.items()}
    today = {
        "decode": m["decode"],
        "resize": m["processor resize"],
        "tiles+normalize+pad": max(m["processor images"] - m["processor resize"], 0.0),
        "template+tokenize": max(m["ours"] - m["decode"] - m["processor images"], 0.0),
    }
    split = {
        "decode": m["decode"],
        "resize": m["resize"],
        "tiles+normalize+pad": m["finish"],
        "template+tokenize": max(m["deferred collate"] - m["resize"], 0.0),
    }
    return {"today (ours)": today, "split pipeline": split}


def _worker_init(_):
    torch.set_num_threads(1)


def loader_rate(collate, rows: list[dict], workers: int) -> float:
    """Examples/s through a DataLoader with `workers` worker processes, after the first batch (worker start-up)."""
    loader = torch.utils.data.DataLoader(
        rows, batch_size=8, collate_fn=collate, num_workers=workers, worker_init_fn=_worker_init
    )
    it = iter(loader)
    next(it)
    start, n = time.perf_counter(), 0
    for batch in it:
        n += batch["input_ids"].shape[0]
    return n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=2, help="batches of 8 per candidate per round")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--loader_batches", type=int, default=6, help="batches through each DataLoader")
    # the real sizes whose image processing the split pipeline implements (not Qwen3.5's yet)
    piped = [name for name, spec in REAL_SIZE.items() if family_for_model_type(spec["family"]).image_processor_classes]
    parser.add_argument("--names", nargs="*", default=piped)
    args = parser.parse_args()
    torch.set_num_threads(1)
    batches = make_rows(args.batches)
    print(f"torch threads: {torch.get_num_threads()}; batch 8; photos {SIZES} (w x h), JPEG; {args.rounds} rounds")
    for name in args.names:
        processor = build_processor(name)
        deferred = VisionChatCollator(processor, image_processing="device")
        candidates = {
            "bare processor (no labels)": bare_processor(processor),
            "TRL assistant_only_loss": trl_collator(processor),
            "ours (image_processing: processor)": VisionChatCollator(processor),
            "ours (image_processing: worker)": VisionChatCollator(processor, image_processing="worker"),
            "ours, worker stage of 'device'": deferred,
        }
        rates = rounds_of(candidates, batches, args.rounds)
        base, trl = rates["bare processor (no labels)"], rates["TRL assistant_only_loss"]
        print(f"\n== {name} ==")
        print(f"{'collator':<40} {'examples/s':>10} {'vs bare':>8} {'vs TRL':>7}")
        for cand, rate in rates.items():
            print(f"{cand:<40} {rate:>10.2f} {rate / base:>7.2f}x {rate / trl:>6.2f}x")

        split = stage_split(processor, batches, max(1, args.rounds // 2))
        print(f"\nseconds per batch of 8: {'':<17}" + "".join(f"{k:>21}" for k in next(iter(split.values()))))
        for path, parts in split.items():
            total = sum(parts.values())
            print(f"{path:<40}" + "".join(f"{v:>21.3f}" for v in parts.values()) + f"   total {total:.3f}")

        loader_rows = [r for rows in make_rows(args.loader_batches) for r in rows]
        per_workers = {}
        for workers in args.workers:
            for label, collate in (("ours", VisionChatCollator(processor)), ("worker stage", deferred)):
                per_workers[(label, workers)] = loader_rate(collate, loader_rows, workers)
        shown = ", ".join(f"{label} with {n} worker(s) {v:.2f}" for (label, n), v in per_workers.items())
        print(f"\nDataLoader examples/s: {shown}")

        with torch.device("meta"):
            model = build_model(name, processor)
        batch = VisionChatCollator(processor)(batches[0])
        flops, how = flops_per_sample(model, family_of(processor), batch)  # the shipped LoRA configs: vision frozen
        gpu_rate = gpu_samples_per_second(flops)
        print(f"\nGPU arithmetic: {how}; {flops / 1e12:.2f} TFLOP per sample.")
        print(
            f"An H100 at 40% of its 989 TFLOP/s bf16 peak takes {gpu_rate:.0f} samples/s: workers needed (one core "
            "each, at the medians above): "
            + ", ".join(
                f"{label} {math.ceil(gpu_rate / rates[key])}"
                for label, key in (
                    ("ours today", "ours (image_processing: processor)"),
                    ("TRL", "TRL assistant_only_loss"),
                    ("image_processing: device", "ours, worker stage of 'device'"),
                )
            )
        )


if __name__ == "__main__":
    np.random.seed(0)
    main()
