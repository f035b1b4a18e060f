"""A run's base model and fine-tuned model side by side, for one question at a time (the web demo, recipes/demo.py).

transformers generates and streams (`TextIteratorStreamer`), PEFT loads the adapter and switches it off
(`disable_adapter`), and our `PromptCollator` encodes the prompt exactly as held-out evaluation does. What this module
adds:

- `load_run`: a run directory of any training recipe, as it is written: a LoRA/QLoRA adapter (the base is loaded once
  and the adapter put on top; the base's answers come from the same weights with the adapter switched off), a merged
  model (`recipes/merge_adapter.py`, `merge_info.json` names its base) or a full fine-tune (`eval_results.json` names
  its base): two models then, sharing the run's processor as training's before/after evaluation did;
- `stream_answer`: one prompt, streamed; greedy by default, the final text equal to what `generate_answers` (the
  held-out evaluation) returns for the same row;
- `open_upload`: an uploaded file checked server-side (size, not an image, damaged), errors that name the file
  and the fix;
- `held_out_examples`: the rows the run evaluated on, rebuilt from its data settings (`data_config.json`, written by
  every training run, or the YAML it was trained with).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from ..data.collation import PromptCollator, build_collator
from ..data.images import to_rgb
from ..data.loading import question_messages
from ..data.video import VIDEO_EXTENSIONS, VideoError, load_video
from ..models.families import family_of
from ..models.sources import resolve
from ..outputs import RESULTS_FILE
from ..settings import DataArguments, GenerateArguments, VLMModelConfig
from .inference import IMAGE_SUFFIXES, dataset_rows, load_for_inference, pick_device, prompt_text

logger = logging.getLogger(__name__)

DATA_CONFIG_FILE = "data_config.json"  # the run's DataArguments (vlm_recipes.training.run.save_outputs)
MERGE_INFO_FILE = "merge_info.json"  # recipes/merge_adapter.py


class UploadError(ValueError):
    """An uploaded file the demo cannot use; the message names the file and says what to upload instead."""


# -- the run's models ----------------------------------------------------------------------------------------------


@dataclass
class RunModels:
    """The fine-tuned model of a run and its base, ready to answer.

    `base` is None for an adapter run: the base answers with the adapter switched off (`peft`'s `disable_adapter`),
    so one copy of the weights serves both."""

    run_dir: Path
    kind: str  # "adapter", "merged" or "full"
    base_name: str
    tuned: object
    processor: object
    base: object = None
    results: dict = field(default_factory=dict)  # eval_results.json, when the run wrote one

    @property
    def takes_video(self) -> bool:
        """Whether the family's processor takes a video (a video processor: SmolVLM, Qwen2-VL, LLaVA-OneVision)."""
        return getattr(self.processor, "video_processor", None) is not None

    def model_and_context(self, which: str):
        """(model, context manager to generate in) for `which` = "base" or "tuned"."""
        if which == "tuned":
            return self.tuned, nullcontext
        if which != "base":
            raise ValueError(f"which must be 'base' or 'tuned', got {which!r}.")
        if self.base is not None:
            return self.base, nullcontext
        return self.tuned, self.tuned.disable_adapter


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}).") from err


def run_kind(run_dir: str | Path) -> str:
    """'adapter', 'merged' or 'full' for a run directory, or an error that says what a run directory holds."""
    run = Path(run_dir)
    fix = (
        "Pass the output_dir of a training recipe (e.g. outputs/sft_lora-tiny-smolvlm after `make demo`), or a merged "
        "model from recipes/merge_adapter.py."
    )
    if not run.is_dir():
        raise FileNotFoundError(f"run {str(run_dir)!r}: no such directory. {fix}")
    if (run / "adapter_config.json").is_file():
        return "adapter"
    if (run / "config.json").is_file():
        return "merged" if (run / MERGE_INFO_FILE).is_file() else "full"
    found = sorted(p.name for p in run.iterdir())[:10]
    raise FileNotFoundError(f"run {run}: neither an adapter (adapter_config.json) nor a model (config.json) in it "
                            f"(found {found}). {fix}")  # fmt: skip


def base_model_name(run_dir: Path, kind: str) -> str | None:
    """The base a run started from: the adapter's `base_model_name_or_path`, a merged model's `merge_info.json`, or
    the `model_name_or_path` of the run's eval_results.json."""
    if kind == "adapter":
        return _read_json(run_dir / "adapter_config.json").get("base_model_name_or_path")
    if kind == "merged":
        return _read_json(run_dir / MERGE_INFO_FILE).get("base_model")
    return _read_json(run_dir / RESULTS_FILE).get("model_name_or_path")


def load_run(
    run_dir: str | Path,
    base_model: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    trust_remote_code: bool = False,
) -> RunModels:
    """The run's fine-tuned model and its base (see `RunModels`); `base_model` overrides the base the run names."""
    run = Path(run_dir)
    kind = run_kind(run)
    base_name = base_model or base_model_name(run, kind)
    if not base_name:
        raise ValueError(
            f"run {run}: cannot tell which base model it started from (no base in adapter_config.json, "
            f"{MERGE_INFO_FILE} or {RESULTS_FILE}); pass --base_model <name or path>."
        )
    device = pick_device(device)
    base_args = VLMModelConfig(model_name_or_path=base_name, dtype=dtype)
    if kind == "adapter":
        tuned, processor = load_for_inference(base_args, str(run), device, trust_remote_code)
        base = None
    else:
        tuned_args = dataclasses.replace(base_args, model_name_or_path=str(run))
        tuned, processor = load_for_inference(tuned_args, None, device, trust_remote_code)
        base, _ = load_for_inference(base_args, None, device, trust_remote_code)  # answers with the run's processor
    results = _read_json(run / RESULTS_FILE)
    logger.info("Loaded %s (%s) and its base %s on %s.", run, kind, base_name, device)
    # Shown by the name the run was configured with (e.g. tiny:smolvlm, not its cache path) when it is the same model.
    named = results.get("model_name_or_path")
    shown = named if named and not base_model and _resolves_to(named, base_name) else base_name
    return RunModels(run, kind, shown, tuned, processor, base, results)


def _resolves_to(name: str, path: str) -> bool:
    try:
        return resolve(name) == path
    except ValueError:  # a source this process has not registered (e.g. tiny: without vlm_recipes.tiny imported)
        return False


# -- one prompt, streamed ------------------------------------------------------------------------------------------


@dataclass
class GenerationSettings:
    """How one answer is generated. temperature 0 is greedy decoding (what held-out evaluation uses)."""

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if not 1 <= int(self.max_new_tokens) <= 2048:
            raise ValueError(f"max_new_tokens must be between 1 and 2048, got {self.max_new_tokens}.")
        if self.temperature < 0:
            raise ValueError(f"temperature must be 0 (greedy) or more, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")

    def generate_kwargs(self) -> dict:
        if self.temperature == 0:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": float(self.temperature), "top_p": float(self.top_p)}


def prompt_row(question: str, image=None, video: str | None = None, system_prompt: str | None = None) -> dict:
    """The prompt row the collators read: one image (a PIL image) or one video (a file path), then the question."""
    if not question or not question.strip():
        raise ValueError("Ask a question first (the question box is empty).")
    row = {"images": [image] if image is not None else []}
    if video is not None:
        row["videos"] = [video]
    row["messages"] = question_messages(question.strip(), None, system_prompt, len(row["images"]), int(bool(video)))
    return row


def stream_answer(
    model,
    processor,
    row: dict,
    settings: GenerationSettings,
    context: Callable = nullcontext,
    video: dict | None = None,
) -> Iterator[str]:
    """Yield the answer to `row` as it grows; the last value is the whole answer, decoded and stripped as
    `generate_answers` decodes it. `context`: entered around `generate` (e.g. the adapter switched off);
    `video`: the frame sampling of a video row (`load_video`'s settings)."""
    from transformers import TextIteratorStreamer

    collate = build_collator(PromptCollator, processor, video=video)
    device = next(model.parameters()).device
    batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in collate([row]).items()}
    tokenizer = processor.tokenizer
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
    kwargs = dict(
        **batch,
        max_new_tokens=int(settings.max_new_tokens),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=family_of(processor).stop_token_ids(tokenizer),  # eos and the end-of-turn token
        streamer=streamer,
        **settings.generate_kwargs(),
    )
    outcome: dict = {}

    def generate():
        try:
            torch.manual_seed(settings.seed)  # sampling is repeatable for the same settings
            with context(), torch.no_grad():
                outcome["tokens"] = model.generate(**kwargs)
        except BaseException as err:  # reported to the caller below; the streamer must still end
            outcome["error"] = err
            streamer.end()

    was_training = model.training
    model.eval()
    worker = threading.Thread(target=generate, name="demo-generate", daemon=True)
    worker.start()
    try:
        text = ""
        for piece in streamer:
            text += piece
            yield text.strip()
    finally:
        worker.join()
        model.train(was_training)
    if "error" in outcome:
        raise outcome["error"]
    new_tokens = outcome["tokens"][0, batch["input_ids"].shape[1] :]
    yield tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


# -- uploads -------------------------------------------------------------------------------------------------------


def _size_text(num_bytes: float) -> str:
    return f"{num_bytes / 2**20:.1f} MB" if num_bytes >= 2**20 else f"{num_bytes / 2**10:.0f} KB"


def check_upload_size(path: str | Path, max_bytes: int) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UploadError(f"The upload {p.name!r} did not arrive (no file on the server); upload it again.")
    size = p.stat().st_size
    if size > max_bytes:
        raise UploadError(
            f"{p.name} is too large: {_size_text(size)}, the limit is {_size_text(max_bytes)}. Upload a smaller file "
            "(or start the demo with a larger --max_upload_mb)."
        )
    return p


def open_upload(path: str | Path, max_bytes: int) -> Image.Image:
    """The uploaded image as RGB, or an `UploadError` naming the file: too large, not an image, or damaged."""
    p = check_upload_size(path, max_bytes)
    try:
        with Image.open(p) as im:
            im.load()  # decodes every byte now: a truncated file fails here, not inside the model
            return to_rgb(im.copy())
    except Image.DecompressionBombError as err:
        raise UploadError(f"{p.name} has too many pixels to open safely ({err}). Upload a smaller image.") from None
    except UnidentifiedImageError:
        kinds = ", ".join(s.lstrip(".").upper() for s in IMAGE_SUFFIXES)
        raise UploadError(
            f"{p.name} is not an image (Pillow cannot identify it). Upload an image ({kinds})."
        ) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise UploadError(f"{p.name} is an image that cannot be read ({err}): it may be damaged or cut short. "
                          "Upload another copy of it.") from None  # fmt: skip


def check_video_upload(path: str | Path, max_bytes: int, settings: dict) -> str:
    """The uploaded video's path, once it is known to decode (sampled by `settings`, as training samples videos)."""
    p = check_upload_size(path, max_bytes)
    if p.suffix.lower() not in VIDEO_EXTENSIONS:
        raise UploadError(f"{p.name} is not a video file this demo reads ({', '.join(VIDEO_EXTENSIONS)}).")
    try:
        load_video(str(p), **settings)
    except (VideoError, OSError) as err:
        raise UploadError(f"{p.name} cannot be used as a video: {err}") from None
    return str(p)


# -- the run's held-out examples -----------------------------------------------------------------------------------


def run_data_settings(run_dir: str | Path, config: str | Path | None = None) -> tuple[DataArguments, int]:
    """(data settings, seed) the run was trained with: from `config` (the YAML it was trained with) if given, else
    from the run's data_config.json; an error says which to pass when neither is there."""
    run = Path(run_dir)
    training = _read_json(run / "training_config.json")
    seed = int(training.get("seed", 42))
    if config is not None:
        from ..settings import settings_of

        settings = settings_of(str(config), [])
        names = {f.name for f in dataclasses.fields(DataArguments)}
        return DataArguments(**{k: v for k, v in settings.items() if k in names}), int(settings.get("seed", seed))
    saved = _read_json(run / DATA_CONFIG_FILE)
    if not saved:
        raise FileNotFoundError(
            f"run {run} has no {DATA_CONFIG_FILE} (runs before December 2026 did not write one): start the demo with "
            "--config <the YAML this run was trained with> to see its held-out examples."
        )
    names = {f.name for f in dataclasses.fields(DataArguments)}
    return DataArguments(**{k: v for k, v in saved.items() if k in names}), seed


def held_out_examples(run_dir: str | Path, config: str | Path | None = None, limit: int = 12) -> list[dict]:
    """The first `limit` held-out rows of the run (the rows its before/after figures were measured on), each as
    {"image", "video", "question", "reference"}; rows with neither an image nor a video are left out."""
    data_args, seed = run_data_settings(run_dir, config)
    data_args.max_eval_samples = min(data_args.max_eval_samples, limit)
    rows = dataset_rows(data_args, GenerateArguments(), seed)
    examples = []
    for i in range(len(rows)):
        row = rows[i]
        image = row["images"][0] if row.get("images") else None
        video = row["videos"][0] if row.get("videos") else None
        if image is None and not isinstance(video, str):
            continue
        question = prompt_text(row["messages"])
        examples.append({"image": image, "video": video, "question": question, "reference": row.get("reference")})
    return examples
