"""Mixed Preference Optimization: DPO's flow with a mixed loss (sigmoid DPO + BCO pair + SFT), as in TRL.

MPO differs from DPO only in its configuration (`loss_type: [sigmoid, bco_pair, sft]`, `loss_weights`), so
this entry point is `recipes/dpo.py` with another default config.

    accelerate launch recipes/mpo.py
    accelerate launch --config_file accelerate_configs/single_gpu.yaml recipes/mpo.py \
        --config recipes/configs/qwen2.5-vl-3b-instruct/mpo.yaml
"""

from pathlib import Path

from dpo import PARSER_TYPES  # noqa: F401  (the config tests look the parser up here)
from dpo import main as dpo_main

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "tiny-smolvlm" / "mpo.yaml"


def main(argv=None):
    return dpo_main(argv, default_config=DEFAULT_CONFIG)


if __name__ == "__main__":
    main()
