"""TRL / Trainer fields the recipes' flow does not read, refused when set, with what to use instead.

TRL's configs carry every training argument of `transformers.TrainingArguments` plus each trainer's own options, and
`TrlParser` accepts all of them. Our flow bypasses parts of TRL on purpose: our collators tokenize on the fly (TRL's
dataset preparation is skipped, its collators replaced), the recipes load the model themselves, render every prompt
with the checkpoint's own chat template, and measure held-out figures before and after training instead of running
the Trainer's evaluation loop. A field that only those bypassed parts read would be silently ignored; this module
lists each one and `refuse_bypassed` refuses it when it is set to anything but what the flow does, naming the field,
why it has no effect and what to use instead. (`packing`, `padding_free` and `train_sampling_strategy:
group_by_length` are honoured by our batching, vlm_recipes.training.batching, where it can: SFT packs and flattens
rows, SFT/DPO/MPO group them by length; the values it cannot honour are listed here.)

>>> sorted(BYPASSED)[:3]
['assistant_only_loss', 'batch_eval_metrics', 'chat_template_kwargs']
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields


@dataclass(frozen=True)
class Bypassed:
    """A field our flow does not read.

    Args:
        why: why setting it has no effect.
        instead: what to use instead.
        example: a value that is refused (the tests set it).
        honoured: the values that describe what the flow does anyway (None: the field's default), so they are fine.

    Which methods refuse it is the method record's business (`Method.refuses`, vlm_recipes.training.methods), as are
    values a method honours where others do not (`Method.honours`).
    """

    why: str
    instead: str
    example: object
    honoured: tuple | None = None


_PREPARATION = "TRL's dataset preparation is skipped: the collator renders and tokenizes each batch on the fly"
_EVALUATION = (
    "the Trainer's evaluation loop never runs: the recipes measure the held-out split before and after training"
)
_EVALUATE_INSTEAD = (
    "for held-out figures use max_eval_samples, eval_metrics and eval_max_new_tokens (reported before/after); for "
    "figures during training save checkpoints (save_strategy) and score them with recipes/evaluate_models.py"
)
BYPASSED: dict[str, Bypassed] = {
    # -- dataset preparation and collation (SFT, DPO/MPO) --------------------------------------------------------
    "dataset_text_field": Bypassed(
        _PREPARATION,
        "rows are conversations: set messages_column, or question_column and answer_column",
        example="text2",
    ),
    "dataset_kwargs": Bypassed(
        _PREPARATION,
        "remove it (the data fields of the recipe say how rows are read)",
        {"skip_prepare_dataset": False},
        (None, {"skip_prepare_dataset": True}),  # what the SFT recipe sets itself
    ),
    "dataset_num_proc": Bypassed(_PREPARATION, "remove it; set dataloader_num_workers to parallelise collation", 4),
    "shuffle_dataset": Bypassed(
        _PREPARATION,
        "remove it: the training sampler already reshuffles every epoch (seed / data_seed)",
        True,
    ),
    # packing: true (SFT) is honoured by our batching; DPO and GRPO configs have no such field.
    "packing_strategy": Bypassed(
        "packing places whole rows into sequences (best-fit decreasing, 'bfd'); 'bfd_split' and 'wrapped' split rows, "
        "which would cut image tokens away from their image",
        "remove it (bfd is what packing does)",
        "wrapped",
        ("bfd",),
    ),
    "eval_packing": Bypassed(_EVALUATION, "remove it", True),
    "padding_free": Bypassed(
        "TRL 1.16's DPOTrainer computes each sequence's log-probability from padded rows (its own padding_free falls "
        "back to padding)",
        "remove it (SFT honours padding_free and packing); padding_side and pad_to_multiple_of shape the padding",
        True,
    ),
    "truncation_mode": Bypassed(
        "the collator cuts text from the end (keep_start) and never cuts image tokens (image tokens sit in the "
        "prompt, which keep_end would cut)",
        "remove it; use max_length with on_overflow: error or drop",
        "keep_end",
        ("keep_start",),
    ),
    "completion_only_loss": Bypassed(
        "the collator always trains on the assistant answers plus their end-of-turn token, never on the prompt or "
        "image tokens",
        "remove it",
        True,
    ),
    "assistant_only_loss": Bypassed(
        "the collator always trains on the assistant answers plus their end-of-turn token only",
        "remove it (true is what the recipes do)",
        False,
        (True,),  # false (TRL's default) is refused when given explicitly; left unset it cannot be told apart
    ),
    "eos_token": Bypassed(
        "the collator trains each assistant turn's own end-of-turn token and generation stops on the tokenizer's eos",
        "remove it; to change the end-of-turn token, change the checkpoint's tokenizer and chat template",
        "<|endoftext|>",
    ),
    "pad_token": Bypassed(
        "the collators pad with the tokenizer's own pad token",
        "set tokenizer.pad_token in the checkpoint's tokenizer files instead",
        "<pad>",
    ),
    "chat_template_path": Bypassed(
        "preflight, training and held-out evaluation all render with the checkpoint's own chat template",
        "put your template in the checkpoint's processor (chat_template.jinja)",
        "template.jinja",
    ),
    "chat_template_kwargs": Bypassed(
        "held-out evaluation and preflight render prompts with the template's defaults",
        "remove it; put the variables' values into the chat template itself",
        {"enable_thinking": False},
    ),
    "model_init_kwargs": Bypassed(
        "the recipes load the model themselves (vlm_recipes.models.modeling.load_model)",
        "use the model fields: dtype, attn_implementation, model_revision, load_in_4bit / load_in_8bit, ...",
        {"dtype": "float16"},
    ),
    "precompute_ref_log_probs": Bypassed(
        "TRL cannot precompute reference log-probabilities for image data", "remove it", True
    ),
    "precompute_ref_batch_size": Bypassed(
        "TRL cannot precompute reference log-probabilities for image data", "remove it", 4
    ),
    "remove_unused_columns": Bypassed(
        "the collators read the raw dataset columns, so the recipes always keep them",
        "remove it (false is what the recipes do)",
        True,
        (False,),
    ),
    "label_smoothing_factor": Bypassed(
        "TRL's preference and GRPO losses do not use the Trainer's label smoother",
        "remove it (DPO/MPO: label_smoothing smooths the preference loss)",
        0.1,
    ),
    "train_sampling_strategy": Bypassed(
        "the recipes count each row's tokens for group_by_length only (batch_rebalance is not wired to them), and "
        "TRL's GRPOTrainer samples prompts with its own sampler (shuffle_dataset), whatever the strategy",
        "use random (the default), sequential or group_by_length (SFT, DPO, MPO); SFT also packs (packing: true)",
        "batch_rebalance",
        ("random", "sequential", "group_by_length"),
    ),
    # -- the Trainer's own evaluation ----------------------------------------------------------------------------
    "eval_strategy": Bypassed(_EVALUATION, _EVALUATE_INSTEAD, "steps", ("no",)),
    "eval_steps": Bypassed(_EVALUATION, _EVALUATE_INSTEAD, 10),
    "eval_delay": Bypassed(_EVALUATION, _EVALUATE_INSTEAD, 1),
    "eval_on_start": Bypassed(_EVALUATION, _EVALUATE_INSTEAD, True),
    "eval_accumulation_steps": Bypassed(_EVALUATION, _EVALUATE_INSTEAD, 2),
    "eval_do_concat_batches": Bypassed(_EVALUATION, _EVALUATE_INSTEAD, False),
    "eval_use_gather_object": Bypassed(_EVALUATION, _EVALUATE_INSTEAD, True),
    "prediction_loss_only": Bypassed(_EVALUATION, _EVALUATE_INSTEAD, True),
    "batch_eval_metrics": Bypassed(_EVALUATION, _EVALUATE_INSTEAD, True),
    "include_for_metrics": Bypassed(_EVALUATION, _EVALUATE_INSTEAD, ["inputs"]),
    "num_generations_eval": Bypassed(_EVALUATION, _EVALUATE_INSTEAD, 2),
    "load_best_model_at_end": Bypassed(
        _EVALUATION + ", so there is no best checkpoint to load",
        "keep checkpoints (save_strategy, save_total_limit) and compare them with recipes/evaluate_models.py",
        True,
    ),
    "metric_for_best_model": Bypassed(_EVALUATION, "compare checkpoints with recipes/evaluate_models.py", "loss"),
    "greater_is_better": Bypassed(_EVALUATION, "compare checkpoints with recipes/evaluate_models.py", True),
    "do_predict": Bypassed("the recipes have no predict step", "use recipes/generate.py on the held-out split", True),
}


def _default(cls, name: str):
    for f in fields(cls):
        if f.name == name:
            return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    raise KeyError(name)


_YAML_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _plain(value):
    # Enum values of TrainingArguments stand for their strings; YAML reads an unquoted `no` as false.
    value = getattr(value, "value", value)
    return _YAML_BOOLS.get(value.lower(), value) if isinstance(value, str) else value


def _same(a, b) -> bool:
    a, b = _plain(a), _plain(b)
    return a == b or (a is not None and b is not None and str(a) == str(b))


# Fields every training method refuses (its flow bypasses them); each method record adds its own (Method.refuses).
COMMON = tuple(
    name
    for name in BYPASSED
    if name
    not in (
        "shuffle_dataset",
        "packing_strategy",
        "padding_free",
        "truncation_mode",
        "completion_only_loss",
        "assistant_only_loss",
        "label_smoothing_factor",
    )
)


def refuse_bypassed(
    config_class: type,
    settings: dict,
    refuses: tuple[str, ...],
    honours: dict | None = None,
    where: str = "",
    method: str = "",
) -> None:
    """Raise a ValueError naming the first of `settings` (field -> value, as a YAML file, the command line or a
    config object set them) among the `refuses` fields that is set to a value the flow would not honour, why, and
    what to use instead. `honours` replaces an entry's honoured values (e.g. GRPO samples prompts randomly only)."""
    names = {f.name for f in fields(config_class)}
    for name in refuses:
        entry = BYPASSED[name]
        if name not in settings or name not in names:
            continue
        value = settings[name]
        honoured = (_default(config_class, name),) if entry.honoured is None else entry.honoured
        honoured = (honours or {}).get(name, honoured)
        if any(_same(value, ok) for ok in honoured):
            continue
        raise ValueError(
            f"{where}{name}: {value!r} has no effect in the vlm-recipes {method} recipe ({entry.why}); "
            f"{entry.instead}."
        )


def changed_settings(training_args) -> dict:
    """The audited fields of a config object whose values differ from their defaults (what was set, as far as a
    parsed object can tell)."""
    cls = type(training_args)
    names = {f.name for f in fields(cls)}
    return {
        name: getattr(training_args, name)
        for name in BYPASSED
        if name in names and not _same(getattr(training_args, name), _default(cls, name))
    }
