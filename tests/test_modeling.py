"""Freezing, LoRA targets, per-part learning rates and QLoRA, on the tiny random models (fast, offline)."""

import pytest
import torch
from peft import get_peft_model
from transformers import AutoModelForImageTextToText

from vlm_recipes.data import synthetic
from vlm_recipes.data.collators import VisionChatCollator
from vlm_recipes.models.families import family_of
from vlm_recipes.models.modeling import apply_freezing, build_peft_config, load_model, parameter_groups
from vlm_recipes.settings import SFTConfig, VLMModelConfig
from vlm_recipes.tiny import vlm as tiny
from vlm_recipes.training.trainers import VLMSFTTrainer

pytestmark = pytest.mark.integration

TARGETS = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "out_proj",
    "fc1",
    "fc2",
    "qkv",
    "attn.proj",
]
PROJECTOR = {"smolvlm": "connector", "qwen2_vl": "merger", "llava": "multi_modal_projector"}
PROJECTOR["qwen2_5_vl"] = PROJECTOR["qwen2_vl"]
PROJECTOR["qwen3_vl"] = "merger"
PROJECTOR["qwen3_5"] = "merger"
PROJECTOR["llava_onevision"] = PROJECTOR["llava_next"] = PROJECTOR["gemma3"] = PROJECTOR["llava"]
PROJECTOR["gemma4"] = "embed_vision"
FAMILIES = sorted(PROJECTOR)


@pytest.fixture(scope="module")
def paths():
    return {family: tiny.build(f"tiny:{family}-random") for family in tiny.SPECS}


def model_args(family, **kw):
    return VLMModelConfig(
        model_name_or_path=f"tiny:{family}-random",
        use_peft=True,
        lora_target_modules=TARGETS,
        lora_modules_to_save=[PROJECTOR[family]],
        **kw,
    )


def lora_parts(peft_model):
    family = family_of(peft_model.base_model.model)
    parts = {}
    for name, param in peft_model.named_parameters():
        if param.requires_grad:
            kind = "lora" if "lora_" in name else "full"
            parts.setdefault(family.part_of(name), set()).add(kind)
    return parts


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_follows_the_freeze_options(paths, family):
    model = AutoModelForImageTextToText.from_pretrained(paths[family])
    everything = lora_parts(get_peft_model(model, build_peft_config(model, model_args(family))))
    assert everything == {"vision_tower": {"lora"}, "language_model": {"lora"}, "projector": {"full"}}

    model = AutoModelForImageTextToText.from_pretrained(paths[family])
    frozen = lora_parts(
        get_peft_model(
            model, build_peft_config(model, model_args(family, freeze_vision_tower=True, freeze_projector=True))
        )
    )
    assert frozen == {"language_model": {"lora"}}


@pytest.mark.parametrize("family", FAMILIES)
def test_full_fine_tuning_freezes_the_chosen_parts(paths, family):
    model = AutoModelForImageTextToText.from_pretrained(paths[family])
    apply_freezing(model, VLMModelConfig(model_name_or_path="x", freeze_vision_tower=True))
    family_ = family_of(model)
    trainable = {family_.part_of(n) for n, p in model.named_parameters() if p.requires_grad}
    # Parts no recipe trains (Gemma 4's audio tower, `Family.untrained_modules`) are frozen whatever the config says.
    untrained = [p.requires_grad for n, p in model.named_parameters() if family_.untrained(n)]
    frozen = {
        family_.part_of(n) for n, p in model.named_parameters() if not p.requires_grad and not family_.untrained(n)
    }
    assert trainable == {"projector", "language_model"} and frozen == {"vision_tower"} and not any(untrained)


@pytest.mark.parametrize("family", FAMILIES)
def test_parts_are_told_apart(paths, family):
    model = AutoModelForImageTextToText.from_pretrained(paths[family])
    fam = family_of(model)
    counts = {}
    for name, p in model.named_parameters():
        counts[fam.part_of(name)] = counts.get(fam.part_of(name), 0) + p.numel()
    assert set(counts) == {"vision_tower", "projector", "language_model"}
    qwens = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_5")
    projector = "visual.merger" if family in qwens else PROJECTOR[family]
    expected = sum(p.numel() for p in model.model.get_submodule(projector).parameters())
    if family in ("llava_onevision", "llava_next"):
        expected += model.model.image_newline.numel()  # the learned separator after each row of anyres features
    if family == "qwen3_vl":  # DeepStack's mergers feed vision features into the first LLM layers: projector too
        expected += sum(p.numel() for p in model.model.visual.deepstack_merger_list.parameters())
    assert counts["projector"] == expected


def test_separate_learning_rates_reach_the_optimizer(paths, tmp_path):
    model = AutoModelForImageTextToText.from_pretrained(paths["qwen2_vl"])
    args = SFTConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        learning_rate=1e-3,
        vision_tower_learning_rate=1e-5,
        projector_learning_rate=1e-4,
        weight_decay=0.1,
        report_to="none",
        max_steps=1,
    )
    groups = parameter_groups(
        model,
        family_of(model),
        1e-3,
        0.1,
        {n for n, _ in model.named_parameters() if "bias" not in n and "norm" not in n},
        1e-5,
        1e-4,
    )
    assert {g["part"]: g["lr"] for g in groups} == {"vision_tower": 1e-5, "projector": 1e-4, "language_model": 1e-3}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))

    args.dataset_kwargs = {"skip_prepare_dataset": True}
    processor = tiny.build_processor("qwen2_vl")
    trainer = VLMSFTTrainer(
        model=model,
        args=args,
        train_dataset=synthetic.make_dataset("color", 2),
        data_collator=VisionChatCollator(processor),
        processing_class=processor,
    )
    optimizer = trainer.create_optimizer()
    lrs = {g["part"]: g["lr"] for g in optimizer.param_groups}
    assert lrs == {"vision_tower": 1e-5, "projector": 1e-4, "language_model": 1e-3}
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.0, 0.1}


def test_qlora_loads_4bit_on_cpu(paths):
    args = VLMModelConfig(
        model_name_or_path="tiny:smolvlm-random",
        load_in_4bit=True,
        use_peft=True,
        bnb_4bit_quant_type="nf4",
        lora_target_modules=["q_proj", "v_proj"],
        lora_modules_to_save=["connector"],
    )
    model = load_model(args, use_cpu=True)
    import bitsandbytes as bnb

    quantised = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert any("text_model" in n and "q_proj" in n for n in quantised)
    peft_model = get_peft_model(model, build_peft_config(model, args))
    # The connector is trained in full, so it must stay a float layer; everything else trainable is LoRA.
    assert not any("connector" in n for n in quantised)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("connector" in n for n in trainable)
    assert all("lora_" in n or "connector" in n for n in trainable)
    with torch.no_grad():
        out = peft_model(input_ids=torch.tensor([[1, 5, 9, 2]]))
    assert torch.isfinite(out.logits).all()


QLORA_CONFIGS = {
    "smolvlm": "recipes/configs/smolvlm-256m-instruct/sft_qlora.yaml",
    "qwen2_vl": "recipes/configs/qwen2-vl-2b-instruct/sft_qlora.yaml",
    "llava": "recipes/configs/llava-1.5-7b-hf/sft_qlora.yaml",
    "qwen2_5_vl": "recipes/configs/qwen2.5-vl-3b-instruct/sft_qlora.yaml",
    "gemma3": "recipes/configs/gemma-3-4b-it/sft_qlora.yaml",
    "gemma4": "recipes/configs/gemma-4-31B-it/sft_qlora.yaml",
}


@pytest.mark.parametrize("family", sorted(QLORA_CONFIGS))
def test_qlora_configs_keep_the_vision_tower_projector_and_head_in_the_compute_dtype(paths, family):
    """A real QLoRA config on the tiny model of its family: the language model is 4-bit NF4; the vision tower, the
    projector and the output head stay bf16 (the config's dtype) unless quantize_vision_tower is set."""
    import bitsandbytes as bnb

    from vlm_recipes.launch import load_config
    from vlm_recipes.paths import REPO_ROOT

    config = REPO_ROOT / QLORA_CONFIGS[family]
    for quantize_vision in (False, True):
        overrides = {"model_name_or_path": f"tiny:{family}-random", "use_cpu": "true"}
        _, _, args = load_config("sft", config, quantize_vision_tower=str(quantize_vision).lower(), **overrides)
        assert args.load_in_4bit and args.dtype == "bfloat16"
        model = load_model(args, use_cpu=True)
        fam = family_of(model)
        linear = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
        four_bit = {
            fam.part_of(n + ".") if n != "lm_head" else "head"
            for n, m in linear.items()
            if isinstance(m, bnb.nn.Linear4bit)
        }
        full = {
            fam.part_of(n + ".") if n != "lm_head" else "head"
            for n, m in linear.items()
            if not isinstance(m, bnb.nn.Linear4bit)
        }
        assert four_bit == ({"language_model", "vision_tower"} if quantize_vision else {"language_model"})
        # Gemma 3's projector is a norm and a weight matrix (`mm_input_projection_weight`), no Linear: never 4-bit.
        projector = {"projector"} if any(fam.part_of(n + ".") == "projector" for n in linear) else set()
        assert full == ({"head"} | projector if quantize_vision else {"vision_tower", "head"} | projector)
        kept = [m.weight for n, m in linear.items() if not isinstance(m, bnb.nn.Linear4bit)]
        assert {w.dtype for w in kept} == {torch.bfloat16}


@pytest.mark.unit
def test_quantize_vision_tower_needs_quantized_loading():
    with pytest.raises(ValueError, match="quantize_vision_tower only applies to quantized"):
        VLMModelConfig(model_name_or_path="tiny:smolvlm", quantize_vision_tower=True)
