import os

import pytest
from PIL import Image

# Tests never touch the network: the Hub is unreachable on our machines and CI.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
