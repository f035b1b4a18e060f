"""Inference with a base model or a base model plus a LoRA adapter: single images, image folders, dataset splits
in batches, and videos.

transformers generates (greedy, batched with left padding by our `PromptCollator`, in `evaluation.generate_answers`,
the code the training recipes evaluate with) and PEFT loads adapters. What this module adds: loading an adapter
directory as our training recipes write it (adapter + processor), turning each kind of input into `images` +
`messages` rows, prompts from a template filled with each row's fields (e.g. a product's name and category), a
chat file, evenly sampled video frames (PyAV), and errors that name the missing file or field and the fix.

Videos go in, by default, as a sequence of frames passed as images (every family, SmolVLM v1 and LLaVA-1.5 included);
`native_video` passes them as one video instead (Qwen2-VL's temporal patches, SmolVLM2's timestamped frames), sampled
by `vlm_recipes.data.video` exactly as training samples them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from ..data.images import to_rgb
from ..data.loading import final_answer, load_eval_split, question_messages, reference_answer, videos_as_list_column
from ..data.video import decode_frames, load_video
from ..models.modeling import load_model, load_processor
from ..settings import DataArguments, GenerateArguments, VLMModelConfig
from .generation import generate_answers

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
DEFAULT_IMAGE_PROMPT = "Describe the image."
DEFAULT_VIDEO_PROMPT = "Describe the video."
_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


# -- models ------------------------------------------------------------------------------------------------------


def check_adapter_dir(path: str | Path, field: str = "adapter_path") -> Path:
    """The adapter directory, or an error that says what it must hold and where such a directory comes from."""
    adapter = Path(path)
    fix = (
        "Pass the output_dir of a training recipe (it holds adapter_config.json, adapter_model.safetensors and the "
        "processor), or leave it unset to use the base model alone."
    )
    if not adapter.is_dir():
        raise FileNotFoundError(f"{field} {str(path)!r}: no such directory. {fix}")
    if not (adapter / "adapter_config.json").is_file():
        found = sorted(p.name for p in adapter.iterdir())[:10]
        hint = " It holds a full model (config.json): pass it as model_name_or_path." if "config.json" in found else ""
        raise FileNotFoundError(f"{field} {adapter}: no adapter_config.json in it (found {found}).{hint} {fix}")
    return adapter


def pick_device(choice: str = "auto") -> str:
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but torch sees no GPU; use device: auto or cpu.")
    return "cuda" if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()) else "cpu"


def load_for_inference(
    model_args: VLMModelConfig, adapter_path: str | None = None, device: str = "auto", trust_remote_code: bool = False
):
    """(model, processor) ready for `generate`: the base model, with the adapter on top if given.

    The processor comes from the adapter directory when it holds one (training saves it there, with the image
    resolution it trained at), else from the base model.
    """
    adapter = check_adapter_dir(adapter_path) if adapter_path else None
    device = pick_device(device)
    processor_args = model_args
    if adapter is not None and any((adapter / name).is_file() for name in _PROCESSOR_FILES):
        processor_args = dataclasses.replace(model_args, model_name_or_path=str(adapter))
    processor = load_processor(processor_args, trust_remote_code=trust_remote_code)
    model = load_model(model_args, use_cpu=device == "cpu", trust_remote_code=trust_remote_code, processor=processor)
    if adapter is not None:
        from peft import PeftConfig, PeftModel

        trained_on = PeftConfig.from_pretrained(str(adapter)).base_model_name_or_path
        if trained_on and trained_on != model.config._name_or_path:
            logger.warning(
                "Adapter %s was trained on %s; loading it on %s.", adapter, trained_on, model.config._name_or_path
            )
        model = PeftModel.from_pretrained(model, str(adapter))
    if not getattr(model, "hf_device_map", None):  # quantised models were placed when loaded
        model.to(device)
    model.eval()
    return model, processor


# -- inputs ------------------------------------------------------------------------------------------------------


def open_image(path: str | Path, field: str = "image") -> Image.Image:
    """An RGB image from a file, or an error naming the file and the setting it came from."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"{field}: image file {str(path)!r} not found (looked at {p.resolve()}). Check the path; for a whole "
            "folder use image_dir."
        )
    try:
        with Image.open(p) as im:
            return to_rgb(im.copy())  # a copy: the file closes when the block ends
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{field}: {p} is not an image Pillow can read ({err}).") from err


def frame_indices(num_available: int, num_frames: int) -> list[int]:
    """`num_frames` indices spread evenly over `num_available` frames: the centre of each of equal segments."""
    if num_available <= num_frames:
        return list(range(num_available))
    return [int((i + 0.5) * num_available / num_frames) for i in range(num_frames)]


def sample_video_frames(path: str | Path, num_frames: int = 8) -> list[Image.Image]:
    """`num_frames` RGB frames of a local video file, evenly spaced (`frame_indices`) and in order (all frames if it
    has fewer); decoded by `vlm_recipes.data.video.decode_frames`."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"video: file {str(path)!r} not found (looked at {p.resolve()}).")
    frames, _, total, _ = decode_frames(str(p), lambda count, _fps: frame_indices(count, num_frames))
    if len(frames) < num_frames:
        logger.warning("video %s has %d frames, fewer than num_frames=%d: using all of them.", p, total, num_frames)
    return frames


class Rows(Sequence):
    """A lazy sequence of prompt rows (`images`, `messages`, `id`, optional `reference`) built on access, so a
    large dataset split never holds all its decoded images at once."""

    def __init__(self, source: Sequence, build: Callable[[dict, int], dict]):
        self.source, self.build = source, build

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.build(self.source[i], i)


@cache
def _read_chat(path: str) -> tuple:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"chat_file {path!r} not found.")
    chat = json.loads(p.read_text())
    if not isinstance(chat, list) or not all(isinstance(m, dict) and "role" in m and "content" in m for m in chat):
        raise ValueError(f"chat_file {p}: expected a JSON list of {{'role': ..., 'content': ...}} messages.")
    return tuple(chat)


def fill_template(template: str, fields: dict, where: str) -> str:
    """`template` with its {column} fields from `fields`, or an error naming the missing field and the fix."""
    try:
        return template.format_map(fields)
    except KeyError as err:
        key = err.args[0]
        raise ValueError(
            f"prompt_template needs {{{key}}}, but {where} has no {key!r} field (it has {sorted(fields)}). Add the "
            "column to the data (for image_dir: metadata.jsonl), or change prompt_template."
        ) from None


def prompt_messages(
    gen_args: GenerateArguments,
    data_args: DataArguments,
    num_images: int,
    fields: dict,
    where: str,
    default: str,
    num_videos: int = 0,
) -> list[dict]:
    """The conversation to answer: the chat file, or one user turn with the images / videos and the (filled)
    prompt."""
    if gen_args.chat_file:
        return [dict(m) for m in _read_chat(gen_args.chat_file)]
    if gen_args.prompt_template:
        text = fill_template(gen_args.prompt_template, fields, where)
    else:
        text = gen_args.prompt or default
    return question_messages(text, None, data_args.system_prompt, num_images, num_videos)


def _folder_metadata(folder: Path) -> dict[str, dict]:
    meta = folder / "metadata.jsonl"
    if not meta.is_file():
        return {}
    rows = {}
    for n, line in enumerate(meta.read_text().splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            if "file_name" not in row:
                raise ValueError(f"{meta}, line {n}: no 'file_name' field naming the image it describes.")
            rows[row["file_name"]] = row
    return rows


def image_rows(paths: list[str], gen_args: GenerateArguments, data_args: DataArguments, metadata=None) -> Rows:
    """One prompt per image file; `metadata[file_name]` (if given) fills the prompt template."""
    metadata = metadata or {}
    for p in paths:  # fail on a missing file before any model is loaded
        if not Path(p).expanduser().is_file():
            open_image(p)

    def build(path, i):
        fields = {"file_name": Path(path).name, **metadata.get(Path(path).name, {})}
        messages = prompt_messages(gen_args, data_args, 1, fields, f"image {path}", DEFAULT_IMAGE_PROMPT)
        return {"id": str(path), "images": [open_image(path)], "messages": messages, **_reference(fields)}

    return Rows(list(paths), build)


def folder_rows(folder: str, gen_args: GenerateArguments, data_args: DataArguments) -> Rows:
    """Every image of a folder (sorted by name), with its metadata.jsonl fields if there is one."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image_dir {folder!r}: no such directory.")
    paths = sorted(str(p) for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"image_dir {root}: no images ({', '.join(IMAGE_SUFFIXES)}).")
    return image_rows(paths, gen_args, data_args, _folder_metadata(root))


def video_rows(path: str, gen_args: GenerateArguments, data_args: DataArguments) -> Rows:
    """One prompt: `num_frames` frames of the video as images, in order, then the prompt; with `native_video`, the
    video itself (sampled to `num_frames` by the prompt collator, `video_settings`)."""
    if gen_args.native_video:
        load_video(path, max_frames=gen_args.num_frames)  # a missing or undecodable file fails here, named

        def build_native(p, i):
            fields = {"file_name": Path(p).name}
            messages = prompt_messages(gen_args, data_args, 0, fields, f"video {p}", DEFAULT_VIDEO_PROMPT, 1)
            return {"id": str(p), "videos": [str(p)], "messages": messages}

        return Rows([path], build_native)
    frames = sample_video_frames(path, gen_args.num_frames)

    def build(p, i):
        messages = prompt_messages(
            gen_args, data_args, len(frames), {"file_name": Path(p).name}, f"video {p}", DEFAULT_VIDEO_PROMPT
        )
        return {"id": str(p), "images": frames, "messages": messages}

    return Rows([path], build)


def _reference(fields: dict, column: str | None = None):
    """{'reference': ...} from a row's reference column (VQA-style lists of {'answer': ...} become strings)."""
    column = column or ("answer" if "answer" in fields else None)
    if column is None or fields.get(column) is None:
        return {}
    return {"reference": reference_answer(fields, column)}


def dataset_rows(
    data_args: DataArguments,
    gen_args: GenerateArguments,
    seed: int = 42,
    references_column: str | None = None,
) -> Rows:
    """The held-out split of `data_args`' dataset (the rows training evaluates on) as prompt rows with references.

    Prompts: the dataset's question (question_column) or conversation (messages_column, without its final answer),
    unless the generation arguments give a prompt, a template or a chat.
    """
    ds = load_eval_split(data_args, seed)
    image_col, question_col = data_args.image_column, data_args.question_column
    # Videos: the config's video_column (paths joined to video_root), or a `videos` column (synthetic_video).
    video_col = data_args.video_column or ("videos" if "videos" in ds.column_names else None)
    if video_col and image_col not in ds.column_names:
        image_col = None  # a video dataset without images
    references_column = references_column or data_args.answer_column
    for col in filter(None, (image_col, video_col, question_col, references_column)):
        if col not in ds.column_names:
            raise ValueError(f"{data_args.dataset_name}: no column {col!r} (columns: {ds.column_names}).")
    own_prompt = gen_args.prompt or gen_args.prompt_template or gen_args.chat_file
    if video_col and data_args.video_column:
        ds = videos_as_list_column(ds, data_args)  # renamed to `videos`, video_root applied
        video_col = "videos"

    def build(raw, i):
        images = raw[image_col] if image_col else []
        images = [im.convert("RGB") for im in (images if isinstance(images, list) else [images])]
        videos = raw[video_col] if video_col else []
        where = f"row {i} of {data_args.dataset_name}"
        if own_prompt:
            messages = prompt_messages(gen_args, data_args, len(images), raw, where, DEFAULT_IMAGE_PROMPT, len(videos))
        elif question_col:
            messages = question_messages(raw[question_col], None, data_args.system_prompt, len(images), len(videos))
        else:
            messages = raw[data_args.messages_column]
            if data_args.system_prompt and messages[0]["role"] != "system":
                system = {"role": "system", "content": [{"type": "text", "text": data_args.system_prompt}]}
                messages = [system, *messages]
        row = {"id": str(raw.get("row_id", raw.get("id", i))), "images": images, "messages": messages}
        if videos:
            row["videos"] = videos
        row.update(_reference(raw, references_column))
        if "reference" not in row and not question_col and data_args.messages_column in raw:
            try:
                row["reference"] = final_answer({"messages": raw[data_args.messages_column]})
            except ValueError:
                pass  # a conversation without an answer: nothing to compare with
        return row

    return Rows(ds, build)


def rows_for(gen_args: GenerateArguments, data_args: DataArguments, references_column: str | None = None) -> Rows:
    """The prompt rows of whichever input the arguments name: images, a folder, a video, else the dataset."""
    if gen_args.image:
        return image_rows(gen_args.image, gen_args, data_args)
    if gen_args.image_dir:
        return folder_rows(gen_args.image_dir, gen_args, data_args)
    if gen_args.video:
        return video_rows(gen_args.video, gen_args, data_args)
    return dataset_rows(data_args, gen_args, gen_args.seed, references_column)


# -- generation --------------------------------------------------------------------------------------------------


def prompt_text(messages: list[dict]) -> str:
    """The text of the last user turn (for the predictions file)."""
    for message in reversed(messages):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                return content
            return "".join(part.get("text") or "" for part in content if part.get("type") == "text")
    return ""


def predict(
    model, processor, rows: Rows, batch_size: int, max_new_tokens: int, desc: str = "generating", video=None
) -> list:
    """Greedy answers to every row, in batches; one record per row: id, prompt, prediction (and reference).
    `video`: the frame sampling of rows with videos (`load_video`'s settings)."""
    answers = generate_answers(model, processor, rows, batch_size, max_new_tokens, desc=desc, video=video)
    records = []
    for i, answer in enumerate(answers):
        row = rows[i]
        record = {"id": row["id"], "prompt": prompt_text(row["messages"]), "prediction": answer}
        if "reference" in row:
            record["reference"] = row["reference"]
        records.append(record)
    return records


def write_jsonl(path: str | Path, records: list[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def run_generate(data_args: DataArguments, gen_args: GenerateArguments, model_args: VLMModelConfig) -> list[dict]:
    """recipes/generate.py: predictions for the given input, written as JSONL to `output_file`."""
    if gen_args.adapter_path:
        check_adapter_dir(gen_args.adapter_path)
    rows = rows_for(gen_args, data_args)
    if len(rows):
        rows[0]  # builds the first prompt: a missing file or template field fails before the model is loaded
    model, processor = load_for_inference(
        model_args, gen_args.adapter_path, gen_args.device, gen_args.trust_remote_code
    )
    video = {**data_args.video_settings, "max_frames": gen_args.num_frames} if gen_args.native_video else None
    records = predict(model, processor, rows, gen_args.batch_size, gen_args.max_new_tokens, video=video)
    out = write_jsonl(gen_args.output_file, records)
    logger.info("Wrote %d predictions to %s", len(records), out)
    return records
