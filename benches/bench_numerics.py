"""The default run's learning proofs under other CPU numerics, each setting with an empty tiny cache (issue 26).

The same code gives different bits on different x86 CPUs: ATen picks its vectorised kernels by CPU
(`ATEN_CPU_CAPABILITY`), MKL its code path (`MKL_CBWR`), oneDNN its ISA (`ONEDNN_MAX_CPU_ISA`). These switches make
one machine compute like another. A proof with a thin margin passes on the machine it was tuned on and fails on the
next, so this runs chosen proofs (the tests themselves, through pytest: their own assertions decide pass or fail)
under each setting, each setting in its own pytest process with its own empty `VLM_RECIPES_CACHE` (the tiny bases are
built there), and prints per proof its figure, the test's bar and the margin (figure - bar; for an upper bound,
bar - figure), per setting, then the sha256 of every tiny base each setting built (docs/reliability.md).

    python benches/bench_numerics.py                                  # every proof, the three settings (~2.5 h)
    python benches/bench_numerics.py --shared-cache --workers 2       # bases built once (they are pinned), 2 workers
    python benches/bench_numerics.py --proofs grpo_grounding blip_caption --settings as_is avx2
    python benches/bench_numerics.py --seed 3                         # on the bases of build seed 3
    python benches/bench_numerics.py --build vlm.PRETRAIN.steps=1000   # try another tiny build recipe

Run it through the heavy-job lock at one thread, as `make test` runs: the bars are those of the tests at HEAD.
Writes the figures as JSON lines to --out (default outputs/bench_numerics.jsonl); the pytest logs sit in --work.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SETTINGS = {
    "as_is": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},  # what an AVX2-only CPU picks
    "mkl_compatible": {"MKL_CBWR": "COMPATIBLE"},  # MKL's CPU-independent code path
}


def _side(run_dirs: dict) -> float:
    """Share of BLIP's held-out captions that name the right side and not the other (test_blip's figure)."""
    lines = run_dirs["full"]["predictions"]
    right = 0
    for line in lines:
        side = "left" if "left" in line["references"][0] else "right"
        other = "right" if side == "left" else "left"
        right += side in line["after"] and other not in line["after"]
    return right / len(lines)


def _gain(run: str, key: str):
    return lambda r: r[run][f"{key}_after"] - r[run][f"{key}_before"]


def _after(run: str, key: str):
    return lambda r: r[run][f"{key}_after"]


# proof -> (pytest node id, [(figure, function of {run dir: eval_results.json}, bar, ">=" / ">" / "<=")]).
# The bars mirror the tests' assertions; the test's own assertions decide the pass/fail column.
PROOFS = {
    "sft_lora_smolvlm": (
        "tests/test_sft_e2e.py::test_sft_lora_learns_the_held_out_task[smolvlm]",
        [
            ("accuracy after", _after("run", "accuracy"), 0.9, ">="),
            ("accuracy gain", _gain("run", "accuracy"), 0.5, ">="),
        ],
    ),
    "sft_lora_qwen2_vl": (
        "tests/test_sft_e2e.py::test_sft_lora_learns_the_held_out_task[qwen2_vl]",
        [
            ("accuracy after", _after("run", "accuracy"), 0.9, ">="),
            ("accuracy gain", _gain("run", "accuracy"), 0.5, ">="),
        ],
    ),
    "sft_packed_qwen2_vl": (
        "tests/test_sft_e2e.py::test_sft_lora_learns_padding_free_and_packed[qwen2_vl-packing]",
        [
            ("accuracy after", _after("run", "accuracy"), 0.9, ">="),
            ("accuracy gain", _gain("run", "accuracy"), 0.5, ">="),
        ],
    ),
    "sft_full_smolvlm": (
        "tests/test_methods.py::test_full_sft_improves_and_changes_every_trainable_weight_group",
        [("accuracy gain", _gain("run", "accuracy"), 0.5, ">=")],
    ),
    "sft_anls_smolvlm": (
        "tests/test_methods.py::test_eval_metrics_match_evaluate_models_for_the_same_adapter_and_rows",
        [("anls gain", _gain("run", "anls"), 0.0, ">")],
    ),
    "evaluate_smolvlm": (
        "tests/test_inference.py::test_evaluation_of_a_fine_tuned_tiny_model_beats_its_base",
        [("accuracy gain", _gain("run", "accuracy"), 0.5, ">=")],
    ),
    "video_smolvlm": (
        "tests/test_video.py::test_sft_on_video_learns_what_one_frame_cannot[smolvlm]",
        [
            ("accuracy after", _after("video", "accuracy"), 0.9, ">="),
            ("middle frame after", _after("frame", "accuracy"), 0.5, "<="),
        ],
    ),
    "grounding_sft_smolvlm": (
        "tests/test_grounding.py::test_sft_grounding_default_learns_to_find_the_red_circle",
        [
            ("IoU@0.5 after", _after("sft", "iou_accuracy"), 0.8, ">="),
            ("mean IoU after", _after("sft", "mean_iou"), 0.8, ">="),
        ],
    ),
    "grpo_grounding": (
        "tests/test_grounding.py::test_grpo_grounding_raises_mean_iou_further_from_an_sft_start",
        [
            ("start mean IoU", lambda r: r["grpo"]["mean_iou_before"], None, None),
            ("mean IoU gain", _gain("grpo", "mean_iou"), 0.08, ">="),
            ("IoU@0.5 gain", _gain("grpo", "iou_accuracy"), 0.08, ">="),
        ],
    ),
}
for family in ("smolvlm", "qwen2_vl"):
    for method, bars in (("dpo", (0.045, 0.0125)), ("mpo", (0.085, 0.03))):
        PROOFS[f"{method}_{family}"] = (
            f"tests/test_preference.py::test_offline_default_improves_held_out_metrics[{family}-{method}]",
            [
                ("accuracy gain", _gain("run", "accuracy"), bars[0], ">="),
                ("preference gain", _gain("run", "preference_accuracy"), bars[1], ">="),
            ],
        )
    config = {"smolvlm": "tiny-smolvlm", "qwen2_vl": "tiny-qwen2-vl"}[family]
    PROOFS[f"grpo_{family}"] = (
        f"tests/test_grpo.py::test_grpo_default_improves_held_out_reward_and_accuracy[{config}]",
        [("reward gain", _gain("run", "reward"), 0.05, ">="), ("accuracy gain", _gain("run", "accuracy"), 0.05, ">=")],
    )
PROOFS.update(
    {
        "blip_caption": (
            "tests/test_blip.py::test_the_offline_caption_default_raises_held_out_cider",
            [("CIDEr-D gain", _gain("full", "cider"), 1.5, ">"), ("right side", _side, 0.8, ">")],
        ),
        "blip_itm": (
            "tests/test_blip.py::test_itm_retrieval_on_the_tiny_blip_writes_before_and_after_figures",
            [
                ("ITC t2i R@1", lambda r: r["itm"]["retrieval"]["itc"]["text_to_image_recall@1"], 0.3, ">"),
                (
                    "re-ranked t2i R@1",
                    lambda r: r["itm"]["retrieval"]["itm_rerank"]["text_to_image_recall@1"],
                    0.3,
                    ">",
                ),
            ],
        ),
        "blip_zero_shot": (
            "tests/test_blip.py::test_zero_shot_captions_of_a_dataset_split_are_scored_with_cider",
            [("CIDEr-D", lambda r: r["zs"]["cider"], 1.0, ">")],
        ),
        "clip_zero_shot": (
            "tests/test_clip_recipes.py::test_zero_shot_classification_beats_chance_by_a_wide_margin",
            [("top-1 (bare name)", lambda r: r["run"]["classify"]["bare_name"]["top1"], 0.5, ">")],
        ),
        "clip_retrieval_ood": (
            "tests/test_clip_recipes.py::test_zero_shot_retrieval_ood_and_failure_cases",
            [
                ("t2i R@1", lambda r: r["run"]["retrieval"]["text_to_image_recall@1"], 0.5, ">"),
                ("MCM AUROC", lambda r: r["run"]["ood"]["mcm"]["auroc"], 0.8, ">"),
                ("replaced attribute", lambda r: r["run"]["failures"]["replaced_attribute_accuracy"], 0.9, ">"),
            ],
        ),
        "clip_folder": (
            "tests/test_clip_recipes.py::test_zero_shot_classification_from_a_local_image_folder",
            [("top-1 (ensemble)", lambda r: r["out"]["classify"]["ensemble"]["top1"], 0.9, ">")],
        ),
        "clip_search": ("tests/test_clip_recipes.py::test_image_search_over_a_folder_finds_the_queried_shape", []),
        "clip_train": (
            "tests/test_clip_recipes.py::test_contrastive_training_improves_held_out_zero_shot_figures",
            [("zero-shot top-1 gain", _gain("run", "zero_shot_top1"), 0.2, ">")],
        ),
        "vit_digits": (
            "tests/test_vit.py::test_vit_from_scratch_on_digits_reaches_090_held_out",
            [("top-1 after", _after("run", "top1"), 0.9, ">=")],
        ),
    }
)


# -- the pytest plugin (loaded into each setting's pytest process with `-p bench_numerics`) -------------------------


def _collect(item) -> dict:
    """{run folder name: eval_results.json (+ its eval_predictions.jsonl)} of every folder a test's arguments hold."""
    found = {}
    roots = []
    for value in item.funcargs.values():
        for part in value if isinstance(value, tuple) else (value,):
            if isinstance(part, Path):
                roots.append(part)
    for root in roots:
        for path in root.rglob("eval_results.json"):
            results = json.loads(path.read_text())
            predictions = path.parent / "eval_predictions.jsonl"
            if predictions.exists():
                results["predictions"] = [json.loads(line) for line in predictions.read_text().splitlines()]
            found[path.parent.name] = results
    return found


def pytest_runtest_makereport(item, call):
    if call.when != "call" or "BENCH_NUMERICS_OUT" not in os.environ:
        return
    record = {
        "nodeid": item.nodeid,
        "passed": call.excinfo is None,
        "seconds": round(call.duration, 1),
        "runs": _collect(item),
        "error": None if call.excinfo is None else str(call.excinfo.value)[:2000],
    }
    with open(os.environ["BENCH_NUMERICS_OUT"], "a") as f:
        f.write(json.dumps(record) + "\n")


# -- the bench ------------------------------------------------------------------------------------------------------


def _bases(cache: Path) -> dict:
    return {
        path.parent.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((cache / "tiny").glob("*/model.safetensors"))
    }


def run_setting(
    setting: str, proofs: list[str], work: Path, seed: int, build: list[str], cache: Path | None, workers: int
) -> dict:
    """One pytest run for `setting` (`workers` pytest-xdist workers), with an empty tiny cache unless `cache` is given;
    returns {proof: record} and the bases built."""
    cache = cache or Path(tempfile.mkdtemp(prefix=f"cache-{setting}-", dir=work))
    records_file = work / f"records-{setting}.jsonl"
    records_file.unlink(missing_ok=True)
    env = {
        **os.environ,
        **SETTINGS[setting],
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "VLM_RECIPES_CACHE": str(cache),
        "VLM_RECIPES_TINY_SEED": str(seed),
        "BENCH_NUMERICS_OUT": str(records_file),
        "BENCH_NUMERICS_BUILD": json.dumps(build),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "benches"), os.environ.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "bench_numerics", "-p", "no:cacheprovider"]
    cmd += ["--basetemp", str(work / f"pytest-{setting}"), *(PROOFS[p][0] for p in proofs)]
    if workers:
        cmd += ["-n", str(workers), "--dist", "worksteal"]
    started = time.perf_counter()
    with open(work / f"pytest-{setting}.log", "w") as log:
        subprocess.run(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    by_node = {}
    if records_file.exists():
        by_node = {r["nodeid"]: r for r in map(json.loads, records_file.read_text().splitlines())}
    records = {p: by_node.get(PROOFS[p][0]) for p in proofs}
    return {"records": records, "bases": _bases(cache), "seconds": round(seconds)}


def _apply_build_overrides() -> None:
    """`--build module.DICT.key=value` (e.g. vlm.PRETRAIN.steps=1000), applied in the pytest process before any build:
    the build's child process takes the changed recipe over, and the cache key covers it."""
    import importlib

    for item in json.loads(os.environ.get("BENCH_NUMERICS_BUILD", "[]")):
        target, value = item.split("=", 1)
        module, table, key = target.split(".")
        getattr(importlib.import_module(f"vlm_recipes.tiny.{module}"), table)[key] = json.loads(value)


def pytest_configure(config):
    _apply_build_overrides()


def _figures(proof: str, record: dict | None) -> list[tuple]:
    rows = []
    for name, fn, bar, op in PROOFS[proof][1]:
        try:
            value = fn(record["runs"]) if record else None
        except (KeyError, IndexError, ZeroDivisionError):
            value = None
        margin = None
        if value is not None and bar is not None:
            margin = bar - value if op == "<=" else value - bar
        rows.append((name, value, bar, op, margin))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proofs", nargs="+", default=list(PROOFS), choices=list(PROOFS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seed", type=int, default=0, help="VLM_RECIPES_TINY_SEED: which tiny bases")
    parser.add_argument(
        "--build", action="append", default=[], help="module.DICT.key=json, e.g. vlm.PRETRAIN.steps=1000"
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for caches and pytest logs (default: a temp dir)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_numerics.jsonl")
    parser.add_argument(
        "--shared-cache",
        action="store_true",
        help="one tiny cache for every setting: the builds pin their numerics, so each setting builds the same bases "
        "(tests/test_tiny.py checks it); the digests below still come from the one cache",
    )
    parser.add_argument("--cache", type=Path, default=None, help="this tiny cache for every setting (shared)")
    parser.add_argument("--workers", type=int, default=0, help="pytest-xdist workers per setting (0: one process)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_numerics-"))
    work.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = {}
    shared = args.cache or (Path(tempfile.mkdtemp(prefix="cache-shared-", dir=work)) if args.shared_cache else None)
    for setting in args.settings:
        kind = "shared" if shared else "empty"
        print(f"{setting}: {len(args.proofs)} proofs, {kind} cache under {work} ...", flush=True)
        runs[setting] = run_setting(setting, args.proofs, work, args.seed, args.build, shared, args.workers)
        passed = sum(bool(r and r["passed"]) for r in runs[setting]["records"].values())
        print(f"{setting}: {passed}/{len(args.proofs)} passed in {runs[setting]['seconds']} s", flush=True)
        with args.out.open("a") as f:
            for proof, record in runs[setting]["records"].items():
                figures = [
                    dict(zip(("figure", "value", "bar", "op", "margin"), row)) for row in _figures(proof, record)
                ]
                row = {"setting": setting, "proof": proof, "seed": args.seed, "build": args.build, "figures": figures}
                row.update(passed=bool(record and record["passed"]), seconds=record and record["seconds"])
                f.write(json.dumps(row) + "\n")

    print(
        f"\nSeed {args.seed}; build {args.build or 'as shipped'}; figure (margin) per setting; FAIL = the test failed"
    )
    header = f"{'proof':<22} {'figure':<20} {'bar':>9}" + "".join(f" {s:>22}" for s in args.settings)
    print(header + "\n" + "-" * len(header))
    for proof in args.proofs:
        per_setting = {s: _figures(proof, runs[s]["records"][proof]) for s in args.settings}
        if not PROOFS[proof][1]:  # pass / fail only
            cells = "".join(
                f" {'pass' if (r := runs[s]['records'][proof]) and r['passed'] else 'FAIL':>22}" for s in args.settings
            )
            print(f"{proof:<22} {'(pass/fail)':<20} {'':>9}" + cells)
            continue
        for i, (name, _, bar, op, _) in enumerate(per_setting[args.settings[0]]):
            cells = []
            for s in args.settings:
                _, value, _, _, margin = per_setting[s][i]
                record = runs[s]["records"][proof]
                flag = "" if record and record["passed"] else " FAIL"
                text = "-" if value is None else f"{value:.3f}" + (f" ({margin:+.3f})" if margin is not None else "")
                cells.append(f" {text + (flag if i == 0 else ''):>22}")
            bar_text = "" if bar is None else f"{op} {bar:g}"
            print(f"{proof if i == 0 else '':<22} {name:<20} {bar_text:>9}" + "".join(cells))
    print(f"\n{'seconds':<53}" + "".join(f" {runs[s]['seconds']:>22}" for s in args.settings))

    print("\nTiny bases built (sha256 of model.safetensors, first 16 hex digits):")
    names = sorted({n for s in args.settings for n in runs[s]["bases"]})
    for name in names:
        digests = [runs[s]["bases"].get(name, "-")[:16] for s in args.settings]
        same = "same" if len(set(digests)) == 1 else "DIFFER"
        print(f"  {name:<34}" + "".join(f" {d:>18}" for d in digests) + f"  {same}")


if __name__ == "__main__":
    main()
