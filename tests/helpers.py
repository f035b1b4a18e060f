"""What many test modules share, in one module, imported one way: `from helpers import ...`.

Running recipes through their entry points (`recipe_module`, `run_recipe`, `parse_config`), the configs and the
recipes they declare, the tiny family standing in for a real checkpoint, the two-rank launches of the distributed
tests, and literal cases several modules check.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import yaml
from safetensors.torch import load_file

from vlm_recipes.launch import parse, recipe_script_module, run_recipe  # noqa: F401  (run_recipe: shared)
from vlm_recipes.models.families import FAMILIES as FAMILY_RECORDS
from vlm_recipes.models.families import family_of_checkpoint
from vlm_recipes.paths import REPO_ROOT
from vlm_recipes.tiny.common import SHIPPED_BASES
from vlm_recipes.training.methods import METHODS

CONFIGS = sorted((REPO_ROOT / "recipes" / "configs").rglob("*.yaml"))
TRAINING_RECIPES = set(METHODS)
INFERENCE_RECIPES = {"generate", "evaluate_models"}
BENCHMARK_RECIPES = {"benchmark"}  # recipes/benchmark.py: (BenchmarkArguments, VLMModelConfig)
# The CLIP, ViT and BLIP recipes: other recipes with other config types (checked by test_baseline_config_parses).
BASELINE_RECIPES = {"clip_zero_shot", "clip_train", "vit_baseline", "blip_zero_shot", "blip_train"}
RECIPES = TRAINING_RECIPES | INFERENCE_RECIPES | BENCHMARK_RECIPES | BASELINE_RECIPES


def recipe_of(path: Path) -> str:
    """The recipe a config declares (its `recipe:` field): which script parses and runs it."""
    return yaml.safe_load(path.read_text())["recipe"]


VLM_CONFIGS = [p for p in CONFIGS if recipe_of(p) not in BASELINE_RECIPES]

# Families whose pre-trained tiny bases are shipped in the repository (vlm_recipes/tiny/common.py SHIPPED_BASES), the
# only ones the default test run may use (tests/conftest.py fails a default-run test that resolves another); the others
# run real configs' code paths on their `-random` model. The other bases are pre-trained only by slow tests (minutes of
# CPU each).
PRETRAINED_IN_DEFAULT_RUN = {name.removeprefix("tiny:").split("-")[0] for name in SHIPPED_BASES} - {"clip", "blip"}


def tiny_family(config: dict) -> str:
    """The tiny family standing in for a real config's model (`config` is its parsed YAML): the family record that
    lists the checkpoint (`Family.checkpoints`)."""
    return family_of_checkpoint(config["model_name_or_path"]).name


recipe_module = recipe_script_module  # recipes/<name>.py as a module; run_recipe runs its main in this process


def parse_config(path: Path, *overrides: str):
    module = recipe_module(recipe_of(path))
    return parse(module.PARSER_TYPES, module.DEFAULT_CONFIG, ["--config", str(path), *overrides], recipe_of(path))


# -- the SFT offline defaults ----------------------------------------------------------------------------------
SFT_CONFIG_DIRS = {
    "smolvlm": "tiny-smolvlm",
    "qwen2_vl": "tiny-qwen2-vl",
    "llava": "tiny-llava",
    "llava_onevision": "tiny-llava-onevision",
    "qwen2_5_vl": "tiny-qwen2.5-vl",
    "qwen3_vl": "tiny-qwen3-vl",
    "qwen3_5": "tiny-qwen3.5",
    "gemma3": "tiny-gemma3",
    "gemma4": "tiny-gemma4",
}


def run_sft(family, output_dir, *overrides):
    config = REPO_ROOT / "recipes" / "configs" / SFT_CONFIG_DIRS[family] / "sft_lora.yaml"
    return run_recipe("sft", config, output_dir, *overrides)


# -- two-rank launches (test_distributed, test_resume) --------------------------------------------------------
DRIVER = REPO_ROOT / "tests/scripts/distributed_recipe.py"
ACCELERATE = Path(sys.executable).parent / "accelerate"
# What a CPU needs on top of the GPU configs: two processes, no bf16 autocast.
CPU_OVERRIDES = {"multi_cpu": [], "zero2": ["--num_processes", "2", "--mixed_precision", "no"]}
CPU_OVERRIDES["zero3"] = CPU_OVERRIDES["zero2"]
SMALL_RUN = [
    "--max_steps",
    "12",
    "--max_eval_samples",
    "8",
    "--synthetic_train_samples",
    "200",
    "--logging_steps",
    "2",
]


def free_port() -> int:
    """A TCP port free now on localhost: two multi-process tests at once (pytest -n 2) must not share 29500."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(config: str, dump: Path, out: Path, *recipe_args: str, timeout: int = 600):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    cmd = [str(ACCELERATE), "launch", "--config_file", str(REPO_ROOT / f"accelerate_configs/{config}.yaml")]
    cmd += ["--main_process_port", str(free_port())]
    cmd += [*CPU_OVERRIDES[config], str(DRIVER), "sft", str(dump), "--output_dir", str(out)]
    cmd += ["--report_to", "none", *recipe_args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    # The recipes destroy their process group on the way out (vlm_recipes.processes), yet a ZeRO-3 rank can still
    # abort while its threads are torn down ("terminate called without an active exception"): seen once in 20
    # launches on a loaded 2-core machine, and again on 2026-12-07 with two pytest workers. One more launch, only for
    # that abort and only when both ranks had written their records (the run itself finished); a warning says so.
    finished = all((dump / f"rank{r}.safetensors").exists() for r in (0, 1))
    if result.returncode != 0 and finished and _TEARDOWN_ABORT in result.stderr:
        warnings.warn(f"{config}: a rank aborted at teardown after a finished run; launched once more", stacklevel=2)
        shutil.rmtree(dump, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    return result


_TEARDOWN_ABORT = "terminate called without an active exception"


def rank_records(dump: Path):
    weights = [load_file(dump / f"rank{r}.safetensors") for r in (0, 1)]
    logs = [json.loads((dump / f"rank{r}.json").read_text()) for r in (0, 1)]
    return weights, logs


_runs: dict = {}


def small_run(config: str, tmp_path_factory):
    if config not in _runs:
        base = tmp_path_factory.mktemp(config)
        result = launch(config, base / "dump", base / "out", *SMALL_RUN)
        assert result.returncode == 0, result.stderr[-3000:]
        _runs[config] = (base, *rank_records(base / "dump"))
    return _runs[config]


def assert_rl_default_learned(method: str, results: dict, out: Path) -> None:
    """The bars of the GRPO and RLOO offline defaults: held-out reward and accuracy +0.05 on 200 prompts never trained
    on (half the smallest GRPO gain over 5 tiny-base seeds x 2 families, docs/figures.md), most groups with reward
    variance, the figures written, and a LoRA that trained (its B matrices start at zero)."""
    assert results["method"] == method and results["num_eval_samples"] == 200
    assert results["reward_after"] >= results["reward_before"] + 0.05, results
    assert results["accuracy_after"] >= results["accuracy_before"] + 0.05, results
    assert results["frac_reward_zero_std"] < 0.9, results  # most groups taught something
    assert json.loads((out / "eval_results.json").read_text())["reward_after"] == results["reward_after"]
    lora_b = [t for name, t in load_file(out / "adapter_model.safetensors").items() if "lora_B" in name]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)


# -- literal cases shared by several modules ---------------------------------------------------------------------
FAMILIES = [f.name for f in FAMILY_RECORDS]  # every registered family: a new one is tested without editing a list


def _rendered_turn(processor) -> tuple[str, str]:
    """The text the family's training chat template (the one the collators train with: TRL's or ours) writes for a
    one-word answer, and that answer ("zq")."""
    from vlm_recipes.models.chat_templates import training_chat_template

    template = training_chat_template(processor)
    chat = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False, chat_template=template)
    answered = [*chat, {"role": "assistant", "content": [{"type": "text", "text": "zq"}]}]
    full = processor.apply_chat_template(answered, tokenize=False, chat_template=template)
    assert full.startswith(prompt), (prompt, full)
    return full[len(prompt) :], "zq"


def end_of_turn(processor) -> str:
    """The special token the family's training template writes right after an assistant answer, read from the
    rendered text (not from the family record the code under test uses)."""
    turn, answer = _rendered_turn(processor)
    rest = turn[turn.index(answer) + len(answer) :]
    specials = sorted(processor.tokenizer.get_added_vocab(), key=len, reverse=True)
    found = next((t for t in specials if rest.startswith(t)), None)
    assert found, f"no special token right after the answer in {turn!r}"
    return found


def answer_prefix(processor) -> str:
    """What the template writes between the generation prompt and the answer (e.g. SmolVLM's and LLaVA's space)."""
    turn, answer = _rendered_turn(processor)
    return turn[: turn.index(answer)]


def trained_prefix(processor) -> str:
    """What the family's training template trains before an answer, inside its `{% generation %}` span, read from the
    rendered text (transformers' renderer, not the code under test): Qwen3.5's empty think block
    (`<think>\\n\\n</think>\\n\\n`), nothing for the other families (SmolVLM's space is `answer_prefix`)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    from vlm_recipes.models.chat_templates import training_chat_template

    chat = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    chat.append({"role": "assistant", "content": [{"type": "text", "text": "zq"}]})
    texts, spans = render_jinja_template(
        conversations=[chat],
        chat_template=training_chat_template(processor),
        return_assistant_tokens_mask=True,
        **processor.tokenizer.special_tokens_map,
    )
    start, end = spans[0][-1]
    prefix = texts[0][start:end].split("zq")[0]
    return prefix if prefix.strip() else ""


class _EndOfTurn(dict):
    """EOT[family]: `end_of_turn` of the family's tiny processor, computed once."""

    def __missing__(self, family):
        from vlm_recipes.tiny.vlm import build_processor

        self[family] = end_of_turn(build_processor(family))
        return self[family]


EOT = _EndOfTurn()


class _TrainedPrefix(dict):
    """TRAINED_PREFIX[family]: `trained_prefix` of the family's tiny processor, computed once."""

    def __missing__(self, family):
        from vlm_recipes.tiny.vlm import build_processor

        self[family] = trained_prefix(build_processor(family))
        return self[family]


TRAINED_PREFIX = _TrainedPrefix()


SHAPES = ["a red circle", "a blue square", "a green triangle", "a yellow star"]

# (model output, the option read; None: nothing readable, it scores 0). Options: SHAPES.
CHOICE_CASES = [
    # a letter alone, with punctuation or brackets, any case
    ("B", "B"),
    ("b", "B"),
    ("(B)", "B"),
    ("B.", "B"),
    ("[C]", "C"),
    ("(c)", "C"),
    ("Option D", "D"),
    ("**B**", "B"),
    # a leading letter with the option's text
    ("B. a blue square", "B"),
    ("(C) a green triangle", "C"),
    ("D: a yellow star", "D"),
    # a stated answer, LaTeX, tags, at the end of a rationale
    ("The answer is (B).", "B"),
    ("The answer is B", "B"),
    ("Answer: C", "C"),
    ("Answer: (b) a blue square", "B"),
    ("The correct option is D because the star is yellow.", "D"),
    ("$\\boxed{C}$", "C"),
    ("\\text{(A)}", "A"),
    ("<answer>D</answer>", "D"),
    ("<think>A looks wrong, B too.</think> The answer is C.", "C"),
    ("Looking at the colours, the shape is green and has three sides, so the answer is C.", "C"),
    ("I cannot see the image clearly, but the answer is B.", "B"),
    ("The answer is the blue square.", "B"),
    # letters in running text: one, or the last of several
    ("The shape is green with three sides. C", "C"),
    ("I think it is B.", "B"),
    ("It could be A or B, but on balance I pick C.", "C"),
    ("A and B are wrong; D.", "D"),
    ("Option A shows a circle, option B a square. The star in the image matches option D.", "D"),
    # the option's text instead of its letter
    ("a blue square", "B"),
    ("It is a green triangle.", "C"),
    ("The image shows a yellow star on grey.", "D"),
    ("A red circle.", "A"),  # "A" is the article here; the text names option A
    # nothing readable: refusals, no option, a letter that is no option
    ("A cat is sitting on the mat.", None),  # the article "A" is not read as option A
    ("I'm sorry, I cannot determine the answer from this image.", None),
    ("None of the options is correct.", None),
    ("", None),
    ("square", None),  # shorter than every option's text
    ("E", None),  # four options: A-D
]


# -- image-token blocks and attention masks (the Gemma families' bidirectional image attention) -------------------
def caption_rows(n=2, seed=1):
    """`n` rows of the synthetic caption task at 64 px."""
    from vlm_recipes.data import synthetic

    data = synthetic.make_dataset("caption", num_samples=n, seed=seed, image_size=64)
    return [data[i] for i in range(n)]


def two_image_row():
    """A row with two images (red, blue) in one user turn."""
    from PIL import Image

    red, blue = Image.new("RGB", (64, 64), (220, 40, 40)), Image.new("RGB", (64, 64), (40, 80, 220))
    content = [{"type": "image"}, {"type": "text", "text": "and"}, {"type": "image"}, {"type": "text", "text": "?"}]
    return {
        "images": [red, blue],
        "messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "red and blue"}],
    }


def image_blocks(types_row):
    """[(start, end)] of the runs of image tokens (type 1) of one row's token types."""
    out, start = [], None
    for i, t in enumerate([*types_row.tolist(), 0]):
        if t == 1 and start is None:
            start = i
        elif t != 1 and start is not None:
            out.append((start, i))
            start = None
    return out


def layer_attention_masks(model, batch):
    """(output, {layer: mask}) of a training-mode forward: what each language-model attention layer is given, as bool
    (B, L, L), True where a query may attend to a key; None where SDPA is told `is_causal` without a mask."""
    import torch

    seen = {}
    hooks = [
        layer.self_attn.register_forward_pre_hook(
            lambda module, args, kwargs, i=i: seen.update({i: kwargs["attention_mask"]}), with_kwargs=True
        )
        for i, layer in enumerate(model.model.language_model.layers)
    ]
    model.train()
    try:
        out = model(**batch)
    finally:
        for hook in hooks:
            hook.remove()
    return out, {
        i: None if m is None else (m[:, 0] if m.dtype == torch.bool else m[:, 0] == 0) for i, m in seen.items()
    }


def flattened_vs_alone_gaps(model, processor, examples, flat) -> list[float]:
    """Per row of `examples`, |loss alone - loss inside the flattened batch `flat`| per trained token (nats): what a
    padding-free batch changes for each row (0 when it is exact)."""
    import torch

    from vlm_recipes.data.collators import VisionChatCollator

    alone_batches = [VisionChatCollator(processor)([example]) for example in examples]
    lengths = [int(b["attention_mask"].sum()) for b in alone_batches]

    def row_nll(logits, labels):
        return torch.nn.functional.cross_entropy(logits[:-1], labels[1:], ignore_index=-100, reduction="sum")

    with torch.no_grad():
        alone = [float(row_nll(model(**b).logits[0], b["labels"][0])) for b in alone_batches]
        logits = model(**flat).logits[0]
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    gaps = []
    for a, s, n in zip(alone, starts, lengths):
        labels = flat["labels"][0, s : s + n]
        together = float(row_nll(logits[s : s + n], labels))
        gaps.append(abs(a - together) / max(1, int((labels != -100).sum())))
    return gaps
