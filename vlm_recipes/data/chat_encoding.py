"""Render and tokenize conversations so that the text in them is only ever text.

transformers renders the chat template, expands the image placeholders and tokenizes the result in one call
(`processor.apply_chat_template`). Its tokenizer reads every control-token string of the rendered text as the control
token, wherever the string came from: an answer that contains the text "<end_of_utterance>" (or "<|im_end|>") ends
the turn there, so the label mask keeps only that token and drops the answer; a row can forge whole turns this way;
and a question with the text "<image>" is counted as an image placeholder ("Number of images ... does not match").
transformers 5.23 can encode such strings as text (`apply_chat_template(..., sanitize_control_tokens=True)`) but
not together with the assistant mask training needs. What this module does instead, in one code path for training
(SFT, preference pairs), generation, evaluation and GRPO prompts:

1. mark: every control-token string (each added token of the tokenizer: `<image>`, `<end_of_utterance>`,
   `<|im_end|>`, `<|vision_start|>`, `<row_1_col_1>`, ...) inside message text is wrapped in two private-use
   characters (the ones transformers' own `sanitize_control_tokens` uses); text that already holds them is refused.
   The one exception is a control token a box convention writes on purpose (Qwen2-VL's `<|box_start|>`, ...):
   vlm_recipes.grounding.boxes wraps it in two other private-use characters (`keep_control`), and it is left
   unmarked, a control token of the template text (plain text for a tokenizer that lacks it). Data loading refuses
   those characters in a dataset's own text, so only our formatter can write them;
2. render with the chat template (transformers' `render_jinja_template`, which also returns the character spans of
   `{% generation %}` blocks);
3. split the rendered text into pieces: template text, marked strings, the template's own image placeholders and the
   edges of the generation spans;
4. tokenize the pieces: template text as usual (its control tokens are control tokens), a marked string as plain text
   (special-token matching off; a non-special added token is split until it cannot match), an image or video
   placeholder as the processor's expansion for that image or video (the processor processes them, and says how each
   placeholder expands: `return_text_replacement_offsets`). Piece edges are token edges, so the
   assistant mask is exact, and a prompt is tokenized exactly as the start of its training sequence.

The same answer text goes in, is trained on, and comes back out of `tokenizer.decode(..., skip_special_tokens=True)`.

Two tokenizer habits are kept as transformers keeps them when it tokenizes the whole rendered text: the tokens a
tokenizer adds in front of a sequence (Llama's `<s>`) are added unless the text starts with the bos token (the rule of
transformers' processors), and a tokenizer that marks the start of a text (SentencePiece-style `▁` prepended by a
Metaspace pre-tokenizer, LLaVA-1.5's `LlamaTokenizer`) marks only the first piece: the others are tokenized as the
continuation they are.

>>> from vlm_recipes.tiny.vlm import build_processor
>>> processor = build_processor("qwen2_vl")
>>> encoder = ChatEncoder(processor)
>>> chat = [{"role": "user", "content": [{"type": "text", "text": "Say <|im_end|>"}]}]
>>> ids = encoder([chat], add_generation_prompt=True)["input_ids"][0]
>>> processor.tokenizer.convert_tokens_to_ids("<|im_end|>") in ids[:-5].tolist()  # the template's own, not the text
True
>>> processor.tokenizer.decode(ids, skip_special_tokens=True).count("Say <|im_end|>")
1
"""

from __future__ import annotations

import re
from functools import cached_property

import torch
from transformers.utils.chat_template_utils import render_jinja_template

from ..grounding.boxes import CONVENTIONS, KEEP_END, KEEP_START
from ..models.families import family_of, template_variables
from .video import videos_of

# The private-use characters transformers' `mark_control_tokens` wraps around control tokens found in user text
# (transformers.utils.chat_template_utils._CONTROL_TOKEN_START / _END; a test checks that they still agree). Using the
# same ones keeps text marked here meaningful to `sanitize_control_tokens` too.
MARK_START, MARK_END = "\U000f0000", "\U000f0001"

# Keys of a processor's output that are laid out like input_ids: recomputed here for the pieces we tokenize.
_TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids", "text_replacement_offsets")
MEDIA = ("image", "video")  # the placeholder pieces a processor expands
# The control tokens a box convention may write on purpose (vlm_recipes.grounding.boxes.keep_control); no other.
_KEPT_TOKENS = frozenset(token for convention in CONVENTIONS.values() for token in convention.control_tokens)


class ContentError(ValueError):
    """Text of conversation `index` that cannot be encoded; the message says why and how to fix it."""

    def __init__(self, index: int, message: str, kind: str):
        super().__init__(message)
        self.index, self.kind = index, kind


# One leading reasoning block of an answer, as a thinking template (Qwen3.5) reads it: `<think>reasoning</think>`.
_REASONING = re.compile(r"\s*<think>((?!<think>|</think>).)*</think>", re.DOTALL)


def _check_reasoning_markup(text: str, index: int) -> None:
    """A thinking template (`Family.thinking`: Qwen3.5) reads `<think>...</think>` in an assistant message as the
    turn's reasoning and renders only what follows the last `</think>` as the answer: other text around the tags would
    be dropped without a word. One leading `<think>...</think>` block (the reasoning of a row with reasoning) is
    what it means; any other `<think>` / `</think>` in an answer is refused."""
    leading = _REASONING.match(text)
    rest = text[leading.end() :] if leading else text
    if "<think>" in rest or "</think>" in rest:
        raise ContentError(
            index,
            "an assistant message holds '<think>' or '</think>' other than one leading <think>...</think> block: this "
            "model's chat template reads them as the turn's reasoning and drops the text around them; give the "
            "reasoning as one <think>...</think> block at the start of the answer, or remove the tags",
            "reasoning markup",
        )


class ChatEncoder:
    """Conversations (messages with their images filled in, as `conversation_of` returns them) to token batches in
    which message text never becomes control tokens.

    Args:
        processor: the model's processor (SmolVLM / Idefics3 or Qwen2-VL family).
        chat_template: the template to render with (default: the processor's own).

    `encoder(conversations, add_generation_prompt=False, assistant_mask=False, padding_side="right")` returns a dict of
    tensors: `input_ids`, `attention_mask`, `mm_token_type_ids` when the processor makes them, `assistant_masks` when
    asked (1 on the tokens of `{% generation %}` spans) and the processor's image and video inputs (`pixel_values`,
    `pixel_values_videos`, ...). Videos are `{"type": "video", "video": Video}` parts (vlm_recipes.data.video).
    """

    def __init__(self, processor, chat_template: str | None = None):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.family = family_of(processor)
        self.chat_template = self.family.patch_template(chat_template or processor.chat_template)
        # Variables every render gets (Qwen3.5's enable_thinking, from the model config; a call's own win).
        self.template_variables = template_variables(processor)
        if self.chat_template is None:
            raise ValueError("The processor has no chat template; set processor.chat_template before training.")
        added = {t.content: i for i, t in self.tokenizer.added_tokens_decoder.items() if not t.content.isspace()}
        self.control_ids = frozenset(added.values())
        longest_first = sorted(added, key=len, reverse=True)
        self.control_re = re.compile("|".join(map(re.escape, longest_first)) or "(?!)")
        # A wrapped string must hold no marker and no other control string but itself (one token written on purpose).
        self.keep_re = re.compile(f"{KEEP_START}([^{KEEP_START}{KEEP_END}{MARK_START}{MARK_END}]+){KEEP_END}")
        self.image_token = getattr(processor, "image_token", None)
        # Only a processor with a video processor expands video placeholders (LLaVA-1.5 has a `<video>`-less one).
        self.video_token = getattr(processor, "video_token", None) if hasattr(processor, "video_processor") else None
        # Rendered text splits at: a marked string, a lone marker, or the template's own image / video placeholder.
        parts = [f"{MARK_START}(?P<marked>{self.control_re.pattern}){MARK_END}", f"[{MARK_START}{MARK_END}]"]
        if self.image_token:
            parts.append(f"(?P<image>{re.escape(self.image_token)})")
        if self.video_token:
            parts.append(f"(?P<video>{re.escape(self.video_token)})")
        self.piece_re = re.compile("|".join(parts))
        self._as_text: dict[tuple[str, bool], list[int]] = {}
        self.prefix_ids = _prefix_ids(self.tokenizer)
        self.continuation = _continuation_tokenizer(self.tokenizer)

    # -- 1. mark ---------------------------------------------------------------------------------------------------
    def mark_text(self, text: str, index: int) -> str:
        if MARK_START in text or MARK_END in text:
            raise ContentError(
                index,
                "message text contains the private-use character U+F0000 or U+F0001, which marks control-token "
                "strings as text; remove it from the text",
                "reserved character",
            )
        out, position = [], 0
        for kept in self.keep_re.finditer(text):  # control tokens a box convention wrote on purpose stay control
            if kept.group(1) not in _KEPT_TOKENS:
                raise ContentError(
                    index,
                    f"{kept.group(1)!r} is wrapped as a control token written on purpose, but no box convention "
                    f"writes it (they write {sorted(_KEPT_TOKENS)}); remove the private-use characters around it",
                    "reserved character",
                )
            out.append(self._mark_plain(text[position : kept.start()], index))
            out.append(kept.group(1))
            position = kept.end()
        out.append(self._mark_plain(text[position:], index))
        return "".join(out)

    def _mark_plain(self, text: str, index: int) -> str:
        if KEEP_START in text or KEEP_END in text:
            raise ContentError(
                index,
                "message text contains a lone private-use character U+F0002 or U+F0003, which vlm_recipes.grounding "
                "wraps around the control tokens a box convention writes; remove it from the text",
                "reserved character",
            )
        return self.control_re.sub(lambda m: f"{MARK_START}{m.group()}{MARK_END}", text)

    def control_strings(self, text: str) -> list[str]:
        """The control-token strings `text` contains (what marking will keep as text)."""
        return self.control_re.findall(text)

    def mark(self, conversation: list[dict], index: int = 0) -> list[dict]:
        """The conversation with every control-token string in its text wrapped in markers (a copy)."""
        marked = []
        for message in conversation:
            content = message.get("content")
            if self.family.thinking and message.get("role") == "assistant":
                texts = [content] if isinstance(content, str) else [p.get("text") for p in content or []]
                for text in texts:
                    if isinstance(text, str):
                        _check_reasoning_markup(text, index)
            if isinstance(content, str):
                content = self.mark_text(content, index)
            elif isinstance(content, list):
                content = [
                    {**part, "text": self.mark_text(part["text"], index)}
                    if isinstance(part.get("text"), str)
                    else part
                    for part in content
                ]
            marked.append({**message, "content": content})
        return marked

    # -- 2. render -------------------------------------------------------------------------------------------------
    def render(
        self, conversations: list[list[dict]], *, add_generation_prompt: bool = False, spans: bool = False, **kwargs
    ) -> tuple[list[str], list[list[tuple[int, int]]]]:
        """Marked, rendered texts and (with `spans`) the character spans of their `{% generation %}` blocks."""
        marked = [self.mark(conv, i) for i, conv in enumerate(conversations)]
        texts, generation = render_jinja_template(
            conversations=marked,
            chat_template=self.chat_template,
            return_assistant_tokens_mask=spans,
            add_generation_prompt=add_generation_prompt,
            **{**self.tokenizer.special_tokens_map, **self.template_variables, **kwargs},
        )
        return texts, generation if spans else [[] for _ in texts]

    # -- 3. + 4. split and tokenize --------------------------------------------------------------------------------
    def as_text(self, string: str, index: int = 0, start: bool = False) -> list[int]:
        """Token ids of `string` read as plain text: no added token (special or not) is matched in it. `start`: the
        string begins the text (else it is tokenized as a continuation, see the module docstring)."""
        key = (string, start or self.continuation is None)
        if key not in self._as_text:
            ids = self._encode([string], as_text=True, start=start)[0]
            if self.control_ids.intersection(ids):
                # A non-special added token still matches with special-token splitting off: split the string so that
                # no piece holds it whole (each piece is shorter; one character cannot hold a multi-character token).
                ids = (
                    []
                    if len(string) < 2
                    else self.as_text(string[0], index, start) + self.as_text(string[1:], index, False)
                )
            if not ids or self.control_ids.intersection(ids):
                raise ContentError(
                    index,
                    f"the text {string!r} cannot be encoded as plain text by this tokenizer; remove it from the text",
                    "control string",
                )
            self._as_text[key] = ids
        return self._as_text[key]

    def _encode(self, strings: list[str], as_text: bool = False, start: bool = True) -> list[list[int]]:
        """Token ids of each string, without the tokens added around a sequence; `as_text`: no special token is
        matched; `start`: the strings begin a text (only then does a Metaspace tokenizer mark them)."""
        if not strings:
            return []
        if start or self.continuation is None:
            return self.tokenizer(strings, add_special_tokens=False, split_special_tokens=as_text)["input_ids"]
        self.continuation.encode_special_tokens = as_text
        return [e.ids for e in self.continuation.encode_batch(strings, add_special_tokens=False)]

    def pieces(self, text: str, spans: list[tuple[int, int]]) -> list[tuple[str, str, bool]]:
        """`text` as (kind, string, in_generation) pieces; kind is 'text', 'marked', 'image' or 'video'."""
        edges = sorted({e for span in spans for e in span} | {0, len(text)})
        out = []
        for start, end in zip(edges, edges[1:]):
            inside = any(s <= start and end <= e for s, e in spans)
            position = start
            for m in self.piece_re.finditer(text, start, end):
                if m.start() > position:
                    out.append(("text", text[position : m.start()], inside))
                if m.group("marked") is not None:
                    out.append(("marked", m.group("marked"), inside))
                elif self.image_token and m.group("image") is not None:
                    out.append(("image", m.group(), inside))
                elif self.video_token and m.group("video") is not None:
                    out.append(("video", m.group(), inside))
                position = m.end()  # a lone marker is dropped, but still separates the text around it
            if end > position:
                out.append(("text", text[position:end], inside))
        return out

    def _check_counts(self, texts_pieces, media: list[list], kind: str) -> None:
        for i, (row, items) in enumerate(zip(texts_pieces, media)):
            found = sum(k == kind for k, _, _ in row)
            if found != len(items):
                raise ContentError(
                    i,
                    f"the chat template wrote {found} {kind} placeholder(s) for {len(items)} {kind}(s); give each "
                    f"{kind} one {{'type': '{kind}'}} part in the messages",
                    f"{kind}/placeholder mismatch",
                )

    def _image_inputs(self, texts_pieces, images: list[list]) -> tuple[dict, list[list[str]]]:
        """The processor's image inputs and, per row, the expansion text of each image placeholder in order."""
        self._check_counts(texts_pieces, images, "image")
        if not any(images):
            return {}, [[] for _ in images]
        # Rows with images first: with a text-only row first, transformers takes the per-row replacement offsets
        # ([] for that row) for an array and fails to make a tensor of them (seen with the Idefics3 processor at
        # SmolVLM-256M's settings). Image rows keep their order, so the images are processed in the same order.
        order = sorted(range(len(images)), key=lambda i: not images[i])
        out = self.processor(
            text=[self.image_token * len(images[i]) for i in order],
            images=[images[i] for i in order],
            return_text_replacement_offsets=True,
            add_special_tokens=False,
            return_tensors="pt",
            padding=True,
        )
        back = sorted(range(len(order)), key=order.__getitem__)  # position of row i in `order`
        expansions = [[r["replacement"] for r in out["text_replacement_offsets"][j]] for j in back]
        inputs = {k: v for k, v in out.items() if k not in _TOKEN_KEYS}
        # The "tiles" layout (Idefics3) holds images per row (rows, images, ...), with a pixel_attention_mask: put its
        # rows back. The other layouts list images flat, one after another, an order the stable sort above kept.
        if order != sorted(order) and self.family.pixel_layout == "tiles":
            for key in ("pixel_values", "pixel_attention_mask"):
                inputs[key] = inputs[key][back]
        return inputs, expansions

    def _video_inputs(self, texts_pieces, videos: list[list]) -> tuple[dict, list[list[str]]]:
        """The processor's video inputs (only the rows with videos are processed) and, per row, the expansion text of
        each video placeholder in order. The frames are the sampled ones (`do_sample_frames=False`) and their
        `VideoMetadata` gives the processor the timestamps."""
        if any(videos) and self.video_token is None:  # before counting: its template may write no placeholder
            raise ContentError(
                next(i for i, v in enumerate(videos) if v),
                f"{type(self.processor).__name__} takes no videos; give the frames as images instead",
                "video unsupported",
            )
        self._check_counts(texts_pieces, videos, "video")
        if not any(videos):
            return {}, [[] for _ in videos]
        rows = [i for i, v in enumerate(videos) if v]
        flat = [video for i in rows for video in videos[i]]
        out = self.processor(
            text=[self.video_token * len(videos[i]) for i in rows],
            videos=[video.frames for video in flat],
            video_metadata=[video.metadata for video in flat],
            do_sample_frames=False,
            return_text_replacement_offsets=True,
            add_special_tokens=False,
            return_tensors="pt",
            padding=True,
        )
        expansions: list[list[str]] = [[] for _ in videos]
        for j, i in enumerate(rows):
            expansions[i] = [r["replacement"] for r in out["text_replacement_offsets"][j]]
        inputs = {k: v for k, v in out.items() if k not in _TOKEN_KEYS}
        inputs["_video_rows"] = rows
        return inputs, expansions

    def video_token_counts(self, videos: list) -> list[int]:
        """Tokens each video (a `Video`) expands to in this processor, its placeholder included (preflight's count)."""
        if not videos:
            return []
        _, expansions = self._video_inputs([[("video", self.video_token, False)] * len(videos)], [videos])
        return [len(ids) for ids in self._encode(expansions[0], start=False)]

    def _media_inputs(self, texts_pieces, images: list[list], videos: list[list]) -> tuple[dict, list[list[str]]]:
        """Image and video inputs of the batch, and per row the expansion of each placeholder in text order.

        Qwen2-VL keeps videos apart (`pixel_values_videos`, `video_grid_thw`), flat in row order like its images.
        SmolVLM encodes a video as its frames, each one image (`pixel_values` of shape (rows, images, 3, H, W) with a
        `pixel_attention_mask`): transformers' processor writes the video's `pixel_values` over the images' when a
        call has both, so they are processed apart and laid out here per row, in placeholder order."""
        image_inputs, image_exp = self._image_inputs(texts_pieces, images)
        video_inputs, video_exp = self._video_inputs(texts_pieces, videos)
        expansions = []
        for row, img, vid in zip(texts_pieces, image_exp, video_exp):
            img, vid = iter(img), iter(vid)
            expansions.append([next(img) if kind == "image" else next(vid) for kind, _, _ in row if kind in MEDIA])
        rows = video_inputs.pop("_video_rows", [])
        if self.family.pixel_layout != "tiles" or "pixel_attention_mask" not in video_inputs:
            return {**image_inputs, **video_inputs}, expansions
        if any(images) and "pixel_values" not in image_inputs:
            raise NotImplementedError(
                "SmolVLM batches that mix videos and images need the images' pixel values in the collator: use "
                "image_processing: processor (or worker) for video data, not device."
            )
        return _per_row_pixels(self, texts_pieces, expansions, image_inputs, video_inputs, rows), expansions

    def encode_rendered(
        self,
        texts: list[str],
        images: list[list],
        spans: list[list[tuple[int, int]]] | None = None,
        padding_side: str | None = "right",
        videos: list[list] | None = None,
        expand_media: bool = True,
    ) -> dict:
        """Tokenize marked, rendered `texts` with their `images` and `videos` (`Video`s; a list per row).
        `padding_side=None` returns unpadded lists of ids (and no tensors for token-aligned keys). `expand_media=False`
        leaves each image / video placeholder as the template wrote it (one placeholder per image, nothing processed:
        the prompt an engine that runs the processor itself takes, e.g. vLLM; vlm_recipes.training.vllm_prompts)."""
        spans = spans or [[] for _ in texts]
        rows = [self.pieces(text, s) for text, s in zip(texts, spans)]
        if expand_media:
            image_inputs, expansions = self._media_inputs(rows, images, videos or [[] for _ in texts])
        else:
            self._check_counts(rows, images, "image")
            image_inputs, expansions = {}, [[string for kind, string, _ in row if kind in MEDIA] for row in rows]
        # Every 'text' and 'image' piece of the batch, tokenized in two calls: the pieces that begin a text, the rest.
        plain: dict[bool, list[str]] = {True: [], False: []}
        for i, row in enumerate(rows):
            next_media = iter(expansions[i])
            for k, (kind, string, _) in enumerate(row):
                if kind != "marked":
                    plain[k == 0].append(next(next_media) if kind in MEDIA else string)
        plain_ids = {start: iter(self._encode(strings, start=start)) for start, strings in plain.items()}
        input_ids, masks = [], []
        for i, (row, text) in enumerate(zip(rows, texts)):
            prefix = [] if self.tokenizer.bos_token and text.startswith(self.tokenizer.bos_token) else self.prefix_ids
            ids, mask = list(prefix), [0] * len(prefix)
            for k, (kind, string, inside) in enumerate(row):
                piece = self.as_text(string, i, start=k == 0) if kind == "marked" else next(plain_ids[k == 0])
                ids += piece
                mask += [int(inside)] * len(piece)
            input_ids.append(ids)
            masks.append(mask)
        batch = {"input_ids": input_ids, "attention_mask": [[1] * len(ids) for ids in input_ids]}
        if getattr(self.processor, "return_mm_token_type_ids", False):  # under the name the model reads them by
            batch[self.family.token_types_input] = self.processor.create_mm_token_type_ids(input_ids)
        if any(s for s in spans):
            batch["assistant_masks"] = masks
        if padding_side is not None:
            batch = self.pad(batch, padding_side)
        return {**batch, **image_inputs}

    def pad(self, batch: dict, side: str) -> dict[str, torch.Tensor]:
        """Lists of token-aligned values as tensors padded to the longest row (input_ids with the pad token)."""
        width = max((len(ids) for ids in batch["input_ids"]), default=0)
        out = {}
        for key, rows in batch.items():
            fill = self.pad_token_id if key == "input_ids" else 0
            padded = [
                [fill] * (width - len(r)) + list(r) if side == "left" else list(r) + [fill] * (width - len(r))
                for r in rows
            ]
            out[key] = torch.tensor(padded, dtype=torch.long).reshape(len(rows), width)
        return out

    @cached_property
    def pad_token_id(self) -> int:
        if self.tokenizer.pad_token_id is None:
            raise ValueError("The processor's tokenizer has no pad token; set tokenizer.pad_token before training.")
        return self.tokenizer.pad_token_id

    # -- all together ----------------------------------------------------------------------------------------------
    def __call__(
        self,
        conversations: list[list[dict]],
        *,
        add_generation_prompt: bool = False,
        assistant_mask: bool = False,
        padding_side: str | None = "right",
        **template_kwargs,
    ) -> dict:
        texts, spans = self.render(
            conversations, add_generation_prompt=add_generation_prompt, spans=assistant_mask, **template_kwargs
        )
        images = [images_of(conv) for conv in conversations]
        videos = [videos_of(conv) for conv in conversations]
        batch = self.encode_rendered(texts, images, spans, padding_side, videos)
        if assistant_mask and "assistant_masks" not in batch:  # no assistant turn in the whole batch
            batch["assistant_masks"] = torch.zeros_like(batch["input_ids"])
        return batch


def _prefix_ids(tokenizer) -> list[int]:
    """The ids the tokenizer adds in front of a sequence when it adds special tokens (Llama: `<s>`; byte-level BPEs of
    SmolVLM / Qwen2: none). transformers' processors add them to a rendered chat unless it starts with the bos token.
    Tokens added after a sequence (an eos) are not: they would end every prompt."""
    probe = "a"
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start]
    return []


def _continuation_tokenizer(tokenizer):
    """None when a piece of text is tokenized the same at the start of a text and after a control token (byte-level
    BPEs); else a copy of the backend tokenizer that tokenizes pieces as continuations: SentencePiece-style Metaspace
    pre-tokenizers with `prepend_scheme: first` mark only the first piece of a text with `▁`."""
    import json

    from tokenizers import Tokenizer

    added = next((t.content for t in tokenizer.added_tokens_decoder.values() if t.special), None)
    probe = "a b"
    alone = tokenizer(probe, add_special_tokens=False)["input_ids"]
    if added is None:
        return None
    anchor = tokenizer(added, add_special_tokens=False)["input_ids"]
    after = tokenizer(added + probe, add_special_tokens=False)["input_ids"][len(anchor) :]
    if after == alone:
        return None

    def never_prepend(node):
        if isinstance(node, dict):
            if node.get("type") == "Metaspace":
                node["prepend_scheme"] = "never"
            for value in node.values():
                never_prepend(value)
        elif isinstance(node, list):
            for value in node:
                never_prepend(value)

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    never_prepend(spec.get("pre_tokenizer"))
    continuation = Tokenizer.from_str(json.dumps(spec))
    if continuation.encode(probe, add_special_tokens=False).ids != after:
        raise NotImplementedError(
            f"{type(tokenizer).__name__} tokenizes text differently at the start of a sequence, in a way vlm_recipes "
            "cannot reproduce piece by piece (not a Metaspace pre-tokenizer)."
        )
    return continuation


def images_of(conversation: list[dict]) -> list:
    """The images of a conversation in the order the template places them (messages, then parts, in order)."""
    found = []
    for message in conversation:
        content = message.get("content")
        if isinstance(content, list):
            found += [part["image"] for part in content if part.get("type") == "image" and "image" in part]
    return found


def _per_row_pixels(encoder, texts_pieces, expansions, image_inputs: dict, video_inputs: dict, video_rows) -> dict:
    """SmolVLM's per-row pixel layout with every row's images and video frames in placeholder order, zero-padded (a
    zero image is dropped by the model; the attention mask is 0 on padding)."""
    token, per_image = encoder.processor.image_token, encoder.processor.image_seq_len
    sources = {"image": image_inputs, "video": video_inputs}
    where = {"video": {i: j for j, i in enumerate(video_rows)}}
    entries: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
    for i, (row, exp) in enumerate(zip(texts_pieces, expansions)):
        taken = {"image": 0, "video": 0}
        out = []
        kinds = [kind for kind, _, _ in row if kind in MEDIA]
        for kind, text in zip(kinds, exp):
            n = text.count(token) // per_image  # one image (tile, global image or frame) per block of <image>s
            r = where.get(kind, {}).get(i, i)
            for k in range(taken[kind], taken[kind] + n):
                out.append((sources[kind]["pixel_values"][r, k], sources[kind]["pixel_attention_mask"][r, k]))
            taken[kind] += n
        entries.append(out)
    first = video_inputs["pixel_values"]
    height = max(t.shape[-2] for s in sources.values() if "pixel_values" in s for t in [s["pixel_values"]])
    width = max(t.shape[-1] for s in sources.values() if "pixel_values" in s for t in [s["pixel_values"]])
    count = max(1, max(len(e) for e in entries))
    pixels = first.new_zeros((len(entries), count, first.shape[2], height, width))
    mask = video_inputs["pixel_attention_mask"].new_zeros((len(entries), count, height, width))
    for i, row in enumerate(entries):
        for k, (value, m) in enumerate(row):
            pixels[i, k, :, : value.shape[-2], : value.shape[-1]] = value
            mask[i, k, : m.shape[-2], : m.shape[-1]] = m
    return {"pixel_values": pixels, "pixel_attention_mask": mask}
