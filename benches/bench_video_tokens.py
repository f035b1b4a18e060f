"""Token cost of video at the real configs' settings, computed with the real processor classes, offline.

    python benches/bench_video_tokens.py

For each real video config (recipes/configs/*/sft_video.yaml) the processor class of its checkpoint is built offline
with the checkpoint's published video settings and the frame settings of the YAML (`video_fps`, `video_max_frames`,
`video_min_pixels` / `video_max_pixels`), the family's locally trained tokenizer and the real chat template
(vlm_recipes.tiny.real_size does the same for images). A synthetic video (grey frames at 30 fps) of a few lengths and
resolutions goes through our collator, and the table gives the video tokens per row (what the processor expands the
video placeholder to: Qwen2.5-VL's `<|video_pad|>` run; SmolVLM2's per-frame timestamp text and `<image>` blocks) and
per second of video. Text tokens of SmolVLM2's frame timestamps come from our tokenizer: within a few tokens of the
real one's; image tokens are exact. No Hub, no model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vlm_recipes.data.chat_encoding import ChatEncoder  # noqa: E402
from vlm_recipes.data.video import load_video  # noqa: E402
from vlm_recipes.models.families import set_video_resolution  # noqa: E402
from vlm_recipes.tiny import vlm as tiny  # noqa: E402

# The published video settings of the checkpoints (their preprocessor / video_preprocessor configs).
SMOLVLM2_2B = {"image_seq_len": 81, "tile": 384, "longest_edge": 1536}  # 384 px tiles, 14 px patches, scale 3
QWEN25_VL = {"min_pixels": 3136, "max_pixels": 12845056}  # image processor defaults; the YAML sets video pixels


def real_processor(family: str, settings: dict):
    tokenizer = tiny.build_tokenizer(family)
    if family == "smolvlm":
        from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor
        from trl.chat_template_utils import smolvlm_chat_template

        tile = {"longest_edge": SMOLVLM2_2B["tile"]}
        return SmolVLMProcessor(
            image_processor=SmolVLMImageProcessor(
                size={"longest_edge": SMOLVLM2_2B["longest_edge"]}, max_image_size=tile, do_image_splitting=True
            ),
            video_processor=SmolVLMVideoProcessor(size=tile, max_image_size=tile),
            tokenizer=tokenizer,
            image_seq_len=SMOLVLM2_2B["image_seq_len"],
            chat_template=smolvlm_chat_template,
        )
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    pixels = {"min_pixels": QWEN25_VL["min_pixels"], "max_pixels": QWEN25_VL["max_pixels"]}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        video_processor=Qwen2VLVideoProcessor(**pixels),
        tokenizer=tokenizer,
        chat_template=qwen2_5_vl_chat_template,
    )
    set_video_resolution(processor, settings.get("video_min_pixels"), settings.get("video_max_pixels"))
    return processor


def video_tokens(processor, settings: dict, seconds: int, size: tuple[int, int]) -> tuple[int, int]:
    frames = [Image.new("RGB", size, (120, 120, 120))] * (30 * seconds)
    video = load_video(
        frames, fps=settings.get("video_fps"), max_frames=settings.get("video_max_frames"), frame_list_fps=30.0
    )
    return len(video), ChatEncoder(processor).video_token_counts([video])[0]


def main() -> None:
    configs = sorted(ROOT.glob("recipes/configs/*/sft_video.yaml"))
    print("| config | frames (fps, max) | frame size | seconds | frames used | video tokens | tokens / s |")
    print("|---|---|---|---|---|---|---|")
    for path in configs:
        settings = yaml.safe_load(path.read_text())
        name = settings["model_name_or_path"]
        if name.startswith("tiny:"):
            continue
        family = "smolvlm" if "SmolVLM" in name else "qwen2_vl"
        processor = real_processor(family, settings)
        sampling = f"{settings.get('video_fps')} fps, max {settings.get('video_max_frames')}"
        for size in ((640, 360), (1280, 720)):
            for seconds in (10, 60):
                frames, tokens = video_tokens(processor, settings, seconds, size)
                print(
                    f"| {path.parent.name} | {sampling} | {size[0]}x{size[1]} | {seconds} | {frames} | {tokens:,} | "
                    f"{tokens / seconds:,.0f} |"
                )


if __name__ == "__main__":
    main()
