"""A recipe's memory plan: its model's architecture from the config alone, its training set-up, and the plan's text.

The model is built on the meta device (`tiny:` names from their builder's spec, other names from their config.json);
the trainable parameters are counted with the recipe's own freezing / LoRA set-up applied to it
(vlm_recipes.models.modeling), so the plan trains what the recipe trains. Preflight and `make plan`
(vlm_recipes.training.plan) print `plan_for_rows`.
"""

from __future__ import annotations

from .architecture import architecture_of, meta_model
from .memory import GIB, Architecture, Setup, largest_batch, largest_pixel_factor, plan_memory, scaled
from .shapes import RowShape, longest_batch


def meta_model_for(model_args):
    """The recipe's model on the meta device, from its config file alone (a `tiny:` name through its registered
    source, vlm_recipes.models.sources; a Hub id needs only its config.json)."""
    from transformers import AutoConfig

    from ...models.sources import resolve

    config = AutoConfig.from_pretrained(
        resolve(model_args.model_name_or_path), revision=model_args.model_revision, trust_remote_code=False
    )
    return meta_model(config)


def setup_for(model, model_args, training_args, *, zero_stage=0, fsdp=False, world_size=1, device="cpu") -> Setup:
    """The planner's `Setup` for `model` (meta or real, before PEFT) trained with these arguments: the trainable
    parameters per part are counted on a meta copy with the recipe's own freezing / LoRA set-up applied."""
    from ...models.families import family_of
    from ...models.modeling import apply_freezing, build_peft_config

    family = family_of(model)
    meta = meta_model(model.config)
    peft_config = build_peft_config(meta, model_args)
    trainable = {"vision_tower": 0, "projector": 0, "language_model": 0, "lm_head": 0, "lora": 0}
    lora_parts = set()
    if peft_config is None:
        apply_freezing(meta, model_args)
        head = {id(p) for p in meta.get_output_embeddings().parameters()}
        for name, p in meta.named_parameters():
            if p.requires_grad:
                trainable["lm_head" if id(p) in head else family.part_of(name)] += p.numel()
        mode, r = "full", 0
    else:
        from peft import get_peft_model

        peft = get_peft_model(meta, peft_config)
        for name, p in peft.named_parameters():
            if not p.requires_grad:
                continue
            if "lora_" in name:
                trainable["lora"] += p.numel()
                lora_parts.add(family.part_of(name.removeprefix("base_model.model.")))
            else:  # modules_to_save (e.g. the connector), trained in full
                trainable[family.part_of(name.removeprefix("base_model.model."))] += p.numel()
        bits = 4 if model_args.load_in_4bit else 8 if model_args.load_in_8bit else 0
        mode, r = (f"qlora{bits}" if bits else "lora"), peft_config.r
    bf16, fp16 = getattr(training_args, "bf16", False), getattr(training_args, "fp16", False)
    dtype = model_args.dtype if model_args.dtype in ("float32", "bfloat16", "float16") else "float32"
    return Setup(
        dtype=dtype,
        autocast=("bf16" if bf16 else "fp16" if fp16 else None) if dtype == "float32" else None,
        mode=mode,
        trainable=trainable,
        lora_r=r,
        lora_vision="vision_tower" in lora_parts,
        lora_text="language_model" in lora_parts,
        quantize_vision_tower=model_args.quantize_vision_tower,
        optimizer=str(getattr(training_args.optim, "value", training_args.optim)),
        zero_stage=zero_stage,
        fsdp=fsdp,
        world_size=world_size,
        gradient_checkpointing=bool(
            getattr(training_args, "activation_checkpointing", None)
            or getattr(training_args, "gradient_checkpointing", False)
        ),
        logits_at_labels=bool(getattr(training_args, "logits_at_labels", False)),
        device=device,
    )


def plan_text(
    arch: Architecture, setup: Setup, rows: list[RowShape], training_args, mode: str, gpu_gib: float | None = None
) -> str:
    """The plan as preflight and `make plan` print it: the breakdown, and what fits `gpu_gib`. `mode`: the batching
    mode (padded, length-grouped, padding-free, packed)."""
    mode = "padded" if mode == "length-grouped" else mode
    batch_size, max_length = training_args.per_device_train_batch_size, training_args.max_length
    batch = longest_batch(rows, arch, batch_size, mode, max_length)
    plan = plan_memory(arch, setup, batch)
    how = [setup.mode, setup.dtype + (f" + {setup.autocast} autocast" if setup.autocast else "")]
    how += ["gradient checkpointing"] if setup.gradient_checkpointing else []
    how += [f"ZeRO-{setup.zero_stage} x {setup.world_size}"] if setup.zero_stage else []
    how += [f"FSDP x {setup.world_size}"] if setup.fsdp else []
    how += ["logits at labels" if setup.logits_at_labels else "logits at every position (TRL's head)"]
    lines = [
        f"Memory plan per device ({', '.join(how)}; {setup.device}): longest {mode} batch of {batch_size}: "
        f"{batch.sequences} x {batch.length} tokens, {batch.label_tokens} trained, {batch.vision_patches} vision "
        "patches",
        *(f"  {name:42s} {value / GIB:8.3f} GiB" for name, value in plan.rows()),
        f"  {'predicted peak (' + plan.moment + ')':42s} {plan.peak / GIB:8.3f} GiB",
    ]
    if arch.text.linear_attention:
        lines.append(
            "  Gated DeltaNet layers counted as transformers' torch fallback runs them (validated on a CPU); with "
            "flash-linear-attention's GPU kernels they save other tensors (not modelled, not measured)"
        )
    if gpu_gib:
        budget = int(gpu_gib * GIB)
        cuda = Setup(**{**setup.__dict__, "device": "cuda"})
        gpu_plan = plan_memory(arch, cuda, batch)
        fits = "fits" if gpu_plan.peak <= budget else "does NOT fit"
        lines.append(f"  on a {gpu_gib:g} GiB GPU (CUDA terms): {gpu_plan.peak / GIB:.2f} GiB, {fits}")
        most = largest_batch(arch, cuda, batch, budget)
        lines.append(f"  largest per-device batch of such rows that fits: {most}")
        if mode == "padded":
            length = _largest_length(arch, cuda, batch, budget)
            lines.append(f"  longest max_length that fits at batch {batch_size}: {length if length else 'none'}")
        factor = largest_pixel_factor(arch, cuda, batch, budget)
        more = " or more" if factor > 15.99 else ""
        if batch.vision_patches:
            lines.append(
                f"  image resolution that fits at batch {batch_size}: x{factor:.2f}{more} the pixels per image of "
                "these rows (scale max_pixels, or longest_edge by its square root, alike)"
                if factor
                else f"  no image resolution fits at batch {batch_size}"
            )
    return "\n".join(lines)


def _largest_length(arch, setup, batch, budget) -> int:
    low, high, best = 1, 1 << 20, 0
    while low <= high:
        mid = (low + high) // 2
        if plan_memory(arch, setup, scaled(batch, length=mid)).peak <= budget:
            best, low = mid, mid + 1
        else:
            high = mid - 1
    return best


def plan_for_rows(model_args, training_args, shapes: list[RowShape], mode: str, gpu_gib: float | None = None, **setup):
    """The plan of a recipe for rows of these shapes: the architecture from the config (`setup`: `setup_for`'s
    distribution arguments)."""
    if not shapes:
        return "Memory plan: no train row could be encoded."
    model = meta_model_for(model_args)
    arch = architecture_of(model)
    return plan_text(arch, setup_for(model, model_args, training_args, **setup), shapes, training_args, mode, gpu_gib)


def plan_of_reports(method, model_args, training_args, reports, gpu_gib: float | None = None, **setup) -> str:
    """The plan preflight and `make plan` print, from preflight's reports (the train split's row shapes)."""
    from ..batching import mode_of

    if method.renders_prompts:
        return (
            f"Memory plan: not modelled for {method.name} (its completions are generated during training, their "
            "lengths are not in the data)."
        )
    shapes = next((r.shapes for r in reports if r.split == "train"), [])
    try:
        return plan_for_rows(model_args, training_args, shapes, mode_of(training_args), gpu_gib, **setup)
    except (OSError, ValueError) as err:  # e.g. a Hub id offline: the plan is advice, the checks above still count
        return f"Memory plan: not made ({err})"


def plan_of_trainer(trainer, model_args, rows, mode: str | None = None):
    """(Architecture, Setup, BatchShape, Plan) of a built trainer's steps on `rows` (one batch of them): the
    architecture of its model, the set-up from its arguments, the longest batch its collator forms from the rows.
    What the validation (tests/test_memory.py, benches/bench_memory_planner.py) compares with the measured peak."""
    from ..batching import mode_of
    from .shapes import trainer_shapes

    args = trainer.args
    model = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model
    arch = architecture_of(model)
    setup = setup_for(model, model_args, args)
    mode = mode or mode_of(args)
    mode = "padded" if mode == "length-grouped" else mode
    batch = longest_batch(
        trainer_shapes(trainer, rows), arch, args.per_device_train_batch_size, mode, getattr(args, "max_length", None)
    )
    return arch, setup, batch, plan_memory(arch, setup, batch)
