"""The Qwen3.5 family (Qwen3.5 / 3.6 / 3.8 checkpoints, `Qwen3_5ForConditionalGeneration`): what is its own.

Its processor class is Qwen3-VL's, told apart by the tokenizer; its chat template has a thinking switch
(`enable_thinking`, false unless the model config says true) and trains an empty think block before every answer
without reasoning; its Gated DeltaNet layers leak across the rows of a padding-free batch in transformers 5.23, so
padding-free / packing are refused, with the leak measured here. The registry-driven tests (collators, chat encoding,
configs, tiny models) cover the rest.
"""

import pytest
import torch
from PIL import Image

from vlm_recipes.data.chat_encoding import ChatEncoder
from vlm_recipes.data.collators import VisionChatCollator, conversation_of
from vlm_recipes.models import families
from vlm_recipes.models.families import (
    QWEN3_5,
    family_of,
    family_of_checkpoint,
    model_type_of,
    set_thinking,
    template_variables,
)

pytestmark = pytest.mark.unit

EMPTY_THINK = "<think>\n\n</think>\n\n"


def chat(question, answer=None, images=1):
    content = [{"type": "image"}] * images + [{"type": "text", "text": question}]
    messages = [{"role": "user", "content": content}]
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


def qwen3_vl_like(processor):
    """A Qwen3-VL processor as a Qwen3-VL checkpoint loads it: the same processor class around a `Qwen2Tokenizer`
    (the same tiny vocabulary, so that only the class differs)."""
    from transformers import Qwen2Tokenizer, Qwen3VLProcessor

    tok = processor.tokenizer
    qwen2 = Qwen2Tokenizer(
        vocab=tok.get_vocab(),
        merges=[tuple(m.split(" ")) for m in _merges(tok)],
        unk_token=None,
        eos_token=tok.eos_token,
        pad_token=tok.pad_token,
    )
    return Qwen3VLProcessor(
        image_processor=processor.image_processor, tokenizer=qwen2, video_processor=processor.video_processor
    )


def _merges(tokenizer) -> list[str]:
    import json

    merges = json.loads(tokenizer._tokenizer.to_str())["model"]["merges"]
    return [m if isinstance(m, str) else " ".join(m) for m in merges]


def test_the_tiny_processor_is_the_real_classes(processors):
    processor = processors["qwen3_5"]
    assert type(processor).__name__ == "Qwen3VLProcessor"
    assert type(processor.tokenizer).__name__ == "Qwen3_5Tokenizer"
    assert family_of(processor) is QWEN3_5
    # <think> / </think> are added tokens that are not special (decoding with skip_special_tokens keeps them).
    added = {t.content: t.special for t in processor.tokenizer.added_tokens_decoder.values()}
    assert added["<think>"] is False and added["</think>"] is False and added["<|im_end|>"] is True


def test_family_of_tells_qwen3_5_from_a_qwen3_vl_processor_of_the_same_class(processors, monkeypatch):
    """Qwen3-VL lists the same processor class: the real tiny Qwen3-VL processor and one built from Qwen3.5's are told
    apart whatever the order of the records; without a record that takes it, a Qwen3-VL processor is refused, never
    taken for Qwen3.5."""
    from vlm_recipes.models.families import QWEN3_VL
    from vlm_recipes.tiny import vlm as tiny

    ours = processors["qwen3_5"]
    theirs, look_alike = tiny.build_processor("qwen3_vl"), qwen3_vl_like(ours)
    assert type(theirs) is type(ours) is type(look_alike)
    for order in (families.FAMILIES, tuple(reversed(families.FAMILIES))):
        monkeypatch.setattr(families, "FAMILIES", order)
        assert family_of(ours) is QWEN3_5
        assert family_of(theirs) is QWEN3_VL and family_of(look_alike) is QWEN3_VL
    monkeypatch.setattr(families, "FAMILIES", tuple(f for f in order if f is not QWEN3_VL))
    with pytest.raises(ValueError, match="Cannot tell the model family of Qwen3VLProcessor"):
        family_of(theirs)


def test_the_vocabulary_tells_when_the_tokenizer_is_loaded_under_another_class():
    """A checkpoint whose tokenizer loads as a generic class: Qwen3.5's 248,077 tokens vs Qwen3-VL's 151,669."""

    class Sized:
        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

    processor_class = type("Qwen3VLProcessor", (), {})
    real_qwen3_5, real_qwen3_vl = processor_class(), processor_class()
    real_qwen3_5.tokenizer, real_qwen3_vl.tokenizer = Sized(248077), Sized(151669)
    assert QWEN3_5.claims_processor(real_qwen3_5)
    assert not QWEN3_5.claims_processor(real_qwen3_vl)


def test_saved_and_reloaded_the_processor_is_still_qwen3_5(processors, tmp_path):
    from transformers import AutoProcessor

    processors["qwen3_5"].save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded.tokenizer).__name__ == "Qwen3_5Tokenizer" and family_of(loaded) is QWEN3_5
    assert loaded.chat_template == processors["qwen3_5"].chat_template


def test_the_real_checkpoints_are_this_family():
    for hub_id in ("Qwen/Qwen3.5-0.8B", "Qwen/Qwen3.5-4B", "Qwen/Qwen3.6-35B-A3B", "Qwen/Qwen3.8-27B"):
        assert family_of_checkpoint(hub_id) is QWEN3_5 and model_type_of(hub_id) == "qwen3_5"
    assert model_type_of("tiny:qwen3_5-random") == "qwen3_5"


# -- the chat template: thinking switch, masks, control-token text -----------------------------------------------
def _prompt(processor, template=None):
    texts, _ = ChatEncoder(processor, template).render([chat("What color?")], add_generation_prompt=True)
    return texts[0]


@pytest.mark.parametrize("flavour", ["nothink", "think"])
def test_prompts_answer_directly_unless_enable_thinking(processors, flavour):
    """The 0.8B ships the NoThink template, the 4B the Think one (the default of enable_thinking flips): both render
    the non-thinking prompt by default here, and open a think block with enable_thinking true."""
    import copy

    from trl import chat_template_utils as ct

    processor = copy.copy(processors["qwen3_5"])
    template = {"nothink": ct.qwen3_5_nothink_chat_template, "think": ct.qwen3_5_think_chat_template}[flavour]
    # Left to the template's own default, the Think flavour opens a think block: what the setting protects from.
    raw = processor.apply_chat_template(
        chat("What color?"), chat_template=template, add_generation_prompt=True, tokenize=False
    )
    assert raw.endswith("assistant\n<think>\n" if flavour == "think" else "assistant\n" + EMPTY_THINK)
    assert template_variables(processor) == {"enable_thinking": False}
    assert _prompt(processor, template).endswith("<|im_start|>assistant\n" + EMPTY_THINK)
    set_thinking(processor, True)
    assert _prompt(processor, template).endswith("<|im_start|>assistant\n<think>\n")
    set_thinking(processor, None)  # unset: the family's default again
    assert _prompt(processor, template).endswith("<|im_start|>assistant\n" + EMPTY_THINK)


@pytest.mark.parametrize("family", ["qwen2_vl", "smolvlm", "llava"])
def test_enable_thinking_is_refused_for_families_without_it(processors, family):
    set_thinking(processors[family], None)  # unset: nothing to refuse
    assert template_variables(processors[family]) == {}
    for value in (True, False):
        with pytest.raises(ValueError, match=r"enable_thinking is a setting of Qwen3\.5 chat templates.*remove it"):
            set_thinking(processors[family], value)


def test_sft_trains_the_empty_think_block_the_answer_and_im_end(processors, red_image):
    """Rows without reasoning train the non-thinking form: the training template writes the empty think block inside
    the assistant's generation span, so it is trained with the answer; the prompt (image, question) never is. The
    generation prompt (thinking off) is exactly the training sequence's untrained start."""
    processor = processors["qwen3_5"]
    tok = processor.tokenizer
    batch = VisionChatCollator(processor)([{"images": [red_image], "messages": chat("What color is it?", "red")}])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    trained = ids[labels != -100]
    assert tok.decode(trained) == EMPTY_THINK + "red<|im_end|>"
    assert trained.tolist() == tok(EMPTY_THINK + "red<|im_end|>", add_special_tokens=False)["input_ids"]
    first = int((labels != -100).nonzero()[0])
    prompt_row = {"images": [red_image], "messages": chat("What color is it?")}
    prompt = ChatEncoder(processor)([conversation_of(prompt_row, 0)], add_generation_prompt=True)["input_ids"][0]
    # the generation prompt already holds the empty think block: the trained tokens after it are the answer
    assert tok.decode(prompt[first:]) == EMPTY_THINK and ids[: len(prompt)].tolist() == prompt.tolist()


def test_control_token_text_is_encoded_as_text(processors, red_image):
    processor = processors["qwen3_5"]
    tok = processor.tokenizer
    question, answer = "Say <|im_end|> then <think> or </think>", "<|im_start|>user <|vision_start|>"
    batch = VisionChatCollator(processor)([{"images": [red_image], "messages": chat(question, answer)}])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0]
    conv = tok.convert_tokens_to_ids
    # Only the template's own control tokens: two turns end (<|im_end|> twice), two start, one think block.
    assert ids.count(conv("<|im_end|>")) == 2 and ids.count(conv("<|im_start|>")) == 2
    assert ids.count(conv("<think>")) == 1 and ids.count(conv("</think>")) == 1
    assert ids.count(conv("<|vision_start|>")) == 1  # the image's
    assert tok.decode(batch["input_ids"][0][labels != -100]) == EMPTY_THINK + answer + "<|im_end|>"
    assert question in tok.decode(ids)


def test_an_answer_with_a_think_block_trains_the_reasoning(processors, red_image):
    """In an assistant message `<think>...</think>` is the template's own reasoning syntax (TRL's training template
    reads reasoning from `reasoning_content` or from it): a row with reasoning trains the thinking form. Text before
    a `</think>` in an answer is therefore reasoning, never answer text (Qwen3.5's template, not ours)."""
    processor = processors["qwen3_5"]
    tok = processor.tokenizer
    row = {"images": [red_image], "messages": chat("What color?", "<think>the shape is red</think>red")}
    batch = VisionChatCollator(processor)([row])
    trained = batch["input_ids"][0][batch["labels"][0] != -100]
    assert tok.decode(trained) == "<think>\nthe shape is red\n</think>\n\nred<|im_end|>"
    assert trained.tolist().count(tok.convert_tokens_to_ids("<think>")) == 1


# -- padding-free / packing: the measured leak and the refusal ---------------------------------------------------
@pytest.fixture(scope="module")
def leak_setup():
    """A random tiny Qwen3.5 (float32), its processor at varied image layouts, and the packing test's rows."""
    from test_packing import make_rows

    from vlm_recipes.models.families import set_image_resolution
    from vlm_recipes.tiny import vlm as tiny

    processor = tiny.build_processor("qwen3_5")
    set_image_resolution(processor, min_pixels=32 * 32, max_pixels=128 * 128)
    model = tiny.build_model("qwen3_5", processor.tokenizer, seed=3).float().eval()
    return model, processor, make_rows()


def _flattened_batch(processor, rows, monkeypatch):
    """The padding-free batch the collator would make if the family were not refused (its refusal bypassed)."""
    import vlm_recipes.data.packing as packing

    monkeypatch.setattr(packing, "check_family", lambda processor: None)
    return packing.PaddingFreeCollator(processor)(rows)


@pytest.mark.integration
def test_deltanet_layers_leak_across_rows_of_a_padding_free_batch(leak_setup, monkeypatch):
    """The measurement behind the refusal: each row's loss in one padding-free batch (exact per-row M-RoPE positions,
    no attention mask: transformers builds the block-diagonal mask for the full-attention layer) against the row run
    alone. The first row matches (nothing before it); every later one reads the rows before it through the Gated
    DeltaNet layers' recurrent state and conv window. Control: the same batch with only the DeltaNet layers run row
    by row matches within the packing test's tolerance, so the leak is theirs, not the positions' or the mask's."""
    from test_packing import losses_flattened, losses_one_at_a_time, row_lengths

    model, processor, rows = leak_setup
    lengths = row_lengths(processor, rows)
    batch = _flattened_batch(processor, rows, monkeypatch)
    with torch.no_grad():
        alone = losses_one_at_a_time(model, processor, rows)
        packed = losses_flattened(model, batch, lengths)
        leak = (packed - alone).abs()
        print(f"summed NLL per row, alone {alone.tolist()}, |padding-free - alone| {leak.tolist()}")
        assert leak[0] <= 1e-5
        assert (leak[1:] > 1e-2).all(), leak  # the packing test allows 1e-5
        layers = [layer.linear_attn for layer in model.model.language_model.layers if hasattr(layer, "linear_attn")]
        assert len(layers) == 3
        for layer in layers:
            forward = layer.forward

            def per_row(hidden_states, *args, _forward=forward, **kwargs):
                parts = torch.split(hidden_states, lengths, dim=1)
                return torch.cat([_forward(p, *args, **kwargs) for p in parts], 1)

            monkeypatch.setattr(layer, "forward", per_row)
        torch.testing.assert_close(losses_flattened(model, batch, lengths), alone, rtol=1e-5, atol=1e-5)


@pytest.mark.integration
def test_padding_free_and_packing_are_refused_before_the_model_loads(tmp_path):
    from helpers import run_recipe

    from vlm_recipes.paths import REPO_ROOT

    config = REPO_ROOT / "recipes/configs/tiny-qwen3.5/sft_lora.yaml"
    for flag in ("--padding_free", "--packing"):
        with pytest.raises(ValueError, match=r"not for the Qwen3\.5 family .*Gated DeltaNet.*flash-linear-attention"):
            run_recipe(
                "sft", config, tmp_path / "run", flag, "true", "--model_name_or_path", "tiny:qwen3_5-random",
            )  # fmt: skip
        assert not (tmp_path / "run").exists()


@pytest.mark.integration
def test_enable_thinking_in_a_config_is_refused_before_the_model_loads_for_another_family(tmp_path):
    from helpers import run_recipe

    from vlm_recipes.paths import REPO_ROOT

    config = REPO_ROOT / "recipes/configs/tiny-qwen2-vl/sft_lora.yaml"
    with pytest.raises(ValueError, match="enable_thinking is a setting of Qwen3.5"):
        run_recipe(
            "sft", config, tmp_path / "run", "--enable_thinking", "false", "--model_name_or_path",
            "tiny:qwen2_vl-random",
        )  # fmt: skip
    assert not (tmp_path / "run").exists()


# -- the tiny model: the real layer pattern, and it learns ------------------------------------------------------
@pytest.mark.integration
def test_the_tiny_model_has_the_real_layer_pattern(leak_setup):
    model, processor, _ = leak_setup
    text = model.config.text_config
    assert type(model).__name__ == "Qwen3_5ForConditionalGeneration"
    assert text.layer_types == ["linear_attention"] * 3 + ["full_attention"]
    assert text.rope_parameters["partial_rotary_factor"] == 0.25
    layers = model.model.language_model.layers
    assert [hasattr(layer, "linear_attn") for layer in layers] == [True, True, True, False]
    attention = layers[3].self_attn
    # gated attention: the query projection also yields the output gate (twice heads x head_dim)
    assert attention.q_proj.out_features == 2 * text.num_attention_heads * text.head_dim
    assert layers[0].linear_attn.conv1d.kernel_size == (4,)


@pytest.mark.integration
def test_a_few_sft_steps_on_the_random_tiny_model_lower_the_loss(leak_setup):
    """The default run's learning check of this family (its base pre-training is for the slow proofs): 30 steps of
    full fine-tuning on the colour/shape questions, batch 8, from a random tiny Qwen3.5."""
    from vlm_recipes.data import synthetic
    from vlm_recipes.tiny import vlm as tiny

    _, processor, _ = leak_setup
    model = tiny.build_model("qwen3_5", processor.tokenizer, seed=0).train()
    data = synthetic.make_dataset("color_shape", num_samples=240, seed=7, image_size=64)
    collator = VisionChatCollator(processor)
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for step in range(30):
        loss = model(**collator([data[i] for i in range(step * 8, step * 8 + 8)])).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"loss: first 5 steps {first:.3f}, last 5 {last:.3f}")
    assert last < 0.5 * first, losses


# -- real size ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "max_pixels, expected",
    [(524288, {(640, 427): 260, (640, 200): 120, (1280, 960): 494, (64, 64): 64}), (262144, {(640, 427): 247})],
)
def test_real_size_image_tokens_at_the_configs_settings(max_pixels, expected):
    """Qwen3.5-0.8B's processor settings as the SFT (max_pixels 524,288) and GRPO (262,144) configs set them: one
    token per 32x32 pixels of the resized image, at least 64 (min_pixels 65,536); the figures in docs/families.md."""
    from vlm_recipes.models.families import set_image_resolution
    from vlm_recipes.tiny.real_size import build_processor

    processor = build_processor("qwen3.5-0.8b")
    set_image_resolution(processor, min_pixels=65536, max_pixels=max_pixels)
    for size, tokens in expected.items():
        out = processor(text=[processor.image_token], images=[Image.new("RGB", size)], return_tensors="pt")
        assert (out["input_ids"][0] == processor.image_token_id).sum() == tokens, size
