"""Shared fixtures, and the test tiers.

Every test carries one tier marker (the closest one wins: a function's marker over its module's `pytestmark`):

- `unit`: no model is built or loaded (processors, tokenizers, pure functions, parsing);
- `integration`: random tiny models (`tiny:<family>-random`, models built in the test), a few steps at most;
- `learning`: pre-trained tiny models (`tiny:<family>`, `-sft`, `tiny:clip`, `tiny:blip*`): the learning proofs.

The tiers are checked while the tests run: building a model in a `unit` test, or resolving a pre-trained tiny model in
a `unit` or `integration` test, fails the test, naming the tier it needs. `make test-fast` runs unit + integration;
`make test` runs every tier. With `VLM_RECIPES_TIER_REPORT=<file>` the checks record instead of failing: one JSON line
per test with the tier it used (what the marker should say).
"""

import json
import os

import pytest
from PIL import Image

from vlm_recipes.tiny.common import SHIPPED_BASES, build_seed

# Tests never touch the network: the Hub is unreachable on our machines and CI.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TIERS = ("unit", "integration", "learning")
_REPORT = os.environ.get("VLM_RECIPES_TIER_REPORT")
_current = {"item": None, "used": "unit"}


def tier_of(item) -> str | None:
    for marker in item.iter_markers():  # closest first
        if marker.name in TIERS:
            return marker.name
    return None


def pytest_collection_modifyitems(config, items):
    missing = [item.nodeid for item in items if tier_of(item) is None]
    if missing and _REPORT is None:
        raise pytest.UsageError(
            f"{len(missing)} test(s) carry no tier marker ({', '.join(TIERS)}), e.g. {missing[0]}: mark the module "
            "(pytestmark = pytest.mark.<tier>) or the test (tests/conftest.py says what each tier may use)."
        )
    if _REPORT is None:
        _prebuild(items)


# The pre-trained tiny bases the default run needs: SHIPPED_BASES (vlm_recipes/tiny/common.py, in build order), in two
# background chains, one per core: the Qwen bases (the longest builds: Qwen2-VL ~7 min of CPU, Qwen2.5-VL ~10) and the
# rest (SmolVLM ~3.5, CLIP and BLIP ~1.5 together). They are shipped, so resolving them copies folders; the chains only
# build when the shipped ones are stale (a changed recipe, which tests/test_tiny.py also reports).
PREBUILD = tuple(tuple(name for name in SHIPPED_BASES if ("qwen" in name) == qwen) for qwen in (True, False))
_prebuilds: list = []


def _prebuild(items) -> None:
    """Start building the pre-trained tiny bases in the background when the run has learning tests.

    Without this, the first test that needs a base builds it (one thread, in its pinned child) while every other test
    that needs it waits on the base's lock: on a 2-core machine one core idled for ~7 minutes of the cold-cache run.
    The builds take the same locks, so a test that needs a base still waiting, and the cached bases are the same
    bytes (the build is pinned whoever starts it). One starter per run (xdist's gw0, or the only process);
    `VLM_RECIPES_PREBUILD=0` turns it off. Their log: `<cache>/tiny/prebuild.log`."""
    if os.environ.get("VLM_RECIPES_PREBUILD", "1") == "0" or os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0":
        return
    if not any(tier_of(item) == "learning" for item in items):
        return
    import subprocess
    import sys

    from vlm_recipes.paths import cache_root

    log_dir = cache_root() / "tiny"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log_dir / "prebuild.log", "a") as log:
        for names in PREBUILD:
            code = f"import vlm_recipes.tiny as tiny\nfor name in {list(names)!r}: print(tiny.resolve(name))"
            _prebuilds.append(
                subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=log, env=env, start_new_session=True)
            )


def pytest_sessionfinish(session, exitstatus):
    """Stop background builds still running (an interrupted or partial run); a killed build leaves no checkpoint."""
    import signal

    for proc in _prebuilds:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()


def _use(tier: str, what: str) -> None:
    """Record that the running test uses `tier`'s resources; fail it when its marker allows less."""
    item = _current["item"]
    if item is None:
        return
    if TIERS.index(tier) > TIERS.index(_current["used"]):
        _current["used"] = tier
    declared = tier_of(item)
    if _REPORT is None and TIERS.index(tier) > TIERS.index(declared):
        raise RuntimeError(f"{item.nodeid} is marked {declared} but {what}: mark it {tier}.")


def _install_guards() -> None:
    """Wrap model construction and the tiny resolver, once, so that `_use` sees what each test builds."""
    from transformers import PreTrainedModel

    import vlm_recipes.tiny as tiny
    from vlm_recipes.models import sources

    init = PreTrainedModel.__init__

    def guarded_init(self, *args, **kwargs):
        _use("integration", f"builds a model ({type(self).__name__})")
        return init(self, *args, **kwargs)

    PreTrainedModel.__init__ = guarded_init
    resolve = tiny.resolve

    def _known(name: str) -> bool:  # an unknown name gets the resolver's own error
        try:
            tiny.checkpoint_dir(name)
        except ValueError:
            return False
        return True

    def guarded_resolve(name: str) -> str:
        if not name.endswith("-random"):
            _use("learning", f"uses the pre-trained tiny model {name}")
            item = _current["item"]
            unshipped = name not in SHIPPED_BASES and not build_seed() and _known(name)
            if item is not None and unshipped and not item.get_closest_marker("slow"):
                raise RuntimeError(
                    f"{item.nodeid} pre-trains {name} in the default run (minutes of CPU): use a shipped base "
                    f"({', '.join(SHIPPED_BASES)}), its -random model, or mark the test slow."
                )
        return resolve(name)

    sources.register_source(tiny.TINY_PREFIX, guarded_resolve)
    tiny.resolve = guarded_resolve
    from vlm_recipes.tiny import blip, clip, vlm

    for module in (vlm, clip, blip):
        build = module.build

        def guarded_build(name=None, *args, _build=build, **kwargs):
            if name is None or not name.endswith("-random"):
                _use("learning", f"builds or loads the pre-trained tiny model {name}")
            return _build(*(() if name is None else (name,)), *args, **kwargs)

        module.build = guarded_build

    import subprocess

    popen = subprocess.Popen.__init__

    def guarded_popen(self, args, *rest, **kwargs):
        command = " ".join(map(str, args)) if isinstance(args, list | tuple) else str(args)
        if "python" in command or "accelerate" in command or "torchrun" in command:
            _use("integration", f"runs {command[:80]!r} in a subprocess (which builds models)")
        return popen(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = guarded_popen


def pytest_sessionstart(session):
    _install_guards()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    # Set-up (fixtures included), call and teardown all count as the test's.
    _current["item"], _current["used"] = item, "unit"
    yield
    if _REPORT is not None:
        with open(_REPORT, "a") as f:
            f.write(json.dumps({"nodeid": item.nodeid, "declared": tier_of(item), "used": _current["used"]}) + "\n")
    _current["item"] = None


@pytest.fixture(scope="session")
def processors():
    """The real processor classes of both families, built offline (fast: no model, no pre-training)."""
    from vlm_recipes.tiny import vlm as tiny

    return {family: tiny.build_processor(family) for family in tiny.SPECS}


@pytest.fixture
def red_image():
    return Image.new("RGB", (64, 64), (220, 40, 40))


@pytest.fixture
def blue_image():
    return Image.new("RGB", (48, 80), (40, 80, 220))


@pytest.fixture(scope="session")
def standins(tmp_path_factory):
    """Every Hub dataset a shipped config names, as a local stand-in with its real schema: {hub id: folder}.

    Written once per session (well under a second); `load_dataset(<folder>, <config>)` reads each like the Hub id."""
    from vlm_recipes.data.standins import write_standins

    return write_standins(tmp_path_factory.mktemp("standins"))
