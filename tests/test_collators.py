"""Collator tests on literal conversations, for every family, with the real processor classes."""

import pytest
import torch

# every family; its end-of-turn token read off its template; what it trains before an answer
from helpers import EOT, FAMILIES, TRAINED_PREFIX, answer_prefix

from vlm_recipes.data.collators import PromptCollator, SampleError, VisionChatCollator, keep_through_end_of_turn
from vlm_recipes.models.families import family_of, set_image_resolution
from vlm_recipes.tiny.vlm import build_processor

pytestmark = pytest.mark.unit

# The generation prompt each template ends a prompt with, and what the answer starts with after it.
GENERATION_PROMPT = {
    "smolvlm": "Assistant:",
    "qwen2_vl": "<|im_start|>assistant\n",
    "llava": " ASSISTANT:",
    "llava_onevision": "<|im_start|>assistant\n",
    "llava_next": " [/INST]",
    "qwen2_5_vl": "<|im_start|>assistant\n",
    "qwen3_vl": "<|im_start|>assistant\n",
    "qwen3_5": "<|im_start|>assistant\n",  # then the trained empty think block (TRAINED_PREFIX)
    "gemma3": "<start_of_turn>model\n",
    "gemma4": "<|turn>model\n",
}


class _AnswerPrefix(dict):
    """ANSWER_PREFIX[family]: what the family's real template writes before an answer (helpers.answer_prefix)."""

    def __missing__(self, family):
        self[family] = answer_prefix(build_processor(family))
        return self[family]


ANSWER_PREFIX = _AnswerPrefix()


def vqa(image, question="What color is the shape?", answer="red", system=None):
    messages = [{"role": "system", "content": system}] if system else []
    messages += [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]
    return {"images": [image], "messages": messages}


def trained_text(processor, batch, row):
    labels = batch["labels"][row]
    return processor.tokenizer.decode(labels[labels != -100])


def trained_positions(batch, row):
    return (batch["labels"][row] != -100).nonzero().flatten().tolist()


def encode_inside(tokenizer, text):
    """Token ids of `text` as it reads inside a sequence, after a control token: a SentencePiece-style tokenizer
    (LLaVA-1.5's LlamaTokenizer) marks only the start of a whole text with `▁`, not a piece after `</s>`."""
    anchor = tokenizer.encode(tokenizer.eos_token, add_special_tokens=False)
    ids = tokenizer.encode(tokenizer.eos_token + text, add_special_tokens=False)
    assert ids[: len(anchor)] == anchor
    return ids[len(anchor) :]


def expected_answer_positions(processor, input_ids, answer):
    """Independent oracle: the answer's tokens + end-of-turn, found right after the last generation prompt."""
    tok = processor.tokenizer
    family = family_of(processor).name
    prompt_ids = encode_inside(tok, GENERATION_PROMPT[family])
    ids = input_ids.tolist()
    starts = [i for i in range(len(ids)) if ids[i : i + len(prompt_ids)] == prompt_ids]
    start = starts[-1] + len(prompt_ids)
    answer_ids = encode_inside(tok, ANSWER_PREFIX[family] + TRAINED_PREFIX[family] + answer + EOT[family])
    assert ids[start : start + len(answer_ids)] == answer_ids
    return list(range(start, start + len(answer_ids)))


@pytest.mark.parametrize("family", FAMILIES)
def test_only_answer_and_end_of_turn_are_trained(processors, family, red_image):
    processor = processors[family]
    batch = VisionChatCollator(processor)([vqa(red_image, system="Answer in one word.")])
    expected = expected_answer_positions(processor, batch["input_ids"][0], "red")
    assert trained_positions(batch, 0) == expected
    assert trained_text(processor, batch, 0).strip() == f"{TRAINED_PREFIX[family]}red{EOT[family]}"
    # the trained tokens are exactly the input tokens at those positions (labels are not shifted here)
    assert batch["labels"][0, expected].tolist() == batch["input_ids"][0, expected].tolist()


@pytest.mark.parametrize("family", FAMILIES)
def test_no_image_token_is_ever_a_label(processors, family, red_image, blue_image):
    processor = processors[family]
    image_ids = torch.tensor(family_of(processor).image_token_ids(processor.tokenizer))
    # Even with assistant_only off (train on everything), image tokens stay -100.
    for assistant_only in (True, False):
        batch = VisionChatCollator(processor, assistant_only=assistant_only)([vqa(red_image), vqa(blue_image)])
        assert torch.isin(batch["input_ids"], image_ids).sum() > 0
        assert not torch.isin(batch["labels"], image_ids).any()
    everything = batch["labels"][0] != -100
    # assistant_only=False trains on text of the prompt too, but never on padding or images.
    assert everything.sum() > len(trained_positions(VisionChatCollator(processor)([vqa(red_image)]), 0))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_is_masked_on_both_sides(processors, family, side, red_image):
    processor = processors[family]
    long_row = vqa(red_image, question="What color is the shape in this small picture?", answer="red")
    short_row = {
        "images": [],
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}],
    }
    batch = VisionChatCollator(processor, padding_side=side)([long_row, short_row])
    mask = batch["attention_mask"]
    assert mask[0].all() and not mask[1].all()
    pads = (mask[1] == 0).nonzero().flatten()
    if side == "left":
        assert pads.tolist() == list(range(len(pads)))
    else:
        assert pads.tolist() == list(range(mask.shape[1] - len(pads), mask.shape[1]))
    assert (batch["labels"][1][mask[1] == 0] == -100).all()
    assert (batch["input_ids"][1][mask[1] == 0] == processor.tokenizer.pad_token_id).all()
    assert trained_text(processor, batch, 1).strip() == f"{TRAINED_PREFIX[family]}yes{EOT[family]}"


@pytest.mark.parametrize("family", FAMILIES)
def test_left_and_right_padding_train_the_same_tokens(processors, family, red_image):
    processor = processors[family]
    rows = [
        vqa(red_image, answer="a red circle"),
        {"images": [], "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "no"}]},
    ]
    left = VisionChatCollator(processor, padding_side="left")(rows)
    right = VisionChatCollator(processor, padding_side="right")(rows)
    for row in range(2):
        assert (
            left["labels"][row][left["labels"][row] != -100].tolist()
            == right["labels"][row][right["labels"][row] != -100].tolist()
        )
        assert (
            left["input_ids"][row][left["attention_mask"][row] == 1].tolist()
            == right["input_ids"][row][right["attention_mask"][row] == 1].tolist()
        )


def num_images(family, batch) -> int:
    """Images in a batch, as each family's processor lays out its pixels."""
    if "image_grid_thw" in batch:  # Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Qwen3.5
        return batch["image_grid_thw"].shape[0]  # one row of (t, h, w) per image
    if family == "smolvlm":
        return batch["pixel_values"].shape[1]  # (rows, images, channels, height, width)
    return batch["pixel_values"].shape[0]  # LLaVA: one entry per image (OneVision: each with its anyres tiles)


@pytest.mark.parametrize("family", FAMILIES)
def test_multi_image_multi_turn(processors, family, red_image, blue_image):
    processor = processors[family]
    row = {
        "images": [red_image, blue_image],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image"},
                    {"type": "image"},
                    {"type": "text", "text": "Which is red, first or second?"},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "first"}]},
            {"role": "user", "content": [{"type": "text", "text": "And the other?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "blue"}]},
        ],
    }
    batch = VisionChatCollator(processor)([row])
    eot, think = EOT[family], TRAINED_PREFIX[family]
    assert trained_text(processor, batch, 0).replace(" ", "") == f"{think}first{eot}{think}blue{eot}"
    assert num_images(family, batch) == 2
    # Two separate assistant runs, each ending in the end-of-turn token.
    pos = trained_positions(batch, 0)
    runs = [[pos[0]]]
    for p in pos[1:]:
        runs[-1].append(p) if p == runs[-1][-1] + 1 else runs.append([p])
    eot_id = processor.tokenizer.convert_tokens_to_ids(eot)
    assert len(runs) == 2 and all(batch["input_ids"][0, r[-1]] == eot_id for r in runs)


@pytest.mark.parametrize("family", FAMILIES)
def test_text_only_row_mixed_with_image_rows(processors, family, red_image):
    processor = processors[family]
    text_row = {
        "images": [],
        "messages": [{"role": "user", "content": "Say yes."}, {"role": "assistant", "content": "yes"}],
    }
    batch = VisionChatCollator(processor)([vqa(red_image), text_row, vqa(red_image, answer="blue")])
    assert [trained_text(processor, batch, i).strip() for i in range(3)] == [
        f"{TRAINED_PREFIX[family]}{answer}{EOT[family]}" for answer in ("red", "yes", "blue")
    ]
    image_ids = torch.tensor(family_of(processor).image_token_ids(processor.tokenizer))
    assert not torch.isin(batch["input_ids"][1], image_ids).any()


@pytest.mark.parametrize("family", FAMILIES)
def test_image_token_count_matches_the_processor_itself(processors, family, red_image, blue_image):
    processor = processors[family]
    rows = [vqa(red_image), vqa(blue_image)]
    batch = VisionChatCollator(processor)(rows)
    image_token = processor.image_token
    image_token_id = processor.tokenizer.convert_tokens_to_ids(image_token)
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}]
    )
    direct = processor(
        text=[prompt, prompt],
        images=[red_image, blue_image] if family == "qwen2_vl" else [[red_image], [blue_image]],
        return_tensors="pt",
        padding=True,
    )
    for row in range(2):
        ours = (batch["input_ids"][row] == image_token_id).sum().item()
        theirs = (direct["input_ids"][row] == image_token_id).sum().item()
        assert ours == theirs > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_truncation_guard_raises_naming_the_row(processors, family, red_image):
    processor = processors[family]
    rows = [vqa(red_image), {**vqa(red_image), "row_id": 17}]
    input_ids = VisionChatCollator(processor)(rows)["input_ids"][1]
    image_ids = torch.tensor(family_of(processor).image_token_ids(processor.tokenizer))
    last_image_pos = int(torch.isin(input_ids, image_ids).nonzero().max())
    with pytest.raises(SampleError, match=r"row row_id=17.*image tokens beyond max_length"):
        VisionChatCollator(processor, max_length=last_image_pos)(rows)  # would cut the last image token
    # one more token and every image token fits: only text is cut, which max_length is for
    VisionChatCollator(processor, max_length=last_image_pos + 1, assistant_only=False)(rows)


@pytest.mark.parametrize("family", FAMILIES)
def test_truncation_guard_drops_and_counts_when_asked(processors, family, red_image):
    processor = processors[family]
    long_row = vqa(red_image, question="What color is the shape? " * 3)
    text_row = {"images": [], "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}]}
    budget = VisionChatCollator(processor)([text_row])["input_ids"].shape[1]
    collator = VisionChatCollator(processor, max_length=budget, on_overflow="drop")
    batch = collator([long_row, text_row])
    assert collator.num_dropped == 1
    assert batch["input_ids"].shape[0] == 1
    assert trained_text(processor, batch, 0).strip() == f"{TRAINED_PREFIX[family]}yes{EOT[family]}"
    with pytest.raises(SampleError, match="Every sample"):
        collator([long_row])


@pytest.mark.parametrize("family", FAMILIES)
def test_text_may_be_truncated_but_images_stay_whole(processors, family, red_image):
    processor = processors[family]
    row = vqa(red_image, answer="a red circle on the left of the picture")
    full = VisionChatCollator(processor)([row])
    answer_start = trained_positions(full, 0)[0]
    batch = VisionChatCollator(processor, max_length=answer_start + 2)([row])
    assert batch["input_ids"].shape[1] == answer_start + 2
    assert trained_positions(batch, 0) == [answer_start, answer_start + 1]
    image_ids = torch.tensor(family_of(processor).image_token_ids(processor.tokenizer))
    assert torch.isin(batch["input_ids"], image_ids).sum() == torch.isin(full["input_ids"], image_ids).sum()


def test_qwen_max_pixels_caps_image_tokens(processors, red_image):
    from vlm_recipes.tiny.vlm import build_processor

    processor = build_processor("qwen2_vl")
    big = red_image.resize((448, 448))
    pad_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    set_image_resolution(processor, min_pixels=28 * 28, max_pixels=448 * 448)
    many = (VisionChatCollator(processor)([vqa(big)])["input_ids"] == pad_id).sum().item()
    set_image_resolution(processor, max_pixels=56 * 56)
    few = (VisionChatCollator(processor)([vqa(big)])["input_ids"] == pad_id).sum().item()
    assert many == (448 // 28) ** 2  # 16x16 merged patches
    assert few == (56 // 28) ** 2
    with pytest.raises(ValueError, match="SmolVLM controls"):
        set_image_resolution(processor, longest_edge=128)


def test_smolvlm_image_splitting_and_longest_edge(red_image):
    from vlm_recipes.tiny.vlm import build_processor

    processor = build_processor("smolvlm")
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    big = red_image.resize((256, 256))
    one = (VisionChatCollator(processor)([vqa(big)])["input_ids"] == image_id).sum().item()
    set_image_resolution(processor, longest_edge=128, image_splitting=True)
    split = (VisionChatCollator(processor)([vqa(big)])["input_ids"] == image_id).sum().item()
    assert one == processor.image_seq_len
    assert split == 5 * processor.image_seq_len  # 2x2 tiles + the global image
    with pytest.raises(ValueError, match="smaller than the vision encoder's tile"):
        set_image_resolution(processor, longest_edge=32)
    with pytest.raises(ValueError, match=r"Qwen2-VL( / [^ ]+)* controls, not SmolVLM's"):
        set_image_resolution(processor, max_pixels=1000)


def test_keep_through_end_of_turn_literal():
    eot = 9
    ids = torch.tensor([[1, 5, 6, 9, 2, 3, 7, 9, 2, 0]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 0, 1, 1, 1, 0]])
    kept = keep_through_end_of_turn(mask, ids, eot)
    assert kept.int().tolist() == [[0, 1, 1, 1, 0, 0, 1, 1, 0, 0]]


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_rows_name_the_row(processors, family, red_image):
    collator = VisionChatCollator(processors[family])
    with pytest.raises(SampleError, match=r"row id=3: Number of images provided \(2\)"):
        collator([{**vqa(red_image), "images": [red_image, red_image], "id": 3}])
    with pytest.raises(SampleError, match="batch item 1: empty conversation"):
        collator([vqa(red_image), {"images": [], "messages": []}])
    with pytest.raises(SampleError, match="no assistant turn"):
        collator([{"images": [], "messages": [{"role": "user", "content": "hi"}]}])


@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_collator_left_pads_and_ends_with_generation_prompt(processors, family, red_image):
    processor = processors[family]
    text_row = {
        "images": [],
        "messages": [
            {"role": "user", "content": "hello there, how are you"},
            {"role": "assistant", "content": "fine"},
        ],
    }
    batch = PromptCollator(processor)([vqa(red_image), text_row])
    assert batch["attention_mask"][:, -1].all()  # left padded: every row ends with a real token
    # (Qwen3.5's prompt, thinking off, ends in the empty think block its answers are trained with)
    tail = encode_inside(processor.tokenizer, GENERATION_PROMPT[family] + TRAINED_PREFIX[family])
    for row in range(2):
        assert batch["input_ids"][row, -len(tail) :].tolist() == tail
    assert "fine" not in processor.tokenizer.decode(batch["input_ids"][1])


def test_a_text_only_row_first_in_a_batch_with_images_at_smolvlm_256m_settings():
    """The Idefics3 processor at SmolVLM-256M's settings failed on a batch whose first row has no image (transformers
    took the rows' replacement offsets, [] first, for an array); the batch now equals the rows in the other order."""
    from vlm_recipes.data.length_mix import photos
    from vlm_recipes.tiny.real_size import build_processor

    def chat(question, image):
        content = ([{"type": "image"}] if image else []) + [{"type": "text", "text": question}]
        answer = [{"type": "text", "text": "ok"}]
        return [{"role": "user", "content": content}, {"role": "assistant", "content": answer}]

    text_row = {"images": [], "messages": chat("Say hello.", False)}
    image_row = {"images": [photos()[2]], "messages": chat("What is it?", True)}
    collator = VisionChatCollator(build_processor("smolvlm-256m"))
    text_first, image_first = collator([text_row, image_row]), collator([image_row, text_row])
    for key in ("input_ids", "labels", "attention_mask", "pixel_values", "pixel_attention_mask"):
        assert torch.equal(text_first[key], image_first[key].flip(0)), key
    assert text_first["pixel_values"][1].abs().sum() > 0 and (text_first["pixel_values"][0] == 0).all()
