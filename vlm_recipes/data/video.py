"""Videos of a row: decoded, sampled to frames, and described to the processor.

transformers' video processors can decode and sample a video themselves, but they fetch through torchcodec or
decord and read their sampling settings from processor kwargs that differ per family (SmolVLM's `num_frames`/`fps`,
Qwen2-VL's `fps`/`min_frames`/`max_frames`). What this module adds, the same for every family:

- one frame sampling rule, set in YAML (`video_fps`, `video_max_frames`): round(duration x `fps`) frames, at most
  `max_frames`, evenly spaced from the first frame to the last, in order (a video shorter than one frame at `fps`
  still gives one frame);
- two kinds of input, a local video file (decoded with PyAV) or a frame list (a list of PIL images: already sampled;
  `max_frames` still thins it evenly);
- a `VideoMetadata` per video (the source fps and the indices of the kept frames), which transformers' processors read
  for the frame timestamps SmolVLM writes into its prompt and for Qwen2.5-VL's seconds per temporal patch, so the
  processor never has to guess the fps (`do_sample_frames=False`: the frames given are the frames used);
- errors that name the file and the fix for a missing, unreadable or empty video, before any model is loaded.

>>> from PIL import Image
>>> frames = [Image.new("RGB", (8, 8), (i, 0, 0)) for i in range(10)]
>>> video = load_video(frames, fps=1.0, max_frames=4, frame_list_fps=1.0)
>>> [f.getpixel((0, 0))[0] for f in video.frames]
[0, 3, 6, 9]
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from transformers.video_utils import VideoMetadata

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")  # tried, in order, for a path without extension


class VideoError(ValueError):
    """A video that cannot be used; the message names the file and the fix, `kind` the defect."""

    def __init__(self, message: str, kind: str = "bad video"):
        super().__init__(message)
        self.kind = kind


@dataclass
class Video:
    """Sampled frames (RGB PIL images, in order) and the `VideoMetadata` the processor reads."""

    frames: list
    metadata: VideoMetadata
    source: str = field(default="frame list")

    def __len__(self) -> int:
        return len(self.frames)


def sample_indices(total: int, source_fps: float, fps: float | None, max_frames: int | None) -> list[int]:
    """Indices of the frames kept out of `total` frames at `source_fps`: `fps` per second of video (None: every
    frame), at most `max_frames`, evenly spaced from the first frame to the last, in order.

    >>> sample_indices(30, 10.0, 2.0, None)  # 3 s at 2 fps
    [0, 6, 12, 17, 23, 29]
    >>> sample_indices(30, 10.0, 2.0, 3)
    [0, 14, 29]
    """
    if total < 1:
        return []
    count = total if fps is None else max(1, round(total / source_fps * fps))
    count = min(count, total, max_frames or total)
    if count == 1:
        return [0]
    # Even spacing that always keeps the first and the last frame.
    return [round(k * (total - 1) / (count - 1)) for k in range(count)]


def decode_frames(path: str, pick: Callable[[int, float], list[int]]) -> tuple[list, float, int, list[int]]:
    """The frames of the first video stream of `path` whose indices `pick(frame_count, fps)` returns, as RGB PIL
    images in order, with the stream's fps, its frame count and the kept indices. The frames are counted from the
    demuxed packets first (no decoding), so that only the kept frames are converted to RGB and held in memory: a
    minute of 1080p video is ~1,800 frames, 11 GB as RGB. Used by `load_video` (the training rule, `sample_indices`)
    and by `generate.py`'s frames-as-images input (`vlm_recipes.evaluation.inference.sample_video_frames`)."""
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError(f"{path} has no video stream; give a video file or a list of frames.", "bad video")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            rate = float(rate) if rate else 1.0
            total = sum(1 for packet in container.demux(stream) if packet.size)
        keep = pick(total, rate)
        wanted, frames = set(keep), {}
        with av.open(path) as container:  # a second pass from the start (reopened: not every format seeks)
            for index, frame in enumerate(container.decode(container.streams.video[0])):
                if index in wanted:
                    frames[index] = frame.to_image().convert("RGB")
    except VideoError:
        raise
    except Exception as err:  # PyAV raises its own FFmpeg error classes (InvalidDataError, ...)
        raise VideoError(
            f"{path} cannot be decoded as a video ({type(err).__name__}: {err}); re-encode it (e.g. ffmpeg -i in.mp4 "
            "-c:v libx264 out.mp4) or remove the row.",
            "undecodable video",
        ) from err
    if not frames:
        raise VideoError(f"{path} holds no frames; re-encode it or remove the row.", "empty video")
    if len(frames) < len(keep):
        # The decoder gave fewer frames than packets (dropped or undecodable ones): sample again over what it gave.
        frames_all = _decode_all(path)
        keep = pick(len(frames_all), rate)
        return [frames_all[i] for i in keep], rate, len(frames_all), keep
    return [frames[i] for i in keep], rate, total, keep


def _decode_all(path: str) -> list:
    """Every frame of `path` (the fallback of `decode_frames` when packets and decoded frames disagree)."""
    import av

    with av.open(path) as container:
        return [frame.to_image().convert("RGB") for frame in container.decode(container.streams.video[0])]


def find_video_file(path: str) -> str:
    """`path`, or, when no such file exists, the one file that has the same name under another video extension (or
    that extension added to a name without one): an extracted archive mixes .mp4, .webm and .mkv files, which
    lmms-eval's ActivityNet-QA loader tries in turn. Otherwise `path` unchanged (the caller reports it missing)."""
    p = Path(path)
    if p.is_file() or (p.suffix and p.suffix.lower() not in VIDEO_EXTENSIONS):
        return path
    stem = p.with_suffix("") if p.suffix else p
    found = [str(stem) + ext for ext in VIDEO_EXTENSIONS if Path(str(stem) + ext).is_file()]
    return found[0] if len(found) == 1 else path


def load_video(value, fps: float | None = None, max_frames: int | None = None, frame_list_fps: float = 1.0) -> Video:
    """A row's video (a path, a `{"path": ...}` dict or a list of frames) sampled to frames (see `sample_indices`).

    A frame list is taken as a video at `frame_list_fps` frames per second (its timestamps); `fps` and `max_frames`
    thin it like a decoded video. Paths are used as given (`video_root` is joined to them when the dataset is loaded,
    `vlm_recipes.data.loading.videos_as_list_column`).
    """
    if isinstance(value, dict) and value.get("path") is not None:
        value = value["path"]
    if isinstance(value, (str, os.PathLike)):
        path = str(value)
        path = find_video_file(path)
        if not Path(path).is_file():
            raise VideoError(
                f"video file {path} does not exist; fix the path (relative paths are read from the dataset's "
                "folder, or from video_root as video_path_template names them) or remove the row.",
                "missing video",
            )
        frames, source_fps, total, keep = decode_frames(
            path, lambda total, rate: sample_indices(total, rate, fps, max_frames)
        )
        return Video(frames, _metadata(total, source_fps, keep, "pyav"), path)
    elif isinstance(value, (list, tuple)) and value and all(isinstance(f, Image.Image) for f in value):
        frames, source_fps, source = [f.convert("RGB") for f in value], float(frame_list_fps), "frame list"
    else:
        raise VideoError(
            f"a video must be a file path, a {{'path': ...}} dict or a non-empty list of PIL images, got "
            f"{type(value).__name__}; fix the 'videos' column.",
            "bad video",
        )
    keep = sample_indices(len(frames), source_fps, fps, max_frames)
    return Video([frames[i] for i in keep], _metadata(len(frames), source_fps, keep, None), source)


def _metadata(total: int, fps: float, keep: list[int], backend: str | None) -> VideoMetadata:
    return VideoMetadata(
        total_num_frames=total, fps=fps, duration=total / fps, frames_indices=keep, video_backend=backend
    )


def videos_of(conversation: list[dict]) -> list[Video]:
    """The videos of a conversation in the order the template places them."""
    return [
        part["video"]
        for message in conversation
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "video" and "video" in part
    ]
