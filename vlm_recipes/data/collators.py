"""Collators that turn images + chat conversations into model batches, with the label masking VLMs need.

Built on what transformers and TRL already do well: TRL's `prepare_multimodal_messages` puts images into the
conversation, TRL's training chat templates carry `{% generation %}` markers, transformers renders them and its
processors process the images and say how each image placeholder expands. What TRL 1.16's
`DataCollatorForVisionLanguageModeling` lacks, and this module adds:

- image tokens (every image/vision special token of the family) are always -100 in the labels;
- inside an assistant turn only the answer and its end-of-turn token are trained, not the newline after it;
- left or right padding (TRL pads right only);
- a truncation guard: `max_length` may cut text, but a sample whose image tokens would be cut is never silently
  broken (TRL's truncation produces "Image features and image tokens do not match"); it raises an error naming
  the row, or, with `on_overflow="drop"`, is dropped and counted;
- message text is only ever text: a control-token string in a question or answer ("<end_of_utterance>",
  "<|im_end|>", "<image>", ...) is tokenized as plain text, not as the control token (`chat_encoding.py`), so the
  same answer text goes in, is trained on and decodes back out;
- errors that name the row, the reason and the fix when a row cannot be encoded (empty conversation, unknown role,
  malformed message, image/placeholder count mismatch in either direction, no assistant turn, over-long);
- videos (TRL 1.16's SFT and DPO collators have no video path): `{"type": "video"}` parts filled from a `videos`
  column (local files decoded with PyAV, or frame lists; `vlm_recipes/data/video.py` samples them by `video`'s fps and
  max_frames), expanded by the processor (Qwen2-VL's `pixel_values_videos` / `video_grid_thw`, SmolVLM2's timestamped
  frames); video tokens are masked and guarded against truncation like image tokens, and a missing or undecodable
  video raises naming the row and the file.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from trl.data_utils import prepare_multimodal_messages

from ..models.chat_templates import training_chat_template
from ..models.families import family_of
from ..settings import IMAGE_PROCESSING
from .chat_encoding import ChatEncoder, ContentError
from .images import ImageError, open_image, to_rgb
from .pipeline import DeferredImagesEncoder
from .video import VideoError, load_video

logger = logging.getLogger(__name__)

# Tensors laid out as (batch, sequence) that must be truncated / re-padded together with input_ids.
_TOKEN_ALIGNED_KEYS = ("input_ids", "attention_mask", "labels", "token_type_ids", "mm_token_type_ids")


class SampleError(ValueError):
    """A row that cannot be turned into a training sample; the message names the row and the fix, `kind` the defect
    (preflight counts bad rows by it)."""

    def __init__(self, message: str, kind: str = "bad row"):
        super().__init__(message)
        self.kind = kind


ROLES = ("system", "user", "assistant")
_COUNT_MISMATCH = re.compile(
    r"Number of images provided \((\d+)\) does not match number of image placeholders \((\d+)\)"
)


def _row_name(example: dict, position: int) -> str:
    for key in ("row_id", "id", "idx"):
        if key in example and example[key] is not None:
            return f"row {key}={example[key]!r}"
    return f"batch item {position}"


def _strip_nulls(content):
    # datasets stores {"type": "image", "text": None}; templates and TRL expect the key to be absent.
    if isinstance(content, list):
        return [
            {k: v for k, v in part.items() if v is not None} if isinstance(part, dict) else part for part in content
        ]
    return content


def rgb_images(example: dict, position: int, max_pixels: int | None = None) -> list:
    """The example's images (PIL, or undecoded {path, bytes}) decoded, checked and converted to RGB, or a
    SampleError naming the row and the image."""
    images = example.get("images")
    if images is None and example.get("image") is not None:
        images = [example["image"]]
    out = []
    for k, value in enumerate(images or []):
        try:
            out.append(to_rgb(open_image(value, max_pixels)))
        except ImageError as err:
            raise SampleError(f"{_row_name(example, position)}, image {k}: {err}.", err.kind) from err
    return out


# Audio (Gemma 4 takes it; its audio tower stays untrained): refused by row, before it reaches a processor or model.
AUDIO_PARTS = ("audio", "input_audio")
AUDIO_COLUMNS = ("audio", "audios")
NO_AUDIO = (
    "vlm-recipes trains no audio (a model's audio tower, e.g. Gemma 4's, gets no LoRA and stays frozen); remove the "
    "audio from the row, or the row"
)


def checked_messages(messages, name: str, key: str) -> list[dict]:
    """Copies of `messages` with null keys dropped, or a SampleError naming the row (`name`), the message and the fix
    when one is not a {role, content} dict with a known role and text or image content."""
    if not isinstance(messages, list):
        raise SampleError(
            f"{name}: column {key!r} must hold a list of {{'role', 'content'}} messages, got "
            f"{type(messages).__name__}; fix the row or remove it.",
            "malformed message",
        )
    out = []
    for k, message in enumerate(messages):
        where = f"{name}: {key}[{k}]"
        if not isinstance(message, dict) or "role" not in message:
            raise SampleError(
                f"{where} is not a {{'role', 'content'}} message; fix the row or remove it.", "malformed message"
            )
        role = message["role"]
        if role not in ROLES:
            raise SampleError(
                f"{where} has role {role!r}; roles are 'system', 'user' and 'assistant': rename it (e.g. 'human' -> "
                "'user', 'gpt' -> 'assistant') or remove the message.",
                "unknown role",
            )
        content = _strip_nulls(message.get("content"))
        parts = content if isinstance(content, list) else None
        if content is None or (parts is None and not isinstance(content, str)):
            raise SampleError(
                f"{where} ({role}) has no text or image content (got {type(content).__name__}); give it a string or a "
                "list of {'type': 'text', 'text': ...} / {'type': 'image'} parts.",
                "malformed message",
            )
        for j, part in enumerate(parts or []):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str) or kind in ("image", "video"):
                continue
            if kind in AUDIO_PARTS:
                raise SampleError(f"{where} ({role}), part {j}: {NO_AUDIO}", "audio unsupported")
            raise SampleError(
                f"{where} ({role}), part {j}: {part!r} is neither {{'type': 'text', 'text': <string>}} nor "
                "{'type': 'image'} nor {'type': 'video'}; fix the part or remove it.",
                "malformed message",
            )
        out.append({**message, "content": content})
    return out


def fill_videos(conversation: list[dict], example: dict, position: int, video: dict | None = None) -> list[dict]:
    """The conversation with each `{'type': 'video'}` part given the row's next video (`videos` column, or `video`),
    decoded and sampled (vlm_recipes.data.video.load_video with the `video` settings), or a SampleError naming the
    row, the video and the fix."""
    videos = example.get("videos")
    if videos is None and example.get("video") is not None:
        videos = [example["video"]]
    videos = list(videos or [])
    parts = sum(p.get("type") == "video" for m in conversation if isinstance(m["content"], list) for p in m["content"])
    name = _row_name(example, position)
    if parts != len(videos):
        raise SampleError(
            f"{name}: {len(videos)} video(s) in 'videos' but {parts} {{'type': 'video'}} part(s) in the messages; "
            "give each video one video part (and each video part one video).",
            "video/placeholder mismatch",
        )
    if not videos:
        return conversation
    loaded = []
    for k, value in enumerate(videos):
        try:
            loaded.append(load_video(value, **(video or {})))
        except VideoError as err:
            raise SampleError(f"{name}, video {k}: {err}", err.kind) from err
    queue = iter(loaded)
    return [
        {
            **m,
            "content": [{**p, "video": next(queue)} if p.get("type") == "video" else p for p in m["content"]]
            if isinstance(m["content"], list)
            else m["content"],
        }
        for m in conversation
    ]


def conversation_of(
    example: dict, position: int, key: str = "messages", max_pixels: int | None = None, video: dict | None = None
) -> list[dict]:
    """The example's conversation with its (RGB) images and its videos (sampled frames, `video`: the settings of
    `load_video`) filled in, or a SampleError naming the row."""
    name = _row_name(example, position)
    messages = example.get(key)
    if not messages:
        raise SampleError(
            f"{name}: empty conversation in column {key!r}; fill it or remove the row.", "empty conversation"
        )
    messages = checked_messages(messages, name, key)
    audio = next((k for k in AUDIO_COLUMNS if example.get(k) not in (None, [], "")), None)
    if audio is not None:
        raise SampleError(f"{name}: column {audio!r} holds audio. {NO_AUDIO}", "audio unsupported")
    images = rgb_images(example, position, max_pixels)
    try:
        return fill_videos(prepare_multimodal_messages(messages, images=images), example, position, video)
    except ValueError as err:
        if isinstance(err, SampleError):
            raise
        counts = _COUNT_MISMATCH.search(str(err))
        if counts is None:
            raise SampleError(f"{name}: {err}", "malformed message") from err
        given, placeholders = map(int, counts.groups())
        fix = (
            "add an {'type': 'image'} part for each extra image, or remove the extra image(s) from 'images'"
            if given > placeholders
            else "remove the extra {'type': 'image'} part(s), or add the missing image(s) to 'images'"
        )
        raise SampleError(
            f"{name}: {err} Make the number of image placeholders in {key!r} equal the number of images in 'images': "
            f"{fix}.",
            "image/placeholder mismatch",
        ) from err


def keep_through_end_of_turn(assistant_mask: torch.Tensor, input_ids: torch.Tensor, eot_id: int) -> torch.Tensor:
    """Within each run of assistant tokens keep the tokens up to and including the first end-of-turn token.

    Training templates mark "answer<eot>\\n" as assistant; the newline after the end-of-turn token is never
    generated (generation stops at <eot>), so training on it only teaches the template.
    """
    mask = assistant_mask.bool()
    is_eot = (input_ids == eot_id) & mask
    eots_before = torch.cumsum(is_eot.long(), dim=1) - is_eot.long()  # end-of-turn tokens strictly before t
    run_start = mask & ~torch.nn.functional.pad(mask, (1, 0))[:, :-1]
    baseline = torch.cummax(torch.where(run_start, eots_before, torch.zeros_like(eots_before)), dim=1).values
    return mask & (eots_before == baseline)


def overflow(is_image: torch.Tensor, attention: torch.Tensor, trained: torch.Tensor | None, max_length: int | None):
    """Why cutting one right-padded sequence at `max_length` would break it, or None (it fits, or only text is cut).

    The one truncation rule of the package (the collators apply it; preflight reports it): a sequence may lose text
    past `max_length`, never image or video tokens (`is_image` beyond it), and never its whole answer (`trained`: the
    positions that carry a label; None when every position may be trained)."""
    length = int(attention.sum())
    if max_length is None or length <= max_length:
        return None
    if is_image[max_length:].any():
        return f"{length} tokens, image tokens beyond max_length={max_length}"
    if trained is not None and not trained[:max_length].any():
        return f"{length} tokens, the whole answer lies beyond max_length={max_length}"
    return None


@dataclass
class VisionChatCollator:
    """Collate conversational VLM examples into a training batch.

    Input: a list of examples, each a dict with
      - `messages`: list of `{"role", "content"}`; content is a string or a list of `{"type": "text"|"image"}`
        parts (system, multi-turn and several images per row are fine; text-only rows may be mixed in);
      - `images`: list of images (or `image`: one image), one per image placeholder; may be empty. An image is a PIL
        image or an undecoded `{"path", "bytes"}` dict (datasets' `Image(decode=False)`), decoded here so that a
        corrupt, oversized (`max_image_pixels`) or unconvertible image raises a SampleError naming the row and file;
        RGBA / L / P / CMYK images are converted to RGB;
      - `videos`: list of videos (or `video`: one), one per `{"type": "video"}` part: a file path, a `{"path"}` dict or
        a list of PIL frames, sampled by `video` (`{"fps", "max_frames", "frame_list_fps"}`, default: every frame).
    Output: `input_ids`, `attention_mask`, `labels` and the family's image and video inputs (`pixel_values` plus
    `pixel_attention_mask` for SmolVLM, video frames included; `image_grid_thw`, `pixel_values_videos` and
    `video_grid_thw` for Qwen2-VL).

    Labels are -100 on padding, on every image and video token, and (with `assistant_only=True`) on everything that
    is not an assistant answer or its end-of-turn token.

    Example (SmolVLM): "<|im_start|>User:<image>What color is the shape?<end_of_utterance>\\nAssistant: red
    <end_of_utterance>\\n" gets labels only on " red" and "<end_of_utterance>" of the assistant turn.
    """

    processor: Any
    max_length: int | None = None
    padding_side: str = "right"
    assistant_only: bool = True
    on_overflow: str = "error"  # "error": raise naming the row; "drop": drop the row and count it
    pad_to_multiple_of: int | None = None
    messages_key: str = "messages"
    max_image_pixels: int | None = None  # larger images raise a SampleError naming the row
    # Frame sampling of the `videos` column (vlm_recipes.data.video.load_video): fps, max_frames, frame_list_fps.
    video: dict | None = None
    # Where images are processed (vlm_recipes.data.pipeline): "processor" (its own call), "worker" (both stages here:
    # the same tensors, faster on a CPU) or "device" (uint8 images leave the collator; the trainer finishes them).
    image_processing: str = "processor"
    num_dropped: int = field(default=0, init=False)

    def __post_init__(self):
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}.")
        if self.on_overflow not in ("error", "drop"):
            raise ValueError(f"on_overflow must be 'error' or 'drop', got {self.on_overflow!r}.")
        if self.image_processing not in IMAGE_PROCESSING:
            raise ValueError(
                f"image_processing must be one of {', '.join(IMAGE_PROCESSING)}; got {self.image_processing!r}."
            )
        self.family = family_of(self.processor)
        tokenizer = self.processor.tokenizer
        self.pad_token_id = tokenizer.pad_token_id
        if self.pad_token_id is None:
            raise ValueError("The processor's tokenizer has no pad token; set tokenizer.pad_token before training.")
        self.image_token_ids = torch.tensor(self.family.image_token_ids(tokenizer))
        self.eot_id = tokenizer.convert_tokens_to_ids(self.family.end_of_turn)
        # The training variant of the model's own template (TRL's or ours, vlm_recipes/models/chat_templates): the
        # same text, with {% generation %} markers around each answer and its end-of-turn token.
        self.chat_template = training_chat_template(self.processor)
        # Renders and tokenizes so that control-token strings in message text stay text (chat_encoding.py); with
        # image_processing worker / device, images go through the split pipeline (pipeline.py) instead.
        if self.image_processing == "processor":
            self.encoder = ChatEncoder(self.processor, self.chat_template)
        else:
            self.encoder = DeferredImagesEncoder(
                self.processor, self.chat_template, finish_here=self.image_processing == "worker"
            )
            self.image_stage = self.encoder.stage  # the trainer's DeviceImageStage finishes "device" batches with it

    # -- encoding --------------------------------------------------------------------------------------------
    def encode(self, conversations: list[list[dict]], examples: list[dict] | None = None) -> dict[str, torch.Tensor]:
        """Render, tokenize and expand `conversations`; right-padded, untruncated, with `assistant_masks`.
        Message text is tokenized as text, control-token strings included; `examples[i]` names row i in errors."""
        try:
            return self.encoder(conversations, assistant_mask=self.assistant_only)
        except ContentError as err:
            name = _row_name(examples[err.index], err.index) if examples else f"batch item {err.index}"
            raise SampleError(f"{name}: {err}.", err.kind) from err

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        conversations = [
            conversation_of(ex, i, self.messages_key, self.max_image_pixels, self.video)
            for i, ex in enumerate(examples)
        ]
        return self.collate(conversations, examples)

    def collate(self, conversations: list[list[dict]], examples: list[dict]) -> dict[str, torch.Tensor]:
        """Encode ready conversations; `examples[i]` is only used to name row i in errors."""
        for i, conv in enumerate(conversations):
            if self.assistant_only and not any(m["role"] == "assistant" for m in conv):
                raise SampleError(
                    f"{_row_name(examples[i], i)}: no assistant turn, so nothing to train on; add the answer as an "
                    "assistant message, or remove the row.",
                    "no assistant turn",
                )
        batch = self.encode(conversations, examples)
        labels = self._labels(batch)
        bad = self._overflowing_rows(batch, labels)
        if bad:
            reasons = "; ".join(f"{_row_name(examples[i], i)}: {why}" for i, why in bad.items())
            if self.on_overflow == "error":
                raise SampleError(
                    f"{reasons}. Raise max_length (now {self.max_length}), lower the image resolution "
                    "(max_pixels / longest_edge / image_splitting), or set on_overflow='drop'.",
                    "over max_length",
                )
            self.num_dropped += len(bad)
            logger.warning("Dropped %d over-long sample(s) (%d so far): %s", len(bad), self.num_dropped, reasons)
            keep = [i for i in range(len(examples)) if i not in bad]
            if not keep:
                raise SampleError(
                    f"Every sample of the batch was over max_length={self.max_length}: {reasons}.", "over max_length"
                )
            return self.collate([conversations[i] for i in keep], [examples[i] for i in keep])
        batch["labels"] = labels
        if self.max_length is not None and batch["input_ids"].shape[1] > self.max_length:
            for key in _TOKEN_ALIGNED_KEYS:
                if key in batch:
                    batch[key] = batch[key][:, : self.max_length]
        return self._pad(batch)

    # -- pieces ----------------------------------------------------------------------------------------------
    def _labels(self, batch) -> torch.Tensor:
        input_ids = batch["input_ids"]
        labels = input_ids.clone()
        # -100 is ignored by the loss: padding, image tokens and (optionally) everything but the answers.
        trainable = batch["attention_mask"].bool() & ~torch.isin(input_ids, self.image_token_ids)
        if self.assistant_only:
            assistant = torch.as_tensor(batch.pop("assistant_masks"))
            trainable &= keep_through_end_of_turn(assistant, input_ids, self.eot_id)
        labels[~trainable] = -100
        return labels

    def _overflowing_rows(self, batch, labels) -> dict[int, str]:
        """Rows that `max_length` would break (`overflow`): image tokens cut, or no trained token left."""
        bad = {}
        is_image = torch.isin(batch["input_ids"], self.image_token_ids)
        for i in range(len(batch["input_ids"])):
            trained = labels[i] != -100 if self.assistant_only else None
            reason = overflow(is_image[i], batch["attention_mask"][i], trained, self.max_length)
            if reason is not None:
                bad[i] = reason
        return bad

    def _pad(self, batch) -> dict[str, torch.Tensor]:
        """Pad to a multiple if asked, and move padding to the left if asked (the encoder pads right)."""
        seq_len = batch["input_ids"].shape[1]
        if self.pad_to_multiple_of:
            extra = -seq_len % self.pad_to_multiple_of
            if extra:
                fill = {"input_ids": self.pad_token_id, "labels": -100}
                for key in _TOKEN_ALIGNED_KEYS:
                    if key in batch:
                        batch[key] = torch.nn.functional.pad(batch[key], (0, extra), value=fill.get(key, 0))
        if self.padding_side == "left":
            lengths = batch["attention_mask"].sum(dim=1)
            for key in _TOKEN_ALIGNED_KEYS:
                if key in batch:
                    t = batch[key]
                    batch[key] = torch.stack([torch.roll(row, int(t.shape[1] - n)) for row, n in zip(t, lengths)])
        return dict(batch)


@dataclass
class PreferenceCollator(VisionChatCollator):
    """Collate preference examples (DPO, MPO) into the concatenated batch TRL's DPOTrainer consumes.

    Input: examples with `images`, `prompt` (messages up to the answer), `chosen` and `rejected` (the assistant
    turn(s) of each response; strings or typed parts).
    Output: `input_ids` / `attention_mask` of 2B rows (the B prompt+chosen rows, then the B prompt+rejected rows),
    the image inputs of those rows, and `completion_mask`, which is 1 exactly where `VisionChatCollator` would train:
    the response and its end-of-turn token, never padding or image tokens.
    """

    def __post_init__(self):
        super().__post_init__()
        if self.on_overflow != "error":
            raise ValueError("Preference pairs cannot be dropped one side at a time: use on_overflow='error'.")

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        sides: dict[str, list] = {"chosen": [], "rejected": []}
        for i, ex in enumerate(examples):
            prompt = conversation_of(ex, i, "prompt", self.max_image_pixels, self.video)
            for key, conversations in sides.items():
                if not ex.get(key):
                    raise SampleError(
                        f"{_row_name(ex, i)}: empty {key!r} response; fill it or remove the row.", "empty response"
                    )
                response = checked_messages(ex[key], _row_name(ex, i), key)
                conversations.append(prompt + prepare_multimodal_messages(response))
        batch = self.collate(sides["chosen"] + sides["rejected"], examples + examples)
        batch["completion_mask"] = (batch.pop("labels") != -100).long()
        return batch


@dataclass
class PromptCollator:
    """Encode conversations up to (not including) their final assistant turn, ready for `generate`.

    Input examples as for `VisionChatCollator`; a trailing assistant turn (the reference answer) is removed.
    Output: left-padded `input_ids`, `attention_mask` and the image inputs, so a batch can be generated at once.
    """

    processor: Any
    messages_key: str = "messages"
    video: dict | None = None  # frame sampling of the `videos` column, as VisionChatCollator's

    def __post_init__(self):
        self.encoder = ChatEncoder(self.processor)

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        prompts = []
        for i, ex in enumerate(examples):
            conv = conversation_of(ex, i, self.messages_key, video=self.video)
            if conv[-1]["role"] == "assistant":
                conv = conv[:-1]
            prompts.append(conv)
        try:
            # Rendered with the model's own template; message text is tokenized as text (chat_encoding.py), exactly as
            # the start of the training sequence.
            return self.encoder(prompts, add_generation_prompt=True, padding_side="left")
        except ContentError as err:
            raise SampleError(f"{_row_name(examples[err.index], err.index)}: {err}.", err.kind) from err
