"""Run a training recipe inside `accelerate launch` and record, per rank, what the distributed tests compare.

Usage: accelerate launch --config_file <yaml> tests/scripts/distributed_recipe.py <recipe> <dump dir> <recipe args>

Each rank writes <dump dir>/rank<r>.safetensors (its trainable parameters after training; gathered from the shards
under DeepSpeed ZeRO-3), rank<r>.json (its logged losses and world size) and, once the recipe's `main` has returned,
rank<r>.exit.json (whether its process group is still alive: the recipe must have destroyed it). The recipe code runs
unchanged: only the trainer class is subclassed here to record, after `train()`.
"""

import dataclasses
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "recipes"))
sys.path.insert(0, str(REPO))


def trainable_state(trainer) -> dict:

    model = trainer.model_wrapped if hasattr(trainer, "model_wrapped") else trainer.model
    model = trainer.accelerator.unwrap_model(model)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if trainer.is_deepspeed_enabled:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(params.values()), modifier_rank=None):
            return {n: p.detach().clone().float().contiguous() for n, p in params.items()}
    return {n: p.detach().clone().float().contiguous() for n, p in params.items()}


def main():
    recipe, dump, argv = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    # Test-only switch: turn off the blank-image forward of text-only batches, to show what it prevents.
    blank_image = "--no_blank_image" not in argv
    if not blank_image:
        i = argv.index("--no_blank_image")
        argv = argv[:i] + argv[i + 2 :]
    import importlib

    from safetensors.torch import save_file

    from vlm_recipes.training import methods, trainers

    base = methods.METHODS[recipe].trainer_class

    class Recording(base):
        def compute_loss(self, model, inputs, *args, **kwargs):
            if not blank_image:
                return super(trainers.VisionOnEveryRank, self).compute_loss(model, inputs, *args, **kwargs)
            return super().compute_loss(model, inputs, *args, **kwargs)

        def train(self, *args, **kwargs):
            output = super().train(*args, **kwargs)
            rank = self.accelerator.process_index
            dump.mkdir(parents=True, exist_ok=True)
            save_file(trainable_state(self), str(dump / f"rank{rank}.safetensors"))
            losses = [e["loss"] for e in self.state.log_history if "loss" in e]
            record = {
                "losses": losses,
                "world_size": self.accelerator.num_processes,
                "deepspeed": self.is_deepspeed_enabled,
            }
            (dump / f"rank{rank}.json").write_text(json.dumps(record))
            return output

    methods.METHODS[recipe] = dataclasses.replace(methods.METHODS[recipe], trainer_class=Recording)
    importlib.import_module(recipe).main(argv)
    import torch.distributed as dist

    # The recipe itself must have destroyed its process group on the way out (vlm_recipes.processes).
    record = {"process_group_alive_after_main": dist.is_initialized()}
    (dump / f"rank{os.environ['RANK']}.exit.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
