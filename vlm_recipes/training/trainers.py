"""The Trainer classes of the VLM recipes: TRL's trainers plus the mixins VLM training needs, and the ZeRO-3 gather.

TRL's `SFTTrainer`, `DPOTrainer`, `GRPOTrainer` and `RLOOTrainer` train; transformers' Trainer checkpoints and
distributes. What the mixins add (outermost first, so each wraps the ones after it):

- `CompleteCheckpoints` (vlm_recipes.outputs.checkpoints): a checkpoint is marked complete once fully written.
- `DeviceImageStage` (vlm_recipes.data.pipeline): with `image_processing: device`, images the workers decoded and
  resized are cut into tiles, normalized and padded on the training device.
- `VisionOnEveryRank`: under several processes a text-only batch still runs the vision tower (ZeRO-3 needs every rank
  to gather the same modules in the same order).
- `PartLearningRates`: optimizer groups with their own learning rates for the vision tower and projector.
- `PaddingFreeTokenCount` (SFT): the logged `num_tokens` of padding-free Qwen2-VL batches counts every position.
- `LogitsAtLabels` (SFT, DPO/MPO; vlm_recipes.training.logits_at_labels): the language-model head projects only the
  positions whose label is not -100 (`logits_at_labels`, on by default).
- `ControlTextPrompts` (GRPO, RLOO): prompts are rendered and tokenized by `ChatEncoder`, so their text stays text,
  and the second prompt pass pads left like the prompt ids (Qwen2-VL's `mm_token_type_ids`).
- `MixedImageRows` (GRPO, RLOO): rows with two images, one or none in one batch: each chunk of the log-probs and each
  optimizer step gets its own rows' images (TRL 1.16 slices SmolVLM's per-row pixels by image counts when a batch has
  as many images as rows) and none when its rows have none (text-only chunks fail on both families in TRL 1.16).
- `VLLMPrompts` (GRPO with `use_vllm`): vLLM gets the prompt it can expand itself (vlm_recipes.training.vllm_prompts).

`full_weights` gathers ZeRO-3 shards for the evaluation before training.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from PIL import Image
from trl import DPOTrainer, GRPOTrainer, RLOOTrainer, SFTTrainer
from trl.data_utils import prepare_multimodal_messages

from ..data.chat_encoding import ChatEncoder
from ..data.pipeline import DeviceImageStage
from ..models.families import family_of
from ..models.modeling import parameter_groups
from ..outputs.checkpoints import CompleteCheckpoints
from .logits_at_labels import LogitsAtLabels
from .vllm_prompts import check_vllm_settings, vllm_prompts


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


def blank_image_features(output):
    """What a model's forward takes from `get_image_features`: its `pooler_output` (the projected image features).
    The rest of that output (every hidden state of the tower) must stay out of the blank image's zero term: LLaVA reads
    the second-to-last layer, and a term over all of them would put the last layer in the backward of text-only ranks
    only, a ZeRO-3 collective their peers never join."""
    return getattr(output, "pooler_output", output)


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
            return output + 0.0 * _tensor_sum(blank_image_features(self._vision_forward(core))).to(output.dtype)

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


class ControlTextView:
    """The processor as GRPOTrainer sees it while it renders prompts: the same object in every respect, except that
    chat rendering (`apply_chat_template`) and tokenization of rendered prompts (`__call__`) go through `ChatEncoder`,
    so a control-token string in a prompt's text stays text. TRL tokenizes each prompt twice, once to generate and
    once more (rendered text plus images) for the image inputs of the loss; both must agree token for token."""

    def __init__(self, processor):
        self._processor = processor
        self._encoders: dict = {}

    def __getattr__(self, name):
        return getattr(self._processor, name)

    def _encoder(self, chat_template: str | None) -> ChatEncoder:
        if chat_template not in self._encoders:
            self._encoders[chat_template] = ChatEncoder(self._processor, chat_template)
        return self._encoders[chat_template]

    def apply_chat_template(
        self,
        conversation,
        chat_template=None,
        tools=None,
        add_generation_prompt=False,
        continue_final_message=False,
        tokenize=False,
        return_dict=False,
        **template_kwargs,
    ):
        if tools or continue_final_message:
            raise ValueError("The VLM GRPO recipe renders prompts without tools and ending with a user turn.")
        batched = isinstance(conversation[0], list | tuple)
        conversations = conversation if batched else [conversation]
        encoder = self._encoder(chat_template)
        if not tokenize:
            texts, _ = encoder.render(conversations, add_generation_prompt=add_generation_prompt, **template_kwargs)
            return texts if batched else texts[0]
        out = encoder(conversations, add_generation_prompt=add_generation_prompt, padding_side=None, **template_kwargs)
        return out if return_dict else out["input_ids"]

    def __call__(self, images=None, text=None, **kwargs):
        # Only TRL's second pass calls this, on prompts this view rendered; its ids are left-padded like TRL's.
        texts = [text] if isinstance(text, str) else list(text)
        per_row = [list(row) if row else [] for row in images] if images is not None else [[] for _ in texts]
        return self._encoder(None).encode_rendered(texts, per_row, padding_side="left")


class ControlTextPrompts:
    """GRPO / RLOO trainer mixin: while completions are generated and scored, the trainer's processor is a
    `ControlTextView` (TRL's GRPOTrainer and RLOOTrainer render and tokenize the prompts themselves, not through our
    collators, in the same two passes: `_tokenize_prompts` to generate, then the processor on the rendered text plus
    images for the loss's image inputs)."""

    def _generate_and_score_completions(self, inputs):
        processor = self.processing_class
        self.processing_class = ControlTextView(processor)
        try:
            return super()._generate_and_score_completions(inputs)
        finally:
            self.processing_class = processor


# The image inputs of a batch, dropped together from a batch (or chunk) whose rows hold no image.
_IMAGE_KEYS = ("pixel_values", "pixel_attention_mask", "image_grid_thw", "image_sizes", "num_images")


class MixedImageRows:
    """GRPO / RLOO trainer mixin: batches whose rows hold different numbers of images (two, one, none).

    TRL 1.16 computes the log-probs of a generation batch in chunks of the per-device batch and shuffles it into
    optimizer steps; two things go wrong with mixed rows:
    - SmolVLM's per-row layout (`pixel_layout` "tiles": `pixel_values` (rows, images, C, H, W), zero-padded, with a
      `pixel_attention_mask`) is told from a flat one-per-image layout by `pixel_values.size(0) != sum(num_images)`.
      A batch with as many images as rows (two-image, one-image and text-only rows in equal numbers) fails that test:
      the chunks take pixel rows by image counts but the mask by rows, and `split_pixel_values_by_grid` cuts the
      per-row tensor by image counts before the shuffle: mismatched shapes (the forward fails) or images on another
      row's tokens. Here `num_images` counts pixel rows for that layout (one per sequence: what TRL's split keeps
      for a padded layout) and each chunk gets its own rows of pixels.
    - a chunk or optimizer step of text-only rows still gets image inputs: SmolVLM's zero padding (the model keeps
      one blank image for no image token: "Image features and image tokens do not match"), Qwen2-VL's empty patch
      tensor (its vision tower fails on it). Here such a chunk or step gets no image inputs (a step so made runs
      `VisionOnEveryRank`'s blank image under several processes).
    tests/test_grpo_mixed_rows.py."""

    _layout = None

    def _image_layout(self, batch: dict) -> str | None:
        """The family's pixel layout when `batch` holds image inputs this mixin slices; else None."""
        if batch.get("pixel_values") is None or batch.get("num_images") is None:
            return None
        if any(batch.get(k) is not None for k in ("spatial_shapes", "num_tiles", "image_position_ids")):
            return None  # layouts of other families: TRL's own path
        if self._layout is None:
            self._layout = family_of(self.model).pixel_layout
        return self._layout

    @staticmethod
    def _without_images(batch: dict, layout: str) -> dict:
        """`batch` without image inputs when none of its rows has an image."""
        if layout == "tiles":  # padding tiles are all zero (the model's own rule), their mask too
            mask = batch.get("pixel_attention_mask")
            has_images = bool((mask if mask is not None else batch["pixel_values"]).any())
        else:
            has_images = sum(batch["num_images"]) > 0
        return batch if has_images else {k: v for k, v in batch.items() if k not in _IMAGE_KEYS}

    @staticmethod
    def _rows(kwargs: dict, start: int, end: int, layout: str) -> dict:
        """The inputs of rows `start:end`: row-aligned tensors by rows, image inputs by the images of those rows."""
        counts = kwargs["num_images"]
        chunk = {
            k: v[start:end] if torch.is_tensor(v) and v.dim() > 0 and k not in _IMAGE_KEYS else v
            for k, v in kwargs.items()
        }
        chunk["num_images"] = counts[start:end]
        if layout == "tiles":
            for key in ("pixel_values", "pixel_attention_mask"):
                if kwargs.get(key) is not None:
                    chunk[key] = kwargs[key][start:end]
            return chunk
        first, last = sum(counts[:start]), sum(counts[:end])
        grid = kwargs.get("image_grid_thw")
        if grid is not None:  # "patches": each image's patches flat, in row order
            sizes = grid.prod(-1).tolist()
            chunk["pixel_values"] = kwargs["pixel_values"][sum(sizes[:first]) : sum(sizes[:last])]
            chunk["image_grid_thw"] = grid[first:last]
        else:  # "images": one entry per image
            chunk["pixel_values"] = kwargs["pixel_values"][first:last]
        if kwargs.get("image_sizes") is not None:
            chunk["image_sizes"] = kwargs["image_sizes"][first:last]
        return chunk

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self._image_layout(output) == "tiles":
            output["num_images"] = [1] * output["prompt_ids"].size(0)
        return output

    def _prepare_inputs(self, generation_batch):
        inputs = super()._prepare_inputs(generation_batch)
        layout = self._image_layout(inputs)
        return self._without_images(inputs, layout) if layout else inputs

    def _get_per_token_logps_and_entropies(
        self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, **kwargs
    ):
        layout = self._image_layout(kwargs)
        if layout is None:
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, **kwargs
            )
        if layout == "tiles":
            kwargs = {**kwargs, "num_images": [1] * input_ids.size(0)}
        rows = input_ids.size(0)
        step = batch_size or rows
        logps, entropies, aux_losses = [], [], []
        for start in range(0, rows, step):
            end = min(start + step, rows)
            chunk = self._without_images(self._rows(kwargs, start, end, layout), layout)
            out = super()._get_per_token_logps_and_entropies(
                model, input_ids[start:end], attention_mask[start:end], logits_to_keep, **chunk
            )
            logps.append(out[0])
            entropies.append(out[1])
            aux_losses.append(out[2])
        entropy = torch.cat(entropies) if entropies[0] is not None else None
        aux_loss = torch.stack(aux_losses).mean() if aux_losses[0] is not None else None
        return torch.cat(logps), entropy, aux_loss


class VLLMPrompts:
    """GRPO trainer mixin, with `use_vllm: true`: vLLM generates from the prompt it can expand itself (colocate: one
    unexpanded placeholder per image; server: the expanded ids), with the images alongside (Qwen2-VL's already
    resized by our processor's resize, so vLLM makes the loss's patch grid). Everything else (the
    expanded prompt ids of the loss, the second pass with its left-padded `mm_token_type_ids`, Qwen2-VL's M-RoPE
    positions computed by the model from them) is TRL's path as without vLLM. vlm_recipes.training.vllm_prompts."""

    _vllm_inputs = None

    def __init__(self, *args, **kwargs):
        processor, training_args = kwargs.get("processing_class"), kwargs.get("args")
        if processor is not None and training_args is not None:  # before TRL starts vLLM (seconds to minutes)
            check_vllm_settings(family_of(processor), training_args, None)
        super().__init__(*args, **kwargs)

    def _tokenize_prompts(self, prompts):
        if not (self.use_vllm and self._is_vlm and isinstance(prompts[0], list)):
            return super()._tokenize_prompts(prompts)
        view = self.processing_class  # the ControlTextView while completions are generated
        processor = getattr(view, "_processor", view)
        conversations = [prepare_multimodal_messages(p) for p in prompts]
        encoder = view._encoder(self.chat_template) if isinstance(view, ControlTextView) else None
        encoder = encoder or ChatEncoder(processor, self.chat_template)
        self._vllm_inputs = vllm_prompts(encoder, conversations, self.vllm_mode, **self.chat_template_kwargs)
        return super()._tokenize_prompts(prompts)

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        inputs, self._vllm_inputs = self._vllm_inputs, None
        if self.use_vllm and inputs is not None and images is not None:
            prompt_ids, images = inputs.prompt_ids, inputs.images
        return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)


class PaddingFreeTokenCount:
    """SFT trainer mixin: TRL 1.16 counts the tokens of a batch without attention mask (padding-free) as
    `position_ids.size(1)`, which for Qwen2-VL's (4, 1, L) position ids is 1 instead of L; add the L - 1 it missed,
    so the logged `num_tokens` counts every trained position."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        position_ids = inputs.get("position_ids")
        missed = (
            self.model.training
            and "attention_mask" not in inputs
            and position_ids is not None
            and position_ids.dim() == 3
        )
        out = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        if missed:
            extra = torch.tensor(position_ids.shape[-1] - position_ids.shape[1], device=position_ids.device)
            self._total_train_tokens += self.accelerator.gather_for_metrics(extra).sum().item() // self._tp_size
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return out


class VLMSFTTrainer(
    CompleteCheckpoints,
    DeviceImageStage,
    VisionOnEveryRank,
    PartLearningRates,
    PaddingFreeTokenCount,
    LogitsAtLabels,
    SFTTrainer,
):
    pass


class VLMDPOTrainer(
    CompleteCheckpoints, DeviceImageStage, VisionOnEveryRank, PartLearningRates, LogitsAtLabels, DPOTrainer
):
    pass


class VLMGRPOTrainer(
    CompleteCheckpoints,
    ControlTextPrompts,
    MixedImageRows,
    VLLMPrompts,
    VisionOnEveryRank,
    PartLearningRates,
    GRPOTrainer,
):
    pass


class VLMRLOOTrainer(
    CompleteCheckpoints, ControlTextPrompts, MixedImageRows, VisionOnEveryRank, PartLearningRates, RLOOTrainer
):
    pass


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
