"""GRPO and RLOO on rows with two images, one image and none in one generation batch and one step (issue 31).

The `mixed_images` synthetic task (vlm_recipes/data/synthetic.py) makes every third row a two-image row ("Which image
shows a circle: the first or the second?"), a one-image row ("What color is the shape?") or a text-only row ("Repeat
the colour: blue."): a completion scored against another row's images or answer would be scored wrongly. One short run
per family (random tiny models; 6 prompts x 4 generations per generation batch, which is every training row, two
optimizer steps of 12 completions per generation, a KL term) checks at every step:

(a) rows: each completion the loss scores was sampled for the same prompt and the same images, the images taken as
    the model assigns them to rows (SmolVLM: the non-zero tiles of `pixel_values` in order, Qwen2-VL: the patches of
    each image by `image_grid_thw`, each row taking as many as it has image tokens);
(b) rewards: the reward function receives, with each completion, the fields (answer, question, images) of the row it
    was sampled for;
(c) log-probs: those the sampler drew each completion with (after temperature) equal the loss's on the first step of
    a generation, and the old log-probs TRL computes over the generation batch in chunks, within 1e-4.
"""

import hashlib

import pytest
import torch
from helpers import run_recipe

from vlm_recipes.paths import REPO_ROOT

pytestmark = pytest.mark.learning

CONFIGS = REPO_ROOT / "recipes" / "configs"
TOLERANCE = 1e-4


def image_units(pixels: dict) -> list[torch.Tensor]:
    """The image inputs of a batch in the order the model places them: SmolVLM's tiles (an all-zero tile is padding,
    the model's own rule), Qwen2-VL's images (each its `image_grid_thw` patches)."""
    values = pixels.get("pixel_values")
    if values is None:
        return []
    if pixels.get("image_grid_thw") is not None:
        return list(torch.split(values, pixels["image_grid_thw"].prod(-1).tolist()))
    if values.dim() == 4:  # LLaVA: one (C, H, W) per image
        return list(values)
    return [unit for unit in values.flatten(0, 1) if unit.any()]


def units_by_row(ids: torch.Tensor, pixels: dict, image_token_id: int) -> list[list[torch.Tensor]]:
    """Per row of `ids`, the image units the model puts on its image tokens: the units in order, each covering image
    tokens in proportion to its size, each row taking as many as it has image tokens."""
    units = image_units(pixels)
    tokens = (ids == image_token_id).sum(1).tolist()
    sizes = [u.shape[0] if pixels.get("image_grid_thw") is not None else 1 for u in units]
    per_size = sum(tokens) / max(sum(sizes), 1)
    rows, k = [], 0
    for i, needed in enumerate(tokens):
        row, covered = [], 0
        while covered < needed:
            assert k < len(units), f"row {i}: {needed} image tokens but the batch's images ran out"
            row.append(units[k])
            covered += round(sizes[k] * per_size)
            k += 1
        assert covered == needed, f"row {i}: {needed} image tokens, its images cover {covered}"
        rows.append(row)
    assert k == len(units), f"{len(units) - k} image(s) of the batch on no row's image tokens"
    return rows


def same_images(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b))


def fingerprint(images) -> tuple[str, ...]:
    return tuple(hashlib.sha1(image.convert("RGB").tobytes()).hexdigest() for image in images or [])


class Recorder:
    """The hooks: what the sampler drew (per row: prompt ids, images, completion tokens, log-probs), and the checks the
    reward function and the loss make against it."""

    def __init__(self, trainer_class, rows):
        self.trainer_class = trainer_class
        # (question, the images' bytes) -> the row's answer: what the reward must be handed for that prompt
        self.answers = {(r["question"], fingerprint(r["images"])): r["answer"] for r in rows}
        self.trainer = None
        self.sampled: list[dict] = []
        self.fresh = False  # the next loss step is the first of a generation
        self.reward_kinds, self.loss_rows, self.gaps = [], [], []

    @property
    def image_token_id(self) -> int:
        return self.trainer.model.config.image_token_id

    def generate(self, original):
        def recording_generate(model, *args, **kwargs):
            config = kwargs.get("generation_config")
            if config is None or not config.do_sample:
                return original(model, *args, **kwargs)
            out = original(model, *args, output_logits=True, return_dict_in_generate=True, **kwargs)
            ids, mask = kwargs["input_ids"], kwargs["attention_mask"].bool()
            completions = out.sequences[:, ids.shape[1] :]
            # The sampler's distribution at temperature, before TRL's `suppress_tokens` takes the image token out of it
            # (a token the loss does not take out: with a random model's ~1/578 on it, 2-4e-3 between the two).
            logps = (torch.stack(out.logits, 1).float() / config.temperature).log_softmax(-1)
            logps = logps.gather(-1, completions.unsqueeze(-1)).squeeze(-1)
            images = units_by_row(ids, kwargs, model.config.image_token_id)
            self.sampled = [
                dict(prompt=ids[j][mask[j]].tolist(), images=images[j], completion=completions[j], logps=logps[j])
                for j in range(ids.shape[0])
            ]
            self.fresh = True
            return out.sequences

        return recording_generate

    def generate_and_score(self, original):
        def keep_trainer(trainer, inputs):
            self.trainer = trainer
            return original(trainer, inputs)

        return keep_trainer

    def drawn(self, completion: list[int], images: list[torch.Tensor], prompt: list[int] | None = None) -> list[dict]:
        """The sampled rows with these completion tokens and images (and prompt ids, when given)."""
        return [
            s
            for s in self.sampled
            if s["completion"][: len(completion)].tolist() == completion
            and same_images(s["images"], images)
            and (prompt is None or s["prompt"] == prompt)
        ]

    def reward(self, original):
        def checking_reward(
            completions, answer=None, completion_ids=None, images=None, question=None, task=None, **kw
        ):
            if completion_ids is None:  # the held-out figures score greedy generations: nothing sampled to check
                return original(completions, answer=answer, **kw)
            processor = self.trainer.processing_class
            decode = processor.tokenizer.decode
            for i, ids in enumerate(completion_ids):
                key = (question[i], fingerprint(images[i]))
                assert key in self.answers and answer[i] == self.answers[key], f"completion {i}: not its row's answer"
                own = (
                    image_units(dict(processor.image_processor(images=[images[i]], return_tensors="pt")))
                    if images[i]
                    else []
                )
                drawn = [s for s in self.drawn(list(ids), own) if question[i] in decode(s["prompt"])]
                assert drawn, f"completion {i} ({task[i]}): the reward got a row it was not sampled for"
            self.reward_kinds.append(sorted(set(task)))
            return original(completions, answer=answer, **kw)

        checking_reward.__name__ = original.__name__
        return checking_reward

    def loss(self, original):
        def checking_loss(trainer, model, inputs):
            prompt, completion = inputs["prompt_ids"], inputs["completion_ids"]
            mask = inputs["completion_mask"].bool()
            images = units_by_row(prompt, inputs, self.image_token_id)
            keys = ("pixel_values", "pixel_attention_mask", "image_grid_thw", "num_images", "mm_token_type_ids")
            with torch.no_grad():
                logps, _, _ = trainer._get_per_token_logps_and_entropies(
                    model,
                    torch.cat([prompt, completion], 1),
                    torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1),
                    completion.size(1),
                    **{k: inputs[k] for k in keys if inputs.get(k) is not None},
                )
            for i in range(completion.size(0)):
                tokens = completion[i][mask[i]].tolist()
                own_prompt = prompt[i][inputs["prompt_mask"][i].bool()].tolist()
                drawn = self.drawn(tokens, images[i], own_prompt)
                assert drawn, f"loss row {i}: no completion was sampled with these tokens for this prompt and images"
                sampler = drawn[0]["logps"][: len(tokens)]
                if self.fresh:  # the policy the sampler ran: the loss's log-probs are the sampler's
                    self.gaps.append((sampler - logps[i, : len(tokens)]).abs().max().item())
                if inputs.get("old_per_token_logps") is not None:  # GRPO: computed at generation, in chunks
                    self.gaps.append((sampler - inputs["old_per_token_logps"][i, : len(tokens)]).abs().max().item())
                if inputs.get("old_logps") is not None:  # RLOO: their sum over the completion
                    self.gaps.append((sampler.sum() - inputs["old_logps"][i]).abs().item())
            self.loss_rows.append(sorted({len(row) for row in images}))
            self.fresh = False
            return original(trainer, model, inputs)

        return checking_loss


@pytest.mark.parametrize(
    "method, family",
    [
        ("grpo", "smolvlm"),
        ("grpo", "qwen2_vl"),
        ("rloo", "smolvlm"),
        pytest.param("grpo", "llava", marks=pytest.mark.slow),
    ],
)
def test_rows_with_two_images_one_and_none_train_on_their_own_images(tmp_path, monkeypatch, method, family):
    import transformers.generation.utils as generation_utils
    from trl import GRPOTrainer, RLOOTrainer

    from vlm_recipes.data import synthetic
    from vlm_recipes.data.loading import SYNTHETIC_TRAIN_SEED
    from vlm_recipes.training import rewards

    trainer_class = {"grpo": GRPOTrainer, "rloo": RLOOTrainer}[method]
    rows = synthetic.make_dataset("mixed_images", 6, SYNTHETIC_TRAIN_SEED, 64)
    recorder = Recorder(trainer_class, rows)
    mixin = generation_utils.GenerationMixin
    monkeypatch.setattr(mixin, "generate", recorder.generate(mixin.generate))
    monkeypatch.setattr(
        trainer_class,
        "_generate_and_score_completions",
        recorder.generate_and_score(trainer_class._generate_and_score_completions),
    )
    monkeypatch.setattr(trainer_class, "_compute_loss", recorder.loss(trainer_class._compute_loss))
    monkeypatch.setitem(rewards.REWARDS, "accuracy", recorder.reward(rewards.REWARDS["accuracy"]))
    config = CONFIGS / f"tiny-{family.replace('_', '-')}" / f"{method}.yaml"
    run_recipe(
        method, config, tmp_path / "run", "--model_name_or_path", f"tiny:{family}-random",
        "--synthetic_task", "mixed_images", "--synthetic_train_samples", "6", "--max_steps", "12",
        "--per_device_train_batch_size", "4", "--steps_per_generation", "6", "--temperature", "0.7",
        "--max_eval_samples", "3", "--per_device_eval_batch_size", "3",
    )  # fmt: skip
    assert len(recorder.gaps) == 12 * 4 + 2 * 4 and max(recorder.gaps) < TOLERANCE, max(recorder.gaps)
    # Two generation batches of every row: each handed the reward all three kinds of row together.
    assert recorder.reward_kinds == [["one_image", "text_only", "two_images"]] * 2, recorder.reward_kinds
    # Twelve optimizer steps, each of 4 completions drawn at random from the 24 of a generation: rows of several kinds.
    assert len(recorder.loss_rows) == 12 and any(len(kinds) > 1 for kinds in recorder.loss_rows), recorder.loss_rows


@pytest.mark.unit
def test_question_answer_rows_get_one_placeholder_per_image_of_their_own(tmp_path):
    """User data with `question_column` / `answer_column`: a row with a list of two images gets two image parts, a row
    with one image one, a row with none (an empty list or null: a text-only row) none; and a single-image column with
    a null row becomes a text-only row, not a row with a missing image."""
    import json

    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature
    from PIL import Image

    from vlm_recipes.data.loading import _load_local, to_conversations
    from vlm_recipes.settings import DataArguments

    for name in ("a", "b", "c"):
        Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / f"{name}.png")
    images = [["a.png", "b.png"], ["c.png"], [], None]
    with open(tmp_path / "rows.jsonl", "w") as f:
        for i, row_images in enumerate(images):
            f.write(json.dumps({"images": row_images, "question": f"q{i}", "answer": f"a{i}"}) + "\n")
    args = DataArguments(
        dataset_name=str(tmp_path / "rows.jsonl"), image_column="images", question_column="question",
        answer_column="answer",
    )  # fmt: skip
    ds = to_conversations(_load_local(args)["train"], args)

    def parts(messages):
        return [p["type"] for p in messages[0]["content"]]

    assert [parts(m) for m in ds["messages"]] == [["image", "image", "text"], ["image", "text"], ["text"], ["text"]]
    assert [len(row) for row in ds["images"]] == [2, 1, 0, 0]

    single = Dataset.from_dict(
        {"image": [Image.new("RGB", (8, 8)), None], "question": ["q0", "q1"], "answer": ["a0", "a1"]},
        features=Features({"image": ImageFeature(), "question": Value("string"), "answer": Value("string")}),
    )
    args.image_column = "image"
    ds = to_conversations(single, args)
    assert [parts(m) for m in ds["messages"]] == [["image", "text"], ["text"]]
    assert [len(row) for row in ds["images"]] == [1, 0]
