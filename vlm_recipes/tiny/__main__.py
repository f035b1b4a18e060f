"""`python -m vlm_recipes.tiny build ...`: build the offline tiny checkpoints (see vlm_recipes.tiny.vlm.main).
`python -m vlm_recipes.tiny ship`: build the default run's bases, copy them into tiny_bases/."""

from . import ship
from .vlm import main

args = main()
if args is not None:  # the ship command
    for path in ship(args.names):
        print(f"shipped {path}")
