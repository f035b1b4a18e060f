"""Stand-in of the video QA dataset: lmms-lab/ActivityNetQA (questions in parquet, videos in an archive).

The repository's parquet holds `video_name` (`v_<YouTube id>`, no extension), `question_id`, `question`, `answer`
and `type`; the videos come as an archive to extract. The stand-in writes the parquet and, under `videos/`, the
extracted files (`v_<id>.mp4`, a few frames of a moving shape): a config's `video_root` points there.
"""

from __future__ import annotations

import random
from pathlib import Path

from datasets import Features

from .schema import STRING, StandIn

QUESTIONS = [
    ("what is the person in the video doing", "dancing", "Motion"),
    ("is the person outdoors", "yes", "YesNo"),
    ("what color is the ball", "red", "Color"),
    ("how many people are in the video", "2", "Number"),
    ("where is the man", "beach", "Location"),
    ("what is the woman holding", "racket", "Object"),
]


def _ids(n: int) -> list[str]:
    rng = random.Random("activitynetqa")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return ["v_" + "".join(rng.choice(alphabet) for _ in range(11)) for _ in range(n)]


def _activitynetqa_rows(config, split, n, rng):
    ids = _ids(n)
    return [
        {"video_name": ids[i], "question_id": f"{ids[i]}_{i}", "question": q, "answer": a, "type": t}
        for i, (q, a, t) in enumerate((QUESTIONS * 3)[:n])
    ]


def _activitynetqa_videos(folder: Path, rows: list[dict]) -> None:
    """The extracted archive: one short MPEG-4 file per video name."""
    from ..synthetic_video import render_clip, write_video

    out = folder / "videos"
    out.mkdir(parents=True, exist_ok=True)
    for k, row in enumerate(rows):
        frames, _ = render_clip(random.Random(k), 64, 8)
        write_video(frames, out / f"{row['video_name']}.mp4", codec="mpeg4")


RECORDS = (
    StandIn(
        hub_id="lmms-lab/ActivityNetQA",
        card="https://huggingface.co/datasets/lmms-lab/ActivityNetQA/blob/main/README.md",
        features={
            "default": Features(
                {"video_name": STRING, "question_id": STRING, "question": STRING, "answer": STRING, "type": STRING}
            )
        },
        splits={"default": {"test": 12}},  # the card's only split (8,000 rows)
        rows=_activitynetqa_rows,
        extra=_activitynetqa_videos,
    ),
)
