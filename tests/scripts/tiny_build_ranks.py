"""Two ranks resolve the same tiny checkpoint with an empty cache: it must be built once, complete, for both.

Usage: torchrun --nproc_per_node 2 tests/scripts/tiny_build_ranks.py <name> <out dir>   (set VLM_RECIPES_CACHE)
"""

import json
import sys
from pathlib import Path

import torch.distributed as dist


def main():
    name, out = sys.argv[1], Path(sys.argv[2])
    dist.init_process_group("gloo")
    from vlm_recipes.tiny import resolve

    path = Path(resolve(name))
    record = {"path": str(path), "files": sorted(p.name for p in path.iterdir())}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(record))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
