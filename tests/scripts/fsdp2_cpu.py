"""FSDP2 on a CPU, without accelerate: PyTorch's `fully_shard` over a 2-rank gloo mesh, on the tiny SmolVLM.

accelerate only turns FSDP on with a GPU, so accelerate_configs/fsdp2.yaml cannot run on our machines. This script
shows honestly what FSDP2 does to our model and data instead: it shards every decoder/vision layer and the root
across the ranks (each rank holds about half of every weight), trains a few steps of full fine-tuning on batches
from our collator, and writes per rank: local vs total parameter counts, the losses, and a checksum of the full
(gathered) weights.

Usage: torchrun --nproc_per_node 2 tests/scripts/fsdp2_cpu.py <out dir>
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard


def main():
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlm_recipes.data import synthetic
    from vlm_recipes.data.collators import VisionChatCollator
    from vlm_recipes.tiny import resolve

    path = resolve("tiny:smolvlm")
    model = AutoModelForImageTextToText.from_pretrained(path, use_safetensors=True)
    processor = AutoProcessor.from_pretrained(path)
    total = sum(p.numel() for p in model.parameters())
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in [*model.model.text_model.layers, *model.model.vision_model.encoder.layers]:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    local = sum(p.to_local().numel() for p in model.parameters())

    data = synthetic.make_dataset("color_shape", num_samples=64, seed=rank)  # each rank its own data
    collate = VisionChatCollator(processor)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)
    losses = []
    model.train()
    for step in range(8):
        batch = collate([data[(step * 8 + i) % len(data)] for i in range(8)])
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    checksum = sum(p.full_tensor().double().sum().item() for p in model.parameters())
    out.mkdir(parents=True, exist_ok=True)
    record = {"rank": rank, "total": total, "local": local, "losses": losses, "checksum": checksum}
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
