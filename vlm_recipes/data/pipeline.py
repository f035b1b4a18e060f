"""Image processing split in two: the dataloader workers decode and resize, the training device does the rest.

What transformers already does: the image processors of both families (`Idefics3ImageProcessor`,
`Qwen2VLImageProcessor`, the torchvision backend in transformers 5.23) resize, split into tiles or patches, rescale,
normalize and pad, all in one call inside the collator, so all of it runs in the dataloader workers, on the CPU. At
SmolVLM-256M settings most of a collator's time goes there, mostly into float32 tensor work (rescale+normalize,
the zero-padded pixel tensor, tile splitting: benches/bench_data_pipeline.py measures it).

What this module adds: the same processing cut where the data stops depending on the CPU.

- Worker stage (`ImageStage.prepare`, inside the collator): decode (done by the collator), convert to a uint8 tensor
  and resize with the processor's own methods and settings (LANCZOS / BICUBIC on the CPU, exactly as the processor
  does). The number of image tokens depends only on the resized size (SmolVLM: the tile grid; Qwen2-VL: the patch
  grid), so the text is expanded and tokenized here, as before. What leaves the worker is uint8 pixels: 4x smaller
  than float32.
- Device stage (`ImageStage.finish`, in the trainer's input preparation, `DeviceImageStage`): cut tiles / patches,
  rescale+normalize (the processor's own fused op), pad, as batched tensor ops on the training device; on a CPU-only
  run the same code runs on the CPU in the main process.

`image_processing: worker` runs both stages in the collator; `device` runs the second in the trainer (a collator
built with either, `VisionChatCollator(..., image_processing=...)`, encodes through `DeferredImagesEncoder`). The
batch that reaches the model is the plain collator's: input_ids, labels and masks identical (the same text
expansion), pixel values identical bit for bit on the CPU (tests/test_pipeline.py); on a GPU only integer indexing
and the processor's own normalize run, so they can differ at most by float rounding (not measured here: no GPU).
Every resize stays on the CPU (LANCZOS has no CUDA kernel). With `device`, SmolVLM's `pixel_attention_mask` has the
processor's values and dtype but is a broadcast view (one value per frame, made on the device after the batch was
pinned and moved): read it, do not write into it.

Only the settings implemented here are accepted: an image processor with other flags (no resize, no padding, another
processor class) is refused with the flag named, rather than processed differently.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from ..models.families import FAMILIES, family_of
from .chat_encoding import ChatEncoder

DEFERRED_KEY = "deferred_images"  # the batch key that carries uint8 images from the workers to the device stage
LAYOUTS = ("tiles", "patches")  # the `Family.pixel_layout`s the two stages implement


def _size_dict(size):
    from transformers.image_utils import SizeDict

    return size if isinstance(size, SizeDict) else SizeDict(**dict(size))


class ImageStage:
    """The two halves of one processor's image processing. Built from the processor, with its current settings
    (settings changed on the processor later are read again on each call).

    Args:
        processor: a SmolVLM / Idefics3 or Qwen2-VL processor whose image processor is the torchvision backend.
        channels_last: resize channels-last uint8 tensors (the same values, faster); False resizes them laid out as
            the processor does (benches compare the two).
    """

    def __init__(self, processor, channels_last: bool = True):
        self.processor = processor
        self.channels_last = channels_last
        self.family = family_of(processor)
        # The family's pixel layout decides the halves; this module implements tiles and patches.
        self.layout = self.family.pixel_layout
        ip = processor.image_processor
        expected = self.family.image_processor_classes
        if self.layout not in LAYOUTS or type(ip).__name__ not in expected:
            implemented = ", ".join(
                c for f in FAMILIES if f.pixel_layout in LAYOUTS for c in f.image_processor_classes
            )
            raise ValueError(
                f"image_processing: worker / device implement the torchvision image processors {implemented}; "
                f"this processor has {type(ip).__name__}: use image_processing: processor."
            )
        refused = [flag for flag in ("do_resize", "do_convert_rgb") if not getattr(ip, flag, True)]
        if self.layout == "tiles" and not ip.do_pad:
            refused.append("do_pad")
        if refused:
            raise ValueError(
                f"image_processing: worker / device implement the processor with {', '.join(refused)}=True only; set "
                "it back or use image_processing: processor."
            )

    @property
    def image_processor(self):
        return self.processor.image_processor

    # -- worker stage ----------------------------------------------------------------------------------------
    def prepare(self, image) -> tuple[dict[str, torch.Tensor], str]:
        """One RGB PIL image -> (uint8 tensors at the processor's target resolution, its placeholder expansion)."""
        ip = self.image_processor
        if (
            self.channels_last
            and isinstance(image, Image.Image)
            and image.mode == "RGB"
            and "transparency" not in image.info
        ):
            # The processor's values (for an RGB image its conversion is a copy) in channels-last memory, which PIL's
            # own layout already is: torch's antialiased uint8 resize is about 3x faster on it, with bit-identical
            # output (tests/test_pipeline.py checks it on both families); the resized images stay channels-last.
            pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).unsqueeze(0)
        else:
            pixels = ip.process_image(image, do_convert_rgb=True).unsqueeze(0)  # (1, C, H, W) uint8
            if self.channels_last:
                pixels = pixels.contiguous(memory_format=torch.channels_last)
        if self.layout == "patches":
            factor = ip.patch_size * ip.merge_size
            resized = ip.resize(pixels, _size_dict(ip.size), ip.resample, factor=factor)
            grid = torch.tensor([[1, resized.shape[-2] // ip.patch_size, resized.shape[-1] // ip.patch_size]])
            return {"pixels": resized[0]}, self.processor.replace_image_token({"image_grid_thw": grid}, 0)
        tile = ip.max_image_size["longest_edge"]
        resized = ip.resize(pixels, _size_dict(ip.size), resample=ip.resample)
        rows = cols = 0
        if ip.do_image_splitting:
            resized = ip.resize_for_vision_encoder(resized, tile, resample=ip.resample)
            height, width = resized.shape[-2:]
            if height > tile or width > tile:
                rows, cols = math.ceil(height / tile), math.ceil(width / tile)
                global_image = ip.resize(resized, _size_dict({"height": tile, "width": tile}), resample=ip.resample)
                out = {"pixels": resized[0], "global": global_image[0]}
                return out, self.processor.replace_image_token({"rows": [[rows]], "cols": [[cols]]}, 0)
        else:
            resized = ip.resize(resized, _size_dict({"height": tile, "width": tile}), resample=ip.resample)
        return {"pixels": resized[0]}, self.processor.replace_image_token({"rows": [[0]], "cols": [[0]]}, 0)

    # -- device stage ----------------------------------------------------------------------------------------
    def _normalize_(self, pixels: torch.Tensor) -> torch.Tensor:
        """Rescale+normalize float32 `pixels` (channels at dim -3) in place, with the processor's own fused op and
        constants, so the values are bit for bit the processor's."""
        ip = self.image_processor
        mean, std, do_rescale = ip._fuse_mean_std_and_rescale_factor(
            do_normalize=ip.do_normalize,
            image_mean=ip.image_mean,
            image_std=ip.image_std,
            do_rescale=ip.do_rescale,
            rescale_factor=ip.rescale_factor,
            device=pixels.device,
        )
        if ip.do_normalize:
            return ip.normalize(pixels, mean, std, inplace=True)
        return pixels.mul_(ip.rescale_factor) if do_rescale else pixels

    def finish(self, deferred: dict, device=None) -> dict[str, torch.Tensor]:
        """The model's image inputs from the worker stage's uint8 images (`deferred`: `images`, one dict per image in
        batch order, and `counts`, the number of images of each row), on `device` (default: where they are)."""
        images, counts = deferred["images"], [int(n) for n in deferred["counts"]]
        if device is not None:
            images = [{k: v.to(device, non_blocking=True) for k, v in image.items()} for image in images]
        if self.layout == "patches":
            return self._finish_patches(images)
        return self._finish_tiles(images, counts)

    def _finish_patches(self, images: list[dict]) -> dict[str, torch.Tensor]:
        ip = self.image_processor
        patches, grids = [], []
        for image in images:
            # Patchify the uint8 pixels (a permutation: 1 byte per value moved instead of 4), normalize once after.
            flat, grid_h, grid_w = ip.patchify(
                image["pixels"].unsqueeze(0),
                patch_size=ip.patch_size,
                merge_size=ip.merge_size,
                temporal_patch_size=ip.temporal_patch_size,
            )
            patches.append(flat[0])
            grids.append([1, grid_h, grid_w])
        flat = torch.cat(patches)
        channels = images[0]["pixels"].shape[0]
        pixel_values = flat.to(torch.float32)
        # Each patch row is laid out (channel, temporal, patch, patch): normalize it as channels x (T*P) x P.
        self._normalize_(pixel_values.view(len(flat), channels, -1, ip.patch_size))
        grid_thw = torch.tensor(grids, dtype=torch.long, device=flat.device)
        return {"pixel_values": pixel_values, "image_grid_thw": grid_thw}

    def _finish_tiles(self, images: list[dict], counts: list[int]) -> dict[str, torch.Tensor]:
        tile = self.image_processor.max_image_size["longest_edge"]
        per_image = []  # per image: its frames (uint8 views): tiles in row-major order, then the global image
        for image in images:
            pixels = image["pixels"]
            if "global" in image:
                tiles = pixels.unfold(1, tile, tile).unfold(2, tile, tile)  # (C, rows, cols, tile, tile), a view
                tiles = tiles.permute(1, 2, 0, 3, 4).flatten(0, 1)
                per_image.append([tiles, image["global"].unsqueeze(0)])
            else:
                per_image.append([pixels.unsqueeze(0)])
        rows, k = [], 0
        for n in counts:
            rows.append([f for frames in per_image[k : k + n] for f in frames])
            k += n
        frames_per_row = [sum(len(f) for f in row) for row in rows]
        batch, longest = len(counts), max(max(frames_per_row, default=0), 1)
        device = images[0]["pixels"].device if images else None
        # One float32 tensor, written once: each frame is converted from uint8 straight into its padded slot and
        # normalized there; only padding slots are zeroed (the processor allocates, normalizes and copies).
        channels = images[0]["pixels"].shape[0] if images else 3
        pixel_values = torch.empty(batch, longest, channels, tile, tile, device=device)
        for i, row in enumerate(rows):
            slot = 0
            for frames in row:
                pixel_values[i, slot : slot + len(frames)].copy_(frames)
                slot += len(frames)
            if slot < longest:
                pixel_values[i, slot:].zero_()
        if all(n == longest for n in frames_per_row):
            self._normalize_(pixel_values)
        else:
            for i, n in enumerate(frames_per_row):
                self._normalize_(pixel_values[i, :n])
        # The processor's int64 mask is 1 on every pixel of a real frame (frames are whole tiles): the same values as
        # a broadcast view of one value per frame, without materialising batch x frames x tile x tile int64.
        real = torch.arange(longest, device=device).unsqueeze(0) < torch.tensor(frames_per_row, device=device)[:, None]
        mask = real.long()[:, :, None, None].expand(batch, longest, tile, tile)
        return {"pixel_values": pixel_values, "pixel_attention_mask": mask}


class DeferredImagesEncoder(ChatEncoder):
    """`ChatEncoder` whose images go through `ImageStage`: the text (and so input_ids, masks and labels) is expanded
    exactly as the processor expands it; the image inputs are the worker stage's uint8 images (`DEFERRED_KEY`), or,
    with `finish_here`, the finished pixel values (both stages in the collator)."""

    def __init__(
        self, processor, chat_template: str | None = None, stage: ImageStage | None = None, finish_here: bool = False
    ):
        super().__init__(processor, chat_template)
        self.stage = stage or ImageStage(processor)
        self.finish_here = finish_here

    def _image_inputs(self, texts_pieces, images: list[list]) -> tuple[dict, list[list[str]]]:
        for row, imgs in zip(texts_pieces, images):
            if sum(kind == "image" for kind, _, _ in row) != len(imgs):
                return super()._image_inputs(texts_pieces, images)  # raises the error that names the row
        if not any(images):
            return {}, [[] for _ in images]
        prepared, expansions = [], []
        for imgs in images:
            row = [self.stage.prepare(image) for image in imgs]
            prepared += [p for p, _ in row]
            expansions.append([e for _, e in row])
        deferred = {"images": prepared, "counts": torch.tensor([len(imgs) for imgs in images])}
        if self.finish_here:
            # Materialised: the DataLoader pins batches for a GPU, and pinning copies into a tensor of the same
            # strides, which a broadcast view (the SmolVLM mask) cannot be written into.
            return {k: v.contiguous() for k, v in self.stage.finish(deferred).items()}, expansions
        return {DEFERRED_KEY: deferred}, expansions


def finish_images(batch: dict, stage: ImageStage, device=None) -> dict:
    """`batch` with its deferred uint8 images replaced by the model's image inputs (no-op without them)."""
    deferred = batch.pop(DEFERRED_KEY, None)
    if deferred is not None:
        batch.update(stage.finish(deferred, device))
    return batch


class DeviceImageStage:
    """Trainer mixin: finish deferred images (tiles, rescale+normalize, padding) on the training device, after the
    batch has been moved there; a batch without deferred images passes through unchanged."""

    def _prepare_inputs(self, inputs):
        inputs = super()._prepare_inputs(inputs)
        stage = getattr(self.data_collator, "image_stage", None)
        if stage is not None and DEFERRED_KEY in inputs:
            finish_images(inputs, stage, self.args.device)
        return inputs
