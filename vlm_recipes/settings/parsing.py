"""Parsing a recipe's YAML plus command-line overrides into its settings dataclasses (`parse`), on `TrlParser`.

What TRL's parser does not: a config is checked against the recipe launched (its `recipe:` field), unknown keys are
named with the closest real field, and a hook sees the raw settings before the dataclasses are built. Registry-backed
checks (metric, benchmark and reward names, refused fields) are the launch layer's (vlm_recipes.launch).
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import trl
import yaml

from .common import RecipeField


def parse(
    dataclass_types: tuple,
    default_config: str | Path,
    argv: list[str] | None = None,
    recipe: str | None = None,
    check_settings: Callable[[dict, str], None] | None = None,
):
    """Parse `--config <yaml>` plus overrides; without `--config`, the recipe's offline default config is used.

    `recipe` is the recipe being launched: a config that declares another one (`recipe: dpo` given to grpo.py) is
    refused, naming the script to use; a config that declares none is taken as this recipe's. `check_settings(settings,
    where)` sees the raw values the file and the command line set (`settings_of`) before the dataclasses are built, so
    a refusal that names what to use instead speaks before their own checks (the launch layer passes the method's
    refused fields)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv:
        argv = ["--config", str(default_config), *argv]
    config = argv[argv.index("--config") + 1]
    if recipe is not None:  # before parsing: another recipe's config fails on its fields, with a misleading message
        _check_recipe(config, _declared_recipe(config), recipe)
    if check_settings is not None:
        check_settings(settings_of(config, argv), f"{config} (or the command line): ")
    try:
        parsed = trl.TrlParser(dataclass_types).parse_args_and_config(argv)
    except ValueError as err:
        unknown = re.findall(r"'--([A-Za-z0-9_.-]+)'", str(err))
        if not unknown or not ("Unknown arguments" in str(err) or "not used by" in str(err)):
            raise
        raise ValueError(_unknown_keys_message(unknown, dataclass_types, config)) from err
    if recipe is not None:
        for args in parsed:
            if isinstance(args, RecipeField):
                _check_recipe(config, args.recipe, recipe)  # `--recipe` on the command line too
                args.recipe = recipe
    return parsed


def settings_of(config: str | Path, argv: list[str]) -> dict:
    """The values a config file and then the command line set, by key (command-line values read as YAML scalars:
    "false" -> False, "10" -> 10; a flag without a value -> True)."""
    try:
        content = yaml.safe_load(Path(config).read_text())
    except (OSError, yaml.YAMLError):
        content = None
    settings = dict(content) if isinstance(content, dict) else {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--"):
            continue
        key, eq, inline = arg[2:].partition("=")
        values = [inline] if eq else []
        while not eq and i < len(argv) and not argv[i].startswith("--"):
            values.append(argv[i])
            i += 1
        read = [_scalar(v) for v in values]
        settings[key] = True if not read else read[0] if len(read) == 1 else read
    return settings


def _scalar(text: str):
    """A command-line value as YAML reads it ("false" -> False, "10" -> 10), or the text itself."""
    try:
        value = yaml.safe_load(text) if text else text
    except yaml.YAMLError:
        return text
    return value if isinstance(value, str | int | float | bool) or value is None else text


def _declared_recipe(config: str | Path) -> str | None:
    try:
        content = yaml.safe_load(Path(config).read_text())
    except (OSError, yaml.YAMLError):
        return None  # the parser reports an unreadable file itself
    return content.get("recipe") if isinstance(content, dict) else None


def _check_recipe(config, declared: str | None, recipe: str) -> None:
    if declared not in (None, recipe):
        raise ValueError(
            f"{config} is a config for recipe {declared!r} (its `recipe:` field), not {recipe!r}: launch it with "
            f"recipes/{declared}.py, or pick a {recipe} config."
        )


def _unknown_keys_message(unknown: list[str], dataclass_types: tuple, config: str) -> str:
    """One line naming each unknown key, the closest real field, and where the fields are listed."""
    known = [f.name for cls in dataclass_types for f in fields(cls)]
    parts = []
    for key in unknown:
        # Among similar names prefer the one sharing the longest prefix (lora_rank -> lora_r, not local_rank).
        close = difflib.get_close_matches(key, known, n=5, cutoff=0.6)
        close.sort(key=lambda name: len(os.path.commonprefix([key, name])), reverse=True)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    classes = ", ".join(cls.__name__ for cls in dataclass_types)
    return (
        f"{config} (or the command line): unknown key(s) {', '.join(parts)}: not a field of {classes}; "
        "fix the spelling or remove it (the recipe's --help lists every field)."
    )
