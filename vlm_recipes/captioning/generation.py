"""Batched captioning and VQA with BLIP, and the collators that turn rows into BLIP's training batches.

transformers' `BlipForConditionalGeneration.generate` continues a text prompt (or starts from `[DEC]`) and
`BlipForQuestionAnswering.generate` answers a question. What we add:
- batches of any size, with the prompt removed from the caption (BLIP's own code cuts it off the same way);
- VQA answers that do not depend on the batch. In transformers 5.23 the answer decoder cannot mask the question's
  padding: `BlipTextLayer` hands the encoder mask to its cross-attention as `attention_mask`, which
  `BlipTextSelfAttention` then replaces with its own (absent) `encoder_attention_mask`, so every padded position of
  the encoded question is attended to, whatever mask is passed. In a batch of questions of different lengths an
  answer then changed with its neighbours (seen on the tiny BLIP). We batch questions of equal token length only
  (no padding at all) and return the answers in the input order, so a batch answers exactly as one question at a
  time (a test checks it);
- the training collators: the decoder's input starts with `[DEC]` (BLIP's decoder start token; the processor puts
  `[CLS]` there and transformers' captioning forward does not replace it, while its generate does), labels are -100
  on padding and on the prompt (BLIP does not train on its prompt), and one of an image's references is drawn per
  row and step (COCO has five): an epoch covers every image once.
"""

from __future__ import annotations

import random
from collections import Counter

import torch
from tqdm.auto import tqdm

from .modeling import base_model


def _device(model):
    return next(model.parameters()).device


def _rgb(images, start, stop):
    return [images[i].convert("RGB") for i in range(start, min(stop, len(images)))]


@torch.no_grad()
def generate_captions(
    model, processor, images, prompt=None, batch_size=32, max_new_tokens=20, num_beams=1, desc="captioning"
) -> list[str]:
    """One caption per image (any sequence of PIL images), continuing `prompt` if given; the prompt is not part of
    the returned caption."""
    model.eval()
    captions = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, leave=False):
        chunk = _rgb(images, start, start + batch_size)
        text = [prompt] * len(chunk) if prompt else None
        inputs = processor(images=chunk, text=text, return_tensors="pt").to(_device(model))
        ids = model.generate(**inputs, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False)
        # generate drops the prompt's trailing [SEP] and starts with [DEC]: the caption begins after that many ids.
        start_at = inputs["input_ids"].shape[1] - 1 if prompt else 1
        captions += [c.strip() for c in processor.batch_decode(ids[:, start_at:], skip_special_tokens=True)]
    return captions


@torch.no_grad()
def answer_questions(
    model, processor, images, questions, batch_size=32, max_new_tokens=10, num_beams=1, desc="answering"
) -> list[str]:
    """One answer per (image, question), in input order; batches hold questions of one token length (see above)."""
    model.eval()
    blip = base_model(model)
    text_config = blip.config.text_config
    lengths = [len(ids) for ids in processor.tokenizer(list(questions)).input_ids]
    groups: dict[int, list[int]] = {}
    for i, length in enumerate(lengths):
        groups.setdefault(length, []).append(i)
    batches = [g[s : s + batch_size] for g in groups.values() for s in range(0, len(g), batch_size)]
    answers: list[str] = [""] * len(questions)
    for batch in tqdm(batches, desc=desc, leave=False):
        inputs = processor(
            images=[images[i].convert("RGB") for i in batch], text=[questions[i] for i in batch], return_tensors="pt"
        ).to(_device(model))
        image_embeds = blip.vision_model(pixel_values=inputs["pixel_values"]).last_hidden_state
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        question = blip.text_encoder(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=image_mask,
        ).last_hidden_state
        start_ids = torch.full((len(batch), 1), text_config.bos_token_id, device=question.device)
        ids = blip.text_decoder.generate(
            input_ids=start_ids,
            eos_token_id=text_config.sep_token_id,
            pad_token_id=text_config.pad_token_id,
            encoder_hidden_states=question,
            encoder_attention_mask=inputs["attention_mask"],
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
        )
        for i, answer in zip(batch, processor.batch_decode(ids[:, 1:], skip_special_tokens=True)):
            answers[i] = answer.strip()
    return answers


class CaptionCollator:
    """Caption rows -> a BlipForConditionalGeneration training batch.

    Args:
        processor: the checkpoint's BlipProcessor.
        bos_token_id: the decoder's start token (`config.text_config.bos_token_id`, `[DEC]`).
        prompt: a prefix every caption continues (e.g. "a picture of"); not a target. Default: none.
        max_length: captions are truncated to this many tokens (default 40).
        seed: which reference of each row is drawn, reproducibly.

    Input rows: {"image": PIL image, "captions": list of str}. Output keys: `pixel_values` [B, 3, H, W],
    `input_ids` and `attention_mask` [B, T] (`[DEC]` first), `labels` [B, T] (-100 on padding and the prompt).

    >>> # rows [{"image": im, "captions": ["a red circle on the left"]}], prompt "a picture of":
    >>> # input_ids [DEC] a picture of a red circle on the left [SEP]; labels -100 x 4, then the caption and [SEP]
    """

    def __init__(self, processor, bos_token_id: int, prompt: str | None = None, max_length: int = 40, seed: int = 0):
        self.processor, self.bos, self.prompt, self.max_length = processor, bos_token_id, prompt, max_length
        self.rng = random.Random(seed)
        # [CLS] + the prompt's tokens (no [SEP]): the positions that are not targets.
        self.prompt_len = len(processor.tokenizer(prompt).input_ids) - 1 if prompt else 0

    def __call__(self, rows: list[dict]) -> dict:
        captions = [self.rng.choice(row["captions"]) for row in rows]
        texts = [f"{self.prompt} {c}" if self.prompt else c for c in captions]
        batch = self.processor(
            images=[row["image"].convert("RGB") for row in rows],
            text=texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        input_ids = batch["input_ids"].clone()
        input_ids[:, 0] = self.bos
        labels = input_ids.masked_fill(batch["attention_mask"] == 0, -100)
        labels[:, : self.prompt_len] = -100
        return {
            "pixel_values": batch["pixel_values"],
            "input_ids": input_ids,
            "attention_mask": batch["attention_mask"],
            "labels": labels,
        }


def majority_answer(answers: list[str]) -> str:
    """The most frequent of the human answers (ties: the first given); what VQA fine-tuning trains on."""
    counts = Counter(answers)
    return max(answers, key=lambda a: counts[a])


class VQACollator:
    """VQA rows -> a BlipForQuestionAnswering training batch.

    Input rows: {"image", "question": str, "answers": list of str}. Output keys: `pixel_values`, `input_ids` and
    `attention_mask` (the question, `[CLS] ... [SEP]`), `decoder_input_ids` and `decoder_attention_mask`
    (`[DEC]` answer `[SEP]`), `labels` (the decoder ids, -100 on padding). The answer is the most frequent human one.
    """

    def __init__(self, processor, bos_token_id: int, max_length: int = 40):
        self.processor, self.bos, self.max_length = processor, bos_token_id, max_length

    def __call__(self, rows: list[dict]) -> dict:
        batch = self.processor(
            images=[row["image"].convert("RGB") for row in rows],
            text=[row["question"] for row in rows],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        answers = self.processor.tokenizer(
            [majority_answer(row["answers"]) for row in rows],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        decoder_ids = answers["input_ids"].clone()
        decoder_ids[:, 0] = self.bos
        return {
            "pixel_values": batch["pixel_values"],
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "decoder_input_ids": decoder_ids,
            "decoder_attention_mask": answers["attention_mask"],
            "labels": decoder_ids.masked_fill(answers["attention_mask"] == 0, -100),
        }
