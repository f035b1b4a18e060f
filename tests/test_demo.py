"""The web demo (recipes/demo.py): base vs fine-tuned answers in a real browser, bad uploads, the safety defaults.

The browser tests drive Debian's Chromium (/usr/bin/chromium, installed by `make browser`, a step of `make test`)
with Playwright's Python library; without that browser, or without the `demo` extra, they skip and say why.
"""

import json
import os
import random
from pathlib import Path

import pytest
from helpers import free_port, run_sft
from PIL import Image

from vlm_recipes.evaluation.side_by_side import (
    GenerationSettings,
    UploadError,
    load_run,
    open_upload,
    prompt_row,
    run_kind,
    stream_answer,
)

pytestmark = pytest.mark.learning  # the run under test is the offline SFT LoRA recipe on the pre-trained tiny base

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
QUESTION = "What color is the shape?"


# -- uploads, run directories, settings: no model -------------------------------------------------------------------


@pytest.mark.unit
def test_bad_uploads_are_named_with_the_fix(tmp_path):
    Image.new("RGB", (64, 64), (220, 40, 40)).save(tmp_path / "red.png")
    assert open_upload(tmp_path / "red.png", 10_000).getpixel((3, 3)) == (220, 40, 40)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(UploadError, match=r"notes.png is not an image \(Pillow cannot identify it\)"):
        open_upload(tmp_path / "notes.png", 10_000)
    with pytest.raises(UploadError, match=r"red.png is too large: .* the limit is 0 KB"):
        open_upload(tmp_path / "red.png", 100)
    data = (tmp_path / "red.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UploadError, match="cut.png is an image that cannot be read .*damaged or cut short"):
        open_upload(tmp_path / "cut.png", 10_000)
    with pytest.raises(ValueError, match="Ask a question first"):
        prompt_row("  ", Image.new("RGB", (8, 8)))
    with pytest.raises(ValueError, match="temperature must be 0"):
        GenerationSettings(temperature=-1)


@pytest.mark.unit
def test_run_directories_are_recognised_or_refused_with_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory. Pass the output_dir of a training recipe"):
        run_kind(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(FileNotFoundError, match=r"neither an adapter .* nor a model .*found \['notes.txt'\]"):
        run_kind(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    assert run_kind(tmp_path) == "full"
    (tmp_path / "merge_info.json").write_text("{}")
    assert run_kind(tmp_path) == "merged"
    (tmp_path / "adapter_config.json").write_text("{}")
    assert run_kind(tmp_path) == "adapter"


@pytest.mark.unit
def test_the_server_listens_on_localhost_and_never_shares_by_default():
    import ast

    from vlm_recipes.launch.demo import DemoArguments

    args = DemoArguments(run="outputs/x")
    assert args.host == "127.0.0.1" and args.max_upload_bytes == 10 * 2**20
    source = Path(__file__).parent.parent / "vlm_recipes/launch/demo.py"
    calls = [n for n in ast.walk(ast.parse(source.read_text())) if isinstance(n, ast.Call)]
    launch = [
        c for c in calls if getattr(c.func, "attr", None) == "launch" and "server_name" in [k.arg for k in c.keywords]
    ]
    assert len(launch) == 1  # the one call that starts Gradio's server
    keywords = {k.arg: ast.unparse(k.value) for k in launch[0].keywords}
    assert keywords["share"] == "False" and keywords["server_name"] == "self.args.host"
    assert keywords["max_file_size"] == "self.args.max_upload_bytes"
    with pytest.raises(ValueError, match="max_upload_mb must be positive"):
        DemoArguments(run="x", max_upload_mb=0)


# -- the tiny default run --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The offline SFT LoRA recipe (the `make demo` run) on its colour questions, 30 steps (a few seconds): enough for
    the fine-tuned model to answer unlike its base (which answers in captions), so a page that showed one model's
    answer twice, or swapped them, would fail."""
    out = tmp_path_factory.mktemp("demo") / "sft_lora-tiny-smolvlm"
    settings = ["--synthetic_task", "color", "--max_steps", "30", "--synthetic_train_samples", "480"]
    run_sft("smolvlm", out, *settings, "--max_eval_samples", "4")
    return out


@pytest.fixture(scope="module")
def red_png(tmp_path_factory):
    """A red circle on grey, drawn like the task's images (a new scene: not one of the run's rows)."""
    from vlm_recipes.data.synthetic import render_scene

    path = tmp_path_factory.mktemp("uploads") / "red.png"
    render_scene(random.Random(0), 64, [("red", "circle")]).save(path)
    return path


def reference_answers(run: Path, image: Image.Image, max_new_tokens: int) -> tuple[str, str]:
    """The base's and the fine-tuned model's greedy answers computed apart from the demo: two separate loads (the
    base alone; the base plus the adapter) and the held-out evaluation's batched generation."""
    from vlm_recipes.evaluation.generation import generate_answers
    from vlm_recipes.evaluation.inference import load_for_inference
    from vlm_recipes.settings import VLMModelConfig

    base_name = json.loads((run / "adapter_config.json").read_text())["base_model_name_or_path"]
    row = prompt_row(QUESTION, image)
    answers = []
    for adapter in (None, str(run)):
        model, processor = load_for_inference(VLMModelConfig(model_name_or_path=base_name), adapter, "cpu")
        answers += generate_answers(model, processor, [row], batch_size=1, max_new_tokens=max_new_tokens)
    return answers[0], answers[1]


def test_streamed_answers_end_with_the_held_out_evaluation_answer(tiny_run, red_png):
    """The adapter switched off answers as the base alone does; on, as base + adapter; a merged model of the same run
    answers as the adapter does, and its base as the base."""
    image = Image.open(red_png).convert("RGB")
    expected = reference_answers(tiny_run, image, max_new_tokens=12)
    models = load_run(tiny_run, device="cpu")
    assert models.kind == "adapter" and models.base is None and models.base_name == "tiny:smolvlm"
    settings = GenerationSettings(max_new_tokens=12)
    row = prompt_row(QUESTION, image)
    got = []
    for which in ("base", "tuned"):
        model, context = models.model_and_context(which)
        steps = list(stream_answer(model, models.processor, row, settings, context))
        assert all(b.startswith(a) for a, b in zip(steps, steps[1:]))  # it grows, it does not jump
        got.append(steps[-1])
    assert tuple(got) == expected and all(got) and got[0] != got[1]

    from vlm_recipes.models.merge import MergeArguments, merge_adapter

    merged = merge_adapter(MergeArguments(adapter=str(tiny_run), output_dir=str(tiny_run.parent / "merged")))
    merged_models = load_run(merged, device="cpu")
    assert merged_models.kind == "merged" and merged_models.base is not None
    got_merged = []
    for which in ("base", "tuned"):
        model, context = merged_models.model_and_context(which)
        got_merged.append(list(stream_answer(model, merged_models.processor, row, settings, context))[-1])
    assert tuple(got_merged) == expected


# -- in a real browser -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: `make browser` installs Debian's package (apt-get, as root); the browser "
            "tests need it"
        )
    missing = "the demo extra is not installed: pip install -e '.[demo]'"
    sync_api = pytest.importorskip("playwright.sync_api", reason=missing)
    pytest.importorskip("gradio", reason=missing)
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def demo(tiny_run, browser):
    from vlm_recipes.launch.demo import DemoArguments, run_demo

    args = DemoArguments(run=str(tiny_run), port=free_port(), max_new_tokens=12, max_upload_mb=0.05, device="cpu")
    server = run_demo(args, block=False)
    yield server
    server.close()
    assert not server.temp_dir.exists()  # every upload, and every image the page showed, is gone with the server


def open_page(browser, demo):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(demo.url)
    return page


def wait_for_status(page, text: str, timeout: float = 60_000):
    page.wait_for_function(
        "t => (document.querySelector('#status')?.innerText || '').includes(t)", arg=text, timeout=timeout
    )


def test_page_answers_with_the_base_and_the_fine_tuned_model(demo, browser, red_png, tiny_run):
    assert demo.url.startswith("http://127.0.0.1:")
    expected = reference_answers(tiny_run, Image.open(red_png).convert("RGB"), max_new_tokens=12)
    page = open_page(browser, demo)
    page.locator("#upload input[type=file]").set_input_files(str(red_png))
    wait_for_status(page, "red.png: 64x64 image, ready")
    page.locator("#question textarea").fill(QUESTION)
    page.click("#ask")
    wait_for_status(page, "Answered in")
    base = page.locator("#base-answer textarea").input_value()
    tuned = page.locator("#tuned-answer textarea").input_value()
    assert (base, tuned) == expected and base and tuned and base != tuned
    assert "Base: tiny:smolvlm" in page.inner_text("body")
    # The upload went to the server's temporary folder, and only there.
    stored = [p for p in demo.temp_dir.rglob("red.png")]
    assert stored and stored[0].read_bytes() == red_png.read_bytes()

    # The run's held-out examples are one click away; picking one asks its question about its image.
    page.click("#show-examples")
    page.wait_for_selector("#examples img")
    assert len(page.locator("#examples img").all()) == 4
    page.locator("#examples img").first.click()
    wait_for_status(page, "Held-out example 1")
    question = page.locator("#question textarea").input_value()
    reference = page.locator("#reference textarea").input_value()
    assert question == QUESTION and reference in ("red", "green", "blue", "yellow")
    page.click("#ask")
    wait_for_status(page, "Answered in")
    assert page.locator("#tuned-answer textarea").input_value()
    page.close()


def test_page_shows_an_error_for_a_bad_upload_and_no_trace(demo, browser, tmp_path):
    (tmp_path / "notes.txt").write_text("these are notes, not an image")
    page = open_page(browser, demo)
    page.locator("#upload input[type=file]").set_input_files(str(tmp_path / "notes.txt"))
    page.wait_for_selector("#status .demo-error")
    assert "notes.txt is not an image (Pillow cannot identify it). Upload an image" in page.inner_text("#status")
    page.locator("#question textarea").fill(QUESTION)
    page.click("#ask")
    wait_for_status(page, "Upload an image (or pick a held-out example) first.")
    page.close()

    # Over the size limit (0.05 MB here): refused in the page, before anything reaches the model.
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "big.png")
    assert os.path.getsize(tmp_path / "big.png") > demo.args.max_upload_bytes
    page = open_page(browser, demo)
    page.locator("#upload input[type=file]").set_input_files(str(tmp_path / "big.png"))
    page.wait_for_function("document.body.innerText.includes('exceed the maximum allowed size')", timeout=20_000)
    body = page.inner_text("body")
    assert "big.png" in body and "Traceback" not in body and "Upload an image or a video" in body
    page.close()


def test_the_server_enforces_the_size_limit_itself(demo, tmp_path):
    """A client that skips the page's check is refused by the server (HTTP 413), and nothing of it is kept."""
    import httpx

    payload = os.urandom(demo.args.max_upload_bytes + 1)
    before = sorted(demo.temp_dir.rglob("*"))
    response = httpx.post(f"{demo.url}gradio_api/upload", files={"files": ("big.bin", payload)}, timeout=30)
    assert response.status_code == 413, response.text
    assert not [p for p in demo.temp_dir.rglob("*") if p.is_file() and p.name == "big.bin"]
    assert [p for p in sorted(demo.temp_dir.rglob("*")) if p.is_file() and p not in before] == []


@pytest.mark.unit
def test_the_browser_install_step_is_part_of_the_test_setup():
    """`make test` installs Chromium the way .ci/run installs everything else (skipped when it is there)."""
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    test_line = next(line for line in makefile.splitlines() if line.startswith("test:"))
    assert "browser" in test_line.split("##")[0]
    assert "/usr/bin/chromium" in makefile and "apt-get install" in makefile
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert '"vlm-recipes[demo]"' in pyproject


def test_the_command_line_serves_on_localhost_and_removes_its_folder_when_stopped(tiny_run):
    """recipes/demo.py as `make demo-web` runs it: it listens on 127.0.0.1 only, and `kill` (SIGTERM) stops it with
    its temporary folder removed, as Ctrl+C does."""
    import re
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from vlm_recipes.paths import REPO_ROOT

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(REPO_ROOT / "recipes/demo.py"), "--run", str(tiny_run), "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, line = time.time() + 120, ""
        while "Demo of" not in line and time.time() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
        found = re.search(r"at (http://\S+) \(uploads in (\S+),", line)
        assert found, f"the demo did not start: {line!r}"
        url, folder = found.group(1), Path(found.group(2))
        assert url == f"http://127.0.0.1:{port}/" and folder.is_dir()
        assert httpx.get(url, timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert not folder.exists()
