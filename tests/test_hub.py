"""Hub push against a local stand-in server: exactly which files, the model card, no token, private flag."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from helpers import run_recipe
from hub_server import FakeHub

from vlm_recipes import hub
from vlm_recipes.paths import REPO_ROOT

pytestmark = pytest.mark.unit

SFT = REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml"


@pytest.fixture(autouse=True, scope="module")
def tiny_smolvlm_built():
    """Build (or find) the tiny SmolVLM here, with every core, not inside the one-thread subprocesses below."""
    from vlm_recipes.tiny import vlm as tiny

    tiny.build("tiny:smolvlm")


SECRET = "hf_StandInSecretToken123"
PUBLISHED = {
    "README.md",
    "adapter_config.json",
    "adapter_model.safetensors",
    "chat_template.jinja",
    "data_config.json",  # the run's data settings (the web demo rebuilds its held-out examples from them)
    "eval_predictions.jsonl",
    "eval_results.json",
    "eval_rows.json",  # which held-out rows the figures scored
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "training_config.json",
    "training_data_hashes.npz",  # the contamination check's record of the training data (hashes, no images or text)
}


def card_metadata(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """One tiny SFT run in a subprocess with HF_ENDPOINT at the stand-in: push every save (2 saves) and at the end."""
    out = tmp_path_factory.mktemp("push") / "run"
    with FakeHub() as fake:
        env = {
            **os.environ,
            "HF_ENDPOINT": fake.url,
            "HF_TOKEN": SECRET,
            "HF_HUB_OFFLINE": "0",
            "OMP_NUM_THREADS": "1",
        }
        env["PYTHONPATH"] = str(REPO_ROOT)
        argv = ["--config", str(SFT), "--output_dir", str(out), "--report_to", "none", "--max_steps", "4"]
        argv += ["--max_eval_samples", "8", "--save_strategy", "steps", "--save_steps", "2"]
        argv += ["--push_to_hub", "true", "--hub_model_id", "alice/tiny-smolvlm-sft", "--hub_private", "true"]
        result = subprocess.run(
            [sys.executable, str(REPO_ROOT / "recipes/sft.py"), *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    return fake, out, result


@pytest.mark.learning
def test_push_creates_a_private_repo_and_commits_every_save_then_the_final_files(pushed):
    fake, out, _ = pushed
    assert fake.unknown == []
    assert list(fake.repos) == ["alice/tiny-smolvlm-sft"]
    assert fake.repos["alice/tiny-smolvlm-sft"]["visibility"] == "private"
    summaries = [c["summary"] for c in fake.commits]
    assert summaries == ["Training in progress, step 2", "Training in progress, step 4", "Upload final model and card"]
    final = fake.commits[-1]["files"]
    assert set(final) == PUBLISHED
    for name, content in final.items():  # what was committed is what the run wrote
        assert content == (out / name).read_bytes(), name
    for commit in fake.commits[:2]:  # checkpoints: the adapter, never optimizer/RNG pickles
        assert "adapter_model.safetensors" in commit["files"]
        assert not [n for n in commit["files"] if n.endswith((".pt", ".pth", ".bin"))]


@pytest.mark.learning
def test_token_is_sent_to_the_hub_but_written_nowhere(pushed):
    fake, out, result = pushed
    assert f"Bearer {SECRET}" in fake.auth_headers
    for commit in fake.commits:
        for name, content in commit["files"].items():
            assert SECRET.encode() not in content, name
    assert SECRET not in result.stdout and SECRET not in result.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.learning
def test_model_card_states_base_model_method_data_figures_and_usage(pushed):
    fake, out, _ = pushed
    card = fake.commits[-1]["files"]["README.md"].decode()
    meta = card_metadata(card)
    assert meta["library_name"] == "peft"
    assert {"vlm-recipes", "trl", "sft", "lora"} <= set(meta["tags"])
    results = json.loads((out / "eval_results.json").read_text())
    assert "`tiny:smolvlm`" in card and "**SFT**" in card and "`synthetic`" in card
    assert f"| accuracy | {results['accuracy_before']:.4g} | {results['accuracy_after']:.4g} |" in card
    assert "| learning_rate | 0.001 |" in card and "| max_steps | 4 |" in card
    assert 'PeftModel.from_pretrained(base, "alice/tiny-smolvlm-sft")' in card


@pytest.mark.learning
def test_model_card_metadata_for_hub_models_and_datasets():
    from types import SimpleNamespace

    args = SimpleNamespace(learning_rate=1e-4, max_steps=-1, num_train_epochs=1, loss_type=["sigmoid"], beta=0.1)
    results = {"accuracy_before": 0.25, "accuracy_after": 0.5, "num_eval_samples": 100}
    card = hub.model_card(
        repo_id="bob/smolvlm-dpo",
        base_model="HuggingFaceTB/SmolVLM-256M-Instruct",
        method="DPO",
        tags=["trl", "dpo"],
        datasets=["HuggingFaceH4/rlaif-v_formatted"],
        results=results,
        training_args=args,
        adapter=True,
    )
    meta = card_metadata(card)
    assert meta["base_model"] == "HuggingFaceTB/SmolVLM-256M-Instruct"
    assert meta["datasets"] == ["HuggingFaceH4/rlaif-v_formatted"]
    assert "| accuracy | 0.25 | 0.5 |" in card and "| num_train_epochs | 1 |" in card and "max_steps" not in card
    assert '| loss_type | ["sigmoid"] |' in card


@pytest.mark.learning
def test_files_to_push_leave_out_pickles_checkpoints_and_logs(tmp_path):
    for name in ["adapter_model.safetensors", "README.md", "training_args.bin", "optimizer.pt", "rng_state.pth",
                 "checkpoint-2/adapter_model.safetensors", "runs/events.out", "sub/notes.json"]:  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    names = [p.relative_to(tmp_path).as_posix() for p in hub.files_to_push(tmp_path)]
    assert names == ["README.md", "adapter_model.safetensors", "sub/notes.json"]


@pytest.mark.learning
@pytest.mark.parametrize("repo_args", [[], ["--hub_model_id", "no-namespace"]])
def test_push_without_a_usable_repo_id_fails_before_any_work(tmp_path, repo_args):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="hub_model_id"):
        run_recipe("sft", SFT, out, "--push_to_hub", "true", *repo_args)
    assert not out.exists()


@pytest.mark.learning
def test_push_command_pushes_a_finished_run_folder(pushed, tmp_path):
    """`make push` / `python -m vlm_recipes.hub`: the same publishable files, to another repository."""
    _, out, _ = pushed
    with FakeHub() as fake:
        env = {**os.environ, "HF_ENDPOINT": fake.url, "HF_TOKEN": SECRET, "HF_HUB_OFFLINE": "0"}
        cmd = [sys.executable, "-m", "vlm_recipes.hub", "--folder", str(out), "--repo_id", "carol/copy", "--private"]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert fake.repos["carol/copy"]["visibility"] == "private"
    assert set(fake.commits[0]["files"]) == PUBLISHED
