"""Every recipe destroys its process group on the way out, after success and after failure."""

import pytest
import torch.distributed as dist

from vlm_recipes.processes import ends_process_group

pytestmark = pytest.mark.unit


@pytest.fixture
def group(tmp_path):
    """A one-process gloo group, as `accelerate launch` would leave behind."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_the_group_is_destroyed_after_success(group):
    @ends_process_group
    def main():
        assert dist.is_initialized()
        return 7

    assert main() == 7
    assert not dist.is_initialized()


def test_the_group_is_destroyed_after_failure_and_the_error_still_raised(group):
    @ends_process_group
    def main():
        raise ValueError("bad row")

    with pytest.raises(ValueError, match="bad row"):
        main()
    assert not dist.is_initialized()


def test_without_a_group_nothing_happens():
    assert not dist.is_initialized()
    assert ends_process_group(lambda: "ok")() == "ok"


def test_every_recipe_main_ends_its_process_group_when_it_fails(tmp_path):
    """Each recipe script's main, run under a live process group with a config that does not exist, raises and
    leaves the group destroyed (what `accelerate launch` needs from a rank that fails)."""
    from helpers import RECIPES, recipe_module

    missing = str(tmp_path / "missing.yaml")
    for i, name in enumerate(sorted(RECIPES | {"merge_adapter"})):
        main = recipe_module(name).main
        argv = ["--adapter", str(tmp_path / "missing")] if name == "merge_adapter" else ["--config", missing]
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / f'store{i}'}", rank=0, world_size=1)
        with pytest.raises((Exception, SystemExit)):
            main(argv)
        assert not dist.is_initialized(), f"{name} left its process group alive"
