"""Bad input and what you'll see: one test per row of the table in docs/data.md, plus the preflight command's report.

Each bad input must fail at start-up with a one-line error that names the row (file and line for local data) or
the field, and the fix, before the model is loaded, leaving no output directory behind.
"""

import ast
import json

import pytest
from helpers import run_recipe
from PIL import Image

from vlm_recipes.data.collators import SampleError, VisionChatCollator
from vlm_recipes.data.images import ImageError, open_image
from vlm_recipes.launch import preflight as preflight_cli
from vlm_recipes.paths import REPO_ROOT
from vlm_recipes.training import preflight

pytestmark = pytest.mark.learning

SFT = REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml"
# Enough to reach the start-up checks quickly; the rows come from the local data written by each test.
SMALL = ["--max_steps", "1", "--max_eval_samples", "4", "--eval_fraction", "0.5", "--per_device_train_batch_size", "2"]


def user(text, images=1):
    return {"role": "user", "content": [{"type": "image"}] * images + [{"type": "text", "text": text}]}


def answer(text):
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def write_data(tmp_path, n=6, edit=None, images=None):
    """A local .jsonl of n good rows (one 32x32 image each); `edit(rows)` breaks one, `images` adds files."""
    (tmp_path / "imgs").mkdir(exist_ok=True)
    for i in range(n):
        Image.new("RGB", (32, 32), (200, 10 * i, 10)).save(tmp_path / "imgs" / f"{i}.png")
    for name, value in (images or {}).items():
        path = tmp_path / "imgs" / name
        path.write_bytes(value) if isinstance(value, bytes) else value.save(path)
    rows = [{"images": [f"imgs/{i}.png"], "messages": [user("What color?"), answer("red")]} for i in range(n)]
    if edit:
        edit(rows)
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def model_never_loaded(monkeypatch):
    import vlm_recipes.training.run as run

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the bad input was reported")

    monkeypatch.setattr(run, "load_model", refuse)


def fails_at_startup(tmp_path, error, match, *overrides, recipe="sft", config=SFT):
    out = tmp_path / "out"
    with pytest.raises(error, match=match) as info:
        run_recipe(recipe, config, out, *SMALL, *overrides)
    message = str(info.value)
    assert "\n" not in message, message  # one line
    assert not out.exists()  # nothing half-written
    return message


def test_missing_image_path(tmp_path, model_never_loaded):
    data = write_data(tmp_path, edit=lambda rows: rows[2].update(images=["imgs/missing.png"]))
    message = fails_at_startup(
        tmp_path, FileNotFoundError, r"data.jsonl:3: image 'imgs/missing.png' not found", "--dataset_name", str(data)
    )
    assert "Fix the path" in message


def test_corrupt_image_bytes(tmp_path, model_never_loaded):
    data = write_data(
        tmp_path,
        images={"bad.png": b"\x89PNG this is not an image"},
        edit=lambda rows: rows[4].update(images=["imgs/bad.png"]),
    )
    fails_at_startup(
        tmp_path,
        preflight.PreflightError,
        r"row row_id='data.jsonl:5': .*bad.png: not a readable image .*replace the file or remove the row",
        "--dataset_name",
        str(data),
    )


def test_truncated_image_data(tmp_path, model_never_loaded):
    whole = tmp_path / "whole.png"
    Image.effect_noise((64, 64), 50).convert("RGB").save(whole)
    data = write_data(
        tmp_path,
        images={"cut.png": whole.read_bytes()[:300]},  # a valid header, then the file ends
        edit=lambda rows: rows[0].update(images=["imgs/cut.png"]),
    )
    fails_at_startup(
        tmp_path,
        preflight.PreflightError,
        r"row row_id='data.jsonl:1': .*cut.png: corrupt image data",
        "--dataset_name",
        str(data),
    )


def test_zero_byte_file(tmp_path, model_never_loaded):
    data = write_data(tmp_path, images={"empty.png": b""}, edit=lambda rows: rows[1].update(images=["imgs/empty.png"]))
    fails_at_startup(
        tmp_path,
        ValueError,
        r"data.jsonl:2: image 'imgs/empty.png' is an empty \(0-byte\) file",
        "--dataset_name",
        str(data),
    )


def test_unsupported_mode_is_refused(tmp_path, model_never_loaded):
    deep = Image.new("I;16", (32, 32), 40000)  # 16-bit greyscale: no lossless RGB meaning
    data = write_data(tmp_path, images={"deep.png": deep}, edit=lambda rows: rows[3].update(images=["imgs/deep.png"]))
    fails_at_startup(
        tmp_path,
        preflight.PreflightError,
        r"row row_id='data.jsonl:4': .*deep.png: image mode 'I;16' cannot be converted .*convert it to 8-bit RGB",
        "--dataset_name",
        str(data),
    )


def test_convertible_modes_are_converted_and_reported(tmp_path, capsys):
    odd = {
        "rgba.png": Image.new("RGBA", (32, 32), (255, 0, 0, 0)),  # fully transparent: white after compositing
        "grey.png": Image.new("L", (32, 32), 128),
        "cmyk.jpg": Image.new("CMYK", (32, 32), (0, 255, 255, 0)),
        "palette.png": Image.new("RGB", (32, 32), (0, 0, 255)).convert("P"),
    }

    def use(rows):
        for row, name in zip(rows, odd):
            row["images"] = [f"imgs/{name}"]

    data = write_data(tmp_path, images=odd, edit=use)
    assert (
        preflight_cli.main(["--config", str(SFT), "--all_rows", "--dataset_name", str(data), "--eval_fraction", "0.5"])
        == 0
    )
    report = capsys.readouterr().out
    converted = {}
    for line in report.splitlines():
        if "converted to RGB:" in line:
            for mode, count in ast.literal_eval(line.split("converted to RGB:")[1]).items():
                converted[mode] = converted.get(mode, 0) + count
    assert converted == {"RGBA": 1, "L": 1, "CMYK": 1, "P": 1}
    assert "OK: no errors" in report
    # What the model sees: the transparent red image became white, as the processor would composite it.
    from vlm_recipes.data.collators import to_rgb

    assert to_rgb(odd["rgba.png"]).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(odd["grey.png"]).getpixel((0, 0)) == (128, 128, 128)


def test_image_larger_than_the_pixel_limit(tmp_path, model_never_loaded, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # the run lowers PIL's global guard
    data = write_data(
        tmp_path, images={"big.png": Image.new("RGB", (40, 30))}, edit=lambda r: r[5].update(images=["imgs/big.png"])
    )
    # 32x32 = 1024 pixels pass, 40x30 = 1200 do not.
    fails_at_startup(
        tmp_path,
        preflight.PreflightError,
        r"row row_id='data.jsonl:6': .*big.png: image of 40x30 = 1,200 pixels exceeds max_image_pixels=1,100",
        "--dataset_name",
        str(data),
        "--max_image_pixels",
        "1100",
    )


@pytest.mark.unit
def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # what the start-up guard sets from max_image_pixels
    path = tmp_path / "bomb.png"
    Image.new("RGB", (64, 64)).save(path)  # 4096 > 2 x 1000 pixels: PIL refuses to even open it
    with pytest.raises(ImageError, match="bomb.png: refused before decoding .*decompression bomb"):
        open_image({"path": str(path), "bytes": None}, max_pixels=1000)


def test_placeholder_image_count_mismatch(tmp_path, model_never_loaded):
    data = write_data(tmp_path, edit=lambda rows: rows[2].update(images=["imgs/2.png", "imgs/3.png"]))
    fails_at_startup(
        tmp_path,
        preflight.PreflightError,
        r"row row_id='data.jsonl:3': Number of images provided \(2\) does not match number of image placeholders "
        r"\(1\)\. Make the number",
        "--dataset_name",
        str(data),
    )


def test_empty_conversation(tmp_path, model_never_loaded):
    data = write_data(tmp_path, edit=lambda rows: rows[0].update(images=[], messages=[]))
    fails_at_startup(
        tmp_path,
        preflight.PreflightError,
        r"row row_id='data.jsonl:1': empty conversation in column 'messages'; fill it or remove the row",
        "--dataset_name",
        str(data),
    )


def qa_data(tmp_path, answers):
    (tmp_path / "imgs").mkdir()
    rows = []
    for i, a in enumerate(answers):
        Image.new("RGB", (32, 32)).save(tmp_path / "imgs" / f"{i}.png")
        rows.append({"image": f"imgs/{i}.png", "q": "What number?", "a": a})
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ["--dataset_name", str(path), "--image_column", "image", "--question_column", "q"]


def test_missing_answer_column(tmp_path, model_never_loaded):
    args = qa_data(tmp_path, ["one", "two", "three", "four"])
    fails_at_startup(
        tmp_path,
        ValueError,
        r"no column 'answer' \(columns: .*\); set answer_column to one of them",
        *args,
        "--answer_column",
        "answer",
    )


def test_non_string_answer(tmp_path, model_never_loaded):
    args = qa_data(tmp_path, [1, 2, 3, 4])
    fails_at_startup(
        tmp_path,
        ValueError,
        r"row_id='qa.jsonl:\d': column 'a' must hold strings, got int \d; store answers as text",
        *args,
        "--answer_column",
        "a",
    )


def test_over_long_sample(tmp_path, model_never_loaded):
    data = write_data(tmp_path)
    fails_at_startup(
        tmp_path,
        preflight.PreflightError,
        r"row row_id='data.jsonl:\d': \d+ tokens, image tokens beyond max_length=10; raise max_length",
        "--dataset_name",
        str(data),
        "--max_length",
        "10",
    )


@pytest.mark.unit
def test_over_long_sample_is_only_counted_with_on_overflow_drop(tmp_path, processors):
    from vlm_recipes.data.loading import load_splits
    from vlm_recipes.settings import DataArguments

    train, _ = load_splits(DataArguments(dataset_name=str(write_data(tmp_path)), eval_fraction=0.5))
    report = preflight.check_split("sft", train, processors["smolvlm"], max_length=10, on_overflow="drop")
    assert not report.errors and len(report.dropped) == 3


@pytest.mark.unit
def test_unknown_yaml_key(tmp_path, model_never_loaded):
    config = tmp_path / "sft_lora.yaml"
    config.write_text(SFT.read_text() + "lora_rank: 8\n")
    fails_at_startup(
        tmp_path,
        ValueError,
        r"sft_lora.yaml .*unknown key\(s\) 'lora_rank' \(did you mean 'lora_r'\?\).*fix the spelling",
        config=config,
    )


@pytest.mark.unit
def test_unknown_reward_name(tmp_path, model_never_loaded):
    fails_at_startup(
        tmp_path,
        ValueError,
        r"Unknown reward function\(s\) \['acuracy'\]; available: \[",
        "--reward_funcs",
        "acuracy",
        recipe="grpo",
        config=REPO_ROOT / "recipes/configs/tiny-smolvlm/grpo.yaml",
    )


@pytest.mark.unit
def test_output_dir_that_holds_another_run(tmp_path, model_never_loaded):
    out = tmp_path / "out"
    out.mkdir()
    (out / "eval_results.json").write_text("{}")
    with pytest.raises(FileExistsError, match="already holds a run that finished .*--overwrite_output_dir true"):
        run_recipe("sft", SFT, out, *SMALL, "--overwrite_output_dir", "false")
    assert [p.name for p in out.iterdir()] == ["eval_results.json"]  # untouched


# -- mid-run: rows the start-up sample did not read ------------------------------------------------------------
@pytest.mark.unit
def test_collator_names_the_row_and_reason_mid_run(processors):
    collator = VisionChatCollator(processors["smolvlm"], max_image_pixels=1000)
    ok = {"images": [Image.new("RGB", (30, 30))], "messages": [user("Colour?"), answer("red")], "row_id": "a:1"}
    collator([ok])
    with pytest.raises(SampleError, match=r"row row_id='a:2', image 0: image of 40x40 = 1,600 pixels exceeds"):
        collator([ok, {**ok, "images": [Image.new("RGB", (40, 40))], "row_id": "a:2"}])
    with pytest.raises(SampleError, match=r"row row_id='a:3', image 0: image mode 'F' cannot be converted"):
        collator([{**ok, "images": [Image.new("F", (8, 8))], "row_id": "a:3"}])


@pytest.mark.unit
@pytest.mark.parametrize("family", ["smolvlm", "qwen2_vl"])
def test_undecoded_images_collate_exactly_like_decoded_ones(tmp_path, processors, family):
    import torch

    from vlm_recipes.data.images import undecoded
    from vlm_recipes.data.loading import load_splits
    from vlm_recipes.settings import DataArguments

    odd = {"rgba.png": Image.new("RGBA", (32, 32), (255, 0, 0, 90)), "grey.png": Image.new("L", (20, 40), 128)}
    data = write_data(
        tmp_path, images=odd, edit=lambda rows: [rows[i].update(images=[f"imgs/{n}"]) for i, n in enumerate(odd)]
    )
    train, _ = load_splits(DataArguments(dataset_name=str(data), eval_fraction=0.5), seed=0)
    collator = VisionChatCollator(processors[family])
    decoded, raw = collator(list(train)), collator(list(undecoded(train)))
    assert isinstance(undecoded(train)[0]["images"][0], dict)
    assert decoded.keys() == raw.keys()
    for key in decoded:
        assert torch.equal(decoded[key], raw[key]), key
    with pytest.raises(SampleError, match=r"row row_id='x:1', image 0: /nowhere.png: image file not found"):
        collator([{**train[0], "images": ["/nowhere.png"], "row_id": "x:1"}])


def test_corrupt_image_met_mid_run_is_named_by_the_collator(tmp_path):
    from vlm_recipes.data.loading import load_splits
    from vlm_recipes.settings import DataArguments

    data = write_data(tmp_path)
    train, _ = load_splits(DataArguments(dataset_name=str(data), eval_fraction=0.5), seed=42)  # the run's split
    victim = train[1]["row_id"]  # "data.jsonl:<line>"
    image = tmp_path / "imgs" / f"{int(victim.split(':')[1]) - 1}.png"
    image.write_bytes(b"garbage")  # damaged after the data was written: only decoding notices
    out = tmp_path / "out"
    with pytest.raises(SampleError, match=rf"row row_id='{victim}', image 0: {image}: not a readable image"):
        # No start-up check: the collator meets the row while training (3 rows, 2 steps of 2).
        run_recipe("sft", SFT, out, *SMALL, "--dataset_name", str(data), "--preflight", "false", "--max_steps", "2")
    assert not out.exists()


@pytest.mark.unit
def test_start_up_check_reads_a_sample_unless_asked_for_all_rows(tmp_path, processors):
    from vlm_recipes.data.loading import load_splits
    from vlm_recipes.settings import DataArguments

    bad = set(range(0, 40, 2))
    data = write_data(tmp_path, n=40, edit=lambda rows: [rows[i].update(messages=[]) for i in bad])
    args = DataArguments(dataset_name=str(data), eval_fraction=0.5, preflight_rows="5")
    train, test = load_splits(args, seed=0)
    sampled = preflight.check_split("sft", train, processors["smolvlm"], num_rows=args.preflight_num_rows)
    every = preflight.check_split("sft", train, processors["smolvlm"], num_rows=None)
    assert (sampled.rows_checked, every.rows_checked) == (5, 20)
    lines = {int(r.split(":")[1]) - 1 for r in train["row_id"]}
    assert len(every.errors) == len(lines & bad) > len(sampled.errors)


# -- the preflight command ------------------------------------------------------------------------------------
def test_preflight_command_reports_and_names_bad_rows(tmp_path, capsys):
    data = write_data(tmp_path, edit=lambda rows: rows[3].update(messages=[]))
    code = preflight_cli.main(["--config", str(SFT), "--dataset_name", str(data), "--eval_fraction", "0.5"])
    out = capsys.readouterr().out
    assert code == 1
    assert "ERROR row row_id='data.jsonl:4': empty conversation" in out
    assert "1 row(s) with errors" in out
    for line in ("rows checked", "tokens per sample: min", "image tokens per sample", "estimated tokens per epoch"):
        assert line in out
    # The data pipeline, measured on the good rows: examples/s per worker in both image_processing modes, and the
    # workers a GPU needs, from the tiny model's architecture.
    rates = [line for line in out.splitlines() if "examples/s per worker" in line]
    assert [line.split(":")[0].strip() for line in rates] == ["image_processing processor", "image_processing device"]
    assert all(float(line.split(": ")[1].split()[0]) > 0 for line in rates)
    assert "dataloader workers needed (one core each): " in out


@pytest.mark.parametrize("config_name", ["sft_lora", "dpo", "mpo", "grpo"])
def test_preflight_command_parses_every_recipe_config(config_name, capsys):
    config = REPO_ROOT / f"recipes/configs/tiny-qwen2-vl/{config_name}.yaml"
    args = ["--config", str(config), "--num_rows", "4", "--synthetic_train_samples", "8", "--max_eval_samples", "4"]
    assert preflight_cli.main(args) == 0
    out = capsys.readouterr().out
    assert "[train] 4 of 8 rows checked" in out and "[held-out] 4 of 4 rows checked" in out
    tokens = [line for line in out.splitlines() if "tokens per sample: min" in line]
    assert tokens and "n/a" not in tokens[0]
    # The memory plan (training.planning): printed for the methods whose rows hold their trained tokens.
    plan = "Memory plan: not modelled for grpo" if config_name == "grpo" else "Memory plan per device"
    assert plan in out and ("predicted peak" in out) == (config_name != "grpo")


@pytest.mark.unit
def test_preflight_command_refuses_an_unknown_key(tmp_path, capsys):
    config = tmp_path / "grpo.yaml"
    config.write_text((REPO_ROOT / "recipes/configs/tiny-smolvlm/grpo.yaml").read_text() + "reward_funcs: [acuracy]\n")
    assert preflight_cli.main(["--config", str(config)]) == 2
    assert "Unknown reward function(s) ['acuracy']" in capsys.readouterr().err


def test_preflight_command_reads_the_declared_recipe(tmp_path, capsys):
    source = (REPO_ROOT / "recipes/configs/tiny-smolvlm/dpo.yaml").read_text()
    undeclared = tmp_path / "mine.yaml"
    undeclared.write_text(source.replace("recipe: dpo\n", ""))
    assert preflight_cli.main(["--config", str(undeclared), "--num_rows", "2"]) == 2
    assert "declares no `recipe:` field" in capsys.readouterr().err
    args = ["--num_rows", "2", "--synthetic_train_samples", "4", "--max_eval_samples", "2"]
    assert preflight_cli.main(["--config", str(undeclared), "--recipe", "dpo", *args]) == 0
    assert "(dpo, tiny:smolvlm-sft" in capsys.readouterr().out


# -- every bad row in one pass, and a clean copy --------------------------------------------------------------------
def defect_file(tmp_path):
    """20 rows: 5 good ones (one holding control-token strings in its text, one CMYK image, one text-only) and 15 with
    one defect each. Returns the data file and {line: expected kind of defect} of the bad rows."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for name in ("ok", "big", "second"):
        Image.new("RGB", (40, 30) if name == "big" else (32, 32), (200, 30, 30)).save(imgs / f"{name}.png")
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(imgs / "cmyk.jpg")
    Image.new("I;16", (32, 32), 40000).save(imgs / "deep.png")
    whole = tmp_path / "noise.png"
    Image.effect_noise((32, 32), 50).convert("RGB").save(whole)
    (imgs / "cut.png").write_bytes(whole.read_bytes()[:300])
    (imgs / "empty.png").write_bytes(b"")
    (imgs / "notes.png").write_bytes(b"these are my notes, not a picture\n")

    def text(t):
        return {"type": "text", "text": t}

    def qa(question="What color?", answer="red", images=("ok.png",), placeholders=1, after=False):
        user = [text(question)]
        user = user + [{"type": "image"}] * placeholders if after else [{"type": "image"}] * placeholders + user
        return {
            "images": [f"imgs/{i}" for i in images],
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": [text(answer)]}],
        }

    good = qa()
    rows, bad = [], {}

    def add(row, kind=None):
        rows.append(row)
        if kind:
            bad[len(rows)] = kind

    add(good)
    add(qa(images=("missing.png",)), "missing image file")
    add(qa(images=("empty.png",)), "empty image file")
    add(qa(images=("cut.png",)), "corrupt image data")
    add(qa(images=("notes.png",)), "unreadable image")
    add(qa(question="Say <image> and <end_of_utterance>", answer="<|im_end|> <image> <row_1_col_1>"))  # good
    add(qa(images=("big.png",)), "image over max_image_pixels")
    add(qa(images=("deep.png",)), "unsupported image mode")
    add(qa(images=("ok.png", "second.png")), "image/placeholder mismatch")  # 2 images, 1 placeholder
    add(qa(placeholders=2), "image/placeholder mismatch")  # 1 image, 2 placeholders
    add(qa(images=("cmyk.jpg",)))  # good: converted to RGB
    add({**good, "messages": []}, "empty conversation")
    add({**good, "messages": good["messages"][:1]}, "no assistant turn")
    add({**good, "messages": [{**good["messages"][0], "role": "narrator"}, good["messages"][1]]}, "unknown role")
    add(qa(question="What color is it? " * 12, after=True), "over max_length")  # image tokens beyond max_length
    add({**qa(images=()), "messages": [{"role": "user", "content": [text("Say yes.")]}, good["messages"][1]]})  # good
    add(qa(question="What \U000f0000color?"), "reserved character")
    add({**good, "messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": None}]}]
         + good["messages"][1:]}, "malformed message")  # fmt: skip
    add(qa(answer="blue"))  # good
    add(qa(images=("ok.png", "missing2.png"), placeholders=2), "missing image file")
    assert len(rows) == 20 and len(bad) == 15
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, bad


LIMITS = ["--max_image_pixels", "1100", "--max_length", "60"]


def test_preflight_names_every_bad_row_in_one_pass_and_writes_a_clean_copy(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # preflight and the run lower PIL's guard
    data, bad = defect_file(tmp_path)
    clean = tmp_path / "clean" / "data.clean.jsonl"  # another folder: relative image paths are rebased
    args = ["--config", str(SFT), "--dataset_name", str(data), "--eval_fraction", "0.5", *LIMITS]
    assert preflight_cli.main([*args, "--write_clean", str(clean)]) == 1
    out = capsys.readouterr().out
    named = {}
    for line in out.splitlines():
        if line.strip().startswith("ERROR row row_id="):
            number = int(line.split("data.jsonl:")[1].split("'")[0])
            assert number not in named, f"row {number} reported twice"
            named[number] = line
    assert sorted(named) == sorted(bad)
    # Each error names its own defect and fix; the summary counts bad rows by kind.
    fixes = {
        "missing image file": "image file not found; fix the path",
        "empty image file": "empty (0-byte) image file; replace the file",
        "corrupt image data": "corrupt image data",
        "unreadable image": "not a readable image",
        "image over max_image_pixels": "exceeds max_image_pixels=1,100; downscale it",
        "unsupported image mode": "convert it to 8-bit RGB first",
        "empty conversation": "fill it or remove the row",
        "no assistant turn": "add the answer as an assistant message",
        "unknown role": "roles are 'system', 'user' and 'assistant'",
        "over max_length": "image tokens beyond max_length=60; raise max_length",
        "reserved character": "private-use character",
        "malformed message": "is neither",
    }
    for number, kind in bad.items():
        if kind in fixes:
            assert fixes[kind] in named[number], (kind, named[number])
    assert "add an {'type': 'image'} part for each extra image" in named[9]  # 2 images, 1 placeholder
    assert "remove the extra {'type': 'image'} part(s)" in named[10]  # 1 image, 2 placeholders
    assert "placeholder" not in named[14]  # the unknown role gets its own fix, not the placeholder advice
    assert "15 row(s) with errors: missing image file 2, image/placeholder mismatch 2," in out
    assert "control-token strings in message text (trained and generated as plain text): {" in out

    # The clean copy: exactly the good rows, image paths still pointing at the images; the manifest lists both sides.
    kept = [json.loads(line) for line in clean.read_text().splitlines()]
    source = [json.loads(line) for line in data.read_text().splitlines()]
    good = [n for n in range(1, 21) if n not in bad]
    assert [r["messages"] for r in kept] == [source[n - 1]["messages"] for n in good]
    assert kept[0]["images"] == ["../imgs/ok.png"] and (clean.parent / kept[0]["images"][0]).is_file()
    manifest = json.loads((clean.parent / "data.clean.jsonl.manifest.json").read_text())
    assert manifest["kept"] == [f"data.jsonl:{n}" for n in good]
    assert {d["row"]: d["defects"] for d in manifest["dropped"]} == {f"data.jsonl:{n}": [k] for n, k in bad.items()}
    assert f"Wrote {clean}: 5 of 20 rows kept, 15 dropped" in out

    # The clean copy passes preflight and trains.
    assert (
        preflight_cli.main(["--config", str(SFT), "--dataset_name", str(clean), "--eval_fraction", "0.5", *LIMITS])
        == 0
    )
    capsys.readouterr()
    results = run_recipe(
        "sft", SFT, tmp_path / "out", *SMALL, "--dataset_name", str(clean), *LIMITS, "--preflight_rows", "all"
    )
    assert results["train_steps"] == 1 and results["num_train_samples"] + results["num_eval_samples"] == 5


@pytest.mark.unit
def test_write_clean_refuses_what_it_cannot_copy(tmp_path, capsys):
    data = write_data(tmp_path)
    args = ["--config", str(SFT), "--dataset_name", str(data)]
    assert preflight_cli.main([*args, "--write_clean", str(data)]) == 2
    assert "is the data file itself" in capsys.readouterr().err
    assert preflight_cli.main([*args, "--write_clean", str(tmp_path / "c.jsonl"), "--num_rows", "2"]) == 2
    assert "checks every row" in capsys.readouterr().err
    assert (
        preflight_cli.main(["--config", str(SFT), "--write_clean", str(tmp_path / "c.jsonl")]) == 2
    )  # synthetic data
    assert "copies a local .jsonl or .json data file" in capsys.readouterr().err
    assert not (tmp_path / "c.jsonl").exists()
