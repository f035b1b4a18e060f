"""The one train -> evaluate -> save flow every VLM training recipe shares (SFT, DPO, MPO, GRPO, RLOO).

TRL's trainers train; this module wires them to our data, collators and model loading, measures held-out metrics
before and after training with the same code (generations scored by the metric the method record chooses for the
data, e.g. exact match as `accuracy`, plus the config's `eval_metrics`; the method's own figures such as preference
accuracy or reward), and writes `eval_results.json`, the adapter (or model) as
safetensors, the processor and the model card into `output_dir`; the loss and those figures go to the trackers of
`report_to` (TensorBoard by default; vlm_recipes.training.tracking). What differs between methods is read from their
`Method` record (vlm_recipes.training.methods); `run` is a sequence of named steps.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import set_seed

from .. import hub
from ..data.packing import check_family
from ..data.pipeline import ImageStage
from ..data.sampling import rows_of
from ..evaluation.generation import held_out_metrics
from ..models.families import check_box_format
from ..models.modeling import apply_freezing, build_peft_config, count_parameters, load_model, load_processor
from ..outputs import EVAL_ROWS_FILE, RESULTS_FILE, run_directory, save_training_config
from ..settings import DataArguments, VLMModelConfig
from . import batching, preflight, tracking
from .bypassed import changed_settings
from .methods import Method, get_method
from .trainers import full_weights

logger = logging.getLogger(__name__)


@dataclass
class Run:
    """One training run: its method and arguments, and what the steps below load into it."""

    method: Method
    data_args: DataArguments
    training_args: object
    model_args: VLMModelConfig
    out: Path
    processor: object = None
    train_ds: object = None
    eval_ds: object = None
    peft_config: object = None
    generation: object = None  # the method's GenerationMetric for this held-out split
    push: bool = False
    benchmarks: dict = field(default_factory=dict)  # {"before": {benchmark: figures}, "after": ...} when asked
    batching: dict | None = None  # how the training batches were formed (batching.BatchPlan.results)
    overlaps: list = field(default_factory=list)  # the contamination check's figures (preflight.overlap)


def run(method: str | Method, data_args: DataArguments, training_args, model_args: VLMModelConfig) -> dict:
    """Train with `method` (a name of vlm_recipes.training.methods.METHODS, or the record), evaluating on held-out
    data before and after; returns the figures written to eval_results.json."""
    method = get_method(method)
    # parse() refused these already; this covers training arguments built in Python.
    method.refuse(type(training_args), changed_settings(training_args))
    method.apply_fixed(training_args)
    if method.check_args is not None:
        method.check_args(training_args)
    if method.renders_prompts and data_args.image_processing != "processor":
        raise ValueError(
            f"image_processing: {data_args.image_processing} needs our collator, but {method.name} prompts are "
            "processed by the trainer itself; use image_processing: processor."
        )
    batching.check(method, data_args, training_args)
    tracking.check_trackers(training_args.report_to)
    hub.check_push_settings(training_args)  # before run_directory, which may delete a previous run's checkpoints
    overwrite, resume = training_args.overwrite_output_dir, training_args.resume_from_checkpoint
    with run_directory(training_args.output_dir, overwrite, resume) as (out, resume_from):
        training_args.resume_from_checkpoint = resume_from
        return train_and_evaluate(Run(method, data_args, training_args, model_args, out))


def train_and_evaluate(r: Run) -> dict:
    set_seed(r.training_args.seed)
    started = time.time()
    load_inputs(r)
    model = load_model_for_training(r)
    with full_weights(model):
        before = evaluate_held_out(r, model, "before")
        evaluate_benchmarks(r, model, "before")
    logger.info("Held-out before training: %s", before["metrics"])

    trainer = build_trainer(r, model)
    # Our figures reach every tracker through Trainer.log: before at step 0, after at the last step.
    tracked = tracking.TrackedFigures(trainer, before["metrics"], r.batching, timed=not r.method.renders_prompts)
    params = count_parameters(trainer.model)
    logger.info("Trainable parameters: %d of %d", params["trainable"], params["total"])
    train_output = trainer.train(resume_from_checkpoint=r.training_args.resume_from_checkpoint)

    after = evaluate_held_out(r, trainer.model, "after")
    evaluate_benchmarks(r, trainer.model, "after")
    tracked.finish(after["metrics"])
    results = collect_results(r, before, after, trainer, train_output, params)
    results["wall_time_seconds"] = round(time.time() - started, 1)
    save_outputs(r, trainer, results, after)
    return results


def load_inputs(r: Run) -> None:
    """Processor and splits; bad rows fail here, named, before the model is loaded (preflight on a random sample,
    `preflight_rows: all` for every row)."""
    r.processor = load_processor(r.model_args, trust_remote_code=r.training_args.trust_remote_code)
    # The box convention against the model family's own, again: a model the config's parse could not tell (a
    # directory an earlier recipe wrote, a Hub id no family lists) is told by its config now.
    check_box_format(r.data_args, r.model_args, load=True)
    r.train_ds, r.eval_ds = r.method.load_splits(r.data_args, seed=r.training_args.seed, processor=r.processor)
    column = r.data_args.eval_references_column
    if r.data_args.eval_metrics and column is not None and column not in r.eval_ds.column_names:
        raise ValueError(
            f"eval_references_column {column!r} is not a column of the held-out split "
            f"(columns: {r.eval_ds.column_names}); set it to one of them, or leave it unset to score the trained "
            "answer."
        )
    if r.data_args.image_processing != "processor":
        ImageStage(r.processor)  # refuses a processor the split pipeline does not implement, before the model loads
    if batching.mode_of(r.training_args) in ("packed", "padding-free"):
        check_family(r.processor)  # refuses a family whose padding-free batches are not proven exact, ditto
    preflight.guard(r.method, r.train_ds, r.eval_ds, r.processor, r.data_args, r.training_args)
    r.overlaps = preflight.guard_overlap(r.train_ds, r.eval_ds, r.data_args, r.training_args, r.out)
    r.generation = r.method.generation_metric(r.eval_ds)


def load_model_for_training(r: Run):
    """The model; LoRA settings go to `r.peft_config` (None for full fine-tuning, where the config's freezing
    applies instead)."""
    args = r.training_args
    model = load_model(
        r.model_args, use_cpu=args.use_cpu, trust_remote_code=args.trust_remote_code, processor=r.processor
    )
    r.peft_config = build_peft_config(model, r.model_args)
    if r.peft_config is None:
        apply_freezing(model, r.model_args)
    return model


def evaluate_held_out(r: Run, model, when: str) -> dict:
    """Generation figures (the method's generation metric, plus `eval_metrics`) and the method's own figures."""
    batch_size = r.training_args.per_device_eval_batch_size
    res = held_out_metrics(
        model,
        r.processor,
        r.eval_ds,
        batch_size,
        r.data_args.eval_max_new_tokens,
        when,
        messages_key=r.method.prompt_key,
        metrics=r.data_args.eval_metrics,
        references_column=r.data_args.eval_references_column,
        headline=(r.generation.key, r.generation.metric),
        video=r.data_args.video_settings,
    )
    if r.method.extra_metrics is not None:
        extra = r.method.extra_metrics(
            model, r.processor, r.eval_ds, res["generated"], r.training_args, batch_size, when
        )
        res["metrics"].update(extra)
    return res


def evaluate_benchmarks(r: Run, model, when: str) -> None:
    """The benchmarks the config names (`benchmarks:`) on the model as it is now, scored as recipes/benchmark.py
    scores them; per-prompt records go to output_dir/benchmarks/, the figures to eval_results.json and the card."""
    args = r.training_args
    if not args.benchmarks:
        return
    from accelerate import PartialState

    from ..evaluation.benchmarks.runner import evaluate_on_benchmarks

    out = r.out / "benchmarks" if PartialState().is_main_process else None
    r.benchmarks[when] = evaluate_on_benchmarks(
        model, r.processor, args.benchmarks, args.benchmark_limit, args.benchmark_data,
        args.per_device_eval_batch_size, out, when,
    )  # fmt: skip


def build_trainer(r: Run, model):
    args = r.training_args
    args.remove_unused_columns = False  # our collators read the raw columns
    if r.method.prepare_args is not None:
        r.method.prepare_args(args)
    r.push = hub.take_over_push(args)  # our card, not Trainer's, is published
    kwargs = {
        "model": model,
        "args": args,
        "train_dataset": r.train_ds,
        "processing_class": r.processor,
        "peft_config": r.peft_config,
        "callbacks": hub.callbacks(args, r.push),
    }
    plan = None
    if not r.method.renders_prompts:
        # Padded, length-grouped, padding-free or packed (batching.py). Our collators decode the training images, so
        # a corrupt file met mid-run is named with its row.
        plan = batching.plan(r.method, r.train_ds, r.processor, r.data_args, args, model_config=model.config)
        kwargs["train_dataset"], kwargs["data_collator"] = plan.rows, plan.collator
        r.batching = plan.results
    if r.method.trainer_kwargs is not None:
        kwargs.update(r.method.trainer_kwargs(args))
    with batching.shown_to_trl_as_padded(args):
        trainer = r.method.trainer_class(**kwargs)
    if plan is not None:
        plan.attach(trainer)
    return trainer


def collect_results(r: Run, before: dict, after: dict, trainer, train_output, params: dict) -> dict:
    results = {
        f"{name}_{when}": value
        for when, res in (("before", before), ("after", after))
        for name, value in res["metrics"].items()
    }
    collator = None if r.method.renders_prompts else trainer.data_collator
    results.update(
        {
            "num_eval_samples": len(r.eval_ds),
            "method": r.method.result_name(r.training_args),
            "train_loss": train_output.training_loss,
            "train_steps": train_output.global_step,
            "num_train_samples": len(r.train_ds),
            "dropped_samples": getattr(collator, "num_dropped", 0),
            **(r.batching or {}),
            "trainable_parameters": params["trainable"],
            "total_parameters": params["total"],
            "model_name_or_path": r.model_args.model_name_or_path,
            "dataset_name": r.data_args.dataset_name,
            "generation_metric": r.generation.metric,
            "generation_metric_reason": r.generation.reason,
            "contamination": [o.as_dict() for o in r.overlaps],
        }
    )
    if r.data_args.box_format is not None:  # grounding: what was scored, per split, and its image overlap
        from ..data.loading import scored_split_name

        objects = r.eval_ds["object_index"] if "object_index" in r.eval_ds.column_names else range(len(r.eval_ds))
        results["grounding_scored"] = {
            "split": scored_split_name(r.data_args),
            "expressions": len(r.eval_ds),
            "objects": len(set(objects)),
            **{
                f"{name}_{when}": results[f"{name}_{when}"]
                for name in r.data_args.eval_metrics
                for when in ("before", "after")
            },
            # The contamination check's figure for the held-out split (measured once, at start-up), not a second one.
            "image_overlap": held_out_image_overlap(r.overlaps),
        }
    if r.benchmarks:
        from ..evaluation.benchmarks.runner import before_after

        results["benchmarks"] = before_after(r.benchmarks["before"], r.benchmarks["after"])
    # Groups whose completions all get the same reward have zero advantage: they teach nothing (GRPO, RLOO log this).
    logged = [e["frac_reward_zero_std"] for e in trainer.state.log_history if "frac_reward_zero_std" in e]
    if logged:
        results["frac_reward_zero_std"] = sum(logged) / len(logged)
    return results


def held_out_image_overlap(overlaps: list) -> dict | None:
    """The contamination check's image figures for the held-out split (its first Overlap), as eval_results.json's
    `contamination` has them: {"rows", "image_overlap" (scored rows with an image seen in training),
    "image_overlap_fraction", "mark"}; None when no check ran."""
    if not overlaps:
        return None
    figures = overlaps[0].as_dict()
    return {k: figures[k] for k in ("rows", "image_overlap", "image_overlap_fraction", "mark")}


def save_outputs(r: Run, trainer, results: dict, after: dict) -> None:
    out, args = r.out, r.training_args
    # Every rank calls save_model: under ZeRO-3 it gathers the shards collectively; only the main process writes.
    trainer.save_model(str(out))  # adapter (or full model) as safetensors
    if not trainer.is_world_process_zero():
        return
    r.processor.save_pretrained(out)
    args.push_to_hub = r.push  # the saved config tells what was asked
    save_training_config(args, out)
    # The data settings too: what the held-out split was (the web demo, recipes/demo.py, shows its rows).
    (out / "data_config.json").write_text(json.dumps(asdict(r.data_args), indent=2, default=str) + "\n")
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    sample = rows_of(r.eval_ds)
    if sample is not None:  # which held-out rows the before/after figures scored
        (out / EVAL_ROWS_FILE).write_text(json.dumps(sample, indent=2) + "\n")
    generated = after["generated"]
    samples = [{"reference": t, "prediction": p} for t, p in zip(generated["references"], generated["predictions"])]
    (out / "eval_predictions.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    if r.data_args.box_format is not None:  # grounding: the held-out images with predicted and reference boxes
        from ..grounding.gallery import gallery_from_answers

        gallery_from_answers(r.eval_ds, generated["predictions"], out / "grounding_gallery.png")
    key = r.generation.key
    print(
        f"\nHeld-out {key} ({results['num_eval_samples']} samples): "
        f"before {results[key + '_before']:.3f} -> after {results[key + '_after']:.3f}"
    )
    for name in r.data_args.eval_metrics:
        print(f"Held-out {name}: before {results[name + '_before']:.3f} -> after {results[name + '_after']:.3f}")
    scored = results.get("grounding_scored")
    if scored:
        print(
            f"Scored split {scored['split']!r}: {scored['expressions']} referring expressions of {scored['objects']} "
            "objects (its overlap with the training data: the held-out line below)."
        )
    print("\n".join(f"Overlap with training data: {o.line()}" for o in r.overlaps))
    adapter = r.peft_config is not None
    card = hub.model_card(
        repo_id=args.hub_model_id or out.name,
        base_model=r.model_args.model_name_or_path,
        method=r.method.label(args),
        tags=["trl", *r.method.tags],
        datasets=[r.data_args.dataset_name],
        results=results,
        training_args=args,
        adapter=adapter,
    )
    print(f"Wrote {out / RESULTS_FILE}, the {'adapter' if adapter else 'model'} and the processor to {out}")
    hub.publish(out, args, r.push, card)
