"""The planner's view of a model, read from its config alone: the model is built on PyTorch's meta device (shapes,
no storage), so a 7 B checkpoint's architecture costs no memory and no download beyond its config.json.

transformers builds any architecture from its config (`from_config`); the family record (vlm_recipes.models.families)
says which parameters belong to the vision tower, the projector and the language model. What this module adds:
`architecture_of(model)`, the counts and widths `vlm_recipes.planning.memory` needs, and `meta_model(config)`.
"""

from __future__ import annotations

import torch

from ...models.families import family_of
from .memory import Architecture, TextStack, VisionStack


def meta_model(config):
    """The model of `config` on the meta device: every parameter's shape, no storage."""
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        return AutoModelForImageTextToText.from_config(config)


def _first(config, *names, default=None):
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def _layer_lists(model) -> list[tuple[str, list]]:
    """(name, layers) of every ModuleList of repeated layers (`layers`, `blocks`)."""
    return [
        (name, list(module))
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layers", "blocks") and len(module)
    ]


def check_modelled(text_config) -> None:
    """Refuse a language model whose layers the planner does not model: linear-attention (Gated DeltaNet) layers, as in
    Qwen3.5, keep a recurrent state and a convolution window whose saved activations are not counted (measured on the
    tiny Qwen3.5: the prediction 18-28% below the CPU peak, outside the 15% the other families meet)."""
    kinds = set(getattr(text_config, "layer_types", None) or ())
    if "linear_attention" in kinds:
        raise ValueError(
            "the memory planner does not model linear-attention (Gated DeltaNet) layers yet (Qwen3.5): measure the "
            "peak of a few steps instead (benches/bench_memory_planner.py)"
        )


def architecture_of(model) -> Architecture:
    """What the memory planner reads from a (meta or real) transformers VLM; a PEFT wrapper is looked through."""
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    family = family_of(core)
    config = core.config
    tc, vc = config.get_text_config(), config.vision_config
    check_modelled(tc)
    head = core.get_output_embeddings()
    head_params = {id(p) for p in head.parameters()} if head is not None else set()
    params = {"vision_tower": 0, "projector": 0, "language_model": 0, "lm_head": 0}
    for name, p in core.named_parameters():  # tied weights are listed once, under the embedding
        params["lm_head" if id(p) in head_params else family.part_of(name)] += p.numel()
    linear = {"vision_tower": 0, "projector": 0, "language_model": 0}
    for name, module in core.named_modules():
        if isinstance(module, torch.nn.Linear) and module is not head:
            linear[family.part_of(name + ".")] += module.weight.numel()
    layers = _layer_lists(core)
    largest = max((sum(p.numel() for p in layer.parameters()) for _, ls in layers for layer in ls), default=0)
    vision_layers = next((ls for name, ls in layers if family.part_of(name + ".") == "vision_tower"), [])
    fused_qkv = bool(vision_layers) and any(
        isinstance(m, torch.nn.Linear) and n.endswith("qkv") for n, m in vision_layers[0].named_modules()
    )
    vision_linears = sum(isinstance(m, torch.nn.Linear) for m in vision_layers[0].modules()) if vision_layers else 0
    text_layers = next((ls for name, ls in layers if family.part_of(name + ".") == "language_model"), [])
    text_linears = sum(isinstance(m, torch.nn.Linear) for m in text_layers[0].modules()) if text_layers else 7
    heads = tc.num_attention_heads
    head_dim = _first(tc, "head_dim", default=tc.hidden_size // heads)
    vision_hidden = _first(vc, "embed_dim", "hidden_size")
    text = TextStack(
        layers=tc.num_hidden_layers,
        hidden=tc.hidden_size,
        intermediate=tc.intermediate_size,
        heads=heads,
        q=heads * head_dim,
        kv=_first(tc, "num_key_value_heads", default=heads) * head_dim,
        head_dim=head_dim,
        vocab=tc.vocab_size,
        linears=text_linears,
    )
    vision = VisionStack(
        layers=_first(vc, "depth", "num_hidden_layers"),
        hidden=vision_hidden,
        intermediate=_first(vc, "intermediate_size", default=int(vision_hidden * _first(vc, "mlp_ratio", default=4))),
        heads=_first(vc, "num_heads", "num_attention_heads"),
        kind="qwen2_vl" if fused_qkv else "vit",
        quick_gelu=_first(vc, "hidden_act", default="") == "quick_gelu",
        linears=vision_linears,
        patch_size=vc.patch_size,
        class_token=any(name.endswith("class_embedding") for name, _ in core.named_parameters()),
    )
    return Architecture(
        name=getattr(config, "_name_or_path", "") or type(core).__name__,
        text=text,
        vision=vision,
        params=params,
        linear_params=linear,
        largest_layer=largest,
        tied=params["lm_head"] == 0,
        patches_per_token=int(
            _first(vc, "spatial_merge_size", default=1) ** 2 * _first(config, "scale_factor", default=1) ** 2
        ),
    )
