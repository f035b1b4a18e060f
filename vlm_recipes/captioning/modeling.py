"""Loading BLIP checkpoints for a task, and LoRA on them.

transformers has one class per BLIP task and loads any BLIP checkpoint into any of them, initialising what the
checkpoint lacks at random (a captioning checkpoint loaded as `BlipForQuestionAnswering` gets a random question
encoder, with only a warning). We refuse that: the checkpoint's `architectures` must be the task's class. peft does
the LoRA; we choose the modules (every linear layer but the output head, optionally not the vision tower).
"""

from __future__ import annotations

import logging

import torch

from ..models.sources import resolve
from ..settings.blip import BlipModelArguments

logger = logging.getLogger(__name__)

TASK_CLASSES = {
    "caption": "BlipForConditionalGeneration",
    "vqa": "BlipForQuestionAnswering",
    "retrieval": "BlipForImageTextRetrieval",
}
OUTPUT_HEAD = r".*cls\.predictions\.decoder"
EXAMPLES = {
    "caption": "Salesforce/blip-image-captioning-base or tiny:blip",
    "vqa": "Salesforce/blip-vqa-base or tiny:blip-vqa",
    "retrieval": "Salesforce/blip-itm-base-coco or tiny:blip-itm",
}


def device_for(use_cpu: bool) -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() and not use_cpu else "cpu")


def load_blip(model_args: BlipModelArguments, task: str, use_cpu: bool = False):
    """(model in eval mode on the run's device, processor) of the task's class; safetensors only."""
    import transformers
    from transformers import AutoConfig, AutoProcessor

    path = resolve(model_args.model_name_or_path)
    common = {"revision": model_args.model_revision, "trust_remote_code": model_args.trust_remote_code}
    wanted = TASK_CLASSES[task]
    architectures = getattr(AutoConfig.from_pretrained(path, **common), "architectures", None) or []
    if architectures and wanted not in architectures:
        raise ValueError(
            f"{model_args.model_name_or_path} is a {architectures[0]} checkpoint; task {task!r} needs a {wanted} "
            f"checkpoint (e.g. {EXAMPLES[task]}): loading it as {wanted} would initialise the missing parts at "
            "random. Set model_name_or_path, or the task."
        )
    processor = AutoProcessor.from_pretrained(path, **common)
    model = getattr(transformers, wanted).from_pretrained(path, use_safetensors=True, **common)
    if model_args.adapter_path:
        from peft import PeftModel

        from ..evaluation.inference import check_adapter_dir

        model = PeftModel.from_pretrained(model, str(check_adapter_dir(model_args.adapter_path)))
    return model.to(device_for(use_cpu)).eval(), processor


def base_model(model):
    """The BLIP model under a peft wrapper (its modules carry the LoRA layers), or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def prepare_for_training(model, training_args):
    """Freeze the vision tower if asked, set the decoder's label smoothing, and add LoRA adapters if use_peft."""
    blip = base_model(model)
    if training_args.label_smoothing is not None:
        for decoder in [m for m in blip.modules() if type(m).__name__ == "BlipTextLMHeadModel"]:
            decoder.label_smoothing = training_args.label_smoothing
    if training_args.freeze_vision_tower:
        blip.vision_model.requires_grad_(False)
    if not training_args.use_peft:
        return model
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=training_args.lora_r,
        lora_alpha=training_args.lora_alpha,
        lora_dropout=training_args.lora_dropout,
        target_modules=training_args.lora_target_modules or "all-linear",
        # BLIP's output head is tied to the word embeddings, and peft's all-linear cannot see it as the output
        # layer (BLIP's heads do not expose get_output_embeddings): name it, and the frozen vision tower.
        exclude_modules=OUTPUT_HEAD + (r"|.*vision_model\..*" if training_args.freeze_vision_tower else ""),
    )
    model = get_peft_model(model, config)
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("LoRA: %d of %d parameters trainable", trainable, total)
    return model
