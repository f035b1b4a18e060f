"""The training methods, one frozen record each: everything the run flow, preflight and the recipes need to know.

TRL provides the trainers and their configs; what a method adds here is the wiring: which config class parses its
YAML, which loader turns data into its rows, which trainer and collator train on them, which held-out metrics it
reports beyond generation, and how its model card names it. `run`, `preflight`, the recipe scripts and the tests
look methods up with `get_method`; nothing else dispatches on a method's name.

Adding a method is one record in `METHODS` plus a thin `recipes/<name>.py`. A variant that differs from a method only
in its settings (a loss type, say) is one record made with `Method.variant` plus its YAMLs: it runs through the
script of the method it varies (`accelerate launch recipes/grpo.py --config <a yaml with recipe: <variant>>`), and the
settings it pins (`fixed`) are refused when a config sets them otherwise.

>>> from vlm_recipes.training.methods import get_method
>>> get_method("mpo").config_class.__name__, get_method("mpo").trainer_class.__name__
('DPOConfig', 'VLMDPOTrainer')
>>> sorted(name for name, method in METHODS.items() if method.script_name == name)  # the recipe scripts
['dpo', 'grpo', 'mpo', 'rloo', 'sft']
>>> get_method("grpo_gspo").script_name, get_method("grpo_gspo").fixed["importance_sampling_level"]
('grpo', 'sequence')
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from dataclasses import field as dc_field

from ..data.collators import PreferenceCollator, VisionChatCollator
from ..data.loading import final_answer, load_preference_splits, load_prompt_splits, load_splits
from ..evaluation.generation import preference_accuracy
from ..settings import DataArguments, DPOConfig, GRPOConfig, RLOOConfig, SFTConfig, VLMModelConfig
from .bypassed import COMMON, refuse_bypassed
from .rewards import get_reward_funcs, weighted_rewards
from .trainers import VLMDPOTrainer, VLMGRPOTrainer, VLMRLOOTrainer, VLMSFTTrainer


@dataclass(frozen=True)
class GenerationMetric:
    """How held-out generations are scored against each row's trained answer, and why (the model card says it).

    Args:
        key: the figure's name in eval_results.json (`<key>_before`, `<key>_after`) and the card.
        metric: a metric module of vlm_recipes/evaluation/metrics.
        reason: one sentence for the model card.
    """

    key: str
    metric: str
    reason: str


EXACT_MATCH = GenerationMetric("accuracy", "exact_match", "short answers: normalised exact match of the generation")
# Answers longer than this (median, in words) are free-form text: an exact match of a generation is ~0 whatever the
# model does (RLAIF-V's chosen answers run to 30-150 words), so ROUGE-L F1 scores the generation instead.
FREE_FORM_WORDS = 8


# Grounding rows (vlm_recipes/grounding/data.py: they carry `box_frame`) answer with a box: exact match of its text,
# whatever the length of a Qwen2.5-VL JSON answer with a long label; the IoU metrics (eval_metrics) grade overlap.
BOX_EXACT_MATCH = GenerationMetric(
    "accuracy",
    "exact_match",
    "box answers: exact match of the generated box (iou_accuracy / mean_iou grade partial overlap)",
)


def exact_match_or_rouge(eval_ds) -> GenerationMetric:
    """Exact match for short answers and boxes; ROUGE-L for free-form ones (median answer longer than
    FREE_FORM_WORDS)."""
    if "box_frame" in eval_ds.column_names:
        return BOX_EXACT_MATCH
    column = next((c for c in ("answer", "chosen", "messages") if c in eval_ds.column_names), None)
    if column is None or len(eval_ds) == 0:
        return EXACT_MATCH
    try:
        words = statistics.median(len(final_answer({column: v}).split()) for v in eval_ds[column])
    except ValueError:  # a conversation without an answer: nothing to measure
        return EXACT_MATCH
    if words <= FREE_FORM_WORDS:
        return EXACT_MATCH
    return GenerationMetric(
        "rouge",
        "rouge",
        f"free-form reference answers (median {words:g} words): an exact match of a generation against them is "
        "about 0 whatever the model does, so generations are scored with ROUGE-L F1 against the reference answer "
        "(with eval_max_new_tokens of generation, recall is capped for long answers: compare before with after)",
    )


ANSWER_MATCH = GenerationMetric(
    "accuracy",
    "answer_match",
    "the final answer of the generation (<answer>, 'the answer is', \\boxed) against the reference's final answer: "
    "option letters as letters, numbers and LaTeX by math-verify equivalence, else normalised strings",
)


@dataclass(frozen=True)
class Method:
    """A training method.

    Args:
        name: the method's name, also its recipe script (`recipes/<name>.py`) and the `recipe:` field of its YAMLs.
        summary: one line for listings and errors.
        config_class: the training-arguments dataclass (extends TRL's config) its YAML is parsed into.
        load_splits: `(DataArguments, seed, processor=None) -> (train, held_out)` datasets in the rows this method
            trains on (the processor: for grounding answers in a processor-dependent frame).
        trainer_class: the Trainer (a TRL trainer with our mixins).
        collator_class: builds training batches from rows (through vlm_recipes.data.collation.build_collator); None
            when the trainer renders its own prompts.
        renders_prompts: the trainer renders and processes its prompts itself, for generation (GRPO, RLOO): no
            collator of ours, so only the processor's own image processing, no packing, no videos (TRL's GRPO and
            RLOO take none).
        packs: rows can be trained padding-free or packed (`padding_free`, `packing`), exactly.
        refuses: the TRL / Trainer fields this method's flow does not honour (vlm_recipes.training.bypassed), refused
            when set to anything but what the flow does.
        honours: per refused field, the values this method honours instead of the field's usual ones.
        script: the recipe script that runs it, `recipes/<script>.py` (default: its name; a variant: its base's).
        fixed: training arguments this method pins (a variant's loss settings): set on the arguments of every run,
            refused when a config sets them to something else.
        prompt_key: the column holding the conversation that held-out generation answers.
        generation_metric: `(held-out dataset) -> GenerationMetric`: how held-out generations are scored
            (default: exact match as `accuracy`).
        extra_metrics: held-out metrics beyond generation,
            `(model, processor, eval_ds, generated, training_args, batch_size, when) -> dict`.
        trainer_kwargs: further Trainer arguments from the training arguments (GRPO, RLOO: the reward functions).
        prepare_args: adjusts the training arguments before the Trainer is built.
        check_args: refuses training arguments this method cannot run with (raises ValueError).
        label: the method as the model card names it, from the training arguments.
        result_name: the `method` value of eval_results.json, from the training arguments.
        tags: model-card tags.
    """

    name: str
    summary: str
    config_class: type
    load_splits: Callable
    trainer_class: type
    collator_class: type | None
    prompt_key: str
    label: Callable
    result_name: Callable
    tags: tuple[str, ...]
    generation_metric: Callable = lambda eval_ds: EXACT_MATCH
    extra_metrics: Callable | None = None
    trainer_kwargs: Callable | None = None
    prepare_args: Callable | None = None
    check_args: Callable | None = None
    renders_prompts: bool = False
    packs: bool = False
    refuses: tuple[str, ...] = COMMON
    honours: dict = dc_field(default_factory=dict)
    script: str = ""
    fixed: dict = dc_field(default_factory=dict)

    @property
    def script_name(self) -> str:
        return self.script or self.name

    def variant(
        self, name: str, summary: str, fixed: dict, tags: tuple[str, ...] = (), label: Callable | None = None
    ) -> Method:
        """A method that runs this one's flow and script with `fixed` training arguments (e.g. a GRPO loss type);
        `label` names it on the model card (default: its name in capitals)."""
        return replace(
            self,
            name=name,
            summary=summary,
            script=self.script_name,
            fixed={**self.fixed, **fixed},
            tags=(*self.tags, *tags, name),
            label=label or (lambda args, name=name: name.upper()),
            result_name=lambda args, name=name: name,
        )

    def check_fixed(self, settings: dict, where: str = "") -> None:
        """Refuse `settings` (field -> value as set) that contradict what this method pins."""
        for key, value in self.fixed.items():
            if key in settings and not _same_setting(settings[key], value):
                raise ValueError(
                    f"{where}{key}: {settings[key]!r} contradicts the {self.name} recipe, which is {self.script_name} "
                    f"with {key}: {value!r}: remove it, or use recipes/{self.script_name}.py with a "
                    f"recipe: {self.script_name} config."
                )

    def apply_fixed(self, training_args) -> None:
        for key, value in self.fixed.items():
            setattr(training_args, key, value)

    @property
    def parser_types(self) -> tuple:
        """The dataclasses a recipe of this method parses its YAML into, in order."""
        return (DataArguments, self.config_class, VLMModelConfig)

    def refuse(self, config_class: type, settings: dict, where: str = "") -> None:
        """Raise, naming the field and what to use instead, when `settings` set a field this method does not
        honour (`refuses`)."""
        refuse_bypassed(config_class, settings, self.refuses, self.honours, where, method=self.name)


def _same_setting(value, pinned) -> bool:
    """Whether a value as a config or the command line sets it is `pinned`: settings are read as YAML scalars, and
    YAML reads "3e-4" (no decimal point) as text."""
    if isinstance(pinned, float) and isinstance(value, str):
        try:
            return float(value) == pinned
        except ValueError:
            return False
    return value == pinned


def _preference_metrics(model, processor, eval_ds, generated, training_args, batch_size, when) -> dict:
    """Held-out pairs whose chosen response gets the higher log-probability, and the mean margin."""
    return preference_accuracy(model, processor, eval_ds, batch_size, desc=f"preferences {when}")


def _reward_metrics(model, processor, eval_ds, generated, training_args, batch_size, when) -> dict:
    """The weighted reward of the greedy held-out generations, with the rewards training optimises."""
    completions = [[{"role": "assistant", "content": p}] for p in generated["predictions"]]
    columns = {c: eval_ds[c] for c in eval_ds.column_names if c not in ("images", "prompt")}
    rewards = weighted_rewards(training_args.reward_funcs, training_args.reward_weights, completions, columns)
    return {"reward": sum(rewards) / max(len(rewards), 1)}


def _grpo_label(training_args) -> str:
    """GRPO with the loss the model card must name: e.g. "GRPO (loss dapo)", "GRPO (loss grpo, sequence-level
    importance ratio: GSPO)"."""
    level = training_args.importance_sampling_level
    ratio = "" if level == "token" else f", {level}-level importance ratio"
    ratio += ": GSPO" if level == "sequence" and training_args.loss_type == "grpo" else ""
    return f"GRPO (loss {training_args.loss_type}{ratio})"


def _grpo_loss_settings(training_args) -> None:
    if training_args.loss_type == "cispo" and (training_args.epsilon_high is None or training_args.epsilon_high < 1):
        # CISPO caps the importance weight itself at epsilon_high (not 1 + epsilon_high), and TRL defaults
        # epsilon_high to epsilon: every weight, 1 on-policy, would be cut to 0.2, a fifth of every update.
        high = training_args.epsilon_high
        raise ValueError(
            "loss_type cispo caps each token's importance weight at epsilon_high, which is "
            f"{high if high is not None else f'unset (so epsilon, {training_args.epsilon})'}: the weight of every "
            "on-policy token (1) would be cut to it. Set epsilon_high to 1 or more, e.g. 5.0 (ScaleRL), or use the "
            "grpo_cispo recipe (recipes/configs/tiny-smolvlm/grpo_cispo.yaml)."
        )


def _rloo_label(training_args) -> str:
    """RLOO as the model card must name it: "RLOO (4 samples per prompt, leave-one-out baseline, KL 0.04)"."""
    kl = f", KL {training_args.beta:g}" if training_args.beta else ""
    normalized = ", advantages normalised" if training_args.normalize_advantages else ""
    return f"RLOO ({training_args.num_generations} samples per prompt, leave-one-out baseline{kl}{normalized})"


def _rloo_generation(training_args) -> None:
    # TRL 1.16's RLOOTrainer hands other generation back ends the prompt token ids without our checks: its
    # continuous-batching path passes no image inputs at all (a VLM would answer without its image), and its vLLM path
    # is not verified for multimodal prompts here. Generation with transformers is what the recipe runs and tests.
    for name, fix in (
        ("use_transformers_continuous_batching", "TRL passes it the prompt ids without the images"),
        ("use_transformers_paged", "TRL passes it the prompt ids without the images"),
        ("use_vllm", "its vLLM path is not verified for image prompts in this project"),
    ):
        if getattr(training_args, name, False):
            raise ValueError(
                f"{name}: true is not supported by the vlm-recipes rloo recipe ({fix}); remove it: RLOO generates "
                "with transformers' generate (model.generate, with the images)."
            )


def _reward_method(name: str, summary: str, config_class: type, trainer_class: type, check_args, label) -> Method:
    """An RL method on TRL's generate-and-score trainers (GRPO, RLOO): prompt rows, the named reward functions,
    held-out final answers plus the weighted reward of the greedy generations."""
    return Method(
        name=name,
        summary=summary,
        config_class=config_class,
        load_splits=load_prompt_splits,
        trainer_class=trainer_class,
        collator_class=None,
        renders_prompts=True,  # TRL's GRPOTrainer / RLOOTrainer render and process prompts themselves, to generate
        prompt_key="prompt",
        # References may be whole reasoning traces (multimodal-open-r1's solutions): compare final answers. Box answers
        # are compared exactly: math-verify would read "[3, 28, 22, 47]" as a set (a wrong box scored 0.78).
        generation_metric=lambda eval_ds: BOX_EXACT_MATCH if "box_frame" in eval_ds.column_names else ANSWER_MATCH,
        extra_metrics=_reward_metrics,
        trainer_kwargs=lambda args: {"reward_funcs": get_reward_funcs(args.reward_funcs)},
        check_args=check_args,
        label=label,
        result_name=lambda args: name,
        tags=(name,),
        refuses=COMMON + ("label_smoothing_factor",),
        # TRL's GRPOTrainer and RLOOTrainer sample prompts with their own sampler
        honours={"train_sampling_strategy": ("random",)},
    )


def _skip_dataset_preparation(training_args) -> None:
    # Our collator tokenises on the fly, so TRL must leave the dataset columns as they are.
    training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}


def _preference_label(training_args) -> str:
    losses = training_args.loss_type
    return "DPO" if len(losses) == 1 else f"MPO ({' + '.join(losses)}, weights {training_args.loss_weights})"


def _mixed_losses_only(training_args) -> None:
    if len(training_args.loss_type) < 2:
        raise ValueError(
            f"MPO mixes several preference losses, but loss_type is {training_args.loss_type}: set e.g. "
            "loss_type: [sigmoid, bco_pair, sft] with loss_weights: [0.8, 0.2, 1.0], or use recipes/dpo.py."
        )


def _preference_method(name: str, summary: str, tags: tuple[str, ...], check_args=None) -> Method:
    return Method(
        name=name,
        summary=summary,
        config_class=DPOConfig,
        load_splits=load_preference_splits,
        trainer_class=VLMDPOTrainer,
        collator_class=PreferenceCollator,
        prompt_key="prompt",
        # Preference data is often free-form (RLAIF-V): preference accuracy is the method's figure, and generations
        # are scored with ROUGE-L when exact match could not mean anything.
        generation_metric=exact_match_or_rouge,
        extra_metrics=_preference_metrics,
        label=_preference_label,
        result_name=lambda args: "+".join(args.loss_type),
        tags=tags,
        check_args=check_args,
        refuses=COMMON + ("padding_free", "truncation_mode", "label_smoothing_factor"),
    )


METHODS: dict[str, Method] = {
    "sft": Method(
        name="sft",
        summary="supervised fine-tuning (LoRA, QLoRA or full) on image + conversation rows",
        config_class=SFTConfig,
        load_splits=load_splits,
        trainer_class=VLMSFTTrainer,
        collator_class=VisionChatCollator,
        prompt_key="messages",
        generation_metric=exact_match_or_rouge,
        prepare_args=_skip_dataset_preparation,
        label=lambda args: "SFT",
        result_name=lambda args: "sft",
        tags=("sft",),
        packs=True,
        refuses=COMMON
        + ("shuffle_dataset", "packing_strategy", "truncation_mode", "completion_only_loss", "assistant_only_loss"),
    ),
    "dpo": _preference_method("dpo", "direct preference optimisation on chosen/rejected pairs", ("dpo",)),
    # MPO is DPO with a mixed loss (TRL's loss_type list + loss_weights): the same record but for its check and tag.
    "mpo": _preference_method(
        "mpo", "mixed preference optimisation: DPO + BCO pair + SFT losses", ("mpo",), check_args=_mixed_losses_only
    ),
    "grpo": _reward_method(
        name="grpo",
        summary="group relative policy optimisation with named reward functions",
        config_class=GRPOConfig,
        trainer_class=VLMGRPOTrainer,
        check_args=_grpo_loss_settings,
        label=_grpo_label,
    ),
    "rloo": _reward_method(
        name="rloo",
        summary="REINFORCE leave-one-out: each completion's reward against the mean of its group's others",
        config_class=RLOOConfig,
        trainer_class=VLMRLOOTrainer,
        check_args=_rloo_generation,
        label=_rloo_label,
    ),
}

# GRPO's loss variants, as TRL's paper index sets them. Each pins all six loss settings, TRL's defaults where the
# variant keeps them, so that its name in eval_results.json and on the card says exactly which loss ran; its YAMLs
# restate the settings that differ from TRL's defaults, and a config or override that contradicts a pinned value is
# refused (to tune one, write the settings out in a `recipe: grpo` config). docs/recipes.md, "GRPO loss variants".
_TRL_LOSS_DEFAULTS = {
    "importance_sampling_level": "token",
    "epsilon": 0.2,
    "epsilon_high": 0.2,  # TRL's None: the same as epsilon
    "scale_rewards": "group",
    "mask_truncated_completions": False,
}
_GRPO_VARIANTS = {
    "grpo_dapo": (
        "DAPO's loss: token-level over the generation batch, clip-higher, truncated completions masked",
        {"loss_type": "dapo", "epsilon_high": 0.28, "mask_truncated_completions": True},
    ),
    "grpo_dr_grpo": (
        "Dr. GRPO's loss: token sums over a constant, advantages not scaled by the group's std",
        {"loss_type": "dr_grpo", "scale_rewards": "none"},
    ),
    "grpo_gspo": (
        "GSPO: one importance ratio per completion, clipped to [1 - 3e-4, 1 + 4e-4]",
        {"loss_type": "grpo", "importance_sampling_level": "sequence", "epsilon": 3e-4, "epsilon_high": 4e-4},
    ),
    "grpo_cispo": (
        "CISPO's loss: the importance weight clipped at 5 (detached), no token's gradient dropped",
        {"loss_type": "cispo", "epsilon_high": 5.0},
    ),
    "grpo_plain": ("the original GRPO loss: per-completion token means, then their mean", {"loss_type": "grpo"}),
    "grpo_bnpo": ("BNPO's loss: token losses over the local batch's completion tokens", {"loss_type": "bnpo"}),
}
METHODS.update(
    {
        name: METHODS["grpo"].variant(
            name, f"GRPO variant: {summary}", {**_TRL_LOSS_DEFAULTS, **settings}, label=_grpo_label
        )
        for name, (summary, settings) in _GRPO_VARIANTS.items()
    }
)


def get_method(name: str | Method) -> Method:
    """The method called `name` (a Method passes through); an unknown name fails, listing the known ones."""
    if isinstance(name, Method):
        return name
    if name not in METHODS:
        known = ", ".join(f"{m} ({METHODS[m].summary})" for m in METHODS)
        raise ValueError(f"Unknown training method {name!r}; known methods: {known}.")
    return METHODS[name]
