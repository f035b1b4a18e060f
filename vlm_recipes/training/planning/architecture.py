"""The planner's view of a model, read from its config alone: the model is built on PyTorch's meta device (shapes,
no storage), so a 7 B checkpoint's architecture costs no memory and no download beyond its config.json.

transformers builds any architecture from its config (`from_config`); the family record (vlm_recipes.models.families)
says which parameters belong to the vision tower, the projector and the language model. What this module adds:
`architecture_of(model)`, the counts and widths `vlm_recipes.planning.memory` needs, and `meta_model(config)`.
"""

from __future__ import annotations

import torch

from ...models.families import family_of
from .memory import Architecture, LinearAttention, TextStack, VisionStack


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


def _linears(layer) -> int:
    """The linear layers of a model's layer, LoRA's own (a PEFT-wrapped model's `lora_A` / `lora_B`) left out: the
    meta model preflight plans and the trained model the tests measure count alike."""
    return sum(isinstance(m, torch.nn.Linear) and "lora_" not in name for name, m in layer.named_modules())


def _layer_lists(model) -> list[tuple[str, list]]:
    """(name, layers) of every ModuleList of repeated layers (`layers`, `blocks`)."""
    return [
        (name, list(module))
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layers", "blocks") and len(module)
    ]


# The decoder layer kinds the planner counts (`layer_types` of the text config): softmax attention over every
# position or a window (counted alike: the window does not shorten what is saved), and Qwen3.5's Gated DeltaNet.
MODELLED_LAYER_TYPES = {"full_attention", "sliding_attention", "linear_attention"}
_DELTANET = ("in_proj_qkv", "in_proj_z", "in_proj_a", "in_proj_b", "conv1d", "A_log", "out_proj")


def _head_sizes(text_config) -> set:
    """The distinct (head_dim, num_key_value_heads) of the text layers: one for a homogeneous model, two for Gemma 4
    (its full-attention layers' heads are wider). transformers 5.23 gives every config a `per_layer_config` view."""
    layers = getattr(text_config, "per_layer_config", None) or ()
    return {(getattr(layer, "head_dim", None), getattr(layer, "num_key_value_heads", None)) for layer in layers}


def check_modelled(text_config, text_layers=()) -> None:
    """Refuse a language model whose layers the planner does not model: per-layer embeddings, KV-shared layers or
    per-layer head sizes (Gemma 4), a layer kind it does not count (a state-space
    or another linear-attention layer), or linear-attention layers that are not Qwen3.5's Gated DeltaNet (the planner
    counts the tensors transformers 5.23's torch fallback of that layer saves; docs/memory.md)."""
    unmodelled = [
        what
        for what, present in (
            ("per-layer embeddings", getattr(text_config, "hidden_size_per_layer_input", 0)),
            ("KV-shared layers", getattr(text_config, "num_kv_shared_layers", 0)),
            ("per-layer head sizes", len(_head_sizes(text_config)) > 1),
        )
        if present
    ]
    if unmodelled:  # Gemma 4: its E-sizes have all three, every size the third (full-attention layers' wider heads)
        raise ValueError(
            f"the memory planner does not model {', '.join(unmodelled)} (Gemma 4): measure the peak of a few steps "
            "instead (benches/bench_memory_planner.py)"
        )
    kinds = set(getattr(text_config, "layer_types", None) or ())
    unknown = sorted(kinds - MODELLED_LAYER_TYPES)
    if unknown:
        raise ValueError(
            f"the memory planner does not model {', '.join(unknown)} layers: measure the peak of a few steps instead "
            "(benches/bench_memory_planner.py)"
        )
    if "linear_attention" in kinds:
        expected = list(text_config.layer_types).count("linear_attention")
        linear = [layer.linear_attn for layer in text_layers if getattr(layer, "linear_attn", None) is not None]
        odd = [type(m).__name__ for m in linear if not all(hasattr(m, a) for a in _DELTANET)]
        if odd or len(linear) != expected:
            raise ValueError(
                "the memory planner models linear-attention layers only as Qwen3.5's Gated DeltaNet "
                f"({', '.join(odd) or f'{len(linear)} of {expected} found'}): measure the peak of a few steps instead "
                "(benches/bench_memory_planner.py)"
            )


def _linear_attention(text_config, text_layers) -> LinearAttention | None:
    """Qwen3.5's Gated DeltaNet layers as the planner counts them (None without any)."""
    layers = [layer for layer in text_layers if getattr(layer, "linear_attn", None) is not None]
    if not layers:
        return None
    tc, first = text_config, layers[0]
    return LinearAttention(
        layers=len(layers),
        key_heads=tc.linear_num_key_heads,
        value_heads=tc.linear_num_value_heads,
        key_head_dim=tc.linear_key_head_dim,
        value_head_dim=tc.linear_value_head_dim,
        conv_kernel=first.linear_attn.conv1d.kernel_size[0],
        linears=_linears(first),
    )


def architecture_of(model) -> Architecture:
    """What the memory planner reads from a (meta or real) transformers VLM; a PEFT wrapper is looked through."""
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    family = family_of(core)
    config = core.config
    tc, vc = config.get_text_config(), config.vision_config
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
    vision_linears = _linears(vision_layers[0]) if vision_layers else 0
    # SwiGLU in the tower (Qwen2.5-VL): gate, up and down projections instead of fc1 / fc2.
    gated_vision_mlp = bool(vision_layers) and any(
        name.rsplit(".", 1)[-1] == "gate_proj" for name, _ in vision_layers[0].named_modules()
    )
    text_layers = next((ls for name, ls in layers if family.part_of(name + ".") == "language_model"), [])
    check_modelled(tc, text_layers)
    linear_attention = _linear_attention(tc, text_layers)
    # The softmax-attention layers (all of them but Qwen3.5's Gated DeltaNet ones).
    attention_layers = [layer for layer in text_layers if getattr(layer, "linear_attn", None) is None]
    first_attention = attention_layers[0] if attention_layers else None
    text_linears = _linears(first_attention) if first_attention else 7
    heads = tc.num_attention_heads
    head_dim = _first(tc, "head_dim", default=tc.hidden_size // heads)
    kv_heads = _first(tc, "num_key_value_heads", default=heads)
    attention = getattr(first_attention, "self_attn", None)
    # Qwen3.5's gated attention: the query projection yields query and output gate (twice heads x head_dim).
    gated = getattr(getattr(attention, "q_proj", None), "out_features", 0) == 2 * heads * head_dim
    vision_hidden = _first(vc, "embed_dim", "hidden_size")
    text = TextStack(
        layers=tc.num_hidden_layers,
        hidden=tc.hidden_size,
        intermediate=tc.intermediate_size,
        heads=heads,
        q=heads * head_dim,
        kv=kv_heads * head_dim,
        head_dim=head_dim,
        vocab=tc.vocab_size,
        linears=text_linears,
        gated_attention=gated and hasattr(attention, "q_norm"),
        kv_heads=kv_heads,
        linear_attention=linear_attention,
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
        gated_mlp=gated_vision_mlp,
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
