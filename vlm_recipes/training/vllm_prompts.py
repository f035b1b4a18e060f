"""GRPO generation with vLLM (`use_vllm: true`): what vLLM is given for each prompt, and the settings it cannot take.

What TRL 1.16 does: `GRPOTrainer._tokenize_prompts` renders and tokenizes each prompt with the processor, so the ids
hold every image placeholder already expanded (SmolVLM: `<fake_token_around_image><global-img><image>`x64... per
tile; Qwen2-VL: `<|image_pad|>` x the image's patch count). Those ids go to vLLM with the raw images:
- colocate (`trl/generation/vllm_generation.py`, `{"prompt_token_ids": ids, "multi_modal_data": {"image": ...}}`):
  vLLM runs its own processor on the images and expands the placeholders a second time; the sampler's prompt is
  corrupted (TRL #6294, open: SmolVLM's rollouts come back empty or incoherent; #6401: Qwen3-VL prompts mis-aligned
  with vLLM's features, an M-RoPE shape crash or silent corruption when the two processors resize differently);
- server (`VLLMClient.image_features` then `_place_features`): the server processes the images with the checkpoint's
  own settings and TRL places the features on the runs of image tokens of our ids, one run per image required.
The loss is computed on our ids and our processor's image inputs either way, so the sampler must see the same prompt.

What we do (`vllm_prompts`, used by the trainer mixin `VLLMPrompts` in vlm_recipes.training.trainers):
- colocate: the ids of the rendered prompt with each image placeholder left as the chat template wrote it (one
  `<image>` / `<|vision_start|><|image_pad|><|vision_end|>` per image), through `ChatEncoder`, so control-token text
  stays text; the images travel alongside and vLLM expands each placeholder once;
- server: the expanded ids, the same as the loss's, which hold one run of image tokens per image for Qwen2-VL;
- Qwen2-VL ("patches" layout): vLLM gets each image already resized by our processor's own resize (a multiple of
  28 px near [min_pixels, max_pixels]), which vLLM's processor, with the checkpoint's wider bounds, leaves as it is:
  the sampler sees the loss's patch grid, image tokens and M-RoPE positions, and the very same pixels. (Without it,
  vLLM would resize the original image with the checkpoint's bounds: another grid than the loss's, TRL #6401.)
What we refuse (`vllm_refusal`), before anything loads: SmolVLM ("tiles") with `longest_edge` / `image_splitting`
(vLLM would tile at the checkpoint's settings, the loss at ours) or in server mode (one image is several runs of image
tokens, which TRL 1.16's server path cannot place); LLaVA families (not checked). `check_vllm_environment` refuses a
run without a CUDA GPU or without the vllm package.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.chat_encoding import ChatEncoder, images_of
from ..models.families import FAMILIES, Family, family_for_model_type, family_of, family_of_checkpoint

MODES = ("colocate", "server")


@dataclass
class VLLMInputs:
    """What vLLM generates from, per prompt: token ids and the images that travel alongside (None: no image)."""

    prompt_ids: list[list[int]]
    images: list[list | None]


def check_vllm_environment(training_args) -> None:
    """Refuse `use_vllm: true` where it cannot run: on the CPU, without a CUDA GPU, or without the vllm package;
    called before anything is loaded or written (vlm_recipes.launch)."""
    if not getattr(training_args, "use_vllm", False):
        return
    fix = "set use_vllm: false (generation with model.generate), or run on a machine with a CUDA GPU"
    if training_args.use_cpu:
        raise ValueError(f"use_vllm: true generates with vLLM on a CUDA GPU, but use_cpu is true: {fix}.")
    if not torch.cuda.is_available():
        raise ValueError(f"use_vllm: true needs a CUDA GPU for vLLM, and this machine has none: {fix}.")
    if importlib.util.find_spec("vllm") is None:
        raise ValueError(
            "use_vllm: true needs the vllm package, which is not installed: `pip install 'trl[vllm]'` (the vLLM "
            "version TRL supports), or set use_vllm: false."
        )


def vllm_refusal(family: Family, vllm_mode: str, model_args=None) -> str | None:
    """Why `family` cannot generate with vLLM in `vllm_mode` with these model settings (None: it can)."""
    if vllm_mode not in MODES:
        return f"vllm_mode {vllm_mode!r} is not one of {list(MODES)}"
    if family.pixel_layout == "images":
        return (
            f"vLLM generation is not checked for {family.label} in vlm-recipes (only SmolVLM and Qwen2-VL prompts are "
            "tested against the processor): set use_vllm: false"
        )
    if family.pixel_layout == "tiles":
        if vllm_mode == "server":
            return (
                f"TRL 1.16's vLLM server mode places each image's features on one run of image tokens, but a "
                f"{family.label} image is one run per tile (plus the global image): use vllm_mode: colocate"
            )
        overridden = [c for c in family.resolution_controls if getattr(model_args, c, None) is not None]
        if overridden:
            return (
                f"{', '.join(overridden)} set: vLLM processes the images with the checkpoint's own settings, so the "
                f"sampler would see other tiles than the loss; remove {', '.join(overridden)} (use the checkpoint's "
                "image settings) or set use_vllm: false"
            )
    return None


def check_vllm_settings(family: Family, training_args, model_args) -> None:
    """Raise the `vllm_refusal` of these settings, naming the fix."""
    if not getattr(training_args, "use_vllm", False):
        return
    why = vllm_refusal(family, training_args.vllm_mode, model_args)
    if why is not None:
        raise ValueError(f"use_vllm: true with {family.label}: {why}.")


def family_of_name(name: str) -> Family | None:
    """The family of a model name without loading anything: a known Hub id, a local checkpoint's config.json, or
    `tiny:<family>...`; None when it cannot be told that cheaply (the trainer checks again with the processor)."""
    if name.startswith("tiny:"):
        matches = [f for f in FAMILIES if name[5:].startswith(f.name.replace("_", "-")) or name[5:].startswith(f.name)]
        return max(matches, key=lambda f: len(f.name)) if matches else None
    config = Path(name) / "config.json"
    if config.is_file():
        model_type = json.loads(config.read_text()).get("model_type")
        return family_for_model_type(model_type) if model_type else None
    try:
        return family_of_checkpoint(name)
    except ValueError:
        return None


def resized_for_vllm(processor, image: Image.Image) -> Image.Image:
    """A Qwen2-VL image resized exactly as our processor resizes it (its own resize: a multiple of patch x merge near
    [min_pixels, max_pixels]), as an 8-bit image; a processor whose pixel bounds hold that size (the checkpoint's,
    which are wider than a config's) leaves it as it is. Other layouts: the image itself."""
    if family_of(processor).pixel_layout != "patches":
        return image
    ip = processor.image_processor
    pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    resized = ip.resize(images=pixels, size=ip.size, resample=ip.resample, factor=ip.patch_size * ip.merge_size)
    if tuple(resized.shape[-2:]) == (image.height, image.width):
        return image
    return Image.fromarray(resized.clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())


def image_runs(ids: list[int], token_id: int) -> int:
    """How many runs of consecutive `token_id` the ids hold (TRL's server path needs one per image)."""
    return sum(1 for i, t in enumerate(ids) if t == token_id and (i == 0 or ids[i - 1] != token_id))


def vllm_prompts(encoder: ChatEncoder, conversations: list[list[dict]], mode: str, **template_kwargs) -> VLLMInputs:
    """What vLLM generates from in `mode` for these conversations (messages with their images filled in, ending with
    a user turn): the ids (colocate: unexpanded; server: the loss's expanded ids) and each prompt's images,
    `resized_for_vllm`. See the module docstring."""
    if mode not in MODES:
        raise ValueError(f"vllm_mode {mode!r} is not one of {list(MODES)}.")
    texts, _ = encoder.render(conversations, add_generation_prompt=True, **template_kwargs)
    images = [images_of(conv) for conv in conversations]
    batch = encoder.encode_rendered(texts, images, padding_side=None, expand_media=mode == "server")
    ids = [list(row) for row in batch["input_ids"]]
    if mode == "server":
        token_id = encoder.tokenizer.convert_tokens_to_ids(encoder.image_token)
        for i, (row, imgs) in enumerate(zip(ids, images)):
            if imgs and image_runs(row, token_id) != len(imgs):
                raise ValueError(
                    f"prompt {i}: {len(imgs)} image(s) but {image_runs(row, token_id)} runs of image tokens; TRL's "
                    "vLLM server mode needs one run per image: use vllm_mode: colocate."
                )
    resized = [[resized_for_vllm(encoder.processor, image) for image in imgs] or None for imgs in images]
    return VLLMInputs(ids, resized)
