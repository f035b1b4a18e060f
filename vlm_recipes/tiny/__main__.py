"""`python -m vlm_recipes.tiny build ...`: build the offline tiny checkpoints (see vlm_recipes.tiny.vlm.main)."""

from .vlm import main

main()
