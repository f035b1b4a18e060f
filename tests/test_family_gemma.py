"""Gemma 3 (issue 29): the tiny model is the real architecture, our collators give the model the token type ids its
bidirectional image attention needs (and the attention layers really get that mask in training), padding-free and
packed batches are refused with the measured reason, generation stops at the end-of-turn token, and a few SFT steps
on the random tiny model lower the loss.

The registry-driven tests (chat encoding, collator masks, tiny round trip, modeling, the real configs' two-step runs)
cover the rest of the family; its learning proofs (SFT, DPO, MPO, GRPO on the pre-trained tiny base) are `-m slow`.
"""

import pytest
import torch
from helpers import caption_rows, flattened_vs_alone_gaps, image_blocks, layer_attention_masks, two_image_row
from PIL import Image

from vlm_recipes.data.collators import PromptCollator, VisionChatCollator
from vlm_recipes.models.families import FAMILIES, family_of, set_image_resolution
from vlm_recipes.tiny import vlm as tiny

pytestmark = pytest.mark.integration

# Query/key scale: at the initial scale attention is near uniform and masks barely matter. Gemma 3 RMS-normalizes
# queries and keys (q_norm / k_norm, weight w scaling by 1 + w), so the norms' scale is raised, not the projections'.
SHARPEN = 6.0


@pytest.fixture(scope="module")
def processor():
    return tiny.build_processor("gemma3")


def sharp_model(processor, attn="sdpa"):
    """A random tiny Gemma 3 whose attention depends on the mask (queries and keys scaled up), float32."""
    model = tiny.build_model("gemma3", processor.tokenizer, seed=3).float()
    model.set_attn_implementation(attn)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "language_model" in name and name.endswith(("q_norm.weight", "k_norm.weight")):
                param.add_(SHARPEN - 1.0)  # 1 + w: from 1 to SHARPEN
    return model


def attention_masks(model, batch):
    """The masks each attention layer is given in training (helpers.layer_attention_masks), every layer with one."""
    out, allowed = layer_attention_masks(model, batch)
    for i, mask in allowed.items():
        assert mask is not None, f"layer {i} got no mask (SDPA's is_causal: no bidirectional image attention)"
    return out, allowed


@pytest.mark.unit
def test_tiny_gemma3_is_the_real_architecture(processor):
    from transformers import Gemma3Config

    from vlm_recipes.tiny.gemma import gemma3_config

    tok = processor.tokenizer
    assert type(processor).__name__ == "Gemma3Processor"
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id) == (0, 1, 2)  # Gemma's own ids
    assert tok("a")["input_ids"][0] == tok.bos_token_id  # Gemma's tokenizer adds <bos> in front
    ids = {"pad": 0, "eos": 1, "bos": 2}
    config = gemma3_config(tiny.SPECS["gemma3"], tok, ids)
    assert isinstance(config, Gemma3Config) and config.mm_tokens_per_image == 16
    assert config.text_config.layer_types == ["sliding_attention", "full_attention"]
    assert config.vision_config.model_type == "siglip_vision_model"
    # One 64 px image: "\n\n<start_of_image>" + 16 soft tokens + "<end_of_image>\n\n"; token_type_ids 1 on the soft
    # tokens only.
    out = processor(text=[processor.image_token], images=[[Image.new("RGB", (64, 64))]], return_tensors="pt")
    names = tok.convert_ids_to_tokens(out["input_ids"][0].tolist())
    assert names.count("<image_soft_token>") == 16 and names.count("<start_of_image>") == 1
    assert out["token_type_ids"][0].tolist() == [int(t == "<image_soft_token>") for t in names]
    assert family_of(processor).name == "gemma3"


@pytest.mark.unit
def test_pan_and_scan_is_off_by_default_and_image_splitting_turns_it_on(processor):
    """As on the real processor, a long image is one image block unless pan-and-scan is asked for (`image_splitting`,
    the family's one resolution control); then the crops follow the whole image, each its own bidirectional block."""
    wide = {"images": [Image.new("RGB", (160, 48), (40, 200, 60))], "messages": two_image_row()["messages"]}
    wide["messages"] = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
        {"role": "assistant", "content": "a strip"},
    ]
    plain = VisionChatCollator(processor)([wide])
    assert plain["pixel_values"].shape[0] == 1 and len(image_blocks(plain["token_type_ids"][0])) == 1
    split = tiny.build_processor("gemma3")
    set_image_resolution(split, image_splitting=True)
    batch = VisionChatCollator(split)([wide])
    crops = batch["pixel_values"].shape[0] - 1
    assert crops >= 2 and len(image_blocks(batch["token_type_ids"][0])) == crops + 1
    assert all(e - s == 16 for s, e in image_blocks(batch["token_type_ids"][0]))
    with pytest.raises(ValueError, match="min_pixels.*not Gemma 3's.*image_splitting"):
        set_image_resolution(split, min_pixels=1024)


# -- token type ids and the bidirectional image mask -----------------------------------------------------------------
@pytest.mark.unit
def test_collators_give_token_type_ids_as_the_processor_does(processor):
    """Our collators render and tokenize apart from the processor (chat_encoding.py); the ids and the token type ids
    must still be the processor's, under the name Gemma3ForConditionalGeneration reads (`token_type_ids`; under
    `mm_token_type_ids` the model ignores them and trains with a causal mask over the image)."""
    examples = caption_rows(2)
    batch = VisionChatCollator(processor)(examples)
    assert "token_type_ids" in batch and "mm_token_type_ids" not in batch
    for i, example in enumerate(examples):
        images = iter(example["images"])
        conversation = [
            {
                "role": m["role"],
                "content": [
                    {"type": "image", "image": next(images)} if p["type"] == "image" else p for p in m["content"]
                ],
            }
            for m in example["messages"]
        ]
        from vlm_recipes.models.chat_templates import training_chat_template

        own = processor.apply_chat_template(
            conversation, chat_template=training_chat_template(processor), tokenize=True, return_dict=True
        )
        n = int(batch["attention_mask"][i].sum())
        assert batch["input_ids"][i, :n].tolist() == list(own["input_ids"][0])
        assert batch["token_type_ids"][i, :n].tolist() == list(own["token_type_ids"][0])
        assert not batch["token_type_ids"][i, n:].any()
    cut = VisionChatCollator(processor, max_length=30, assistant_only=False)(examples)  # text cut, images whole
    assert cut["token_type_ids"].shape == cut["input_ids"].shape == (2, 30)
    assert torch.equal(cut["token_type_ids"], batch["token_type_ids"][:, :30])
    prompts = PromptCollator(processor)(examples)  # left-padded for generation: the types move with the ids
    soft = processor.tokenizer.image_token_id
    assert torch.equal(prompts["token_type_ids"].bool(), prompts["input_ids"] == soft)


def test_image_tokens_attend_to_each_other_both_ways_and_nothing_else_sees_ahead(processor):
    """In a training forward of a padded batch (an image row and a two-image row), every attention layer (sliding and
    full) lets each image's tokens attend to each other in both directions; a later image is never seen by an
    earlier one, text never sees ahead, and padding is never attended to."""
    model = sharp_model(processor)
    batch = VisionChatCollator(processor)([caption_rows(1)[0], two_image_row()])
    _, allowed = attention_masks(model, batch)
    kinds = model.config.text_config.layer_types
    assert set(allowed) == {0, 1} and set(kinds) == {"sliding_attention", "full_attention"}
    for i, a in allowed.items():
        for r in range(2):
            found = image_blocks(batch["token_type_ids"][r])
            assert len(found) == r + 1
            n = int(batch["attention_mask"][r].sum())
            expected = torch.ones(n, n, dtype=torch.bool).tril()
            for s, e in found:
                expected[s:e, s:e] = True  # the image block, both ways
            if kinds[i] == "sliding_attention":  # and within the window
                q, k = torch.arange(n)[:, None], torch.arange(n)[None, :]
                expected &= k > q - model.config.text_config.sliding_window
            assert torch.equal(a[r, :n, :n], expected), (kinds[i], r)
            assert not a[r, :n, n:].any()  # padding
            s, e = found[0]
            assert a[r, s, e - 1] and a[r, e - 1, s]  # first soft token sees the last and back
            if r == 1:
                (s0, e0), (s1, e1) = found
                assert not a[r, s0:e0, s1:e1].any()  # the later image is never seen by the earlier one ...
                if kinds[i] == "full_attention":  # ... which it sees (causally; the sliding window cuts it off)
                    assert a[r, s1:e1, s0:e0].all()


def test_dropping_the_token_type_ids_changes_the_loss(processor):
    """The test above can fail: without token_type_ids (or with all zeros) the model masks the image causally, and
    the loss moves. Measured on the loss over every position (labels = input_ids, as TRL's default collator trains):
    4e-3 on the random tiny model. The answer-only loss moves too, but only by about 2e-5 there: a synthetic image's
    16 soft tokens are nearly alike at random weights, and in 2 layers the answer reads them one hop later. SDPA and
    eager give the same loss with the mask (the configs train with SDPA)."""
    model = sharp_model(processor)
    batch = VisionChatCollator(processor)(caption_rows(4))
    batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        model.train()
        full = model(**batch).loss
        dropped = model(**{k: v for k, v in batch.items() if k != "token_type_ids"}).loss
        zeros = model(**{**batch, "token_type_ids": torch.zeros_like(batch["token_type_ids"])}).loss
        model.set_attn_implementation("eager")
        eager = model(**batch).loss
    assert abs(full - dropped) > 1e-3, (full, dropped)
    assert abs(zeros - dropped) < 1e-6
    assert abs(full - eager) < 1e-5
    model.set_attn_implementation("sdpa")
    _, allowed = attention_masks(model, {k: v for k, v in batch.items() if k != "token_type_ids"})
    s, e = image_blocks(batch["token_type_ids"][0])[0]
    assert not allowed[1][0, s, e - 1]  # causal: the first soft token no longer sees the last


# -- padding-free and packing: refused, with the measured reason -----------------------------------------------------
def test_padding_free_would_not_be_exact_so_it_is_refused(processor, monkeypatch):
    """Measured on transformers 5.23: rows flattened into one sequence (restarting positions, no attention mask, the
    token type ids flattened alongside) get other per-row losses than alone, because the sliding-window layers look
    up the image blocks by each row's own positions (`remap_positions_for_packed_sequence` around the blockwise
    overlay), so a later row's image tokens get the earlier row's block pattern. The full-attention layers are right.
    The family record refuses padding_free / packing with this figure."""
    from vlm_recipes.data import packing

    model = sharp_model(processor).eval()
    examples = [{**two_image_row(), "messages": two_image_row()["messages"]}, caption_rows(1, seed=5)[0]]
    examples[1]["messages"] = [
        {"role": "user", "content": [{"type": "text", "text": "Describe this one, please:"}, {"type": "image"}]},
        examples[1]["messages"][1],
    ]
    with pytest.raises(ValueError, match=r"not for the Gemma 3 family .*sliding-window layers"):
        packing.PaddingFreeCollator(processor)
    monkeypatch.setattr(packing, "check_family", lambda processor: None)
    flat = packing.PaddingFreeCollator(processor)(examples)
    assert "token_type_ids" in flat and "attention_mask" not in flat
    rows_differ = flattened_vs_alone_gaps(model, processor, examples, flat)
    assert rows_differ[0] < 1e-5  # the first row's positions are its places in the sequence: exact
    assert rows_differ[1] > 1e-3, rows_differ  # the second row's image gets the first row's block pattern
    # The measured figure the refusal quotes (per trained token of the second row, nats).
    assert f"measured on the tiny model: {rows_differ[1]:.1f} nats" in family_of(processor).packing_refusal, (
        rows_differ
    )


def test_padding_free_and_packing_are_refused_before_the_model_loads(tmp_path):
    from helpers import run_recipe

    from vlm_recipes.paths import REPO_ROOT

    config = REPO_ROOT / "recipes/configs/tiny-gemma3/sft_lora.yaml"
    for flag in ("--padding_free", "--packing"):
        with pytest.raises(ValueError, match=r"not for the Gemma 3 family of this checkpoint \(transformers 5\.23"):
            run_recipe(
                "sft", config, tmp_path / "run", flag, "true", "--model_name_or_path", "tiny:gemma3-random",
            )  # fmt: skip
        assert not (tmp_path / "run").exists()


# -- generation and a short training run ----------------------------------------------------------------------------
@pytest.mark.unit
def test_generation_stops_at_the_end_of_turn_token(processor):
    """Gemma ends an answer with <end_of_turn>, not with its eos: generation stops on both (the real
    generation_config.json lists [1, 106]); the other families' end of turn is their eos (but Gemma 4's)."""
    tok = processor.tokenizer
    gemma = family_of(processor)
    assert gemma.stop_token_ids(tok) == [tok.eos_token_id, tok.convert_tokens_to_ids("<end_of_turn>")]
    for family in FAMILIES:
        if family.name not in ("gemma3", "gemma4"):  # Gemma 4 ends a turn with <turn|>: tests/test_family_gemma4.py
            other = tiny.build_tokenizer(family.name)
            assert family.stop_token_ids(other) == [other.eos_token_id], family.name


def test_a_few_sft_steps_on_the_random_tiny_gemma3_lower_the_loss(tmp_path):
    """The SFT LoRA default through its entry point on the random tiny Gemma 3 (the pre-trained base is built only by
    the slow learning tests): the training loss of the last steps is below that of the first."""
    from helpers import run_sft

    out = tmp_path / "run"
    overrides = "--model_name_or_path tiny:gemma3-random --max_steps 30 --synthetic_train_samples 480 "
    overrides += "--max_eval_samples 8 --eval_max_new_tokens 3 --logging_steps 5 --learning_rate 2e-3 --report_to none"
    processor = tiny.build_processor("gemma3")
    model = tiny.build_model("gemma3", processor.tokenizer)  # the same random model, as the run starts from it
    with torch.no_grad():
        start = float(model(**VisionChatCollator(processor)(caption_rows(16, seed=2))).loss)
    results = run_sft("gemma3", out, *overrides.split())
    assert results["train_steps"] == 30
    # The mean training loss over the run (its first steps included) is well below where it started (about
    # log(vocabulary): 6.3 nats); measured 6.2 at step 5 -> 4.5 at step 30, mean 5.0.
    assert results["train_loss"] < start - 0.8, (start, results["train_loss"])


# -- real size ------------------------------------------------------------------------------------------------------
def test_real_size_gemma_3_4b_it_architecture_and_image_tokens():
    """gemma-3-4b-it's architecture from its published config (on the meta device: shapes only) has its published
    size, and the real processor settings give 256 image tokens per image; pan-and-scan (image_splitting) adds 256
    per crop: a 640x427 photo gets 2 crops, a 1280x427 strip 3 (the figures in docs/families.md)."""
    from vlm_recipes.tiny import real_size

    processor = real_size.build_processor("gemma-3-4b-it")
    model = real_size.build_model("gemma-3-4b-it", processor, device="meta")
    assert sum(p.numel() for p in model.parameters()) == 4_300_079_472
    assert model.config.text_config.layer_types.count("full_attention") == 5  # 5 sliding layers to 1 full, of 34
    chat = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
        {"role": "assistant", "content": "a photo"},
    ]
    photo = {"images": [Image.new("RGB", (640, 427), (90, 140, 200))], "messages": chat}
    assert int(VisionChatCollator(processor)([photo])["token_type_ids"].sum()) == 256
    set_image_resolution(processor, image_splitting=True)
    strip = {**photo, "images": [Image.new("RGB", (1280, 427), (90, 140, 200))]}
    counts = [int(VisionChatCollator(processor)([row])["token_type_ids"].sum()) for row in (photo, strip)]
    assert counts == [768, 1024]
