"""What every settings dataclass shares: the `recipe:` field and allowed values declared once, as `Literal` types.

A field typed `Literal["left", "right"]` is offered as a choice by `TrlParser` (transformers' `HfArgumentParser`
turns a `Literal` into argparse `choices`), and `check_choices` refuses any other value for objects built in Python,
so each set of allowed values is written once, in the type.
"""

from __future__ import annotations

import functools
import logging
import sys
import typing
from dataclasses import dataclass, field, fields

logger = logging.getLogger(__name__)


@dataclass
class RecipeField:
    """The recipe a config file is for, declared in the file (never guessed from its name)."""

    recipe: str | None = field(
        default=None,
        metadata={
            "help": "The recipe this config is for (sft, dpo, mpo, grpo, rloo, generate, evaluate_models, benchmark, "
            "clip_zero_shot, clip_train, vit_baseline, blip_zero_shot, blip_train, or a variant of a training method "
            "such as grpo_dapo, launched with its method's script); checked against the recipe launched. Every YAML "
            "of the repository declares it."
        },
    )


def _literal_values(annotation) -> tuple | None:
    """The allowed values of a `Literal[...]` (or `Literal[...] | None`) annotation, else None."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    args = typing.get_args(annotation)
    if args and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and typing.get_origin(inner[0]) is typing.Literal:
            return (*typing.get_args(inner[0]), None)
    return None


@functools.cache
def choices_of(cls: type) -> dict[str, tuple]:
    """{field name: allowed values} for every field of `cls` typed as a `Literal`."""
    module = sys.modules[cls.__module__]
    hints = {}
    for klass in reversed(cls.__mro__):  # fields of TRL's base classes are typed in their own modules
        try:
            hints.update(typing.get_type_hints(klass, vars(sys.modules[klass.__module__])))
        except Exception:  # a base class whose hints cannot be resolved declares no Literal of ours
            continue
    del module
    names = {f.name for f in fields(cls)}
    return {name: values for name, hint in hints.items() if name in names and (values := _literal_values(hint))}


def check_choices(obj) -> None:
    """Refuse a value outside its field's `Literal` choices, naming the field and the allowed values."""
    for name, allowed in choices_of(type(obj)).items():
        value = getattr(obj, name)
        if value not in allowed:
            shown = ", ".join(repr(v) for v in allowed if v is not None) + (" or null" if None in allowed else "")
            raise ValueError(f"{name} must be one of {shown}; got {value!r}.")


# The dataset-source fields the data settings of every recipe family share (VLM recipes, CLIP / ViT, BLIP): written
# once here, used by settings/data.py, settings/baselines.py and settings/blip.py.
def dataset_config_field():
    return field(default=None, metadata={"help": "Hub dataset configuration name."})


def train_split_field():
    return field(default="train", metadata={"help": "Split to train on."})


def test_split_field(fraction_field: str, missing_is_error: bool = True):
    """The held-out split; `fraction_field` names the setting that holds out part of train instead (when the split is
    null, or, unless `missing_is_error`, when the dataset has no such split)."""
    if missing_is_error:
        when, rest = "null (or a dataset whose only split is train)", " A name the dataset lacks is an error."
    else:
        when, rest = "null, or a split the dataset does not have,", ""
    text = f"Held-out split; {when} holds out {fraction_field} of train.{rest}"
    return field(default="test", metadata={"help": text})


# Hub datasets that moved: lmms-lab's image/text evaluation sets went to lmms-lab-encoder/ and its video sets to
# lmms-eval/ on 2026-07-30 (EvolvingLMMs-Lab/lmms-eval pull request #1416, "chore: migrate dataset paths to new orgs":
# the old ids resolve through a Hub redirect that the maintainers say not to rely on). Each old id a config of ours
# ever named is read as its new id, with a one-line notice. lmms-lab/multimodal-open-r1-8k-verified is no lmms-eval
# task's dataset and did not move.
MOVED_DATASETS = {
    "lmms-lab/ActivityNetQA": "lmms-eval/ActivityNetQA",
    "lmms-lab/ai2d": "lmms-lab-encoder/ai2d",
    "lmms-lab/DocVQA": "lmms-lab-encoder/DocVQA",
    "lmms-lab/flickr30k": "lmms-lab-encoder/flickr30k",
    "lmms-lab/MMBench": "lmms-lab-encoder/MMBench",
    "lmms-lab/MMMU": "lmms-lab-encoder/MMMU",
    "lmms-lab/RefCOCO": "lmms-lab-encoder/RefCOCO",
    "lmms-lab/ScienceQA": "lmms-lab-encoder/ScienceQA",
    "lmms-lab/textvqa": "lmms-lab-encoder/textvqa",
}


def current_dataset_id(name: str, setting: str = "dataset_name") -> str:
    """`name`, or the id a moved Hub dataset has now (`MOVED_DATASETS`), with a one-line notice naming the setting."""
    new = MOVED_DATASETS.get(name)
    if new is None:
        return name
    logger.warning("%s %s moved to %s on the Hub (2026-07-30): reading %s; use the new id.", setting, name, new, new)
    return new


# The contamination check's two settings (vlm_recipes/data/contamination.py): data settings of the training and
# evaluation recipes, and settings of the benchmark recipe, written once here.
def allow_overlap_field():
    text = (
        "Run even when a scored set (the held-out split, the evaluated dataset, a benchmark) shares more than "
        "max_overlap of its rows' images with the training data; the reports mark the figure. Default: refuse."
    )
    return field(default=False, metadata={"help": text})


def max_overlap_field():
    text = (
        "The contamination check's threshold: the share of a scored set's rows whose image was seen in training "
        "(a pHash within 6 of 64 bits) above which the run refuses (unless allow_overlap)."
    )
    return field(default=0.01, metadata={"help": text})


def check_overlap_settings(obj) -> None:
    if not 0.0 <= obj.max_overlap <= 1.0:
        raise ValueError(f"max_overlap must be a fraction in [0, 1], got {obj.max_overlap}.")
