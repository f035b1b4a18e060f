"""The record every stand-in is: a dataset's schema (features per configuration, splits) and its row generator."""

from __future__ import annotations

import random
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import yaml
from datasets import Features, List, Value

STRING = Value("string")
STRINGS = List(Value("string"))
# One chat message as TRL's vision datasets store it: typed parts ({text, type}) under content, and a role.
MESSAGES = List({"content": List({"text": STRING, "type": STRING}), "role": STRING})


@dataclass(frozen=True)
class StandIn:
    """One Hub dataset's schema and a generator of a few rows in it.

    Args:
        hub_id: the dataset's Hub id; the stand-in is written to `<root>/<hub_id>`.
        card: the dataset card the schema was copied from.
        features: per configuration name, the features in the card's order.
        splits: per configuration name, {split: number of rows}.
        rows: `(config, split, n, rng) -> list of rows`.
        files: where a split's Parquet file lives in the repository, formatted with `config` and `split`.
        extra: `(folder, rows) -> None`, writing files the rows point to (a video dataset's extracted archive).
        card_features: the `dataset_info.features` YAML of the card named in `card`, copied as published (one text,
            or {configuration: text}); tests/test_standins.py compares `features` with it. Empty where the card has
            no `dataset_info` to copy (the record's docstring says what the schema was read from instead).

    A card without `config_name`s has one configuration, which `datasets` calls "default".
    """

    hub_id: str
    card: str
    features: dict[str, Features]
    splits: dict[str, dict[str, int]]
    rows: Callable[[str, str, int, random.Random], list[dict]]
    files: str = "data/{split}-00000-of-00001.parquet"
    extra: Callable[[object, list[dict]], None] | None = None
    card_features: str | dict[str, str] = ""

    def published_features(self) -> dict[str, Features]:
        """{configuration: the card's features}, parsed from `card_features` ({} when the record has none)."""
        texts = self.card_features
        if not texts:
            return {}
        texts = texts if isinstance(texts, dict) else {next(iter(self.features)): texts}
        return {
            config: Features._from_yaml_list(yaml.safe_load(textwrap.dedent(text))) for config, text in texts.items()
        }
