"""Loading models and processors, LoRA/QLoRA set-up, freezing and per-part learning rates.

transformers loads the model (`AutoModelForImageTextToText`, safetensors only, remote code off unless asked);
TRL turns `ModelConfig` into a `LoraConfig` and a `BitsAndBytesConfig`; PEFT applies LoRA. What this module adds:
freezing the vision tower / projector in both full and LoRA training (LoRA via `exclude_modules`), LoRA targets
that follow those choices, QLoRA that quantizes the language model only (the vision tower, projector and output head
stay in the compute dtype unless `quantize_vision_tower`), and optimizer parameter groups with separate learning
rates per model part.
"""

from __future__ import annotations

import logging
import re

import torch
from accelerate import PartialState
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
from trl import get_peft_config, get_quantization_config

from ..settings import VLMModelConfig
from . import attention  # noqa: F401  (registers attn_implementation: sdpa_varlen)
from .families import (
    FAMILIES,
    Family,
    family_for_model_type,
    family_of,
    set_image_resolution,
    set_thinking,
    set_video_resolution,
)
from .sources import resolve

logger = logging.getLogger(__name__)


def load_processor(model_args: VLMModelConfig, trust_remote_code: bool = False):
    path = resolve(model_args.model_name_or_path)
    processor = AutoProcessor.from_pretrained(
        path, revision=model_args.model_revision, trust_remote_code=trust_remote_code
    )
    set_image_resolution(
        processor,
        min_pixels=model_args.min_pixels,
        max_pixels=model_args.max_pixels,
        longest_edge=model_args.longest_edge,
        image_splitting=model_args.image_splitting,
        max_image_tiles=model_args.max_image_tiles,
    )
    set_video_resolution(processor, model_args.video_min_pixels, model_args.video_max_pixels)
    set_thinking(processor, model_args.enable_thinking)
    return processor


def load_model(model_args: VLMModelConfig, use_cpu: bool = False, trust_remote_code: bool = False, processor=None):
    """The model; with `processor`, loaded with the settings it must share with that processor (the family's
    `model_settings`, e.g. LLaVA-OneVision's anyres grid after `max_image_tiles`)."""
    path = resolve(model_args.model_name_or_path)
    quantization_config = get_quantization_config(model_args)
    dtype = model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype)
    kwargs = {}
    config = AutoConfig.from_pretrained(path, revision=model_args.model_revision, trust_remote_code=trust_remote_code)
    family = next((f for f in FAMILIES if config.model_type in f.model_types), None)
    if (quantization_config is not None or processor is not None) and family is None:
        family = family_for_model_type(config.model_type)  # raises, naming the supported model types
    if processor is not None and family.model_settings is not None:
        kwargs.update(family.model_settings(processor))  # config overrides: from_pretrained sets them on the config
    if quantization_config is not None:
        quantization_config.llm_int8_skip_modules = unquantized_modules(family, model_args)
        kwargs["quantization_config"] = quantization_config
        # Quantised weights cannot be moved after loading: put each rank's copy on its own device now.
        on_cpu = use_cpu or not torch.cuda.is_available()
        kwargs["device_map"] = "cpu" if on_cpu else {"": PartialState().local_process_index}
    model = AutoModelForImageTextToText.from_pretrained(
        path,
        revision=model_args.model_revision,
        trust_remote_code=trust_remote_code,
        attn_implementation=attention_implementation(family, config, model_args.attn_implementation),
        dtype=dtype,
        use_safetensors=True,
        **kwargs,
    )
    if quantization_config is not None and kwargs["device_map"] == "cpu":
        keep_4bit_training_layout(model)
    return model


def attention_implementation(family: Family | None, config, requested):
    """`requested` (the YAML's attn_implementation) as transformers can load it: per sub-config, eager for the
    family's `eager_sub_configs` that the checkpoint has (Gemma 4's audio tower), the requested one elsewhere."""
    if family is None or not family.eager_sub_configs or not isinstance(requested, str) or requested == "eager":
        return requested
    present = [key for key in getattr(config, "sub_configs", {}) if getattr(config, key, None) is not None]
    if not any(key in family.eager_sub_configs for key in present):
        return requested
    return {"": requested, **{key: "eager" if key in family.eager_sub_configs else requested for key in present}}


def unquantized_modules(family: Family, model_args: VLMModelConfig) -> list[str]:
    """The modules QLoRA keeps in the compute dtype, as transformers' `llm_int8_skip_modules` reads them (regexes
    matched from the start of a module name, or name suffixes): the output head, the projector and, unless
    `quantize_vision_tower`, the vision tower (4-bit vision towers are reported to degrade what the model sees), plus
    every module trained in full (`lora_modules_to_save`: a 4-bit layer cannot be trained in full)."""
    keep = ["lm_head", *family.projector_modules]
    if not model_args.quantize_vision_tower:
        keep += family.vision_tower_modules
    keep += [rf"(.*\.)?{re.escape(name)}" for name in model_args.lora_modules_to_save or []]
    return keep


def keep_4bit_training_layout(model) -> None:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference.

    On CPUs with AVX512-BF16, bitsandbytes 0.50 converts a Linear4bit's weight to an inference-only layout on its
    first forward pass in eval mode; training afterwards fails ("a view of a leaf Variable that requires grad is
    being used in an in-place operation"). The recipes evaluate before training, so keep the training layout.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def apply_freezing(model, model_args: VLMModelConfig) -> None:
    """Full fine-tuning: turn off gradients of the parts the config freezes."""
    family = family_of(model)
    frozen = {
        p
        for p, flag in (("vision_tower", model_args.freeze_vision_tower), ("projector", model_args.freeze_projector))
        if flag
    }
    for name, param in model.named_parameters():
        if family.part_of(name) in frozen or family.untrained(name):  # untrained: Gemma 4's audio tower
            param.requires_grad_(False)


def _module_names(model, family: Family, part: str) -> list[str]:
    return [n for n, _ in model.named_modules() if n and family.part_of(n + ".") == part]


def _wrapped_linear(module) -> str | None:
    """The name of the one `nn.Linear` a module wraps (Gemma 4's `Gemma4ClippableLinear`: clamps around `.linear`),
    or None: PEFT cannot put LoRA on the wrapper, only on the Linear inside."""
    children = [(n, c) for n, c in module.named_children() if isinstance(c, torch.nn.Linear)]
    own = [p for p, _ in module.named_parameters(recurse=False)]
    return children[0][0] if len(children) == 1 and not own else None


def _peft_matches(name: str, module, targets, output_head) -> bool:
    """Whether PEFT's `target_modules` rule picks module `name`: a regex string (full match), "all-linear" (every
    Linear but the output head) or a list of names (equal, or a suffix after a dot)."""
    if targets == "all-linear":
        return isinstance(module, torch.nn.Linear) and module is not output_head
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith(f".{t}") for t in targets)


def lora_target_modules(model, targets):
    """`targets` (a LoRA config's `target_modules`) as PEFT can apply them to `model`, the one rule of every place a
    PEFT model is built (the recipes' `build_peft_config`, the planner, the tests): unchanged for a family whose
    targets PEFT takes as they are; for one with wrapped linears or parts no recipe trains (`untrained_modules`,
    Gemma 4's audio tower), the exact module names, each wrapper retargeted to the Linear inside it
    (`Gemma4ClippableLinear` -> its `.linear`) and nothing inside an untrained part."""
    if not targets:  # PEFT's own default for the model type
        return targets
    family = family_of(model)
    modules = dict(model.named_modules())
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    picked = [n for n, m in modules.items() if n and _peft_matches(n, m, targets, head)]
    wrapped = {n: _wrapped_linear(modules[n]) for n in picked if not isinstance(modules[n], torch.nn.Linear)}
    wrapped = {n: inner for n, inner in wrapped.items() if inner}
    if not wrapped and not family.untrained_modules:
        return targets
    names = {f"{n}.{wrapped[n]}" if n in wrapped else n for n in picked}
    # "all-linear" already picked the inner Linear of every wrapper (a Linear itself): keep it once.
    return sorted(n for n in names if not family.untrained(n))


def build_peft_config(model, model_args: VLMModelConfig):
    """TRL's LoraConfig from the model args, made to respect the freeze options.

    - freeze_vision_tower: LoRA never targets vision-tower modules (`exclude_modules`).
    - freeze_projector: the projector is neither a LoRA target nor in `modules_to_save`.
    - the targets as PEFT can apply them (`lora_target_modules`: Gemma 4's clipped linears, its audio tower).
    """
    peft_config = get_peft_config(model_args)
    if peft_config is None:
        return None
    family = family_of(model)
    peft_config.target_modules = lora_target_modules(model, peft_config.target_modules)
    frozen = [
        part
        for part, flag in (
            ("vision_tower", model_args.freeze_vision_tower),
            ("projector", model_args.freeze_projector),
        )
        if flag
    ]
    if not frozen:
        return peft_config
    frozen_modules = [n for part in frozen for n in _module_names(model, family, part)]
    peft_config.exclude_modules = frozen_modules  # exact module names: no LoRA inside frozen parts
    if peft_config.modules_to_save:
        kept = [m for m in peft_config.modules_to_save if not any(n.endswith(m) for n in frozen_modules)]
        peft_config.modules_to_save = kept or None
    return peft_config


def parameter_groups(
    model,
    family: Family,
    base_lr: float,
    weight_decay: float,
    decay_names: set[str],
    vision_tower_lr: float | None,
    projector_lr: float | None,
) -> list[dict]:
    """Optimizer groups with a learning rate per model part and weight decay only where it belongs."""
    lrs = {"vision_tower": vision_tower_lr or base_lr, "projector": projector_lr or base_lr, "language_model": base_lr}
    groups: dict[tuple[str, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = family.part_of(name)
        decay = name in decay_names
        group = groups.setdefault(
            (part, decay),
            {"params": [], "lr": lrs[part], "part": part, "weight_decay": weight_decay if decay else 0.0},
        )
        group["params"].append(param)
    return list(groups.values())


def count_parameters(model) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": sum(p.numel() for p in model.parameters())}
