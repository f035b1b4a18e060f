"""Offline video tasks that need time, not one frame.

- `motion`, "Which way does the shape move?": a shape (circle, square, triangle, in one of the synthetic colours)
  slides in a straight line, left, right, up or down, over `num_frames` frames on a grey background; the answer is
  the direction. The clip's MIDDLE position is drawn first, uniformly over one range shared by every direction, and
  the start and end follow from it, so the middle frame is independent of the answer: chance (25%) from it alone.
- `first_color`, "What color appears first?": a shape shows one colour in the first frames (the first 3 of 8) and
  another from then on, at a random position that changes every frame; the answer is the first colour. The middle
  frame shows the second colour only, so from it alone the best is a guess among the other three (33%).

The `middle_frame` form of the same rows (that frame as an image) measures what one frame can do.

Clips are written with PyAV as lossless FFV1 `.mkv` files (what a user's dataset holds: paths to video files), into
`<cache>/video/<name>/`, deterministic by seed; a finished folder is reused. Rows:

- `videos`: [path], `messages`: user [{'type': 'video'}, question], assistant [direction], `answer`, `task`;
- `middle_frame=True`: `images`: [the middle frame], the same messages with an image part instead.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

from datasets import Dataset, Features, Image, List, Value
from PIL import Image as PILImage
from PIL import ImageDraw

from .synthetic import COLORS, SHAPES, _draw_shape

DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
VIDEO_TASKS = ("motion", "first_color")
QUESTIONS = {"motion": "Which way does the shape move?", "first_color": "What color appears first?"}
FILE_FPS = 4  # frames per second written in the files: 8 frames are a 2-second clip

_MESSAGES = List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})})
VIDEO_FEATURES = Features(
    {"videos": List(Value("string")), "messages": _MESSAGES, "answer": Value("string"), "task": Value("string")}
)
FRAME_FEATURES = Features(
    {"images": List(Image()), "messages": _MESSAGES, "answer": Value("string"), "task": Value("string")}
)


def render_first_color(rng: random.Random, size: int, num_frames: int) -> tuple[list, str]:
    """Frames of one `first_color` clip and its first colour: that colour up to (not including) the middle frame."""
    first, then = rng.sample(list(COLORS), 2)
    shape, grey = rng.choice(SHAPES), rng.randint(110, 150)
    frames = []
    for t in range(num_frames):
        side = rng.randint(size // 4, size // 2)
        x, y = rng.randint(1, size - side - 1), rng.randint(1, size - side - 1)
        image = PILImage.new("RGB", (size, size), (grey, grey, grey))
        color = first if t < (num_frames - 1) // 2 else then
        _draw_shape(ImageDraw.Draw(image), shape, (x, y, x + side, y + side), COLORS[color])
        frames.append(image)
    return frames, first


def render_clip(rng: random.Random, size: int, num_frames: int) -> tuple[list, str]:
    """Frames of one `motion` clip and its direction. The shape travels `travel` pixels in all, centred on a middle
    position drawn the same way for every direction."""
    color, shape, direction = rng.choice(list(COLORS)), rng.choice(SHAPES), rng.choice(list(DIRECTIONS))
    side = rng.randint(size // 6, size // 4)
    travel = size // 2
    margin = travel // 2 + side // 2 + 1
    middle = (rng.uniform(margin, size - margin), rng.uniform(margin, size - margin))
    grey = rng.randint(110, 150)
    dx, dy = DIRECTIONS[direction]
    frames = []
    for t in range(num_frames):
        offset = (t / (num_frames - 1) - 0.5) * travel
        cx, cy = middle[0] + dx * offset, middle[1] + dy * offset
        image = PILImage.new("RGB", (size, size), (grey, grey, grey))
        x0, y0 = round(cx - side / 2), round(cy - side / 2)
        _draw_shape(ImageDraw.Draw(image), shape, (x0, y0, x0 + side, y0 + side), COLORS[color])
        frames.append(image)
    return frames, direction


def write_video(frames: list, path: str | Path, fps: int = FILE_FPS, codec: str = "ffv1") -> None:
    """Write RGB frames as a video: lossless FFV1 (decoded back bit-exact) by default, or e.g. `mpeg4` (lossy,
    YUV 4:2:0, what an .mp4 of a real dataset holds)."""
    import av
    import numpy as np

    pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = pix_fmt
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24").reformat(format=pix_fmt)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _messages(kind: str, answer: str, task: str) -> list[dict]:
    return [
        {"role": "user", "content": [{"type": kind, "text": None}, {"type": "text", "text": QUESTIONS[task]}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]


def make_video_dataset(
    task: str = "motion",
    num_samples: int = 1000,
    seed: int = 0,
    image_size: int = 64,
    num_frames: int = 8,
    middle_frame: bool = False,
    cache_dir: str | Path | None = None,
) -> Dataset:
    """`num_samples` clips of `task` as video-file rows (or, `middle_frame`, as the middle frame alone), reproducible
    from `seed`; files under `cache_dir` (default `<vlm_recipes cache>/video`)."""
    if task not in VIDEO_TASKS:
        raise ValueError(f"Unknown synthetic video task {task!r}; choose one of {list(VIDEO_TASKS)}.")
    if num_samples < 1 or num_frames < 3:
        raise ValueError(f"num_samples must be >= 1 and num_frames >= 3, got {num_samples} and {num_frames}.")
    rng = random.Random(f"video-{task}-{seed}")
    render = render_clip if task == "motion" else render_first_color
    clips = [render(rng, image_size, num_frames) for _ in range(num_samples)]
    if middle_frame:
        rows = [
            {
                "images": [frames[(num_frames - 1) // 2]],
                "messages": _messages("image", d, task),
                "answer": d,
                "task": task,
            }
            for frames, d in clips
        ]
        return Dataset.from_list(rows, features=FRAME_FEATURES)
    if cache_dir is None:
        from ..paths import cache_root

        cache_dir = cache_root() / "video"
    folder = Path(cache_dir) / f"{task}-s{seed}-n{num_samples}-{image_size}px-{num_frames}f"
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
        for k, (frames, _) in enumerate(clips):
            write_video(frames, tmp / f"{k:05d}.mkv")
        try:
            os.rename(tmp, folder)  # atomic: a reader never sees a half-written folder
        except OSError:  # written meanwhile by another process: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    rows = [
        {"videos": [str(folder / f"{k:05d}.mkv")], "messages": _messages("video", d, task), "answer": d, "task": task}
        for k, (_, d) in enumerate(clips)
    ]
    return Dataset.from_list(rows, features=VIDEO_FEATURES)
