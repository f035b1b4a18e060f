"""Padding-free and packed batches are exact: each row's loss and the LoRA gradients equal those of the same rows run
one at a time, for both families; rows never attend across their boundaries.

Models are tiny random ones of the real architectures, built in-process (no pre-training), in float32. The processors
are set so that rows differ in image layout: SmolVLM splits images into 1 to 4 tiles, Qwen2-VL resizes them to grids
of different shapes, so each row's M-RoPE positions depend on its own `image_grid_thw`.
"""

import pytest
import torch
from PIL import Image

import vlm_recipes.models.attention  # noqa: F401  (registers attn_implementation: sdpa_varlen)
from vlm_recipes.data.collators import VisionChatCollator
from vlm_recipes.data.packing import PackedRows, PaddingFreeCollator, fill_ratio, pack_rows
from vlm_recipes.models.families import FAMILIES as FAMILY_RECORDS
from vlm_recipes.models.families import set_image_resolution
from vlm_recipes.models.positions import mrope_positions
from vlm_recipes.tiny import vlm as tiny

pytestmark = pytest.mark.unit

FAMILIES = [f.name for f in FAMILY_RECORDS if f.packing_exact]  # every family whose packing is exact
# Families whose rows get positions of their own beyond 1-D (M-RoPE: Qwen2-VL, Qwen2.5-VL, Qwen3-VL): the controls
# below show that without them the losses move.
MROPE = [f.name for f in FAMILY_RECORDS if f.packing_exact and f.packed_positions is not None]
SHARPEN = 6.0  # scale of the language model's query and key projections (see build_model)


@pytest.fixture(scope="module")
def setups():
    """{family: (model, processor)}: a random tiny model (sdpa) and a processor giving varied image layouts."""
    out = {}
    for family in FAMILIES:
        processor = tiny.build_processor(family)
        if family == "smolvlm":
            set_image_resolution(processor, longest_edge=128, image_splitting=True)
        else:
            set_image_resolution(processor, min_pixels=28 * 28, max_pixels=112 * 112)
        out[family] = (build_model(family, processor), processor)
    return out


def build_model(family, processor):
    """A random tiny model whose attention depends on positions: at the initial scale (std 0.02) every attention
    score is near 0, softmax is near uniform and wrong positions would go unnoticed, so the language model's query
    and key projections are scaled up."""
    model = tiny.build_model(family, processor.tokenizer, seed=3).float().eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "visual" not in name and "vision" not in name and name.endswith(("q_proj.weight", "k_proj.weight")):
                param.mul_(SHARPEN)
    return model


def chat(question, answer, images=0):
    content = [{"type": "image"}] * images + [{"type": "text", "text": question}]
    return [{"role": "user", "content": content}, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def make_rows():
    """Rows of different lengths: one image, text only, two images, a wide image, a tall one."""
    red, blue = Image.new("RGB", (64, 64), (220, 40, 40)), Image.new("RGB", (48, 80), (40, 80, 220))
    wide, tall = Image.new("RGB", (120, 40), (40, 200, 60)), Image.new("RGB", (30, 100), (230, 230, 30))
    return [
        {"images": [red], "messages": chat("What color is the shape?", "red", images=1)},
        {"images": [], "messages": chat("Say hello to the user in a few words.", "hello there, how are you")},
        {"images": [red, blue], "messages": chat("Which colors are shown?", "red and blue", images=2)},
        {"images": [wide], "messages": chat("Describe the image.", "a wide green strip", images=1)},
        {"images": [tall], "messages": chat("What is this?", "a tall yellow bar on grey", images=1)},
    ]


def with_lora(model):
    from peft import LoraConfig, get_peft_model

    from vlm_recipes.models.modeling import lora_target_modules

    # init_lora_weights=False: B is random too, so both A and B get non-zero gradients to compare.
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        # as the recipes resolve them (Gemma 4: the Linear inside each clipped linear, no audio tower)
        target_modules=lora_target_modules(
            model, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        ),
        init_lora_weights=False,
    )
    torch.manual_seed(0)
    return get_peft_model(model, config)


def row_nll(logits, labels):
    """Summed next-token NLL of one row: logits (n, V), labels (n,) unshifted."""
    return torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=-100, reduction="sum")


def losses_one_at_a_time(model, processor, rows) -> torch.Tensor:
    """Each row's loss, the row alone in a batch of one (the model computes its own positions)."""
    collator = VisionChatCollator(processor)
    losses = []
    for row in rows:
        batch = collator([row])
        losses.append(row_nll(model(**batch).logits[0], batch["labels"][0]))
    return torch.stack(losses)


def losses_flattened(model, batch, lengths) -> torch.Tensor:
    """Each row's loss from one padding-free batch of rows of `lengths`."""
    logits = model(**batch).logits[0]
    losses, start = [], 0
    for n in lengths:
        losses.append(row_nll(logits[start : start + n], batch["labels"][0, start : start + n]))
        start += n
    return torch.stack(losses)


def lora_grads_of(model, losses) -> dict:
    model.zero_grad()
    losses.sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if "lora_" in n and p.grad is not None}


def row_lengths(processor, rows):
    return [int(VisionChatCollator(processor)([row])["attention_mask"].sum()) for row in rows]


@pytest.mark.integration
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["padding_free", "packed"])
def test_losses_and_lora_gradients_equal_rows_run_one_at_a_time(setups, family, mode):
    _, processor = setups[family]
    model = with_lora(build_model(family, processor))
    rows = make_rows()
    lengths = row_lengths(processor, rows)
    if mode == "packed":  # bins of at most 2/3 of all tokens: several bins, rows reordered by the packer
        bins = pack_rows(lengths, capacity=2 * sum(lengths) // 3)
        assert len(bins) > 1
        order = [i for b in bins for i in b]
        batch = PaddingFreeCollator(processor)(list(PackedRows(rows, bins)))
    else:
        order = list(range(len(rows)))
        batch = PaddingFreeCollator(processor)(rows)
    assert batch["input_ids"].shape == (1, sum(lengths)) and "attention_mask" not in batch
    expected = losses_one_at_a_time(model, processor, [rows[i] for i in order])
    losses = losses_flattened(model, batch, [lengths[i] for i in order])
    torch.testing.assert_close(losses, expected, rtol=1e-5, atol=1e-5)
    expected_grads, grads = lora_grads_of(model, expected), lora_grads_of(model, losses)
    assert expected_grads and grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        assert expected_grads[name].abs().sum() > 0, name
        # 2e-5 relative to the gradient's scale: summed over thousands of terms in another order (the thread count
        # and the CPU's kernels decide it), float32 gradients of order 1 move by a few 1e-6; Qwen2.5-VL's vision
        # LoRA moved by 1.24e-5 (scale 1.16) on an Intel Xeon with AVX512 (2026-12-07), under 1e-5 on AMD EPYC. The
        # broken paths of the tests below differ by more than 1e-3.
        scale = max(1.0, expected_grads[name].abs().max().item())
        diff = (grad - expected_grads[name]).abs().max().item()
        assert diff <= 2e-5 * scale, f"{name}: max difference {diff:.2e} (scale {scale:.2f})"


@pytest.mark.integration
@pytest.mark.parametrize("family", MROPE)
def test_without_per_row_positions_differs(setups, family):
    """The same padding-free batch with 1-D positions restarting at each row (what a text-only flattening collator
    gives, also for the three M-RoPE axes), or with no position ids (the model's own positions over the whole
    concatenation: nothing restarts, rows see each other), gives other losses. (M-RoPE computed over the whole
    concatenation under restarting text positions would be exact too: it shifts each row's positions by a constant
    on all three axes, and rotary attention only sees differences.) The control of the exactness test above, for every
    family with M-RoPE positions."""
    model, processor = setups[family]
    rows = make_rows()
    lengths = row_lengths(processor, rows)
    batch = PaddingFreeCollator(processor)(rows)
    with torch.no_grad():
        expected = losses_one_at_a_time(model, processor, rows)
        torch.testing.assert_close(losses_flattened(model, batch, lengths), expected, rtol=1e-5, atol=1e-5)
        flat = {**batch, "position_ids": batch["position_ids"][0].expand(4, 1, -1)}  # no 3-D image positions
        unpositioned = {key: value for key, value in batch.items() if key != "position_ids"}
        flat_differs = (losses_flattened(model, flat, lengths) - expected).abs()
        unpositioned_differs = (losses_flattened(model, unpositioned, lengths) - expected).abs()
    assert flat_differs.max() > 1e-3 and unpositioned_differs.max() > 1e-3
    assert flat_differs[1] < 1e-5  # the text-only row has no image to misplace


@pytest.mark.integration
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("attn", ["sdpa", "eager", "sdpa_varlen"])
def test_rows_never_attend_across_boundaries(setups, family, attn):
    """Perturb one row's text tokens: the logits of every other row do not move; that row's do."""
    model, processor = setups[family]
    model.set_attn_implementation(attn)
    try:
        rows = make_rows()
        lengths = row_lengths(processor, rows)
        batch = PaddingFreeCollator(processor)(rows)
        starts = [sum(lengths[:i]) for i in range(len(rows))]
        victim = 2
        changed = batch["input_ids"].clone()
        # Text tokens of the victim row after its first 3 tokens (image tokens stay: their features are fixed).
        image_ids = VisionChatCollator(processor).image_token_ids
        span = torch.arange(starts[victim] + 3, starts[victim] + lengths[victim])
        text_positions = span[~torch.isin(changed[0, span], image_ids)][:4]
        changed[0, text_positions] = processor.tokenizer.convert_tokens_to_ids("a")
        with torch.no_grad():
            before = model(**batch).logits[0]
            after = model(**{**batch, "input_ids": changed}).logits[0]
        for i, (s, n) in enumerate(zip(starts, lengths)):
            moved = (after[s : s + n] - before[s : s + n]).abs().max()
            if i == victim:
                assert moved > 1e-3
            else:
                assert moved <= 1e-6, (i, float(moved))
    finally:
        model.set_attn_implementation("sdpa")


@pytest.mark.integration
@pytest.mark.parametrize("family", FAMILIES)
def test_sdpa_varlen_equals_rows_run_one_at_a_time(setups, family, monkeypatch):
    """`attn_implementation: sdpa_varlen` runs SDPA on each row's slice of a padding-free batch (never on the whole
    sequence) and gives every row the loss it has alone."""
    import vlm_recipes.models.attention as attention

    model, processor = setups[family]
    rows = make_rows()
    lengths = row_lengths(processor, rows)
    batch = PaddingFreeCollator(processor)(rows)
    seen = []
    original = attention.sdpa_attention_forward

    def recording(module, query, *args, **kwargs):
        seen.append((getattr(module, "is_causal", False), query.shape[2]))
        return original(module, query, *args, **kwargs)

    monkeypatch.setattr(attention, "sdpa_attention_forward", recording)
    model.set_attn_implementation("sdpa_varlen")
    try:
        with torch.no_grad():
            expected = losses_one_at_a_time(model, processor, rows)
            seen.clear()
            losses = losses_flattened(model, batch, lengths)
    finally:
        model.set_attn_implementation("sdpa")
    torch.testing.assert_close(losses, expected, rtol=1e-5, atol=1e-5)
    causal = [n for is_causal, n in seen if is_causal]
    layers = model.config.get_text_config().num_hidden_layers
    assert sorted(causal) == sorted(lengths * layers)  # each row alone, in every language-model layer


def test_the_module_docstrings_run():
    import doctest

    from vlm_recipes.data import length_mix, packing
    from vlm_recipes.models import attention

    for module in (packing, attention, length_mix):
        result = doctest.testmod(module)
        assert result.attempted and not result.failed, module.__name__


@pytest.mark.integration
def test_padding_free_batch_layout(setups):
    _, processor = setups["smolvlm"]
    rows = make_rows()
    padded = VisionChatCollator(processor)(rows)
    lengths = padded["attention_mask"].sum(dim=1).tolist()
    batch = PaddingFreeCollator(processor)(rows)
    starts = [sum(lengths[:i]) for i in range(len(rows))]
    assert batch["position_ids"].tolist() == [[p for n in lengths for p in range(n)]]
    for i, (s, n) in enumerate(zip(starts, lengths)):
        assert batch["input_ids"][0, s : s + n].tolist() == padded["input_ids"][i, :n].tolist()
        expected = padded["labels"][i, :n].clone()
        expected[0] = -100
        assert batch["labels"][0, s : s + n].tolist() == expected.tolist()
    # Every real image tile of the padded batch, in row order, and no padding tile.
    real = ~(padded["pixel_values"] == 0).flatten(2).all(-1)
    assert torch.equal(batch["pixel_values"][0], padded["pixel_values"][real])
    assert batch["pixel_values"].shape[1] == int(real.sum()) > len(rows)


@pytest.mark.integration
def test_padding_free_truncates_each_row_like_the_padded_collator(setups):
    _, processor = setups["qwen2_vl"]
    rows = make_rows()
    lengths = row_lengths(processor, rows)
    cap = sorted(lengths)[-2] - 2  # cuts the text of the two longest rows, never an image
    padded = VisionChatCollator(processor, max_length=cap)(rows)
    batch = PaddingFreeCollator(processor, max_length=cap, pad_to_multiple_of=8)(rows)
    kept = padded["attention_mask"].sum(dim=1).tolist()
    assert max(kept) == cap and sum(kept) < sum(lengths)
    assert batch["input_ids"].shape[1] == sum(kept) + (-sum(kept) % 8)
    tail = batch["position_ids"][0, 0, sum(kept) :]
    assert tail.tolist() == list(range(len(tail))) and (batch["labels"][0, sum(kept) :] == -100).all()


@pytest.mark.integration
@pytest.mark.parametrize("family", MROPE)
def test_mrope_positions_equal_the_models_get_rope_index(setups, family):
    model, processor = setups[family]
    collator = VisionChatCollator(processor)
    for row in make_rows():
        batch = collator([row])
        expected, _ = model.model.get_rope_index(
            batch["input_ids"], batch["mm_token_type_ids"], batch.get("image_grid_thw")
        )
        grids = batch.get("image_grid_thw", torch.zeros(0, 3))
        ours = mrope_positions(
            batch["mm_token_type_ids"][0].tolist(), list(grids), processor.image_processor.merge_size
        )
        assert torch.equal(ours, expected[:, 0])


def test_pack_rows_literal():
    assert pack_rows([5, 3, 4, 2, 6], capacity=8) == [[4, 3], [0, 1], [2]]
    assert pack_rows([3, 3, 3], capacity=6) == [[0, 1], [2]]
    assert pack_rows([10, 1], capacity=4) == [[0], [1]]  # an over-long row fills a bin alone (truncated later)
    assert pack_rows([], capacity=4) == []
    assert fill_ratio([5, 3, 4, 2, 6], [[4, 3], [0, 1], [2]], 8) == 20 / 24


def test_pack_rows_places_every_row_once_within_capacity():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(1, 300) for _ in range(2000)]
    bins = pack_rows(lengths, capacity=512)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 512 for b in bins)
    assert fill_ratio(lengths, bins, 512) > 0.97
    assert pack_rows(lengths, capacity=512) == bins  # deterministic


@pytest.mark.integration
def test_padding_free_refuses_left_padding(setups):
    with pytest.raises(ValueError, match="no padding to place"):
        PaddingFreeCollator(setups["smolvlm"][1], padding_side="left")


def test_a_family_not_proven_exact_is_refused_before_the_model_loads(tmp_path):
    from helpers import run_recipe

    from vlm_recipes.paths import REPO_ROOT

    config = REPO_ROOT / "recipes/configs/tiny-llava/sft_lora.yaml"
    for flag in ("--padding_free", "--packing"):
        with pytest.raises(
            ValueError,
            match=r"padding_free / packing are implemented for SmolVLM, Qwen2-VL, .* only .* LLaVA-1.5 .*0\.23",
        ):
            run_recipe(
                "sft", config, tmp_path / "run", flag, "true", "--max_length", "512",
                "--model_name_or_path", "tiny:llava-random",
            )  # fmt: skip
        assert not (tmp_path / "run").exists()


# -- videos (Qwen2.5-VL: temporal positions in absolute time) ------------------------------------------------------
VIDEO_FAMILIES = [f.name for f in FAMILY_RECORDS if f.packing_exact and f.video_time_scale is not None]
FRAME_RATE = {"max_frames": 8, "frame_list_fps": 3.0}  # a frame list is a video at 3 fps, sampled to <= 8 frames


def video_rows():
    """Video rows whose second_per_grid_ts differ (8 frames at 3 fps: 2/3 s per temporal patch, a step of 4/3
    positions; 16 frames sampled to 8: 4/3 s, 8/3 positions; 4 frames: 2 patches), beside an image and a text row."""

    def frames(n, color):
        return [Image.new("RGB", (40, 56), tuple((c + 12 * i) % 256 for c in color)) for i in range(n)]

    def video(n, color, question, answer):
        content = [{"type": "video"}, {"type": "text", "text": question}]
        messages = [
            {"role": "user", "content": content},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ]
        return {"videos": [frames(n, color)], "messages": messages}

    image = make_rows()[0]
    text = make_rows()[1]
    return [
        video(8, (200, 30, 30), "Which way does it move?", "left"),
        image,
        video(16, (30, 200, 30), "What color appears first?", "green then blue"),
        text,
        video(4, (30, 30, 200), "Describe the video.", "a blue square"),
    ]


def video_setup(setups, family):
    model, processor = setups[family]
    record = next(f for f in FAMILY_RECORDS if f.name == family)
    return model, processor, record.video_time_scale(model.config)


@pytest.mark.integration
@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_video_positions_equal_the_models_get_rope_index(setups, family):
    model, processor, scale = video_setup(setups, family)
    collator = VisionChatCollator(processor, video=FRAME_RATE)
    seen = set()
    for row in video_rows():
        batch = collator([row])
        if "video_grid_thw" not in batch:
            continue
        seen.add(round(float(batch["second_per_grid_ts"][0]), 3))
        expected, _ = model.model.get_rope_index(
            batch["input_ids"],
            batch["mm_token_type_ids"],
            video_grid_thw=batch["video_grid_thw"],
            second_per_grid_ts=batch["second_per_grid_ts"],
        )
        types = batch["mm_token_type_ids"][0].tolist()
        steps = [scale * batch["second_per_grid_ts"][0]]
        ours = mrope_positions(types, list(batch["video_grid_thw"]), processor.image_processor.merge_size, steps)
        assert torch.equal(ours, expected[:, 0])
    assert seen == {0.667, 1.333}  # two time scales, one of them not a whole number of positions per patch


@pytest.mark.integration
@pytest.mark.parametrize("family", VIDEO_FAMILIES)
@pytest.mark.parametrize("mode", ["padding_free", "packed"])
def test_video_rows_losses_and_lora_gradients_equal_rows_run_one_at_a_time(setups, family, mode):
    """Padding-free and packed batches holding videos: each row's own M-RoPE, its video's temporal positions spaced by
    the model's tokens_per_second x the row's second_per_grid_ts, gives every row its loss alone and the same LoRA
    gradients; the control (the same batch with the videos' temporal positions stepping by 1, Qwen2-VL's rule) moves
    the video rows' losses and leaves the others alone."""
    _, processor, scale = video_setup(setups, family)
    model = with_lora(build_model(family, processor))
    rows = video_rows()
    single = VisionChatCollator(processor, video=FRAME_RATE)
    lengths = [int(single([row])["attention_mask"].sum()) for row in rows]
    collator = PaddingFreeCollator(processor, video=FRAME_RATE)
    collator.video_time_scale = scale
    if mode == "packed":
        bins = pack_rows(lengths, capacity=2 * sum(lengths) // 3)
        assert len(bins) > 1
        order = [i for b in bins for i in b]
        batch = collator(list(PackedRows(rows, bins)))
    else:
        order = list(range(len(rows)))
        batch = collator(rows)
    expected = []
    for i in order:
        alone = single([rows[i]])
        expected.append(row_nll(model(**alone).logits[0], alone["labels"][0]))
    expected = torch.stack(expected)
    losses = losses_flattened(model, batch, [lengths[i] for i in order])
    torch.testing.assert_close(losses, expected, rtol=1e-5, atol=1e-5)
    expected_grads, grads = lora_grads_of(model, expected), lora_grads_of(model, losses)
    assert expected_grads and grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        scale_of = max(1.0, expected_grads[name].abs().max().item())
        assert (grad - expected_grads[name]).abs().max().item() <= 1e-5 * scale_of, name
    if mode == "padding_free":  # the control
        collator.positions = lambda types, grids, merge_size, time_steps=None: mrope_positions(
            types, grids, merge_size
        )
        untimed = collator(rows)
        with torch.no_grad():
            differs = (losses_flattened(model, untimed, lengths) - expected.detach()).abs()
        assert differs[[0, 2]].min() > 1e-3 and differs[[1, 3]].max() < 1e-5
        # the 4-frame video's step of 4/3 floors to 1 on its two patches (0, 1): the same positions, the same loss
        assert differs[4] < 1e-5


@pytest.mark.integration
def test_a_padding_free_video_without_the_models_time_scale_is_refused(setups):
    from vlm_recipes.data.collators import SampleError

    for family in VIDEO_FAMILIES:
        _, processor = setups[family]
        with pytest.raises(SampleError, match="need the model's video time scale"):
            PaddingFreeCollator(processor, video=FRAME_RATE)(video_rows()[:1])
