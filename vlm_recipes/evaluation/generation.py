"""Held-out evaluation by generation: batched greedy decoding, scored by our local `evaluate` metric modules.

transformers' `generate` does the decoding; this module adds the batching with our prompt collator (left
padding, images) and scores the answers with `vlm_recipes.evaluation.metrics` (normalised exact match for the training
recipes; the method record may choose another, e.g. ROUGE-L for free-form answers), the same code
`recipes/evaluate_models.py` uses, so every recipe reports before/after figures the same way.

Answers are decoded with `skip_special_tokens=True`, so a control token the model writes on purpose is gone from
the prediction where the tokenizer marks it special (the real Qwen2-VL's `<|box_start|>`, `<|object_ref_start|>`,
...: a grounding answer comes back as `red circle(100,200),(300,400)`). `as_decoded` gives the references the same
treatment, in this one place, before any metric sees them: reference and prediction are compared as the same kind
of text, whatever the metric.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from ..data.collation import PreferenceCollator, PromptCollator, build_collator
from ..data.loading import final_answer, reference_answer
from ..grounding.boxes import QWEN2_VL_MARKERS
from ..models.families import family_of
from ..models.label_head import completion_logps, has_label_head
from .metrics import score


@contextmanager
def _evaluating(model):
    """Eval mode and no gradients for the block; the model's previous mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _batches(model, rows, batch_size: int, collate, desc: str):
    """Collated batches of `rows`, on the model's device, with a progress bar."""
    device = next(model.parameters()).device
    for start in tqdm(range(0, len(rows), batch_size), desc=desc, leave=False):
        batch = collate([rows[i] for i in range(start, min(start + batch_size, len(rows)))])
        yield {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def generate_answers(
    model,
    processor,
    rows,
    batch_size: int = 16,
    max_new_tokens: int = 16,
    desc: str = "generating",
    messages_key: str = "messages",
    video: dict | None = None,
) -> list[str]:
    """Greedy answers to each row's conversation (its final assistant turn, if any, is left out); `video`: the frame
    sampling of rows with videos (`vlm_recipes.data.video.load_video`'s settings), as in training."""
    collate = build_collator(PromptCollator, processor, messages_key=messages_key, video=video)
    tokenizer = processor.tokenizer
    answers: list[str] = []
    with _evaluating(model):
        for batch in _batches(model, rows, batch_size, collate, desc):
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=family_of(processor).stop_token_ids(tokenizer),  # eos and the end-of-turn token
            )
            new_tokens = out[:, batch["input_ids"].shape[1] :]
            answers += [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return answers


def decoded_away(tokenizer) -> tuple[str, ...]:
    """The control tokens a box convention writes on purpose (Qwen2-VL's box and object markers,
    vlm_recipes.grounding.boxes) that `decode(..., skip_special_tokens=True)` drops because the tokenizer holds them as
    special tokens. Nothing else: any other control-token string in a reference is data, trained as text (the chat
    encoder), so the model writes it as text and decoding keeps it."""
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    special = {token.content for token in added.values() if getattr(token, "special", False)}
    special |= set(getattr(tokenizer, "all_special_tokens", None) or ())
    return tuple(marker for marker in QWEN2_VL_MARKERS if marker in special)


def as_decoded(reference, tokenizer):
    """`reference` (a string, or a list of acceptable strings) as the model's answer would read after decoding with
    `skip_special_tokens=True`: without the box markers that decoding drops (`decoded_away`), stripped like answers.
    With the real Qwen2-VL tokenizer, "<|object_ref_start|>red circle<|object_ref_end|><|box_start|>(1,2),(3,4)
    <|box_end|>" reads "red circle(1,2),(3,4)", as the model's decoded answer does."""
    if reference is None:
        return None
    if not isinstance(reference, str):
        return [as_decoded(r, tokenizer) for r in reference]
    for token in decoded_away(tokenizer):
        reference = reference.replace(token, "")
    return reference.strip()


def held_out_metrics(
    model,
    processor,
    rows,
    batch_size: int,
    max_new_tokens: int,
    when: str,
    messages_key: str = "messages",
    metrics=(),
    references_column: str | None = None,
    headline: tuple[str, str] = ("accuracy", "exact_match"),
    video: dict | None = None,
) -> dict:
    """The training recipes' held-out figures from greedy generation: the `headline` (key, metric) of the method
    (by default exact match as `accuracy`) against each row's trained answer, plus each metric named in `metrics`,
    scored against `references_column` (default: the trained answer), all by the metric modules
    `recipes/evaluate_models.py` uses; rows with videos are sampled by `video` as in training. Returns
    {"metrics": {...}, "generated": predictions and references}."""
    key, metric = headline
    predictions = generate_answers(
        model, processor, rows, batch_size, max_new_tokens, f"{key} {when}", messages_key, video
    )
    tokenizer = getattr(processor, "tokenizer", processor)
    references = [as_decoded(final_answer(rows[i]), tokenizer) for i in range(len(rows))]
    generated = {"predictions": predictions, "references": references}
    figures = {key: score(metric, predictions, generated["references"])[metric]}
    if metrics:
        references = [as_decoded(reference_answer(rows[i], references_column), tokenizer) for i in range(len(rows))]
        for name in metrics:
            figures[name] = score(name, generated["predictions"], references)[name]
    return {"metrics": figures, "generated": generated}


def sequence_logps(model, batch: dict) -> torch.Tensor:
    """Sum of the log-probabilities of the tokens where `completion_mask` is 1, one value per row."""
    mask = batch.pop("completion_mask")
    if has_label_head(model):
        # The head runs at the completion tokens only: no (batch, length, vocabulary) logits (models/label_head.py).
        return completion_logps(model, batch, mask)
    logits = model(**batch).logits[:, :-1].float()  # a model without a separate head: its full logits
    targets = batch["input_ids"][:, 1:]
    token_logps = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (token_logps * mask[:, 1:]).sum(dim=1)


def preference_accuracy(model, processor, rows, batch_size: int = 16, desc: str = "preference accuracy") -> dict:
    """Fraction of held-out pairs where the model gives the chosen response a higher log-probability."""
    margins: list[float] = []
    with _evaluating(model):
        for batch in _batches(model, rows, batch_size, build_collator(PreferenceCollator, processor), desc):
            chosen, rejected = sequence_logps(model, batch).chunk(2)
            margins += (chosen - rejected).tolist()
    return {
        "preference_accuracy": sum(m > 0 for m in margins) / max(len(margins), 1),
        "mean_margin": sum(margins) / max(len(margins), 1),
    }
