"""Training batches: row lengths counted like preflight and cached, length-grouped sampling through the real trainer,
packed and padding-free plans wired into TRL's SFT trainer, and the settings refused."""

import random

import pytest
import torch
from datasets import Dataset
from PIL import Image

from vlm_recipes.data.length_mix import mix_dataset
from vlm_recipes.data.packing import PackedRows, PaddingFreeCollator
from vlm_recipes.launch import load_config
from vlm_recipes.paths import REPO_ROOT
from vlm_recipes.training import batching, lengths, preflight
from vlm_recipes.training.methods import get_method
from vlm_recipes.training.run import Run, build_trainer, load_model_for_training

pytestmark = pytest.mark.unit

TINY_QWEN = REPO_ROOT / "recipes/configs/tiny-qwen2-vl/sft_lora.yaml"


def chat(question, answer, image=True):
    content = ([{"type": "image"}] if image else []) + [{"type": "text", "text": question}]
    return [{"role": "user", "content": content}, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def sft_rows(n=6):
    rng = random.Random(0)
    rows = []
    for i in range(n):
        image = i % 3 != 0
        size = (rng.randint(30, 200), rng.randint(30, 200))
        rows.append(
            {
                "row_id": f"r{i}",
                "images": [Image.new("RGB", size, (200, 30, 30))] if image else [],
                "messages": chat("What is it? " * rng.randint(1, 4), "a red thing " * rng.randint(1, 6), image),
            }
        )
    return Dataset.from_list(rows)


@pytest.mark.parametrize("family", ["smolvlm", "qwen2_vl"])
def test_lengths_are_preflights_token_counts(processors, family):
    ds = sft_rows()
    report = preflight.check_split("sft", ds, processors[family])
    assert not report.errors
    assert lengths.count_lengths(get_method("sft"), ds, processors[family], cache=False) == report.tokens


def test_preference_row_length_is_its_longer_sequence(processors):
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color?"}]}]
    ds = Dataset.from_list(
        [
            {"images": [image], "prompt": prompt, "chosen": [{"role": "assistant", "content": "red"}],
             "rejected": [{"role": "assistant", "content": "a large blue square on a grey ground"}]},
            {"images": [image], "prompt": prompt, "chosen": [{"role": "assistant", "content": "it is red, surely"}],
             "rejected": [{"role": "assistant", "content": "blue"}]},
        ]
    )  # fmt: skip
    report = preflight.check_split("dpo", ds, processors["smolvlm"])
    chosen_rejected = list(zip(report.tokens[::2], report.tokens[1::2]))
    assert chosen_rejected[0][1] > chosen_rejected[0][0] and chosen_rejected[1][0] > chosen_rejected[1][1]
    counted = lengths.count_lengths(get_method("dpo"), ds, processors["smolvlm"], cache=False)
    assert counted == [max(pair) for pair in chosen_rejected]


def test_lengths_are_cached_by_data_and_processor_settings(monkeypatch, tmp_path):
    from vlm_recipes.models.families import set_image_resolution
    from vlm_recipes.tiny.vlm import build_processor

    monkeypatch.setenv("VLM_RECIPES_CACHE", str(tmp_path))
    processor, ds, sft = build_processor("qwen2_vl"), sft_rows(), get_method("sft")
    counted = lengths.count_lengths(sft, ds, processor)
    assert len(list((tmp_path / "lengths").glob("*.json"))) == 1

    def no_counting(*args, **kwargs):
        raise AssertionError("counted again")

    with monkeypatch.context() as patch:
        patch.setattr(lengths, "undecoded", no_counting)
        assert lengths.count_lengths(sft, ds, processor) == counted  # read back
    set_image_resolution(processor, min_pixels=56 * 56, max_pixels=224 * 224)  # more image tokens: another entry
    bigger = lengths.count_lengths(sft, ds, processor)
    assert len(list((tmp_path / "lengths").glob("*.json"))) == 2
    assert sum(bigger) > sum(counted)


def test_a_bad_row_met_while_counting_is_named(processors):
    rows = sft_rows(4).to_list()
    rows[2]["messages"] = [{"role": "narrator", "content": [{"type": "text", "text": "hello"}]}]
    with pytest.raises(ValueError, match=r"Counting row lengths .* row row_id='r2': .*role 'narrator'"):
        lengths.count_lengths(get_method("sft"), Dataset.from_list(rows), processors["smolvlm"], cache=False)


def trainer_for(tmp_path, ds, processor, **overrides):
    """TRL's SFT trainer exactly as the SFT recipe builds it, on `ds` with `processor` (tiny random Qwen2-VL)."""
    data_args, args, model_args = load_config(
        "sft", TINY_QWEN, model_name_or_path="tiny:qwen2_vl-random", output_dir=str(tmp_path / "out"),
        report_to="none", **overrides,
    )  # fmt: skip
    r = Run(get_method("sft"), data_args, args, model_args, tmp_path / "out", processor=processor, train_ds=ds)
    return build_trainer(r, load_model_for_training(r)), r


def padding_fraction(batches, row_lengths):
    real = sum(row_lengths[i] for b in batches for i in b)
    computed = sum(len(b) * max(row_lengths[i] for i in b) for b in batches)
    return 1 - real / computed


@pytest.mark.integration
def test_group_by_length_batches_pad_less_than_random_batches(tmp_path, monkeypatch):
    """On the benchmark's mix at Qwen2-VL-2B's real image settings: the trainer's own sampler, fed our counted
    lengths, gives batches of 8 with far less padding than random batches of 8."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from vlm_recipes.tiny.real_size import build_processor

    monkeypatch.setenv("VLM_RECIPES_CACHE", str(tmp_path / "cache"))
    ds = mix_dataset(96, seed=1)
    trainer, r = trainer_for(
        tmp_path, ds, build_processor("qwen2-vl-2b"), train_sampling_strategy="group_by_length",
        per_device_train_batch_size=8,
    )  # fmt: skip
    assert r.batching == {"batching": "length-grouped"}
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler)
    row_lengths = trainer.train_dataset["length"]
    assert min(row_lengths) < 100 < 300 < max(row_lengths)  # text-only rows and photos at real settings
    # transformers sorts random mega-batches of min(n / (4 * batch), 50) batches: here 3 batches of 8, so grouping
    # works on 24 rows at a time (more rows, larger mega-batches, less padding). Averaged over 20 draws of each.
    grouped = randomly = 0.0
    for seed in range(20):
        torch.manual_seed(seed)
        order, shuffled = list(sampler), torch.randperm(len(ds)).tolist()
        grouped += padding_fraction([order[i : i + 8] for i in range(0, len(order), 8)], row_lengths) / 20
        randomly += padding_fraction([shuffled[i : i + 8] for i in range(0, len(order), 8)], row_lengths) / 20
    assert randomly > 0.3 and grouped < 0.6 * randomly, (grouped, randomly)


@pytest.mark.integration
def test_dpo_group_by_length_feeds_the_trainers_sampler_with_the_longer_sequence(tmp_path, processors):
    """DPO (TRL's DPOTrainer keeps transformers' sampler): each pair's length is its longer sequence."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    def turn(text):
        return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]

    image = Image.new("RGB", (64, 64), (200, 30, 30))
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color?"}]}]
    rows = [
        {"images": [image], "prompt": prompt, "chosen": turn("red"), "rejected": turn("blue " * k)}
        for k in range(1, 9)
    ]
    ds = Dataset.from_list(rows)
    data_args, args, model_args = load_config(
        "dpo", TINY_QWEN.with_name("dpo.yaml"), model_name_or_path="tiny:qwen2_vl-random",
        output_dir=str(tmp_path / "out"), report_to="none", train_sampling_strategy="group_by_length",
        per_device_train_batch_size=2,
    )  # fmt: skip
    r = Run(
        get_method("dpo"), data_args, args, model_args, tmp_path / "out", processor=processors["qwen2_vl"], train_ds=ds
    )
    trainer = build_trainer(r, load_model_for_training(r))
    assert isinstance(trainer._get_train_sampler(), LengthGroupedSampler)
    counted = trainer.train_dataset["length"]
    assert counted == lengths.count_lengths(get_method("dpo"), ds, processors["qwen2_vl"], cache=False)
    assert counted == sorted(counted) and counted[0] < counted[-1]  # rejected answers grow: so do the pairs


@pytest.mark.integration
def test_packed_plan_reaches_trls_trainer(tmp_path, processors):
    ds = sft_rows(12)
    trainer, r = trainer_for(tmp_path, ds, processors["qwen2_vl"], packing=True, max_length=128)
    assert isinstance(trainer.train_dataset, PackedRows) and isinstance(trainer.data_collator, PaddingFreeCollator)
    assert trainer.args.packing  # TRL saw it off while it was built; the arguments keep what was asked
    assert r.batching["batching"] == "packed" and 0.5 < r.batching["packing_fill_ratio"] <= 1
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and batch["position_ids"].shape[:2] == (4, 1)
    assert "attention_mask" not in batch
    assert sum(len(b) for b in trainer.train_dataset.bins) == len(ds)


@pytest.mark.integration
def test_padding_free_plan_reaches_trls_trainer(tmp_path, processors):
    trainer, r = trainer_for(tmp_path, sft_rows(4), processors["qwen2_vl"], padding_free=True)
    assert isinstance(trainer.data_collator, PaddingFreeCollator) and trainer.args.padding_free
    assert r.batching == {"batching": "padding-free"}
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    # The logged token count is every position of the sequence (TRL alone counts Qwen2-VL's (4, 1, L) positions as 1).
    trainer.model.train()
    trainer.compute_loss(trainer.model, dict(batch))
    assert trainer._metrics["train"]["num_tokens"] == [batch["input_ids"].shape[1]]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"packing": True, "max_length": None}, "packing needs max_length"),
        ({"packing": True, "train_sampling_strategy": "group_by_length"}, "nothing to group with packing"),
        ({"padding_free": True, "padding_side": "left"}, "padding_side: left has no effect with padding_free"),
    ],
)
def test_batching_settings_that_cannot_be_honoured_are_refused_before_anything(tmp_path, overrides, message):
    from vlm_recipes.training.run import run

    data_args, args, model_args = load_config("sft", TINY_QWEN, output_dir=str(tmp_path / "out"), report_to="none")
    for key, value in overrides.items():
        setattr(data_args if key == "padding_side" else args, key, value)
    with pytest.raises(ValueError, match=message):
        run("sft", data_args, args, model_args)
    assert not (tmp_path / "out").exists()


def test_mode_names():
    from types import SimpleNamespace

    def args(**kw):
        return SimpleNamespace(**{"packing": False, "padding_free": False, "train_sampling_strategy": "random", **kw})

    assert batching.mode_of(args()) == "padded"
    assert batching.mode_of(args(train_sampling_strategy="group_by_length")) == "length-grouped"
    assert batching.mode_of(args(padding_free=True)) == "padding-free"
    assert batching.mode_of(args(packing=True, padding_free=True)) == "packed"
