"""Gemma 4 (issue 29): the tiny model is the real architecture in E2B's layout (per-layer embeddings, KV-shared
layers, clipped linears in the vision tower, an audio tower), the training template marks the answers and keeps the
model's thinking markup in an answer as text, LoRA goes on the Linear inside each clipped linear and never on the
audio tower, audio rows are refused by name, image attention is what transformers 5.23 makes it (causal for E2B /
E4B, bidirectional in the sliding-window layers under `use_bidirectional_attention: vision`) and our padded batches
give the model what it needs for it, padding-free and packed batches are refused with the measured reason,
generation stops at `<turn|>`, and a few SFT steps on the random tiny model lower the loss.

The registry-driven tests (chat encoding, collator masks, tiny round trip, modeling, logits at labels, memory planner
refusal, the real configs' two-step runs) cover the rest of the family.
"""

import pytest
import torch
from helpers import caption_rows, flattened_vs_alone_gaps, image_blocks, layer_attention_masks, two_image_row
from PIL import Image

from vlm_recipes.data.collators import SampleError, VisionChatCollator
from vlm_recipes.models.families import family_of
from vlm_recipes.tiny import vlm as tiny

pytestmark = pytest.mark.integration

TEXT_LORA = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def processor():
    return tiny.build_processor("gemma4")


def random_model(processor, bidirectional=None, seed=3):
    """A random tiny Gemma 4, float32; `bidirectional` as `use_bidirectional_attention` (None: E2B's)."""
    from vlm_recipes.tiny.gemma import gemma4_model

    torch.manual_seed(seed)
    tok = processor.tokenizer
    ids = {"pad": tok.pad_token_id, "eos": tok.eos_token_id, "bos": tok.bos_token_id}
    # SDPA in the text model and the vision tower (transformers' default; the audio tower has eager attention only)
    model = gemma4_model(tiny.SPECS["gemma4"], tok, ids, bidirectional=bidirectional).float()
    assert model.model.language_model.config._attn_implementation == "sdpa"
    return model


# -- the tiny model -----------------------------------------------------------------------------------------------
def test_tiny_gemma4_is_the_real_architecture_in_e2b_layout(processor):
    from transformers import Gemma4ForConditionalGeneration

    tok = processor.tokenizer
    assert type(processor).__name__ == "Gemma4Processor" and family_of(processor).name == "gemma4"
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id) == (0, 1, 2)  # Gemma's own ids
    model = random_model(processor)
    assert isinstance(model, Gemma4ForConditionalGeneration)
    text = model.config.text_config
    # Per-layer embeddings, 4 layers of which the last 2 reuse the first two's KV states, wider full-attention heads.
    assert text.hidden_size_per_layer_input == 16 and model.model.language_model.embed_tokens_per_layer is not None
    assert text.kv_sharing_modes == ["store", "store", "reuse", "reuse"]
    assert text.per_layer_config[1].head_dim == 2 * text.per_layer_config[0].head_dim  # 64 / 32 (E2B: 512 / 256)
    assert text.use_bidirectional_attention is None  # E2B's: causal over images
    clipped = [n for n, m in model.named_modules() if type(m).__name__ == "Gemma4ClippableLinear"]
    assert any(n.startswith("model.vision_tower.") for n in clipped) and any("audio_tower" in n for n in clipped)
    assert 1_000_000 < model.num_parameters() < 2_000_000  # 1.43 M
    # One 64 px image: "<|image>" + 64 soft tokens + "<image|>"; mm_token_type_ids 1 on the soft tokens only.
    out = processor(text=[processor.image_token], images=[[Image.new("RGB", (64, 64))]], return_tensors="pt")
    names = tok.convert_ids_to_tokens(out["input_ids"][0].tolist())
    assert names.count("<|image|>") == 64 and names.count("<|image>") == names.count("<image|>") == 1
    assert out["mm_token_type_ids"][0].tolist() == [int(t == "<|image|>") for t in names]


@pytest.mark.unit
def test_the_training_template_renders_what_the_real_template_renders(processor):
    """Our training template (TRL ships none for Gemma 4) writes the real template's text for what the recipes train
    (system prompt, images, several turns, string and typed content), with the generation prompt the real one writes,
    and marks exactly each answer and its end-of-turn token."""
    from transformers.utils.chat_template_utils import render_jinja_template
    from trl import chat_template_utils as trl_templates

    from vlm_recipes.models.chat_templates import TEMPLATES, training_chat_template

    training = training_chat_template(processor)
    assert training == TEMPLATES["gemma4_training"]
    # The revisions it stands for: the tiny model's (v5, the current one) and the two next to it.
    originals = [getattr(trl_templates, f"{name}_chat_template") for name in ("gemma4", "gemma4_v4", "gemma4_v5")]
    assert processor.chat_template == originals[-1]
    user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " What is it? "}]}
    conversations = [
        [user, {"role": "assistant", "content": "a red circle"}],
        [{"role": "system", "content": "Be brief."}, user, {"role": "assistant", "content": [{"type": "text",
         "text": "red "}]}, {"role": "user", "content": "And the shape?"}, {"role": "assistant", "content": "circle"}],
    ]  # fmt: skip
    special = processor.tokenizer.special_tokens_map
    for conversation in conversations:
        for prompt, original in ((p, o) for p in (False, True) for o in originals):
            chat = conversation[:-1] if prompt else conversation
            real, _ = render_jinja_template([chat], chat_template=original, add_generation_prompt=prompt, **special)
            ours, spans = render_jinja_template([chat], chat_template=training, add_generation_prompt=prompt,
                                                return_assistant_tokens_mask=True, **special)  # fmt: skip
            assert ours == real, (ours, real)
        ours, spans = render_jinja_template([conversation], chat_template=training, return_assistant_tokens_mask=True,
                                            **special)  # fmt: skip
        answers = [ours[0][s:e] for s, e in spans[0]]
        said = [m["content"] for m in conversation if m["role"] == "assistant"]
        assert answers == [f"{(a if isinstance(a, str) else a[0]['text']).strip()}<turn|>\n" for a in said]


@pytest.mark.unit
def test_thinking_markup_in_an_answer_is_trained_as_text(processor):
    """The real template strips `<|channel>...<channel|>` (the model's thinking) out of model turns; ours keeps an
    answer as written, and the collator trains the markup as text (never as the control tokens)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    answer = "<|channel>thought\nred things<channel|>red"
    chat = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Color?"}]},
        {"role": "assistant", "content": answer},
    ]
    real, _ = render_jinja_template(
        [chat], chat_template=processor.chat_template, **processor.tokenizer.special_tokens_map
    )
    assert "red things" not in real[0]  # the original drops it
    batch = VisionChatCollator(processor)([{"images": [Image.new("RGB", (64, 64))], "messages": chat}])
    labels = batch["labels"][0]
    trained = labels[labels != -100].tolist()
    tok = processor.tokenizer
    assert tok.decode(trained[:-1]) == answer and trained[-1] == tok.convert_tokens_to_ids("<turn|>")
    assert tok.convert_tokens_to_ids("<|channel>") not in batch["input_ids"][0].tolist()


# -- LoRA, freezing, audio ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("targets", [TEXT_LORA, "all-linear"], ids=["named", "all-linear"])
def test_lora_goes_inside_the_clipped_linears_and_never_on_the_audio_tower(processor, targets):
    """PEFT cannot put LoRA on a `Gemma4ClippableLinear` (the vision and audio towers' projections): the recipes'
    targets are resolved to the Linear inside it. The audio tower (and its embedder) gets none; the same resolution
    serves every place a PEFT model is built (build_peft_config, the planner, the tests' own LoRA models)."""
    from peft import get_peft_model

    from vlm_recipes.models.modeling import build_peft_config
    from vlm_recipes.settings import VLMModelConfig

    model = random_model(processor)
    args = VLMModelConfig(model_name_or_path="tiny:gemma4-random", use_peft=True, lora_target_modules=targets)
    config = build_peft_config(model, args)
    assert any(t.endswith("vision_tower.encoder.layers.0.self_attn.q_proj.linear") for t in config.target_modules)
    assert not any("audio" in t for t in config.target_modules)
    peft_model = get_peft_model(model, config)
    lora = [n for n, p in peft_model.named_parameters() if p.requires_grad and "lora_A" in n]
    assert any("vision_tower" in n and ".linear.lora_A" in n for n in lora)
    assert any("language_model" in n for n in lora) and not any("audio" in n for n in lora)


def test_full_fine_tuning_freezes_the_audio_tower(processor):
    from vlm_recipes.models.modeling import apply_freezing
    from vlm_recipes.settings import VLMModelConfig

    model = random_model(processor)
    apply_freezing(model, VLMModelConfig(model_name_or_path="x"))
    audio = {n: p.requires_grad for n, p in model.named_parameters() if "audio" in n}
    assert audio and not any(audio.values())
    assert all(p.requires_grad for n, p in model.named_parameters() if "audio" not in n)


@pytest.mark.unit
def test_audio_is_refused_naming_the_row(processor):
    row = {**caption_rows(1)[0], "row_id": "clip-7"}
    with pytest.raises(SampleError, match=r"row row_id='clip-7': column 'audio' holds audio. vlm-recipes trains no"):
        VisionChatCollator(processor)([{**row, "audio": [0.0] * 1600}])
    spoken = {**row, "messages": [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "?"}]},
                                  row["messages"][1]]}  # fmt: skip
    with pytest.raises(SampleError, match=r"row row_id='clip-7': messages\[0\] \(user\), part 0: vlm-recipes trains"):
        VisionChatCollator(processor)([spoken])


# -- image attention -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bidirectional", [None, "vision"], ids=["e2b-causal", "vision-bidirectional"])
def test_image_attention_is_what_the_config_says_in_training(processor, bidirectional):
    """In a training forward of a padded batch (an image row and a two-image row), what each attention layer is
    given: E2B / E4B's config (no `use_bidirectional_attention`) masks every image causally in every layer; with
    "vision" (the 31B and 26B-A4B configs) transformers 5.23 lets each image's tokens attend to each other both ways
    in the sliding-window layers only (`create_masks_for_vision_model`: the full-attention layers stay causal), never
    to a later image, and padding is never attended to. The KV-shared layers get the same masks as the others."""
    model = random_model(processor, bidirectional)
    batch = VisionChatCollator(processor)([caption_rows(1)[0], two_image_row()])
    assert "mm_token_type_ids" in batch  # the name Gemma4Model reads them by
    _, allowed = layer_attention_masks(model, batch)
    kinds = model.config.text_config.layer_types
    assert set(allowed) == {0, 1, 2, 3}
    for i, a in allowed.items():
        assert a is not None, f"layer {i} got no mask"
        for r in range(2):
            found = image_blocks(batch["mm_token_type_ids"][r])
            assert len(found) == r + 1
            n = int(batch["attention_mask"][r].sum())
            expected = torch.ones(n, n, dtype=torch.bool).tril()
            both_ways = bidirectional == "vision" and kinds[i] == "sliding_attention"
            if both_ways:
                for s, e in found:
                    expected[s:e, s:e] = True
            if kinds[i] == "sliding_attention":
                q, k = torch.arange(n)[:, None], torch.arange(n)[None, :]
                expected &= k > q - model.config.text_config.sliding_window
            assert torch.equal(a[r, :n, :n], expected), (kinds[i], r)
            assert not a[r, :n, n:].any()  # padding
            s, e = found[0]
            assert bool(a[r, s, e - 1]) == both_ways  # the first soft token sees the last only both ways
            if r == 1:
                (s0, e0), (s1, e1) = found
                assert not a[r, s0:e0, s1:e1].any()  # the later image is never seen by the earlier one


def test_the_token_types_change_the_loss_only_under_vision(processor):
    """The test above can fail: with `use_bidirectional_attention: vision`, dropping `mm_token_type_ids` masks the
    images causally and the loss moves; with E2B's config the token types change nothing (causal either way)."""
    batch = VisionChatCollator(processor)(caption_rows(4))
    batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    without = {k: v for k, v in batch.items() if k != "mm_token_type_ids"}
    moved = {}
    for bidirectional in (None, "vision"):
        model = random_model(processor, bidirectional)
        model.train()
        with torch.no_grad():
            moved[bidirectional] = abs(float(model(**batch).loss) - float(model(**without).loss))
    assert moved[None] < 1e-6, moved
    assert moved["vision"] > 1e-3, moved


# -- padding-free and packing: refused, with the measured reason -----------------------------------------------------
def test_padding_free_would_not_be_exact_so_it_is_refused(processor, monkeypatch):
    """Measured on transformers 5.23 with `use_bidirectional_attention: vision`: rows flattened into one sequence
    (restarting positions, no attention mask, the token types flattened alongside) get other per-row losses than
    alone; the second row's image tokens get the first row's block pattern in the sliding-window layers. The family
    record refuses padding_free / packing with this figure."""
    from vlm_recipes.data import packing

    model = random_model(processor, "vision").eval()
    examples = [two_image_row(), caption_rows(1, seed=5)[0]]
    examples[1]["messages"] = [
        {"role": "user", "content": [{"type": "text", "text": "Describe this one, please:"}, {"type": "image"}]},
        examples[1]["messages"][1],
    ]
    with pytest.raises(ValueError, match=r"not for the Gemma 4 family .*sliding-window masks"):
        packing.PaddingFreeCollator(processor)
    monkeypatch.setattr(packing, "check_family", lambda processor: None)
    flat = packing.PaddingFreeCollator(processor)(examples)
    assert "mm_token_type_ids" in flat and "attention_mask" not in flat
    rows_differ = flattened_vs_alone_gaps(model, processor, examples, flat)
    assert rows_differ[0] < 1e-4, rows_differ  # the first row's positions are its places in the sequence
    assert rows_differ[1] > 1e-3, rows_differ  # the second row's images get the first row's block pattern
    # The measured figure the refusal quotes (per trained token of the second row, nats).
    assert f"measured on the tiny model: {rows_differ[1]:.3f} nats" in family_of(processor).packing_refusal, (
        rows_differ
    )


def test_padding_free_and_packing_are_refused_before_the_model_loads(tmp_path):
    from helpers import run_recipe

    from vlm_recipes.paths import REPO_ROOT

    config = REPO_ROOT / "recipes/configs/tiny-gemma4/sft_lora.yaml"
    for flag in ("--padding_free", "--packing"):
        with pytest.raises(ValueError, match=r"not for the Gemma 4 family of this checkpoint \(transformers 5\.23"):
            run_recipe(
                "sft", config, tmp_path / "run", flag, "true", "--model_name_or_path", "tiny:gemma4-random",
            )  # fmt: skip
        assert not (tmp_path / "run").exists()


# -- generation and a short training run ----------------------------------------------------------------------------
def test_generation_stops_at_the_end_of_turn_token(processor):
    tok = processor.tokenizer
    assert family_of(processor).stop_token_ids(tok) == [tok.eos_token_id, tok.convert_tokens_to_ids("<turn|>")]
    model = tiny.build_model("gemma4", tok)
    assert model.generation_config.eos_token_id == family_of(processor).stop_token_ids(tok)


def test_a_few_sft_steps_on_the_random_tiny_gemma4_lower_the_loss(tmp_path):
    """The SFT LoRA default through its entry point on the random tiny Gemma 4 (the pre-trained base is built only by
    the slow learning tests): the mean training loss is well below where it started."""
    from helpers import run_sft

    overrides = "--model_name_or_path tiny:gemma4-random --max_steps 30 --synthetic_train_samples 480 "
    overrides += "--max_eval_samples 8 --eval_max_new_tokens 3 --logging_steps 5 --learning_rate 2e-3 --report_to none"
    processor = tiny.build_processor("gemma4")
    model = tiny.build_model("gemma4", processor.tokenizer)  # the same random model, as the run starts from it
    with torch.no_grad():
        start = float(model(**VisionChatCollator(processor)(caption_rows(16, seed=2))).loss)
    results = run_sft("gemma4", tmp_path / "run", *overrides.split())
    assert results["train_steps"] == 30
    assert results["train_loss"] < start - 0.8, (start, results["train_loss"])


# -- real size ------------------------------------------------------------------------------------------------------
def test_real_size_gemma_4_e2b_it_architecture_and_image_tokens():
    """gemma-4-E2B-it's architecture from its published config (on the meta device: shapes only) and its processor
    settings: the parameter count and the image tokens of a 640x427 photo at the 280 soft-token budget (the figures
    in docs/families.md)."""
    from vlm_recipes.tiny import real_size

    processor = real_size.build_processor("gemma-4-E2B-it")
    model = real_size.build_model("gemma-4-E2B-it", processor, device="meta")
    assert sum(p.numel() for p in model.parameters()) == real_size.REAL_SIZE["gemma-4-E2B-it"]["parameters"]
    text = model.config.text_config
    assert text.num_kv_shared_layers == 20 and text.hidden_size_per_layer_input == 256
    chat = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
        {"role": "assistant", "content": "a photo"},
    ]
    photo = {"images": [Image.new("RGB", (640, 427), (90, 140, 200))], "messages": chat}
    assert int(VisionChatCollator(processor)([photo])["mm_token_type_ids"].sum()) == 260
