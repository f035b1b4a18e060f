"""The one train -> evaluate -> save flow every recipe shares (SFT, DPO/MPO, GRPO).

TRL's trainers train; this module wires them to our data, collators and model loading, measures held-out metrics
before and after training with the same code (generation exact match; preference accuracy for DPO/MPO; reward for
GRPO), and writes `eval_results.json`, the adapter (or model) as safetensors, the processor and TensorBoard logs
into `output_dir`. A recipe differs from another only in `method` and its config.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate import PartialState
from PIL import Image
from transformers import set_seed
from trl import DPOTrainer, GRPOTrainer, SFTTrainer

from . import hub, preflight
from .checkpoints import RESULTS_FILE, CompleteCheckpoints, complete_checkpoints, resume_point
from .collators import PreferenceCollator, VisionChatCollator
from .configs import DataArguments, DPOConfig, GRPOConfig, SFTConfig, VLMModelConfig
from .data import load_preference_splits, load_prompt_splits, load_splits
from .evaluation import exact_match_accuracy, preference_accuracy
from .families import family_of
from .hub import check_push_settings
from .images import undecoded
from .modeling import apply_freezing, build_peft_config, count_parameters, load_model, load_processor, parameter_groups
from .outputs import save_training_config
from .rewards import get_reward_funcs, weighted_rewards

logger = logging.getLogger(__name__)


class PartLearningRates:
    """Trainer mixin: optimizer groups per model part (vision tower, projector, language model)."""

    def create_optimizer(self, model=None):
        args = self.args
        if self.optimizer is None and (args.vision_tower_learning_rate or args.projector_learning_rate):
            opt_model = self.model if model is None else model
            groups = parameter_groups(
                opt_model,
                family_of(opt_model),
                args.learning_rate,
                args.weight_decay,
                set(self.get_decay_parameter_names(opt_model)),
                args.vision_tower_learning_rate,
                args.projector_learning_rate,
            )
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(args, opt_model)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
            return self.optimizer
        return super().create_optimizer(model)


def _tensor_sum(x) -> torch.Tensor:
    """Sum of every tensor in a (nested) model output."""
    if torch.is_tensor(x):
        return x.float().sum()
    items = x.values() if hasattr(x, "values") else x if isinstance(x, list | tuple) else ()
    return sum((_tensor_sum(v) for v in items), torch.tensor(0.0))


class VisionOnEveryRank:
    """Trainer mixin: with several processes, a batch without images still runs the vision tower and projector (on
    a blank image, times 0), at the point of the forward where images would be encoded.

    Under DeepSpeed ZeRO-3 every module's forward gathers its weight shards collectively, in execution order: a rank
    whose batch is text-only would skip the vision tower while its peers gather it, and the job hangs (NCCL) or
    aborts (gloo). Both families embed the text tokens first and encode the images next, so a hook after the input
    embedding runs the blank image there; its zero term gives every rank the same modules in the same order, and the
    same (zero) gradients to reduce."""

    _blank_image_inputs = None
    _text_only_batch = False
    _hooked_embedding = None

    def _vision_forward(self, core):
        if self._blank_image_inputs is None:
            blank = Image.new("RGB", (64, 64))
            self._blank_image_inputs = dict(self.processing_class.image_processor(images=[blank], return_tensors="pt"))
        param = next(core.parameters())
        inputs = {
            k: v.to(param.device, dtype=param.dtype if v.is_floating_point() else v.dtype)
            for k, v in self._blank_image_inputs.items()
        }
        return core.get_image_features(**inputs)

    def _hook_input_embedding(self, model):
        core = self.accelerator.unwrap_model(model)
        core = core.get_base_model() if hasattr(core, "get_base_model") else core
        embedding = core.get_input_embeddings()
        if self._hooked_embedding is embedding:
            return

        def after_embedding(module, args, output):
            if not self._text_only_batch:
                return output
            return output + 0.0 * _tensor_sum(self._vision_forward(core)).to(output.dtype)

        embedding.register_forward_hook(after_embedding)
        self._hooked_embedding = embedding

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.accelerator.num_processes > 1:
            self._hook_input_embedding(model)
            self._text_only_batch = inputs.get("pixel_values") is None
        try:
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        finally:
            self._text_only_batch = False


class VLMSFTTrainer(CompleteCheckpoints, VisionOnEveryRank, PartLearningRates, SFTTrainer):
    pass


class VLMDPOTrainer(CompleteCheckpoints, VisionOnEveryRank, PartLearningRates, DPOTrainer):
    pass


class VLMGRPOTrainer(CompleteCheckpoints, VisionOnEveryRank, PartLearningRates, GRPOTrainer):
    pass


TRAINERS = {"sft": VLMSFTTrainer, "dpo": VLMDPOTrainer, "grpo": VLMGRPOTrainer}
LOADERS = {"sft": load_splits, "dpo": load_preference_splits, "grpo": load_prompt_splits}


def prepare_output_dir(training_args) -> None:
    """Before any compute: refuse an output_dir holding a finished run (unless overwrite_output_dir), and set
    `resume_from_checkpoint` to the checkpoint to continue from: the one asked for (refused if incomplete), the
    newest complete one for `latest`, or, when output_dir holds an unfinished run, its newest complete one."""
    with PartialState().main_process_first():  # the main process removes incomplete checkpoints first
        training_args.resume_from_checkpoint = resume_point(
            training_args.output_dir, training_args.resume_from_checkpoint, training_args.overwrite_output_dir
        )


def run_sft(data_args: DataArguments, training_args: SFTConfig, model_args: VLMModelConfig) -> dict:
    return run("sft", data_args, training_args, model_args)


def run_preference(data_args: DataArguments, training_args: DPOConfig, model_args: VLMModelConfig) -> dict:
    """DPO, or MPO when `loss_type` lists several losses: the same flow, only TRL's loss configuration differs."""
    return run("dpo", data_args, training_args, model_args)


def run_grpo(data_args: DataArguments, training_args: GRPOConfig, model_args: VLMModelConfig) -> dict:
    """GRPO with the rewards named in `reward_funcs` (weights `reward_weights`)."""
    return run("grpo", data_args, training_args, model_args)


def run(method: str, data_args: DataArguments, training_args, model_args: VLMModelConfig) -> dict:
    """Train with `method` ('sft', 'dpo' or 'grpo'), evaluating on held-out data before and after."""
    check_push_settings(training_args)  # before prepare_output_dir, which may delete a previous run's checkpoints
    prepare_output_dir(training_args)
    out = Path(training_args.output_dir)
    created = not out.exists()
    try:
        return _run(method, data_args, training_args, model_args)
    except BaseException:
        # Never leave a half-written output directory behind: remove what this run created, unless it got as
        # far as a complete checkpoint that --resume_from_checkpoint can continue from.
        if created and out.exists() and not complete_checkpoints(out):
            shutil.rmtree(out, ignore_errors=True)
        raise


def method_label(method: str, training_args) -> str:
    if method == "dpo":
        losses = training_args.loss_type
        return "DPO" if len(losses) == 1 else f"MPO ({' + '.join(losses)}, weights {training_args.loss_weights})"
    return method.upper()


@contextmanager
def full_weights(model):
    """Under DeepSpeed ZeRO-3 a model loaded before training holds only this rank's shard of each weight and has no
    training engine yet to gather them on use: gather them for the block (each rank, read-only). Elsewhere a no-op.
    Once training has started, the engine's hooks gather the shards layer by layer and this is not needed."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    if not is_deepspeed_zero3_enabled():
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        yield


def evaluate(
    method: str, model, processor, eval_ds, data_args: DataArguments, batch_size: int, when: str, training_args=None
) -> dict:
    """Held-out metrics: generation exact match; for DPO/MPO chosen-vs-rejected accuracy; for GRPO the reward."""
    key = "messages" if method == "sft" else "prompt"
    generated = exact_match_accuracy(
        model, processor, eval_ds, batch_size, data_args.eval_max_new_tokens, desc=f"accuracy {when}", messages_key=key
    )
    metrics = {"accuracy": generated["accuracy"]}
    if method == "dpo":
        metrics.update(preference_accuracy(model, processor, eval_ds, batch_size, desc=f"preferences {when}"))
    if method == "grpo":
        completions = [[{"role": "assistant", "content": p}] for p in generated["predictions"]]
        columns = {c: eval_ds[c] for c in eval_ds.column_names if c not in ("images", "prompt")}
        rewards = weighted_rewards(training_args.reward_funcs, training_args.reward_weights, completions, columns)
        metrics["reward"] = sum(rewards) / max(len(rewards), 1)
    return {"metrics": metrics, "generated": generated}


def _run(method: str, data_args: DataArguments, training_args, model_args: VLMModelConfig) -> dict:
    set_seed(training_args.seed)
    started = time.time()
    processor = load_processor(model_args, trust_remote_code=training_args.trust_remote_code)
    train_ds, eval_ds = LOADERS[method](data_args, seed=training_args.seed)
    # Bad rows fail here, named, before the model is loaded (a random sample; preflight_rows: all for every row).
    preflight.guard(method, train_ds, eval_ds, processor, data_args, training_args)
    model = load_model(model_args, use_cpu=training_args.use_cpu, trust_remote_code=training_args.trust_remote_code)
    peft_config = build_peft_config(model, model_args)
    if peft_config is None:
        apply_freezing(model, model_args)

    # Our collators tokenise on the fly, so TRL must leave the dataset columns as they are.
    if method == "sft":
        training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    training_args.remove_unused_columns = False
    push = hub.take_over_push(training_args)
    trainer_kwargs = {
        "model": model,
        "args": training_args,
        "train_dataset": train_ds,
        "processing_class": processor,
        "peft_config": peft_config,
        "callbacks": hub.callbacks(training_args, push),
    }
    collator = None
    if method == "grpo":  # TRL's GRPOTrainer renders and processes prompts itself, for generation
        trainer_kwargs["reward_funcs"] = get_reward_funcs(training_args.reward_funcs)
    else:
        # Our collators decode the training images, so a corrupt file met mid-run is named with its row.
        trainer_kwargs["train_dataset"] = undecoded(train_ds)
        collator_cls = VisionChatCollator if method == "sft" else PreferenceCollator
        collator = collator_cls(
            processor,
            max_length=training_args.max_length,
            padding_side=data_args.padding_side,
            on_overflow=data_args.on_overflow,
            max_image_pixels=data_args.max_image_pixels,
        )
        trainer_kwargs["data_collator"] = collator
    batch_size = training_args.per_device_eval_batch_size
    with full_weights(model):
        before = evaluate(method, model, processor, eval_ds, data_args, batch_size, "before", training_args)
    logger.info("Held-out before training: %s", before["metrics"])

    trainer = TRAINERS[method](**trainer_kwargs)
    params = count_parameters(trainer.model)
    logger.info("Trainable parameters: %d of %d", params["trainable"], params["total"])
    train_output = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    after = evaluate(method, trainer.model, processor, eval_ds, data_args, batch_size, "after", training_args)
    results = {
        f"{name}_{when}": value
        for when, res in (("before", before), ("after", after))
        for name, value in res["metrics"].items()
    }
    results.update(
        {
            "num_eval_samples": len(eval_ds),
            "method": "+".join(training_args.loss_type) if method == "dpo" else method,
            "train_loss": train_output.training_loss,
            "train_steps": train_output.global_step,
            "num_train_samples": len(train_ds),
            "dropped_samples": collator.num_dropped if collator else 0,
            "trainable_parameters": params["trainable"],
            "total_parameters": params["total"],
            "model_name_or_path": model_args.model_name_or_path,
            "dataset_name": data_args.dataset_name,
            "wall_time_seconds": round(time.time() - started, 1),
        }
    )
    if method == "grpo":
        # Groups whose completions all get the same reward have zero advantage: they teach nothing.
        logged = [e["frac_reward_zero_std"] for e in trainer.state.log_history if "frac_reward_zero_std" in e]
        results["frac_reward_zero_std"] = sum(logged) / len(logged) if logged else None
    out = Path(training_args.output_dir)
    # Every rank calls save_model: under ZeRO-3 it gathers the shards collectively; only the main process writes.
    trainer.save_model(str(out))  # adapter (or full model) as safetensors
    if trainer.is_world_process_zero():
        processor.save_pretrained(out)
        training_args.push_to_hub = push  # the saved config tells what was asked
        save_training_config(training_args, out)
        (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
        generated = after["generated"]
        samples = [
            {"reference": r, "prediction": p} for r, p in zip(generated["references"], generated["predictions"])
        ]
        (out / "eval_predictions.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
        print(
            f"\nHeld-out accuracy ({results['num_eval_samples']} samples): "
            f"before {results['accuracy_before']:.3f} -> after {results['accuracy_after']:.3f}"
        )
        card = hub.model_card(
            repo_id=training_args.hub_model_id or out.name,
            base_model=model_args.model_name_or_path,
            method=method_label(method, training_args),
            tags=["trl", method if method != "dpo" or len(training_args.loss_type) == 1 else "mpo"],
            datasets=[data_args.dataset_name],
            results=results,
            training_args=training_args,
            adapter=peft_config is not None,
        )
        print(f"Wrote {out / RESULTS_FILE}, the adapter and the processor to {out}")
        hub.publish(out, training_args, push, card)
    return results
