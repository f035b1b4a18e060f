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
