"""What every offline tiny-model build shares: the cache, reproducible builds, atomic saving.

Reproducible builds. A build's weights depend on the CPU numerics of the process that trains them:
- the intra-op thread count (CPU matmul kernels split their reductions by it);
- ATen's vectorised kernels (`ATEN_CPU_CAPABILITY`: an AVX512 CPU runs other kernels than an AVX2 one);
- MKL's code path (`MKL_CBWR`: by default MKL picks one per CPU model, and a different blocking per matrix shape);
- oneDNN's convolution kernels (`ONEDNN_MAX_CPU_ISA`; their blocking also follows the CPU's caches).
Measured on one AVX512 machine (torch 2.14.1): each of these changed the weights of a 12-step build; a CI machine
of another kind built other bases and two learning proofs failed there (issue 26). The libraries read these settings
when they initialise, so every build that trains runs in a child process started with `PINNED_NUMERICS` (one thread,
MKL's AVX2 code path under its conditional numerical reproducibility, ATen's AVX2 kernels) and with oneDNN switched
off (convolutions take ATen's im2col + MKL path instead). `MKL_CBWR=AVX2`, not `COMPATIBLE`: on this AMD machine
the AVX2 path is the one MKL picks anyway (same bits, same speed), while `COMPATIBLE` ran a matmul 2.2x slower.
With these pinned, the outer process's settings no longer matter: a build started under
`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`, under `MKL_CBWR=COMPATIBLE` or under neither writes the same
`model.safetensors` (docs/reliability.md has the sha256s), so the cache key names the pinned settings instead of the
machine's CPU capability and every x86-64 machine with AVX2 builds (and may share) the same base. Random-only builds
draw their weights from torch's generator and do no other arithmetic; they give the same bits at ATen's AVX2 and
AVX512 capability (measured), so they run in the calling process unless it runs another capability.
`tiny_build.json` records what the build depended on and what it really ran with.

`VLM_RECIPES_TINY_SEED` (default 0) builds another, equally valid, tiny base (its own cache entry): the learning
benchmarks use it to check that the recipes' defaults do not depend on one lucky base.

Shipped bases. Pinning makes a build reproducible on one kind of CPU, not across kinds: the same pinned build of
`tiny:smolvlm` wrote other weights on an Intel Xeon (AVX512, AMX) than on the AMD EPYC machines the learning proofs
were tuned on, and four SmolVLM proofs failed on it (issue 27's note, 2026-12-07). So the pre-trained bases the
default test run needs are shipped in the repository (`tiny_bases/<cache folder name>/`, safetensors and JSON, a few
MB each), the way TRL's tests download fixed tiny checkpoints from the Hub, which we cannot reach: a build whose cache
folder is shipped copies it instead of training (`copy_shipped`), so every machine trains on the same base and no test
run pays the ~15 CPU-minutes of pre-training. The folder name is the build's cache key (recipe, library versions,
numerics, seed): a changed recipe or a new pin misses the shipped copy and builds, and `tests/test_tiny.py` fails until
`python -m vlm_recipes.tiny ship` has shipped the new bases. `VLM_RECIPES_SHIPPED_BASES=0` ignores them (builds).
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from ..paths import REPO_ROOT, cache_root  # noqa: F401  (cache_root: the builders' cache folder)

TINY_PREFIX = "tiny:"  # `tiny:<name>` in model_name_or_path names an offline tiny checkpoint
# Intra-op threads of every build (see the module docstring). One: no parallel reduction at all, and no OpenMP
# barrier to spin on, so a build on a busy machine slows down only by its share of the cores (measured: two pinned
# threads next to another 2-thread job ran 10x slower). Costs ~25% on an idle 2-core machine.
BUILD_THREADS = 1
SEED_ENV = "VLM_RECIPES_TINY_SEED"
# The environment of the child process a build trains in on x86-64 (read by OpenMP, MKL, ATen and oneDNN at start-up).
PINNED_NUMERICS = {
    "OMP_NUM_THREADS": str(BUILD_THREADS),
    "MKL_NUM_THREADS": str(BUILD_THREADS),
    "MKL_CBWR": "AVX2",  # MKL's conditional numerical reproducibility: the AVX2 code path on every AVX2 CPU
    "ATEN_CPU_CAPABILITY": "avx2",  # ATen's AVX2 kernels, also on AVX512 CPUs (`default`, scalar: ~2.5x slower)
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN is off in the build (see `reproducible_build`); should any op reach it
}
SHIPPED_ENV = "VLM_RECIPES_SHIPPED_BASES"  # "0": ignore the shipped bases, build
# The pre-trained bases shipped in the repository (see the module docstring), in build order: what the default test
# run trains on, and the bases of slow learning proofs that take long to build (Qwen3.5 ~20 min, Gemma 3 ~6), so the
# figures in the docs are measured on the bytes everyone gets. `python -m vlm_recipes.tiny ship` (re)builds and ships
# exactly these.
SHIPPED_BASES = (
    "tiny:smolvlm",
    "tiny:smolvlm-sft",
    "tiny:qwen2_vl",
    "tiny:qwen2_vl-sft",
    "tiny:qwen2_5_vl",
    "tiny:qwen2_5_vl-sft",
    "tiny:qwen3_5",  # the slow proofs' bases too, where a base costs minutes to build: every machine measures the same
    "tiny:qwen3_5-sft",
    "tiny:gemma3",
    "tiny:gemma3-sft",
    "tiny:clip",
    "tiny:blip",
    "tiny:blip-itm",
    "tiny:blip-vqa",
)
PINNED_ENV = "VLM_RECIPES_PINNED_BUILD"  # set in the child process: build here, do not start another
# Variables of a distributed launch: the build's child process is no rank of it (a Trainer there would join the group).
_LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "MASTER_ADDR",
               "MASTER_PORT")  # fmt: skip
_LAUNCH_PREFIXES = ("ACCELERATE_", "TORCHELASTIC_", "PET_")


def build_seed() -> int:
    """The build seed from `$VLM_RECIPES_TINY_SEED` (default 0): shifts every seed of a build (initialisation,
    training data, batch order), so each value gives a different tiny base with its own cache entry."""
    value = os.environ.get(SEED_ENV, "0")
    if not value.lstrip("-").isdigit():
        raise ValueError(f"{SEED_ENV} must be an integer, got {value!r}.")
    return int(value)


def pinned_numerics() -> dict:
    """The numerics a build runs with, as they enter the cache key: the pinned settings on an x86-64 CPU with AVX2
    (the same for every such machine), otherwise the machine and the capability it will run (a base of its own)."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64") and torch.cpu._is_avx2_supported():
        return {"machine": "x86_64", "mkl_cbwr": "AVX2", "aten_cpu_capability": "AVX2", "mkldnn": False}
    return {"machine": machine, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "mkldnn": False}


def build_dependencies() -> dict:
    """What a build's weights depend on besides its recipe: part of the cache key and of `tiny_build.json`."""
    import tokenizers
    import transformers

    return {
        "threads": BUILD_THREADS,
        "deterministic_algorithms": True,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "numerics": pinned_numerics(),
        "seed": build_seed(),
    }


def runtime_numerics() -> dict:
    """What this process really runs with (written to `tiny_build.json`, next to the key's `numerics`)."""
    return {
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn_enabled": torch.backends.mkldnn.enabled,
        **{key: os.environ.get(key) for key in ("MKL_CBWR", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")},
    }


def in_pinned_process() -> bool:
    return os.environ.get(PINNED_ENV) == "1"


def random_build_here() -> bool:
    """Whether a random-only build (initialisation, no training) may run in this process: yes in the pinned child,
    and where ATen runs its AVX2 or AVX512 kernels (torch's normal/uniform fills give the same bits at both)."""
    return in_pinned_process() or torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def build_pinned(module_name: str, name: str, force: bool, settings: tuple[str, ...] = ()) -> Path:
    """Run `<module>.build(name, force)` in a child process started with `PINNED_NUMERICS`; return its directory.

    `settings` names module-level dicts of the build recipe (e.g. PRETRAIN) whose current values the child takes
    over, so that a recipe changed in this process (a benchmark, a test) is the one built; the cache key already
    covers them. The child's log and progress bars go to this process's stderr.

    One build per family base at a time (a file lock in the cache): two test workers or two launches that both miss
    `tiny:smolvlm` and `tiny:smolvlm-sft` wait for one build instead of training the same base twice."""
    from filelock import FileLock

    lock_dir = cache_root() / "tiny"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_dir / f".{name.removeprefix(TINY_PREFIX).split('-')[0]}.lock"):
        return _build_in_child(module_name, name, force, settings)


def shipped_root() -> Path:
    return REPO_ROOT / "tiny_bases"


def copy_shipped(target: Path) -> bool:
    """Copy the shipped base of cache folder `target` into the cache (atomically, like a build); False when none is
    shipped under that name (or `VLM_RECIPES_SHIPPED_BASES=0`)."""
    source = shipped_root() / target.name
    if os.environ.get(SHIPPED_ENV, "1") == "0" or not (source / "tiny_build.json").is_file():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with staged(target) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
    return True


@contextmanager
def staged(target: Path, replace: bool = False):
    """A temporary sibling directory of `target`, renamed to `target` when the block ends without error and removed
    in any case: concurrent ranks and interrupted builds never see a half-written checkpoint. If another process
    renamed its own first, that one is kept (the builds are deterministic: the same files), unless `replace`."""
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        yield tmp
        if replace and target.exists():
            shutil.rmtree(target)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build_in_child(module_name: str, name: str, force: bool, settings: tuple[str, ...]) -> Path:
    module = importlib.import_module(module_name)
    values = {key: getattr(module, key) for key in settings}
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCH_ENV and not k.startswith(_LAUNCH_PREFIXES)}
    shared = "aten_cpu_capability" in pinned_numerics()  # x86-64 with AVX2: pin it all; elsewhere the thread count
    env.update(PINNED_NUMERICS if shared else {k: PINNED_NUMERICS[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    root = str(Path(__file__).resolve().parents[2])  # the folder holding this `vlm_recipes` package
    env[PINNED_ENV] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    code = "from vlm_recipes.tiny.common import _child_main; _child_main()"
    args = [module_name, name, json.dumps(values), "1" if force else "0"]
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, text=True)
    lines = proc.stdout.splitlines()
    if lines[:-1]:
        print("\n".join(lines[:-1]), file=sys.stderr)
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"Building {name} failed in its pinned-numerics child process (exit code {proc.returncode}); its error is "
            "printed above. Rebuild alone to see it: python -m vlm_recipes.tiny build --force ..."
        )
    return Path(lines[-1])


def _child_main() -> None:
    """Entry point of `build_pinned`'s child: check that the pins took, apply the recipe, build, print the path."""
    module_name, name, values, force = sys.argv[1:5]
    expected = pinned_numerics()
    capability = torch.backends.cpu.get_cpu_capability()
    if expected.get("aten_cpu_capability", expected.get("cpu_capability")) != capability:
        raise RuntimeError(f"The tiny build runs ATen's {capability} kernels, not those of its cache key {expected}.")
    module = importlib.import_module(module_name)
    for key, value in json.loads(values).items():
        getattr(module, key).clear()
        getattr(module, key).update(value)
    print(module.build(name, force=force == "1"))


@contextmanager
def reproducible_build():
    """Run a build with `BUILD_THREADS` intra-op threads, deterministic algorithms and oneDNN off; restore them."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    mkldnn = torch.backends.mkldnn.enabled
    torch.set_num_threads(BUILD_THREADS)
    torch.use_deterministic_algorithms(True)
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.mkldnn.enabled = mkldnn


def save_atomically(target: Path, model, processor, info: dict, force: bool = False) -> None:
    """Save into a temporary sibling directory and rename it to `target`, so that concurrent ranks and interrupted
    builds never see a half-written checkpoint."""
    with staged(target, replace=force) as tmp:
        model.save_pretrained(tmp, is_main_process=True)  # safetensors
        processor.save_pretrained(tmp)
        if not (tmp / "config.json").exists():  # e.g. a non-zero rank of a distributed run: never cache that
            raise RuntimeError(f"Building {target.name}: the model files were not written; build it on rank 0.")
        (tmp / "tiny_build.json").write_text(json.dumps(info, indent=2))


def train_qwen_bpe(
    tokenizer_class, pretokenize_regex: str, corpus: list[str], vocab_size: int, special_tokens: dict, plain_added=()
):
    """`tokenizer_class` (a Qwen tokenizer class) over a byte-level BPE trained on `corpus` with NFC and
    `pretokenize_regex`, the special tokens (eos, pad, extra) and `plain_added` (added tokens that are not special in
    the real vocabulary, e.g. Qwen3's <think>): the one recipe of the tiny Qwen2.5-VL, Qwen3-VL and Qwen3.5
    tokenizers, each around its real class and regex. `vocab_size` counts the plain added tokens."""
    from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    specials = [special_tokens["eos"], special_tokens["pad"], *special_tokens["extra"]]
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pretokenize_regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(plain_added),
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    learned = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    tokenizer = tokenizer_class(
        vocab=learned["vocab"],
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=special_tokens["eos"],
        pad_token=special_tokens["pad"],
        extra_special_tokens=special_tokens["extra"],
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )
    if plain_added:
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in plain_added])
    return tokenizer
