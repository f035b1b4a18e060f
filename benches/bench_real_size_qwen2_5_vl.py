"""Real-size Qwen2.5-VL-3B (random weights, built offline; vlm_recipes.tiny.real_size): image tokens per image at each
Qwen2.5-VL config's resolution settings, and the parameter count.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benches/bench_real_size_qwen2_5_vl.py

Image tokens come from the real processor class (`Qwen2_5_VLProcessor`, `Qwen2VLImageProcessor` /
`Qwen2VLVideoProcessor`) at each config's min_pixels / max_pixels (video: video_min_pixels / video_max_pixels per
temporal patch of 2 frames); the parameters are counted on the meta device (no 15 GB of float32 weights allocated).
"""

from __future__ import annotations

import torch
import yaml
from PIL import Image

from vlm_recipes.paths import REPO_ROOT
from vlm_recipes.tiny import real_size

SIZES = {"photo 640x427": (640, 427), "strip 640x200": (640, 200), "page 1700x2200": (1700, 2200)}


def image_tokens(processor, size) -> int:
    out = processor.image_processor(images=[Image.new("RGB", size, (120, 120, 120))], return_tensors="pt")
    return int(out["image_grid_thw"].prod()) // processor.image_processor.merge_size**2


def video_tokens_per_patch(processor, size) -> int:
    frames = [Image.new("RGB", size, (120, 120, 120))] * 2
    out = processor.video_processor(videos=[frames], do_sample_frames=False, return_tensors="pt")
    t, h, w = out["video_grid_thw"][0].tolist()
    return h * w // processor.video_processor.merge_size**2


def main() -> None:
    from vlm_recipes.models.families import set_image_resolution, set_video_resolution

    processor = real_size.build_processor("qwen2.5-vl-3b")
    print("config | min_pixels..max_pixels | " + " | ".join(SIZES))
    for directory in ("qwen2.5-vl-3b-instruct", "qwen2.5-vl-7b-instruct"):
        for path in sorted((REPO_ROOT / "recipes" / "configs" / directory).glob("*.yaml")):
            config = yaml.safe_load(path.read_text())
            if "min_pixels" in config or "max_pixels" in config:
                set_image_resolution(
                    processor, min_pixels=config.get("min_pixels"), max_pixels=config.get("max_pixels")
                )
                counts = [image_tokens(processor, size) for size in SIZES.values()]
                bounds = f"{config.get('min_pixels')}..{config.get('max_pixels')}"
                print(f"{directory}/{path.name} | {bounds} | " + " | ".join(map(str, counts)))
            if "video_min_pixels" in config or "video_max_pixels" in config:
                set_video_resolution(
                    processor,
                    video_min_pixels=config.get("video_min_pixels"),
                    video_max_pixels=config.get("video_max_pixels"),
                )
                per_patch = video_tokens_per_patch(processor, (640, 360))
                frames = config.get("video_max_frames")
                print(
                    f"{directory}/{path.name} video | per 2-frame patch of a 640x360 video: {per_patch} tokens; "
                    f"{frames} frames: {per_patch * frames // 2}"
                )
    with torch.device("meta"):
        model = real_size.build_model("qwen2.5-vl-3b", processor)
    parts = {"vision tower": 0, "projector": 0, "language model": 0}
    for name, p in model.named_parameters():
        key = "projector" if ".merger." in name else "vision tower" if "visual." in name else "language model"
        parts[key] += p.numel()
    print(f"parameters: {model.num_parameters():,} ({', '.join(f'{k} {v:,}' for k, v in parts.items())})")


if __name__ == "__main__":
    main()
