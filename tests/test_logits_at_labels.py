"""The label-position head (`logits_at_labels`) is exact: per-row losses and LoRA gradients equal those of TRL's own
fused head (the current path) and of the model's full logits, for every family we ship, padded, padding-free and
packed; it projects only the label positions; the trainers use it by default and `logits_at_labels: false` leaves
TRL's head; metrics TRL logs keep their values; a model it cannot honour is refused.

Models are random tiny ones of the real architectures built in-process (no pre-training), in float32.
"""

import copy

import pytest
import torch
from datasets import Dataset
from PIL import Image
from trl.trainer import utils as trl_utils
from trl.trainer.utils import add_fused_lm_head

from vlm_recipes.data.collators import PreferenceCollator, VisionChatCollator
from vlm_recipes.data.packing import PackedRows, PaddingFreeCollator, pack_rows
from vlm_recipes.evaluation.generation import sequence_logps
from vlm_recipes.launch import load_config
from vlm_recipes.models import label_head
from vlm_recipes.models.families import FAMILIES, set_image_resolution
from vlm_recipes.models.label_head import SFT_OUTPUTS, add_label_only_head, check_head
from vlm_recipes.paths import REPO_ROOT
from vlm_recipes.tiny import vlm as tiny
from vlm_recipes.training.methods import get_method
from vlm_recipes.training.run import Run, build_trainer, load_model_for_training

pytestmark = pytest.mark.integration

# Every registered family (a family added to the registry is covered without editing this file), and those whose
# padding-free / packed batches are proven exact.
NAMES = [f.name for f in FAMILIES]
EXACT_FAMILIES = [f.name for f in FAMILIES if f.packing_exact]


def test_every_registered_family_has_a_tiny_build():
    """The exactness cases below build each family's tiny model: a family without one would go untested."""
    assert set(NAMES) <= set(tiny.TINY), sorted(set(NAMES) - set(tiny.TINY))


def chat(question, answer, images=0):
    content = [{"type": "image"}] * images + [{"type": "text", "text": question}]
    return [{"role": "user", "content": content}, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def make_rows():
    red, blue = Image.new("RGB", (64, 64), (220, 40, 40)), Image.new("RGB", (48, 80), (40, 80, 220))
    wide = Image.new("RGB", (120, 40), (40, 200, 60))
    return [
        {"images": [red], "messages": chat("What color is the shape?", "red", images=1)},
        {"images": [], "messages": chat("Say hello to the user in a few words.", "hello there, how are you")},
        {"images": [red, blue], "messages": chat("Which colors are shown?", "red and blue", images=2)},
        {"images": [wide], "messages": chat("Describe the image.", "a wide green strip", images=1)},
    ]


@pytest.fixture(scope="module")
def processors():
    out = {}
    for family in NAMES:
        processor = tiny.build_processor(family)
        if family == "smolvlm":  # 1 to 4 tiles per image: rows differ in layout
            set_image_resolution(processor, longest_edge=128, image_splitting=True)
        elif family == "qwen2_vl":
            set_image_resolution(processor, min_pixels=28 * 28, max_pixels=112 * 112)
        out[family] = processor
    return out


def lora_model(family, processor):
    from peft import LoraConfig, get_peft_model

    from vlm_recipes.models.modeling import lora_target_modules

    model = tiny.build_model(family, processor.tokenizer, seed=3).float()
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


class Recorder:
    """Wraps a ChunkedLogProbFunction: records how many positions each call projects through the head."""

    def __init__(self, fn):
        self.fn, self.rows = fn, []

    def apply(self, hidden, *args):
        self.rows.append(hidden.shape[0])
        return self.fn.apply(hidden, *args)


def run_head(model, batch, which, monkeypatch):
    """(outputs, positions projected) of `model`'s fused forward with TRL's head ("trl") or ours ("ours")."""
    model = copy.deepcopy(model)
    base = model.get_base_model()
    add_fused_lm_head(base, outputs=SFT_OUTPUTS)
    if which == "ours":
        add_label_only_head(base)
    recorder = Recorder(trl_utils._ChunkedLogProbFunction if which == "trl" else label_head.ChunkedLogProbFunction)
    target = (trl_utils, "_ChunkedLogProbFunction") if which == "trl" else (label_head, "ChunkedLogProbFunction")
    monkeypatch.setattr(*target, recorder)
    batch = dict(batch)
    out = model(**batch, fused_lm_head=True)
    model.zero_grad()
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if "lora_" in n and p.grad is not None}
    return out, grads, sum(recorder.rows)


def per_row(values, segments):
    """Sums of `values` (1, L-1 or B, L-1) over each row: `segments` lists (batch row, start, end) in label space."""
    return torch.stack([values[b, s:e].sum() for b, s, e in segments])


def full_logits_losses(model, batch, segments):
    """Each row's summed NLL from the model's own full logits."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        logits = model(**inputs).logits[:, :-1]
    nll = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2), batch["labels"][:, 1:], ignore_index=-100, reduction="none"
    )
    return per_row(nll, segments)


def full_logits_grads(model, batch):
    """LoRA gradients of the mean NLL over the label tokens computed from the model's own full logits."""
    model = copy.deepcopy(model)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="sum")
    (loss / (labels != -100).sum()).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if "lora_" in n and p.grad is not None}


def assert_grads_close(grads, expected):
    assert expected and grads.keys() == expected.keys()
    for name, grad in grads.items():
        assert expected[name].abs().sum() > 0, name
        scale = max(1.0, expected[name].abs().max().item())
        diff = (grad - expected[name]).abs().max().item()
        assert diff <= 1e-5 * scale, f"{name}: max difference {diff:.2e} (scale {scale:.2f})"


def batch_of(family, processor, mode):
    """A training batch of make_rows() and its rows' (batch row, start, end) spans of shifted labels."""
    rows = make_rows()
    if mode == "padded":
        batch = VisionChatCollator(processor)(rows)
        n = batch["input_ids"].shape[1] - 1
        return batch, [(b, 0, n) for b in range(len(rows))]
    lengths = [int(VisionChatCollator(processor)([r])["attention_mask"].sum()) for r in rows]
    if mode == "packed":
        bins = pack_rows(lengths, capacity=2 * sum(lengths) // 3)
        order = [i for b in bins for i in b]
        batch = PaddingFreeCollator(processor)(list(PackedRows(rows, bins)))
    else:
        order = list(range(len(rows)))
        batch = PaddingFreeCollator(processor)(rows)
    # The label of position t is the token at t + 1: row i's shifted labels lie at [start - 1, end - 1).
    segments, start = [], 0
    for i in order:
        segments.append((0, max(start - 1, 0), start + lengths[i] - 1))
        start += lengths[i]
    return batch, segments


CASES = [(f, "padded") for f in NAMES] + [(f, m) for f in EXACT_FAMILIES for m in ("padding_free", "packed")]


@pytest.mark.parametrize(("family", "mode"), CASES)
def test_losses_and_lora_gradients_equal_trls_head(processors, family, mode, monkeypatch):
    processor = processors[family]
    model = lora_model(family, processor)
    batch, segments = batch_of(family, processor, mode)
    trl_out, trl_grads, trl_rows = run_head(model, batch, "trl", monkeypatch)
    our_out, our_grads, our_rows = run_head(model, batch, "ours", monkeypatch)

    labels = batch["labels"][:, 1:]
    assert our_rows == int((labels != -100).sum()), "only the label positions go through the head"
    assert trl_rows == labels.numel() > 3 * our_rows, "TRL's head projects every position on a CPU"

    expected = per_row(-trl_out.log_probs.detach(), segments)
    losses = per_row(-our_out.log_probs.detach(), segments)
    torch.testing.assert_close(losses, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(losses, full_logits_losses(model, batch, segments), rtol=1e-5, atol=1e-5)
    for name in ("entropy", "is_top1", "label_mask"):  # what SFTTrainer logs: entropy, mean_token_accuracy
        torch.testing.assert_close(getattr(our_out, name).float(), getattr(trl_out, name).float(), rtol=0, atol=1e-5)
    assert_grads_close(our_grads, trl_grads)
    assert_grads_close(our_grads, full_logits_grads(model, batch))


def test_the_comparison_fails_on_a_head_off_by_a_little(processors, monkeypatch):
    """Control: the same comparison, with the label-position head fed hidden states scaled by 1 + 1e-3, fails both on
    the per-row losses and on the LoRA gradients; the 1e-5 tolerance is tight enough to see such a defect."""
    processor = processors["smolvlm"]
    model = lora_model("smolvlm", processor)
    batch, segments = batch_of("smolvlm", processor, "padded")
    trl_out, trl_grads, _ = run_head(model, batch, "trl", monkeypatch)
    monkeypatch.undo()
    real = label_head.label_log_probs

    def off(model, hidden, *args, **kwargs):
        return real(model, hidden * (1 + 1e-3), *args, **kwargs)

    monkeypatch.setattr(label_head, "label_log_probs", off)
    our_out, our_grads, _ = run_head(model, batch, "ours", monkeypatch)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(
            per_row(-our_out.log_probs.detach(), segments),
            per_row(-trl_out.log_probs.detach(), segments),
            rtol=1e-5,
            atol=1e-5,
        )
    with pytest.raises(AssertionError):
        assert_grads_close(our_grads, trl_grads)


def test_an_all_ignored_batch_gives_a_zero_loss_that_backpropagates(processors):
    model = lora_model("smolvlm", processors["smolvlm"])
    add_label_only_head(model.get_base_model())
    batch = VisionChatCollator(processors["smolvlm"])(make_rows()[:2])
    batch["labels"].fill_(-100)
    out = model(**batch, fused_lm_head=True)
    out.loss.backward()
    assert out.loss.item() == 0.0


def test_generation_and_plain_forwards_are_unchanged(processors):
    processor = processors["qwen2_vl"]
    model = tiny.build_model("qwen2_vl", processor.tokenizer, seed=3).float().eval()
    batch = VisionChatCollator(processor)(make_rows()[:2])
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    before = model(**inputs).logits
    prompt = VisionChatCollator(processor)(make_rows()[:1])
    prompt = {k: v for k, v in prompt.items() if k != "labels"}
    generated = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    add_label_only_head(model)
    torch.testing.assert_close(model(**inputs).logits, before, rtol=0, atol=0)
    assert torch.equal(model.generate(**prompt, max_new_tokens=4, do_sample=False), generated)


@pytest.mark.parametrize("family", ["smolvlm", "llava"])
def test_held_out_sequence_logps_equal_full_logits(processors, family):
    """Preference accuracy's log-probabilities (evaluation/generation.py) through the label-position head."""
    processor = processors[family]
    model = lora_model(family, processor).eval()
    red = Image.new("RGB", (64, 64), (220, 40, 40))
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color?"}]}]
    rows = [
        {"images": [red], "prompt": prompt, "chosen": [{"role": "assistant", "content": "red"}],
         "rejected": [{"role": "assistant", "content": "a blue square on grey"}]},
    ] * 2  # fmt: skip
    batch = PreferenceCollator(processor)(rows)
    mask = batch["completion_mask"]
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "completion_mask"}
        logits = model(**inputs).logits[:, :-1]
        token = torch.log_softmax(logits, -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
        expected = (token * mask[:, 1:]).sum(1)
    torch.testing.assert_close(sequence_logps(model, dict(batch)), expected, rtol=1e-5, atol=1e-5)


def test_a_head_it_cannot_honour_is_refused(processors):
    model = tiny.build_model("smolvlm", processors["smolvlm"].tokenizer, seed=3)
    model.config.get_text_config().logit_scale = 0.5
    with pytest.raises(ValueError, match="logits_at_labels: false"):
        check_head(model)


# -- the trainers -------------------------------------------------------------------------------------------------
def sft_dataset(n=4):
    red = Image.new("RGB", (64, 64), (220, 40, 40))
    return Dataset.from_list(
        [
            {"row_id": f"r{i}", "images": [red], "messages": chat("What color is it?", "red " * (i + 1), 1)}
            for i in range(n)
        ]
    )


def trainer_for(tmp_path, method, config, dataset, **overrides):
    data_args, args, model_args = load_config(
        method, REPO_ROOT / config, output_dir=str(tmp_path / "out"), report_to="none",
        per_device_train_batch_size=4, **overrides,
    )  # fmt: skip
    r = Run(get_method(method), data_args, args, model_args, tmp_path / "out", train_ds=dataset)
    from vlm_recipes.models.modeling import load_processor

    r.processor = load_processor(model_args)
    return build_trainer(r, load_model_for_training(r))


@pytest.mark.parametrize("use_peft", [True, False])
def test_sft_trainer_loss_metrics_and_gradients_equal_with_and_without(tmp_path, use_peft, monkeypatch):
    """`VLMSFTTrainer` puts the head on by default (only label positions projected); its loss, logged entropy and
    mean_token_accuracy and gradients equal those with `logits_at_labels: false` (TRL's head)."""
    results = {}
    for on in (True, False):
        trainer = trainer_for(
            tmp_path / str(on), "sft", "recipes/configs/tiny-smolvlm/sft_lora.yaml", sft_dataset(),
            model_name_or_path="tiny:smolvlm-random", logits_at_labels=on, use_peft=use_peft,
        )  # fmt: skip
        recorder = Recorder(label_head.ChunkedLogProbFunction)
        monkeypatch.setattr(label_head, "ChunkedLogProbFunction", recorder)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
        model = trainer.model.train()
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if k in ("entropy", "mean_token_accuracy")}
        results[on] = (loss.detach(), metrics, grads, sum(recorder.rows))
        assert getattr(trainer.model.get_base_model() if use_peft else trainer.model, "_label_only_head", False) == on
    (loss_on, metrics_on, grads_on, rows_on), (loss_off, metrics_off, grads_off, rows_off) = (
        results[True],
        results[False],
    )
    assert rows_on == int((batch["labels"][:, 1:] != -100).sum()) and rows_off == 0
    torch.testing.assert_close(loss_on, loss_off, rtol=1e-5, atol=1e-6)
    assert metrics_on.keys() == metrics_off.keys() == {"entropy", "mean_token_accuracy"}
    for k in metrics_on:
        assert abs(metrics_on[k] - metrics_off[k]) < 1e-5, k
    assert grads_on.keys() == grads_off.keys()
    for name in grads_on:
        scale = max(1.0, grads_off[name].abs().max().item())
        assert (grads_on[name] - grads_off[name]).abs().max().item() <= 1e-5 * scale, name


def test_dpo_trainer_loss_and_metrics_equal_with_and_without(tmp_path, monkeypatch):
    """DPO (and MPO, the same trainer) with LoRA: the policy and the adapter-disabled reference both go through the
    head; the loss and every logged figure equal those of TRL's head."""
    red = Image.new("RGB", (64, 64), (220, 40, 40))
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color?"}]}]
    ds = Dataset.from_list(
        [
            {"row_id": f"p{i}", "images": [red], "prompt": prompt,
             "chosen": [{"role": "assistant", "content": "red" + " red" * i}],
             "rejected": [{"role": "assistant", "content": "blue" + " square" * (3 - i)}]}
            for i in range(4)
        ]
    )  # fmt: skip
    results = {}
    for on in (True, False):
        trainer = trainer_for(
            tmp_path / str(on), "mpo", "recipes/configs/tiny-qwen2-vl/mpo.yaml", ds,
            model_name_or_path="tiny:qwen2_vl-random", logits_at_labels=on,
        )  # fmt: skip
        recorder = Recorder(label_head.ChunkedLogProbFunction)
        monkeypatch.setattr(label_head, "ChunkedLogProbFunction", recorder)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
        trainer.model.train()
        # A LoRA B of zeros makes the policy equal the reference: move it so the preference terms are not all 0.
        with torch.no_grad():
            torch.manual_seed(0)
            for n, p in trainer.model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.05)
        loss = trainer.compute_loss(trainer.model, dict(batch))
        metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
        results[on] = (loss.detach(), metrics, sum(recorder.rows))
    (loss_on, metrics_on, rows_on), (loss_off, metrics_off, rows_off) = results[True], results[False]
    completion = int(batch["completion_mask"][:, 1:].sum())
    assert rows_on == 2 * completion and rows_off == 0  # policy + reference, completion positions only
    torch.testing.assert_close(loss_on, loss_off, rtol=1e-5, atol=1e-6)
    assert metrics_on.keys() == metrics_off.keys() and len(metrics_on) > 5
    for k in metrics_on:
        assert abs(metrics_on[k] - metrics_off[k]) <= 1e-5 * max(1.0, abs(metrics_off[k])), k
