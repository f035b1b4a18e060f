"""Training arguments of the VLM recipes: TRL's configs plus what every recipe adds (`SFTConfig`, `DPOConfig`,
`GRPOConfig`, `RLOOConfig`). Names checked against a registry (benchmarks, rewards) and the fields a method does not
honour are checked when a recipe parses its config (vlm_recipes.launch), not here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import trl

from .common import RecipeField, check_choices

# TRL 1.16's GRPO losses and importance-ratio levels (GRPOTrainer._compute_loss). TRL types both fields `str` and reads
# them first in the loss, after the model is loaded and evaluated: as Literals here a misspelt value fails at parse.
GRPOLossType = Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"]
ImportanceSamplingLevel = Literal["token", "sequence"]
# The experiment trackers the recipes are tested with (vlm_recipes.training.tracking); `none` turns them all off.
TRACKERS = ("tensorboard", "trackio", "wandb")


@dataclass
class VLMTrainingFields(RecipeField):
    """Fields every recipe's training config adds to TRL's."""

    vision_tower_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate for the vision tower (None: learning_rate)."}
    )
    projector_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate for the projector/connector (None: learning_rate)."}
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow writing into an output_dir that already holds a finished run."}
    )
    hub_private: bool = field(
        default=False, metadata={"help": "With push_to_hub: create the Hub repository as private."}
    )
    benchmarks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Benchmarks (names of vlm_recipes/evaluation/benchmarks/tasks, e.g. ai2d, mmbench_en_dev) run on "
            "the model before and after training, as recipes/benchmark.py runs them; the figures go to "
            "eval_results.json and the model card."
        },
    )
    benchmark_limit: int | None = field(
        default=None,
        metadata={
            "help": "With benchmarks: N questions of each benchmark, the random sample recipes/benchmark.py draws "
            "with --limit N (limit_seed 0)."
        },
    )
    benchmark_data: str = field(
        default="hub",
        metadata={
            "help": "With benchmarks: where their datasets are read: 'hub', 'standins' or a folder (see "
            "recipes/benchmark.py's dataset_source)."
        },
    )

    report_to: None | str | list[str] = field(
        default="tensorboard",
        metadata={
            "help": "Experiment trackers: tensorboard (the default), trackio, wandb (trackio and wandb need "
            '`pip install -e ".[tracking]"`), several as a list (comma-separated on the command line), or none.'
        },
    )

    def __post_init__(self):
        self.report_to = check_report_to(self.report_to) or "none"
        if self.hub_private:
            self.hub_private_repo = True
        if not self.benchmarks and (self.benchmark_limit is not None or self.benchmark_data != "hub"):
            raise ValueError(
                "benchmark_limit / benchmark_data are set but benchmarks is empty, so no benchmark would run: name "
                "the benchmarks (e.g. benchmarks: [ai2d, mmbench_en_dev]) or remove those settings."
            )
        if self.benchmark_limit is not None and self.benchmark_limit < 1:
            raise ValueError(f"benchmark_limit must be >= 1 (or unset), got {self.benchmark_limit}.")
        super().__post_init__()


def check_report_to(report_to) -> list[str]:
    """The trackers of `report_to` as a list (a string may name several, comma-separated: the command line passes one
    string); refuses those the recipes are not tested with (transformers would accept a dozen more, and `all`)."""
    if isinstance(report_to, str):
        report_to = [name.strip() for name in report_to.split(",")]
    names = list(report_to or [])
    if names == ["none"]:
        return []
    unknown = [str(n) for n in names if n not in TRACKERS]
    if unknown:
        raise ValueError(
            f"report_to: {', '.join(unknown)} is not supported by the recipes; use {', '.join(TRACKERS)} (several as "
            "a list, or comma-separated on the command line) or none. See docs/configuration.md#experiment-tracking."
        )
    return names


@dataclass
class LogitsAtLabelsField:
    """SFT and DPO/MPO: where the language-model head is applied (vlm_recipes/models/label_head.py)."""

    logits_at_labels: bool = field(
        default=True,
        metadata={
            "help": "Apply the language-model head only at positions whose label is not -100 (the answer), in "
            "vocabulary chunks; per-row losses, gradients and logged metrics as before (within 1e-5 in float32, "
            "tested for every family), less memory and time where TRL would project every position (CPU, MPS). "
            "false: TRL's own head. docs/memory.md."
        },
    )


@dataclass
class SFTConfig(LogitsAtLabelsField, VLMTrainingFields, trl.SFTConfig):
    pass


@dataclass
class DPOConfig(LogitsAtLabelsField, VLMTrainingFields, trl.DPOConfig):
    """DPO and MPO (MPO = DPO with `loss_type: [sigmoid, bco_pair, sft]` and `loss_weights`).

    Adds one check TRL lacks: TRL 1.16 reads `label_smoothing` only in the losses listed in
    `LABEL_SMOOTHED_LOSSES`; with any other loss (the default `sigmoid` included, which older TRL smoothed as
    conservative DPO) it is silently ignored, so it is refused there."""

    LABEL_SMOOTHED_LOSSES = ("robust", "exo_pair", "aot", "aot_unpaired")

    def __post_init__(self):
        super().__post_init__()
        losses = [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)
        if self.label_smoothing and not set(losses) & set(self.LABEL_SMOOTHED_LOSSES):
            raise ValueError(
                f"label_smoothing: {self.label_smoothing} has no effect with loss_type {losses} (TRL reads it only in "
                f"the {', '.join(self.LABEL_SMOOTHED_LOSSES)} losses); for conservative DPO on noisy preferences "
                f"add `robust` to loss_type, or remove label_smoothing."
            )


@dataclass
class RewardFields:
    """What the reinforcement-learning configs (GRPO, RLOO) add to TRL's: reward functions by name. TRL's own
    `reward_weights` weighs them."""

    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy"],
        metadata={"help": "Reward functions by name (see vlm_recipes.rewards.REWARDS); weights in reward_weights."},
    )

    def check_reward_weights(self) -> None:
        """One weight per reward function (checked after the names: launch.validate)."""
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
            raise ValueError(
                f"reward_weights has {len(self.reward_weights)} values for {len(self.reward_funcs)} reward_funcs."
            )


@dataclass
class GRPOConfig(VLMTrainingFields, RewardFields, trl.GRPOConfig):
    """GRPO and its loss variants (TRL's `loss_type`, `importance_sampling_level`, clipping and reward scaling; the
    variant recipes that pin them: vlm_recipes.training.methods)."""

    loss_type: GRPOLossType = field(default="dapo", metadata=trl.GRPOConfig.__dataclass_fields__["loss_type"].metadata)
    importance_sampling_level: ImportanceSamplingLevel = field(
        default="token", metadata=trl.GRPOConfig.__dataclass_fields__["importance_sampling_level"].metadata
    )

    def __post_init__(self):
        check_choices(self)
        super().__post_init__()


@dataclass
class RLOOConfig(VLMTrainingFields, RewardFields, trl.RLOOConfig):
    """RLOO (TRL's `RLOOConfig`): each completion's advantage is its reward minus the mean reward of the other
    completions of its prompt; the KL penalty (`beta`) is taken from the reward, per sequence. GRPO's loss settings
    (`loss_type`, `scale_rewards`, ...) are not fields of it: a config that sets one is refused as an unknown key."""
