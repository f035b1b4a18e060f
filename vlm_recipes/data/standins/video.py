"""Stand-in of the video QA dataset: lmms-eval/ActivityNetQA (questions in Parquet, videos in zip archives).

Mirrors the card of lmms-lab/ActivityNetQA at revision 024d07160345d8cbfccdfe9edc94e0414cdf1741 (the repository moved
to lmms-eval/ActivityNetQA on 2026-07-30, same files) and lmms-eval's reader of it, lmms_eval/tasks/activitynetqa/
utils.py at commit 75571cfe0fa36ca5ec2e6aa2bb268f9d38295af3, with the source dataset's documentation (MILVLG/
activitynet-qa, dataset/README.md) for what the columns hold:

- `video_name`: the bare YouTube id (`1QIUV7WYKXg`); the extracted file is `all_test/v_<id>.mp4` (lmms-eval reads
  f"v_{video_name}.mp4" under the archives' `all_test/` folder, and tries .webm and .mkv when there is no .mp4);
- `question_id`: `v_<id>_<n>`, ten questions per video (n = 0..9);
- `question`, `answer`: lower-case text, the question without its question mark;
- `type`: the question type as a string of its number (the card's dtype is string; the source's `type` is an int):
  0 motion, 1 spatial relation, 2 temporal relation, 3 yes/no, 4 color, 5 object, 6 location, 7 number, 8 other.

The stand-in writes the Parquet and, under `all_test/`, the extracted files (a few frames of a moving shape): one of
them a `.mkv`, as the real archive mixes containers. A config's `video_root` points at `all_test/`.
"""

from __future__ import annotations

import random
from pathlib import Path

from datasets import Features

from .schema import STRING, StandIn

# (question, answer, type): the type numbers of MILVLG/activitynet-qa dataset/README.md.
QUESTIONS = [
    ("what is the person in the video doing", "dancing", "0"),
    ("is the person outdoors", "yes", "3"),
    ("what color is the ball", "red", "4"),
    ("how many people are in the video", "2", "7"),
    ("where is the man", "beach", "6"),
    ("what is the woman holding", "racket", "5"),
]
QUESTIONS_PER_VIDEO = 3  # ten in the real data: several rows share one video file
MKV_VIDEO = 1  # the index of the video stored as .mkv


def _ids(n: int) -> list[str]:
    rng = random.Random("activitynetqa")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return ["".join(rng.choice(alphabet) for _ in range(11)) for _ in range(n)]


def _activitynetqa_rows(config, split, n, rng):
    ids = _ids((n + QUESTIONS_PER_VIDEO - 1) // QUESTIONS_PER_VIDEO)
    rows = []
    for i, (q, a, t) in enumerate((QUESTIONS * 3)[:n]):
        video, k = divmod(i, QUESTIONS_PER_VIDEO)
        rows.append({"video_name": ids[video], "question_id": f"v_{ids[video]}_{k}", "question": q, "answer": a,
                     "type": t})  # fmt: skip
    return rows


def _activitynetqa_videos(folder: Path, rows: list[dict]) -> None:
    """The extracted archives: one short MPEG-4 clip per video, `all_test/v_<id>.mp4` (one `.mkv`)."""
    from ..synthetic_video import render_clip, write_video

    out = folder / "all_test"
    out.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(row["video_name"] for row in rows))
    for k, name in enumerate(names):
        frames, _ = render_clip(random.Random(k), 64, 8)
        write_video(frames, out / f"v_{name}{'.mkv' if k == MKV_VIDEO else '.mp4'}", codec="mpeg4")


RECORDS = (
    StandIn(
        hub_id="lmms-eval/ActivityNetQA",
        card="https://huggingface.co/datasets/lmms-lab/ActivityNetQA/blob/024d07160345d8cbfccdfe9edc94e0414cdf1741/"
        "README.md (now lmms-eval/ActivityNetQA)",
        features={
            "default": Features(
                {"video_name": STRING, "question_id": STRING, "question": STRING, "answer": STRING, "type": STRING}
            )
        },
        splits={"default": {"test": 12}},  # the card's only split (8,000 rows)
        rows=_activitynetqa_rows,
        extra=_activitynetqa_videos,
        card_features="""
            - name: video_name
              dtype: string
            - name: question_id
              dtype: string
            - name: question
              dtype: string
            - name: answer
              dtype: string
            - name: type
              dtype: string
        """,
    ),
)
