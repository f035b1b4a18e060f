"""recipes/benchmark.py end to end: every benchmark task file on its offline stand-in and a tiny model, the reports,
resuming, a failing entry, the real benchmark configs on the tiny models, and benchmarks before/after training."""

import json

import pytest
import yaml
from helpers import parse_config, recipe_module, run_recipe

from vlm_recipes.evaluation.benchmarks import runner
from vlm_recipes.evaluation.benchmarks.report import STANDIN_NOTE, result_paths
from vlm_recipes.evaluation.benchmarks.runner import dataset_root
from vlm_recipes.evaluation.benchmarks.samples import prepare
from vlm_recipes.evaluation.benchmarks.scorers import SCORERS, score_answers, summarize
from vlm_recipes.evaluation.benchmarks.tasks import load_task, shipped_tasks
from vlm_recipes.paths import REPO_ROOT

pytestmark = pytest.mark.learning

QUICK = ["--other_models", "", "--limit", "2", "--max_new_tokens", "4"]


def benchmark(tmp_path, *overrides, name="bench"):
    return recipe_module("benchmark").main(["--output_dir", str(tmp_path / name), *overrides])


@pytest.fixture
def generations(monkeypatch):
    """Counts the prompts the runs generate answers for."""
    calls = []
    original = runner.generate_answers

    def counting(model, processor, rows, *args, **kwargs):
        calls.append(len(rows))
        return original(model, processor, rows, *args, **kwargs)

    monkeypatch.setattr(runner, "generate_answers", counting)
    return calls


def check_saved_predictions_rescore_to_the_board(board, out):
    """Each benchmark's predictions file, scored again, gives the leaderboard's figures."""
    for bench in board["benchmarks"]:
        task = load_task(bench["name"])
        with dataset_root("standins", [task]) as root:
            data = prepare(task, root, board["limit"], board["limit_seed"])
            for model in board["models"]:
                records = [
                    json.loads(line)
                    for line in result_paths(out, task.name, model["label"])[1].read_text().splitlines()
                ]
                assert [r["id"] for r in records] == [s.id for s in data.samples]
                scored = score_answers(task, [r["prediction"] for r in records], data.samples)
                figures = summarize(task, data.samples, scored, data.bad_rows)
                saved = model["results"][task.name]
                assert figures["score"] == pytest.approx(saved["score"]), task.name
                assert figures["unparsable_rate"] == saved["unparsable_rate"], task.name
                if SCORERS[task.metric].extracts:
                    unreadable = sum(r["parsed"] is None for r in records) / len(records)
                    assert saved["unparsable_rate"] == pytest.approx(unreadable)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny SmolVLM LoRA run (3 steps) that runs AI2D and circular MMBench before and after training: the adapter
    of the default end-to-end run, and the training side of the benchmark step."""
    run = tmp_path_factory.mktemp("trained") / "run"
    results = run_recipe(
        "sft", REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml", run, "--max_steps", "3",
        "--warmup_steps", "0", "--learning_rate", "1e-2",  # a few large steps: answers the base would not give
        "--max_eval_samples", "4", "--synthetic_train_samples", "32", "--per_device_eval_batch_size", "8",
        "--benchmarks", "ai2d", "mmbench_en_dev", "--benchmark_data", "standins", "--benchmark_limit", "2",
    )  # fmt: skip
    return run, results


def check_the_run(board, out, labels, config):
    names = [b["name"] for b in board["benchmarks"]]
    assert names == yaml.safe_load(config.read_text())["benchmarks"] and set(names) == set(shipped_tasks())
    counts = {b["name"]: (b["num_questions"], b["num_prompts"]) for b in board["benchmarks"]}
    assert all(questions == 2 for questions, _ in counts.values()), counts  # --limit 2
    rows = json.loads((out / "rows.json").read_text())  # the rows each benchmark drew (seed 0)
    assert set(rows) == set(names) and all(r["cap"] == 2 and r["seed"] == 0 for r in rows.values())
    assert counts["mmbench_en_dev"] == (2, len(rows["mmbench_en_dev"]["indices"]))  # every stored rotation of 2
    assert [m["label"] for m in board["models"]] == labels
    assert all(0 <= f["score"] <= 1 for m in board["models"] for f in m["results"].values())
    check_saved_predictions_rescore_to_the_board(board, out)
    assert json.loads((out / "leaderboard.json").read_text()) == json.loads(json.dumps(board))
    table = (out / "leaderboard.md").read_text()
    assert STANDIN_NOTE in table and "Unparsable answers" in table
    assert all(f"| {label} |" in table for label in labels)
    page = (out / "leaderboard.html").read_text()
    assert page.count("<h2>") == len(names) and "data:image/png;base64," in page
    assert not list(out.rglob("*.tmp"))
    return counts


def test_every_benchmark_runs_end_to_end_on_its_standin_base_vs_adapter(tmp_path, trained, generations):
    """The default run: every shipped benchmark on its stand-in, the base and a trained adapter. With the training
    step's budget (16 new tokens), batch size and limit, benchmark.py reads the same answers as the training run's own
    before/after step: the base's predictions are the "before" ones, the adapter's the "after" ones."""
    run, results = trained
    config = REPO_ROOT / "recipes/configs/tiny-smolvlm/benchmark.yaml"
    args = ["--config", str(config), "--other_models", "", "--adapter_paths", str(run), "--limit", "2"]
    board = benchmark(tmp_path, *args, "--batch_size", "8")
    out = tmp_path / "bench"
    counts = check_the_run(board, out, ["tiny:smolvlm", "run"], config)
    assert sum(generations) == 2 * sum(prompts for _, prompts in counts.values())  # each model, every prompt once
    predictions = {}
    for name in results["benchmarks"]:
        for label, when in (("tiny:smolvlm", "before"), ("run", "after")):
            ours = result_paths(out, name, label)[1].read_text().splitlines()
            theirs = (run / "benchmarks" / f"{name}-{when}.jsonl").read_text().splitlines()
            predictions[name, when] = [json.loads(r)["prediction"] for r in ours]
            assert predictions[name, when] == [json.loads(r)["prediction"] for r in theirs], (name, label)
            figures = next(m for m in board["models"] if m["label"] == label)["results"][name]
            assert figures["score"] == results["benchmarks"][name][when], (name, label)
            assert figures["unparsable_rate"] == results["benchmarks"][name][f"unparsable_{when}"], (name, label)
    # The adapter changed the answers: the comparison tells the base from the adapter.
    assert all(predictions[name, "before"] != predictions[name, "after"] for name in results["benchmarks"])
    # The adapter retrained into the same folder (here: its config rewritten) makes its results stale, not the base's.
    done = len(generations)
    (run / "adapter_config.json").write_text((run / "adapter_config.json").read_text() + "\n")
    benchmark(tmp_path, *args, "--batch_size", "8", "--benchmarks", "ai2d")
    assert generations[done:] == [2]  # the adapter's 2 AI2D prompts


@pytest.mark.slow
def test_every_benchmark_runs_end_to_end_on_its_standin_qwen2_vl(tmp_path, generations):
    config = REPO_ROOT / "recipes/configs/tiny-qwen2-vl/benchmark.yaml"
    board = benchmark(tmp_path, "--config", str(config), *QUICK)
    counts = check_the_run(board, tmp_path / "bench", ["tiny:qwen2_vl"], config)
    assert sum(generations) == sum(prompts for _, prompts in counts.values())


@pytest.mark.unit
def test_oracle_answers_score_one_and_guessing_earns_nothing_under_circular_evaluation(tmp_path, monkeypatch):
    """The real loading, prompts and scoring with the model replaced by a function of each prompt's reference: the
    reference's own text scores 1 on every benchmark; always answering "A" scores 0 on circular MMBench."""
    from vlm_recipes.evaluation import inference

    monkeypatch.setattr(inference, "load_for_inference", lambda *args, **kwargs: (None, None))

    def answering(answer):
        monkeypatch.setattr(
            runner, "generate_answers", lambda m, p, rows, *a, **k: [answer(s) for s in rows.data.samples]
        )

    answering(lambda s: s.answer if isinstance(s.answer, str) else s.answer[0])
    board = benchmark(tmp_path, "--limit", "3", "--other_models", "", name="oracle")
    for name, figures in board["models"][0]["results"].items():
        # Right on every question that could be read (MMStar's and MathVista's stand-ins hold a bad row each).
        assert figures["score"] == pytest.approx(1 - figures["num_bad_rows"] / figures["num_questions"]), name
        assert figures["unparsable_rate"] in (0.0, None), (name, figures)
    rows = json.loads((tmp_path / "oracle" / "rows.json").read_text())
    assert set(rows) == {b["name"] for b in board["benchmarks"]}
    assert all(r["cap"] == 3 and r["seed"] == 0 for r in rows.values())
    assert rows["chartqa"]["stratum_column"] == "human_or_machine" and len(rows["chartqa"]["indices"]) == 3
    answering(lambda s: "A")
    board = benchmark(tmp_path, "--limit", "3", "--other_models", "", "--benchmarks", "mmbench_en_dev", name="guess")
    mmbench = board["models"][0]["results"]["mmbench_en_dev"]
    assert mmbench["score"] == 0.0 and mmbench["first_prompt_score"] > 0  # right on some single prompts
    # Answers are data: leaderboard.html shows them as text, never as markup.
    answering(lambda s: '<script>alert("x")</script>')
    benchmark(tmp_path, "--limit", "1", "--other_models", "", "--benchmarks", "ai2d", name="markup")
    page = (tmp_path / "markup" / "leaderboard.html").read_text()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "<script" not in page


def test_finished_benchmarks_are_not_rerun(tmp_path, generations):
    args = ["--benchmarks", "ai2d", "ocrbench", *QUICK]
    first = benchmark(tmp_path, *args)
    assert len(generations) == 2
    again = benchmark(tmp_path, *args)
    assert len(generations) == 2 and again["models"] == first["models"]  # nothing generated, same figures
    benchmark(tmp_path, *args, "--benchmarks", "ai2d", "ocrbench", "mmstar")
    assert len(generations) == 3  # only the new benchmark
    benchmark(tmp_path, *args, "--benchmarks", "ai2d", "--longest_edge", "128")
    assert len(generations) == 4  # another image resolution: measured again
    benchmark(tmp_path, "--benchmarks", "ai2d", *QUICK[:2], "--limit", "1", "--max_new_tokens", "4")
    assert len(generations) == 5  # another limit: measured again
    benchmark(
        tmp_path, "--benchmarks", "ai2d", *QUICK[:2], "--limit", "1", "--max_new_tokens", "4", "--resume", "false"
    )
    assert len(generations) == 6


def test_a_failing_entry_keeps_finished_benchmarks_and_leaves_nothing_half_written(tmp_path, generations):
    out = tmp_path / "bench"
    args = ["--benchmarks", "ai2d", "--limit", "1", "--max_new_tokens", "2"]
    with pytest.raises(Exception, match="no-such-model"):
        benchmark(tmp_path, *args, "--other_models", str(tmp_path / "no-such-model"))
    assert (out / "ai2d" / "tiny_smolvlm.json").is_file() and (out / "ai2d" / "tiny_smolvlm.jsonl").is_file()
    assert not list(out.glob("leaderboard.*")) and not list(out.rglob("*.tmp"))
    board = benchmark(tmp_path, *args, "--other_models", "")  # the fix: the finished base is reused
    assert len(generations) == 1 and board["models"][0]["label"] == "tiny:smolvlm"
    # A run that finishes nothing leaves no directory behind.
    with pytest.raises(Exception, match="no-such-model"):
        benchmark(tmp_path, *args, "--model_name_or_path", str(tmp_path / "no-such-model"), name="none")
    assert not (tmp_path / "none").exists()


@pytest.mark.unit
def test_bad_benchmark_settings_fail_before_any_model_is_loaded(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown benchmark 'mmbnch_en_dev' \(did you mean 'mmbench_en_dev'\?\)"):
        benchmark(tmp_path, "--benchmarks", "mmbnch_en_dev")
    with pytest.raises(ValueError, match="dataset_source 'nowhere' is neither 'hub', 'standins' nor a folder"):
        benchmark(tmp_path, "--dataset_source", "nowhere")
    with pytest.raises(ValueError, match="benchmarks lists a benchmark twice"):
        benchmark(tmp_path, "--benchmarks", "ai2d", "ai2d")
    with pytest.raises(ValueError, match="unknown key"):  # a data field of evaluate_models is no benchmark setting
        benchmark(tmp_path, "--dataset_name", "lmms-lab-encoder/ai2d")
    assert not (tmp_path / "bench").exists()


REAL_BENCHMARK_CONFIGS = sorted(
    p for p in (REPO_ROOT / "recipes/configs").rglob("benchmark.yaml") if not p.parent.name.startswith("tiny-")
)


@pytest.mark.slow
@pytest.mark.parametrize("path", REAL_BENCHMARK_CONFIGS, ids=lambda p: p.parent.name)
def test_real_benchmark_config_runs_on_the_tiny_model_of_its_family(tmp_path, path):
    """The real configs keep their benchmarks, prompts, dtype and resolution controls; only the model (the tiny one
    of its family), the data (the stand-ins), the adapters (none here) and the budget are swapped."""
    family = "qwen2_vl" if "qwen" in path.parent.name else "smolvlm"
    overrides = ["--model_name_or_path", f"tiny:{family}", "--dataset_source", "standins", "--limit", "1"]
    overrides += ["--max_new_tokens", "2", "--adapter_paths", "", "--labels", ""]
    if family == "smolvlm":
        overrides += ["--longest_edge", "128"]
    board = benchmark(tmp_path, "--config", str(path), *overrides)
    assert [b["name"] for b in board["benchmarks"]] == yaml.safe_load(path.read_text())["benchmarks"]
    assert board["models"][0]["model_name_or_path"] == f"tiny:{family}"


def test_benchmarks_before_and_after_training_go_to_the_results_and_the_model_card(trained):
    config = REPO_ROOT / "recipes/configs/tiny-smolvlm/sft_lora.yaml"
    with pytest.raises(ValueError, match="Unknown benchmark 'mmbench'"):
        parse_config(config, "--benchmarks", "mmbench")
    with pytest.raises(ValueError, match="benchmarks is empty, so no benchmark would run"):
        parse_config(config, "--benchmark_limit", "2")
    run, results = trained
    mmbench = results["benchmarks"]["mmbench_en_dev"]
    assert mmbench["metric"] == "circular accuracy" and mmbench["num_questions"] == 2
    assert 0 <= mmbench["before"] <= 1 and 0 <= mmbench["after"] <= 1 and mmbench["dataset_source"] == "standins"
    saved = json.loads((run / "eval_results.json").read_text())
    assert saved["benchmarks"] == results["benchmarks"]
    held_out = json.loads((run / "eval_rows.json").read_text())  # the held-out rows the before/after figures scored
    assert held_out["cap"] == 4 and held_out["indices"] == [0, 1, 2, 3]  # synthetic: 4 rows generated, all scored
    for name in ("ai2d", "mmbench_en_dev"):
        for when in ("before", "after"):
            records = (run / "benchmarks" / f"{name}-{when}.jsonl").read_text().splitlines()
            drawn = json.loads((run / "benchmarks" / f"{name}-rows.json").read_text())[name]  # as rows.json
            assert len(records) == len(drawn["indices"]) and drawn["cap"] == 2  # a stored rotation is a row
    card = (run / "README.md").read_text()
    assert (
        "## Benchmarks" in card
        and "| MMBench-EN (dev, circular) (`lmms-lab-encoder/MMBench`) | circular accuracy | 2 |" in card
    )
    assert "offline stand-ins" in card


@pytest.mark.unit
def test_a_bad_row_is_scored_wrong_listed_in_the_report_and_the_run_goes_on(tmp_path, monkeypatch):
    """Every row of MMStar and MathVista (one bad row each in their stand-ins), the model replaced by the reference:
    the run finishes, each bad row scores 0, the report's header counts them and its end lists them with reasons."""
    from vlm_recipes.evaluation import inference

    monkeypatch.setattr(inference, "load_for_inference", lambda *args, **kwargs: (None, None))
    monkeypatch.setattr(
        runner,
        "generate_answers",
        lambda m, p, rows, *a, **k: [
            s.answer if isinstance(s.answer, str) else s.answer[0] for s in rows.data.samples
        ],
    )
    board = benchmark(tmp_path, "--other_models", "", "--benchmarks", "mmstar", "mathvista_testmini", "--limit", "9")
    results = board["models"][0]["results"]
    assert results["mmstar"]["score"] == 3 / 4 and results["mathvista_testmini"]["score"] == 5 / 6
    assert [b["num_bad_rows"] for b in board["benchmarks"]] == [1, 1]
    table = (tmp_path / "bench" / "leaderboard.md").read_text()
    header = table.split("\n\n")[1]
    assert header == (
        "Rows that could not be read or scored: 2 (mmstar 1, mathvista_testmini 1), each scored as wrong and listed "
        "below."
    )
    assert "| mmstar | * | 3 | 3 | reading | no 'Options: A: ..., B: ...' in column 'question'. |" in table
    assert "| mathvista_testmini | * | 5 | 6 | reading | answer '2021'" in table  # row 5 of the split, pid 6
    assert "answer '2021' is not one of its options ['2018', '2019', '2020']" in table
    rows = json.loads((tmp_path / "bench" / "rows.json").read_text())
    assert rows["mmstar"]["indices"] == [0, 1, 2, 3] and rows["mathvista_testmini"]["ids"] == list("123456")
