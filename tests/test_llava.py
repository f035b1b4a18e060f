"""LLaVA-1.5, LLaVA-OneVision and LLaVA-NeXT: the shipped chat templates and their training variants, tokenization
as transformers does it (bos, SentencePiece-style continuation), resolution controls, the model sharing the processor's
anyres grid, the blank-image path of text-only batches, and preflight token counts. Collator masking on literal
conversations for every class is in test_collators.py (every family), learning runs in test_sft_e2e.py /
test_preference.py / test_grpo.py (slow: the LLaVA bases are pre-trained only for them)."""

import pytest
import torch
from PIL import Image

from vlm_recipes.data.chat_encoding import ChatEncoder
from vlm_recipes.data.collators import PromptCollator, VisionChatCollator, conversation_of
from vlm_recipes.models.chat_templates import TEMPLATES, training_chat_template
from vlm_recipes.models.families import set_image_resolution
from vlm_recipes.tiny import vlm as tiny

pytestmark = pytest.mark.unit

LLAVAS = ["llava", "llava_onevision", "llava_next"]


def chat(image, *turns, system=None):
    """A conversation: the image goes with the first user turn; `turns` alternate user, assistant, user, ..."""
    messages = [{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []
    for k, text in enumerate(turns):
        role = "user" if k % 2 == 0 else "assistant"
        parts = [{"type": "image"}] if k == 0 and image is not None else []
        messages.append({"role": role, "content": [*parts, {"type": "text", "text": text}]})
    return {"images": [image] if image is not None else [], "messages": messages}


def render(processor, template, row, add_generation_prompt=False):
    conversation = conversation_of(row, 0)
    return processor.apply_chat_template(
        conversation, chat_template=template, add_generation_prompt=add_generation_prompt
    )


# -- the chat templates ----------------------------------------------------------------------------------------------
def test_shipped_templates_render_the_checkpoints_documented_prompts(processors, red_image):
    """The prompt formats the sources document: transformers' LLaVA docs ("USER: <image>\\n<prompt> ASSISTANT:") and
    the prompt the OneVision conversion script checks the converted checkpoint's logits with."""
    llava, onevision = processors["llava"], processors["llava_onevision"]
    assert llava.chat_template == TEMPLATES["llava_1_5"] and onevision.chat_template == TEMPLATES["llava_onevision"]
    row = chat(red_image, "What is shown in this image?")
    assert render(llava, None, row, True) == "USER: <image>\nWhat is shown in this image? ASSISTANT:"
    with_system = chat(red_image, "What is shown in this image?", system="You are a helpful assistant.")
    assert render(onevision, None, with_system, True) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\n"
        "What is shown in this image?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_llava_training_template_ends_each_answer_with_eos(processors, red_image):
    """LLaVA-1.5's own template ends an assistant turn with a space: no end-of-turn token to learn. The training
    variant renders the multi-turn format transformers documents for LLaVA-1.5, and only that differs."""
    processor = processors["llava"]
    row = chat(red_image, "What color?", "red", "And the shape?", "circle")
    assert (
        render(processor, None, row)
        == "USER: <image>\nWhat color? ASSISTANT: red USER: And the shape? ASSISTANT: circle "
    )
    trained = render(processor, training_chat_template(processor), row)
    assert trained == "USER: <image>\nWhat color? ASSISTANT: red</s>USER: And the shape? ASSISTANT: circle</s>"
    # The generation prompt is the same, and a prefix of the training text.
    prompt = chat(red_image, "What color?")
    assert render(processor, training_chat_template(processor), prompt, True) == render(processor, None, prompt, True)
    assert trained.startswith(render(processor, None, prompt, True))


@pytest.mark.parametrize(
    "row",
    [
        chat(Image.new("RGB", (8, 8)), "What color?", "red", "And the shape?", "circle", system="Be brief."),
        chat(None, "hi", "yes"),
    ],
    ids=["multi-turn-system-image", "text-only"],
)
def test_onevision_training_template_renders_exactly_the_original_text(processors, row):
    processor = processors["llava_onevision"]
    assert render(processor, training_chat_template(processor), row) == render(processor, None, row)


@pytest.mark.parametrize("family", ["llava", "llava_onevision"])
def test_the_originals_never_train_the_end_of_turn_and_are_refused_as_training_templates(family):
    """TRL's own check flags both originals; ours refuses any template like them that we do not ship a variant of."""
    from trl.chat_template_utils import is_chat_template_stop_token_trained

    processor = tiny.build_processor(family)
    assert not is_chat_template_stop_token_trained(processor)
    assert is_chat_template_stop_token_trained(processor, chat_template=training_chat_template(processor))
    processor.chat_template = processor.chat_template + "{# a revision we do not ship #}"
    with pytest.raises(ValueError, match="would never learn to stop"):
        VisionChatCollator(processor)


# -- tokenization as transformers does it ----------------------------------------------------------------------------
@pytest.mark.parametrize("family", LLAVAS)
def test_prompts_encode_exactly_as_the_processor_does(processors, family, red_image, blue_image):
    """LLaVA-1.5's LlamaTokenizer adds `<s>` in front and marks only the start of a text with `▁`: encoding the
    rendered text piece by piece must keep both (a piece after an image or an answer is a continuation)."""
    processor = processors[family]
    rows = [
        chat(red_image, "What color is the shape?", "red", "And now?"),
        chat(None, "hi there"),
        {
            "images": [red_image, blue_image],
            "messages": [
                {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Which?"}]}
            ],
        },
    ]
    for row in rows:
        ours = PromptCollator(processor)([row])["input_ids"][0].tolist()
        theirs = processor.apply_chat_template(
            [conversation_of(row, 0)], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"][0]
        assert ours == list(theirs)
    if family != "llava_onevision":  # LlamaTokenizers
        assert ours[0] == processor.tokenizer.bos_token_id and ChatEncoder(processor).continuation is not None


def test_llava_answers_read_back_and_end_in_eos(processors, red_image):
    processor = processors["llava"]
    tok = processor.tokenizer
    batch = VisionChatCollator(processor)([chat(red_image, "What color?", "a red circle")])
    labels = batch["labels"][0]
    trained = labels[labels != -100].tolist()
    assert tok.convert_ids_to_tokens(trained) == tok.convert_ids_to_tokens(tok.encode("</s> a red circle</s>")[2:])
    assert tok.decode(trained, skip_special_tokens=True) == "a red circle" and trained[-1] == tok.eos_token_id


# -- resolution ------------------------------------------------------------------------------------------------------
def test_llava_refuses_every_resolution_control(processors):
    processor = processors["llava"]
    for control, value in (("min_pixels", 784), ("max_pixels", 784), ("longest_edge", 128), ("max_image_tiles", 4)):
        with pytest.raises(ValueError, match=rf"{control}: .* controls, not LLaVA-1.5's.*fixed size.*remove"):
            set_image_resolution(processor, **{control: value})
    set_image_resolution(processor)  # nothing set: nothing to refuse


def image_tokens(processor, image) -> int:
    batch = VisionChatCollator(processor)([chat(image, "What color?", "red")])
    return (batch["input_ids"] == processor.image_token_id).sum().item()


def test_onevision_max_image_tiles_caps_the_anyres_grid(red_image):
    processor = tiny.build_processor("llava_onevision")
    big = red_image.resize((96, 96))
    # 32 px tiles, 16 tokens each. Default: the 3x3 grid, whose 12x12 features exceed anyres_max_4 and are scaled
    # to 8x8: 16 (base) + 64 + 8 row newlines. One tile: 16 + 4x4 + 4 newlines.
    assert image_tokens(processor, big) == 16 + 64 + 8
    set_image_resolution(processor, max_image_tiles=1)
    assert processor.image_processor.image_grid_pinpoints == [[32, 32]]
    assert processor.vision_aspect_ratio == "anyres_max_1"
    assert image_tokens(processor, big) == 16 + 16 + 4
    with pytest.raises(ValueError, match=r"max_image_tiles \(0\) leaves no grid.*set it to 1 or more"):
        set_image_resolution(processor, max_image_tiles=0)
    with pytest.raises(ValueError, match="longest_edge: SmolVLM controls, not LLaVA-OneVision's.*use max_image_tiles"):
        set_image_resolution(processor, longest_edge=128)


def test_next_max_image_tiles_keeps_the_grids_of_at_most_that_many_tiles(red_image):
    from vlm_recipes.models.families import family_of

    processor = tiny.build_processor("llava_next")
    assert image_tokens(processor, red_image) == 16 + 64 + 8  # 2x2 tiles of 16 tokens, 8 row newlines, the base
    set_image_resolution(processor, max_image_tiles=2)
    assert processor.image_processor.image_grid_pinpoints == [[32, 64], [64, 32]]
    assert family_of(processor).model_settings(processor) == {"image_grid_pinpoints": [[32, 64], [64, 32]]}
    assert image_tokens(processor, red_image) < 16 + 64 + 8


@pytest.mark.integration
def test_onevision_model_is_loaded_with_the_processors_grid(red_image):
    """The model lays out image features by its own image_grid_pinpoints: loaded with the processor's (after
    max_image_tiles) it runs; with the checkpoint's, the same batch does not."""
    from vlm_recipes.models.modeling import load_model, load_processor
    from vlm_recipes.settings import VLMModelConfig

    args = VLMModelConfig(model_name_or_path="tiny:llava_onevision-random", max_image_tiles=2)
    processor = load_processor(args)
    batch = VisionChatCollator(processor)([chat(red_image.resize((96, 96)), "What color?", "red")])
    model = load_model(args, processor=processor)
    assert model.config.image_grid_pinpoints == processor.image_processor.image_grid_pinpoints
    assert model.config.vision_aspect_ratio == "anyres_max_2"
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)
        with pytest.raises((ValueError, RuntimeError)):
            load_model(args)(**batch)


# -- the blank-image path of text-only batches (ZeRO-3) --------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.parametrize("family", LLAVAS)
def test_a_blank_image_runs_exactly_the_image_path(family, red_image):
    """Under several processes a text-only batch runs the vision tower on a blank image (times 0), so that every rank
    gathers the same ZeRO-3 shards, forward and backward: the blank image must reach exactly the parameters an image
    batch reaches (LLaVA-1.5 reads the tower's second-to-last layer: its last layer is in neither)."""
    from vlm_recipes.training.trainers import VisionOnEveryRank, _tensor_sum, blank_image_features

    processor = tiny.build_processor(family)
    model = tiny.build_model(family, processor.tokenizer)
    image_side = [(n, p) for n, p in model.named_parameters() if "vision_tower" in n or "multi_modal_projector" in n]
    model(**VisionChatCollator(processor)([chat(red_image, "What color?", "red")])).loss.backward()
    reached_by_an_image = {n for n, p in image_side if p.grad is not None}
    model.zero_grad(set_to_none=True)
    trainer = VisionOnEveryRank()
    trainer.processing_class = processor
    total = _tensor_sum(blank_image_features(trainer._vision_forward(model.model)))
    total.backward()
    assert torch.isfinite(total)
    assert {n for n, p in image_side if p.grad is not None} == reached_by_an_image
    assert any("multi_modal_projector" in n for n in reached_by_an_image)


# -- preflight -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", LLAVAS)
def test_preflight_counts_the_image_tokens_the_collator_makes(processors, family):
    from vlm_recipes.data import synthetic
    from vlm_recipes.training import preflight

    processor = processors[family]
    rows = synthetic.make_dataset("color", num_samples=3, seed=1)
    report = preflight.check_split("sft", rows, processor)
    expected = (VisionChatCollator(processor)(list(rows))["input_ids"] == processor.image_token_id).sum(1).tolist()
    assert report.image_tokens == expected and not report.errors
    over = preflight.check_split("sft", rows, processor, max_length=min(expected))
    assert len(over.errors) == 3 and "image tokens beyond max_length" in str(over.errors[0])
