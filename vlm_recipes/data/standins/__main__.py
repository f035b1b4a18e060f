"""python -m vlm_recipes.data.standins <folder> [hub ids...]: write the stand-ins under <folder>/<hub id>."""

import sys

from . import STANDINS, write_standins

if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(
            f"usage: python -m vlm_recipes.data.standins <folder> [hub ids...] (known: {sorted(STANDINS)})"
        )
    for name, path in write_standins(sys.argv[1], sys.argv[2:]).items():
        print(f"{name}: {path}")
