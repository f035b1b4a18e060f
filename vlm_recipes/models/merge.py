"""Merge a LoRA adapter into its base model for deployment (`recipes/merge_adapter.py`).

PEFT does the merge (`PeftModel.merge_and_unload`): LoRA deltas are added into the base weights and the modules
trained in full (`modules_to_save`, e.g. SmolVLM's connector or an unfrozen vision tower) replace the base's copies.
What we add: finding the base model from the adapter, refusing an output directory that holds something else,
writing safetensors only, copying the processor, and a record of what was merged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..outputs import run_directory
from .families import family_for_model_type
from .sources import resolve

logger = logging.getLogger(__name__)


@dataclass
class MergeArguments:
    adapter: str = field(metadata={"help": "Adapter directory (a recipe's output_dir) or Hub id."})
    output_dir: str = field(
        default=None, metadata={"help": "Where the merged model goes (default: <adapter>-merged)."}
    )
    base_model: str | None = field(
        default=None, metadata={"help": "Base model (default: base_model_name_or_path of adapter_config.json)."}
    )
    dtype: str = field(default="float32", metadata={"help": "dtype to merge and save in: float32, bfloat16, float16."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Run code from the base model's repository."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace an existing merged model."})

    def __post_init__(self):
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}.")
        if self.output_dir is None:
            self.output_dir = f"{self.adapter.rstrip('/')}-merged"


def base_model_of(adapter: str) -> str:
    from peft import PeftConfig

    try:
        return PeftConfig.from_pretrained(adapter).base_model_name_or_path
    except ValueError as err:  # no adapter_config.json there
        raise ValueError(f"{adapter} is not a PEFT adapter (no adapter_config.json): {err}") from err


def adapter_processor(adapter: str, base_name: str, trust_remote_code: bool = False):
    """The processor the adapter was trained with (saved next to it), else the base model's."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(adapter, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):  # the adapter has no processor files: use the base model's
        return AutoProcessor.from_pretrained(resolve(base_name), trust_remote_code=trust_remote_code)


def load_adapter_model(adapter: str, base_model: str | None = None, dtype=torch.float32, trust_remote_code=False):
    """The base model with the adapter attached (not merged), and the base model's name. The base is loaded with the
    settings it shares with the adapter's processor (LLaVA-OneVision's anyres grid after `max_image_tiles`)."""
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForImageTextToText

    base_name = base_model or base_model_of(adapter)
    path = resolve(base_name)
    family = family_for_model_type(AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code).model_type)
    shared = {}
    if family.model_settings is not None:
        shared = family.model_settings(adapter_processor(adapter, base_name, trust_remote_code))
    base = AutoModelForImageTextToText.from_pretrained(
        path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code, **shared
    )
    return PeftModel.from_pretrained(base, adapter), base_name


def merge_adapter(args: MergeArguments) -> Path:
    adapter = resolve(args.adapter)
    if Path(adapter).exists() and not (Path(adapter) / "adapter_config.json").exists():
        raise ValueError(f"{adapter} has no adapter_config.json: pass the output_dir of a LoRA/QLoRA recipe run.")
    out = Path(args.output_dir)
    if out.exists() and any(out.iterdir()) and not args.overwrite_output_dir:
        raise FileExistsError(f"{out} is not empty. Choose another output_dir or pass --overwrite_output_dir true.")
    model, base_name = load_adapter_model(adapter, args.base_model, getattr(torch, args.dtype), args.trust_remote_code)
    peft_config = model.peft_config["default"]
    with run_directory(out, overwrite=True) as (out, _):
        merged = model.merge_and_unload()
        merged.save_pretrained(out)  # safetensors, with the settings it shares with this processor
        adapter_processor(adapter, base_name, args.trust_remote_code).save_pretrained(out)
        record = {
            "base_model": base_name,
            "adapter": args.adapter,
            "lora_r": peft_config.r,
            "lora_alpha": peft_config.lora_alpha,
            "modules_to_save": sorted(peft_config.modules_to_save or []),
            "dtype": args.dtype,
        }
        (out / "merge_info.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"Merged {args.adapter} into {base_name}: {out} (modules trained in full: {record['modules_to_save']})")
    return out
