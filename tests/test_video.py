"""Native video through the collators, for SmolVLM (SmolVLM2 video) and Qwen2-VL, with the real processor classes.

Frames are sampled in order and count (files and frame lists); the collator's video tokens are the processor's own
expansion; no video token is ever a label; video, image and text rows mix in one batch; the truncation guard covers
video tokens; bad videos fail naming the row and the file; and a tiny model learns a task one frame cannot answer.
"""

import pytest
import torch
from helpers import PRETRAINED_IN_DEFAULT_RUN
from PIL import Image

from vlm_recipes.data.chat_encoding import ChatEncoder
from vlm_recipes.data.collators import PromptCollator, SampleError, VisionChatCollator
from vlm_recipes.data.synthetic_video import write_video
from vlm_recipes.data.video import load_video, sample_indices
from vlm_recipes.models.families import family_of

pytestmark = pytest.mark.unit

FAMILIES = ["smolvlm", "qwen2_vl", "qwen2_5_vl"]
EOT = {"smolvlm": "<end_of_utterance>", "qwen2_vl": "<|im_end|>", "qwen2_5_vl": "<|im_end|>"}
QWEN = ("qwen2_vl", "qwen2_5_vl")  # the same video layout (pixel_values_videos, video_grid_thw)


def numbered_frames(n, size=32):
    """Frames whose red channel is 10 x their index: which frames were kept reads off the pixels."""
    return [Image.new("RGB", (size, size), (10 * i, 100, 50)) for i in range(n)]


def frame_numbers(video):
    return [round(f.getpixel((0, 0))[0] / 10) for f in video.frames]


def video_row(video, question="Which way does the shape move?", answer="left", **extra):
    return {
        "videos": [video],
        "messages": [
            {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
        **extra,
    }


def image_row(image, answer="red"):
    return {
        "images": [image],
        "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color is the shape?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
    }


TEXT_ROW = {"messages": [{"role": "user", "content": "Say <video> hi"}, {"role": "assistant", "content": "ok"}]}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 12-frame FFV1 file at 4 fps (3 s): frame k has red = 10 k."""
    path = tmp_path_factory.mktemp("video") / "clip.mkv"
    write_video(numbered_frames(12), path, fps=4)
    return str(path)


# -- sampling ---------------------------------------------------------------------------------------------------
def test_sample_indices_literal():
    assert sample_indices(12, 4.0, None, None) == list(range(12))
    assert sample_indices(12, 4.0, 2.0, None) == [0, 2, 4, 7, 9, 11]  # 3 s at 2 fps: 6 frames, first and last kept
    assert sample_indices(12, 4.0, 2.0, 3) == [0, 6, 11]
    assert sample_indices(12, 4.0, 0.1, None) == [0]  # shorter than one frame at fps: still one frame
    assert sample_indices(3, 4.0, 100.0, None) == [0, 1, 2]  # never more frames than the video has


def test_file_and_frame_list_are_sampled_in_order_and_count(clip):
    video = load_video(clip, fps=2.0, max_frames=None)
    assert frame_numbers(video) == [0, 2, 4, 7, 9, 11]
    assert video.metadata.fps == 4.0 and video.metadata.total_num_frames == 12
    assert frame_numbers(load_video(clip, fps=2.0, max_frames=4)) == [0, 4, 7, 11]
    assert frame_numbers(load_video({"path": clip}, max_frames=3)) == [0, 6, 11]
    frames = load_video(numbered_frames(12), fps=2.0, max_frames=4, frame_list_fps=4.0)
    assert frame_numbers(frames) == [0, 4, 7, 11]
    assert frame_numbers(load_video(numbered_frames(5))) == [0, 1, 2, 3, 4]


def test_a_file_converts_only_the_kept_frames_to_rgb(clip, monkeypatch):
    """A long video is counted from its packets and only the sampled frames become RGB images (memory)."""
    import av

    converted = []
    to_image = av.VideoFrame.to_image
    monkeypatch.setattr(av.VideoFrame, "to_image", lambda frame, *a, **k: converted.append(1) or to_image(frame))
    assert frame_numbers(load_video(clip, max_frames=3)) == [0, 6, 11]
    assert len(converted) == 3


def test_bad_videos_fail_naming_the_row_and_file(processors, tmp_path):
    collator = VisionChatCollator(processors["smolvlm"])
    missing = str(tmp_path / "nope.mp4")
    with pytest.raises(SampleError, match=r"row row_id=7, video 0: video file .*nope\.mp4 does not exist") as err:
        collator([video_row(missing, row_id=7)])
    assert err.value.kind == "missing video"
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    with pytest.raises(SampleError, match=r"garbage\.mp4 cannot be decoded as a video") as err:
        collator([video_row(str(garbage), row_id=8)])
    assert err.value.kind == "undecodable video"
    with pytest.raises(SampleError, match=r"1 video\(s\) in 'videos' but 0 \{'type': 'video'\} part"):
        collator([{**image_row(Image.new("RGB", (8, 8))), "videos": [missing]}])


# -- collation --------------------------------------------------------------------------------------------------
def direct_ids(processor, conversation, video):
    """The processor's own tokenization of the rendered conversation with its video (transformers' expansion)."""
    encoder = ChatEncoder(processor)
    text = encoder.render([conversation], add_generation_prompt=True)[0][0]
    out = processor(
        text=[text],
        videos=[video.frames],
        video_metadata=[video.metadata],
        do_sample_frames=False,
        add_special_tokens=False,
        return_tensors="pt",  # SmolVLM's video expansion reads a tensor's shape
    )
    return out["input_ids"][0].tolist()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("max_frames", [4, 5])  # 5: Qwen2-VL's 2-frame temporal patch pads an odd count
def test_video_tokens_are_the_processors_expansion(processors, family, clip, max_frames):
    processor = processors[family]
    row = video_row(clip)
    batch = PromptCollator(processor, video={"max_frames": max_frames})([row])
    video = load_video(clip, max_frames=max_frames)
    prompt = [row["messages"][0] | {"content": [{"type": "video", "video": video}, row["messages"][0]["content"][1]]}]
    ours = batch["input_ids"][0].tolist()
    assert ours == direct_ids(processor, prompt, video)
    tok = processor.tokenizer
    if family in QWEN:  # (frames rounded up to a multiple of 2) / 2 x (h / 14) x (w / 14) / merge^2
        h = w = 112  # the tiny processor's min_pixels = max_pixels = 112 x 112
        expected = -(-max_frames // 2) * (h // 14) * (w // 14) // 4
        assert ours.count(tok.convert_tokens_to_ids("<|video_pad|>")) == expected
        assert batch["video_grid_thw"].tolist() == [[-(-max_frames // 2), h // 14, w // 14]]
    else:  # one image (global tile) of image_seq_len tokens per frame, after a timestamp per frame
        assert ours.count(tok.convert_tokens_to_ids("<image>")) == max_frames * processor.image_seq_len
        assert tok.decode(ours).count("Frame from 00:0") == max_frames
        assert batch["pixel_values"].shape[:2] == (1, max_frames)


@pytest.mark.parametrize("family", FAMILIES)
def test_no_video_token_is_a_label_and_video_text_stays_text(processors, family, clip):
    processor = processors[family]
    rows = [video_row(clip, answer="left"), TEXT_ROW, video_row(numbered_frames(3), answer="up <|video_pad|>")]
    batch = VisionChatCollator(processor, video={"max_frames": 4})(rows)
    media = torch.tensor(family_of(processor).image_token_ids(processor.tokenizer))
    assert torch.isin(batch["input_ids"], media).any()
    assert not torch.isin(batch["labels"], media).any()
    tok = processor.tokenizer
    trained = [tok.decode(row[row != -100]).strip() for row in batch["labels"]]
    assert trained == [f"left{EOT[family]}", f"ok{EOT[family]}", f"up <|video_pad|>{EOT[family]}"]
    # the text "<video>" / "<|video_pad|>" in messages is text: no media token in the text-only row
    assert not torch.isin(batch["input_ids"][1], media).any()
    assert "Say <video> hi" in tok.decode(batch["input_ids"][1], skip_special_tokens=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_video_image_and_text_rows_in_one_batch(processors, family, clip, red_image):
    processor = processors[family]
    rows = [video_row(clip), image_row(red_image), TEXT_ROW]
    batch = VisionChatCollator(processor, video={"max_frames": 4})(rows)
    alone = [VisionChatCollator(processor, video={"max_frames": 4})([row]) for row in rows]
    for i, single in enumerate(alone):  # every row encodes as it does alone
        n = int(single["attention_mask"].sum())
        assert batch["input_ids"][i, :n].tolist() == single["input_ids"][0].tolist()
    if family == "qwen2_5_vl":  # the video's time per temporal patch (M-RoPE's absolute time): 2 frames / sampled fps
        assert batch["second_per_grid_ts"].tolist() == alone[0]["second_per_grid_ts"].tolist()
        assert len(batch["second_per_grid_ts"]) == 1
    if family in QWEN:
        assert torch.equal(batch["pixel_values_videos"], alone[0]["pixel_values_videos"])
        assert torch.equal(batch["pixel_values"], alone[1]["pixel_values"])
        assert batch["video_grid_thw"].shape[0] == batch["image_grid_thw"].shape[0] == 1
    else:  # per row: the video's 4 frames, the image, nothing; zero-padded
        pixels = batch["pixel_values"]
        assert pixels.shape[:2] == (3, 4)
        assert torch.equal(pixels[0], alone[0]["pixel_values"][0])
        assert torch.equal(pixels[1, :1], alone[1]["pixel_values"][0])
        assert not pixels[1, 1:].any() and not pixels[2].any()


@pytest.mark.learning
@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_model_takes_the_mixed_batch(processors, family, clip, red_image):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlm_recipes.tiny.vlm import build

    # The pre-trained base where the default run builds it anyway, else the random model (the forward is the point).
    path = build(f"tiny:{family}" + ("" if family in PRETRAINED_IN_DEFAULT_RUN else "-random"))
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    batch = VisionChatCollator(processor, video={"max_frames": 4})([video_row(clip), image_row(red_image), TEXT_ROW])
    loss = model(**batch).loss
    assert torch.isfinite(loss)


@pytest.mark.parametrize("family", FAMILIES)
def test_truncation_guard_covers_video_tokens(processors, family, clip):
    processor = processors[family]
    rows = [TEXT_ROW, video_row(clip, row_id=3)]
    full = VisionChatCollator(processor, video={"max_frames": 4})(rows)
    media = torch.tensor(family_of(processor).image_token_ids(processor.tokenizer))
    last = int(torch.isin(full["input_ids"][1], media).nonzero().max())
    with pytest.raises(SampleError, match=r"row row_id=3.*image tokens beyond max_length"):
        VisionChatCollator(processor, max_length=last, video={"max_frames": 4})(rows)
    dropping = VisionChatCollator(processor, max_length=last, on_overflow="drop", video={"max_frames": 4})
    assert dropping(rows)["input_ids"].shape[0] == 1 and dropping.num_dropped == 1


def test_packing_refuses_videos(processors, clip):
    from vlm_recipes.data.packing import PaddingFreeCollator

    with pytest.raises(SampleError, match="packing / padding_free do not take videos"):
        PaddingFreeCollator(processors["smolvlm"])([video_row(clip, row_id=1)])


# -- learning ------------------------------------------------------------------------------------------------------
VIDEO_CONFIGS = {"smolvlm": "tiny-smolvlm", "qwen2_vl": "tiny-qwen2-vl"}


# The offline default through recipes/sft.py: "What color appears first?" over 4 sampled frames, against the same run
# on the middle frame alone (which shows only the second colour). SmolVLM in the default run; Qwen2-VL behind slow
# (the suite budget).
@pytest.mark.learning
@pytest.mark.parametrize("family", ["smolvlm", pytest.param("qwen2_vl", marks=pytest.mark.slow)])
def test_sft_on_video_learns_what_one_frame_cannot(tmp_path, family):
    from helpers import run_recipe

    from vlm_recipes.paths import REPO_ROOT

    config = REPO_ROOT / "recipes" / "configs" / VIDEO_CONFIGS[family] / "sft_video.yaml"
    video = run_recipe("sft", config, tmp_path / "video")
    frame = run_recipe("sft", config, tmp_path / "frame", "--synthetic_task", "first_color_middle_frame")
    assert video["num_eval_samples"] == frame["num_eval_samples"] == 200
    assert video["accuracy_after"] >= 0.9, video
    assert video["accuracy_after"] >= video["accuracy_before"] + 0.5, video
    assert frame["accuracy_after"] <= 0.5, frame  # best possible from the middle frame: 1/3


@pytest.mark.learning
@pytest.mark.parametrize("family", FAMILIES)
def test_generate_takes_a_native_video(tmp_path, clip, family):
    """recipes/generate.py --video <file> --native_video: one video input, sampled to num_frames, answered; the
    frames-as-images path stays the default."""
    from vlm_recipes.evaluation.inference import rows_for, run_generate
    from vlm_recipes.settings import DataArguments, GenerateArguments, VLMModelConfig

    common = dict(video=clip, num_frames=4, max_new_tokens=3, device="cpu", output_file=str(tmp_path / "p.jsonl"))
    native = GenerateArguments(native_video=True, **common)
    row = rows_for(native, DataArguments())[0]
    assert row["videos"] == [clip] and "images" not in row
    assert [p["type"] for p in row["messages"][-1]["content"]] == ["video", "text"]
    assert len(rows_for(GenerateArguments(**common), DataArguments())[0]["images"]) == 4
    model = f"tiny:{family}" + ("" if family in PRETRAINED_IN_DEFAULT_RUN else "-random")
    records = run_generate(DataArguments(), native, VLMModelConfig(model_name_or_path=model))
    assert len(records) == 1 and isinstance(records[0]["prediction"], str)
    with pytest.raises(ValueError, match="native_video applies to a video input"):
        GenerateArguments(native_video=True)


def test_preflight_counts_frames_and_video_tokens_and_names_bad_videos(processors, clip, tmp_path):
    from datasets import Dataset

    from vlm_recipes.training.preflight import check_split

    def row(path, answer, row_id):
        messages = video_row(path, answer=answer)["messages"]
        messages[0]["content"][0]["text"] = None  # one Arrow type for every part
        return {"videos": [path], "messages": messages, "row_id": row_id}

    ds = Dataset.from_list([row(clip, "left", "a"), row(clip, "up", "b"), row(str(tmp_path / "gone.mp4"), "up", "c")])
    processor = processors["qwen2_vl"]
    report = check_split("sft", ds, processor, video={"max_frames": 4})
    assert report.video_frames == [4, 4]
    assert report.video_tokens == [2 * 16, 2 * 16]  # 4 frames: 2 temporal patches of 16 tokens at 112 x 112
    assert [e.kind for e in report.errors] == ["missing video"] and "gone.mp4" in report.errors[0].message
    assert "frames per video: min 4 / median 4 / max 4" in report.text(None)
    prompts = Dataset.from_list([{"videos": [clip], "prompt": row(clip, "up", "g")["messages"][:1], "row_id": "g"}])
    grpo = check_split("grpo", prompts, processor, video={"max_frames": 4})
    assert [e.kind for e in grpo.errors] == ["video unsupported"]


@pytest.mark.learning
def test_evaluation_rows_of_a_video_dataset_carry_their_videos(standins):
    """recipes/evaluate_models.py's held-out rows: the synthetic video task and a video QA set (video_column +
    video_root) keep their videos, prompted with a video part; predictions sample them as training does."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlm_recipes.evaluation.inference import dataset_rows, predict
    from vlm_recipes.settings import DataArguments, GenerateArguments
    from vlm_recipes.tiny.vlm import build

    synthetic = DataArguments(dataset_name="synthetic_video", synthetic_task="first_color", max_eval_samples=2)
    rows = dataset_rows(synthetic, GenerateArguments())
    assert len(rows[0]["videos"]) == 1 and rows[0]["reference"] in ("red", "green", "blue", "yellow")
    folder = standins["lmms-eval/ActivityNetQA"]
    qa = DataArguments(
        dataset_name=str(folder),
        dataset_train_split="test",
        video_column="video_name",
        video_root=str(folder / "all_test"),
        question_column="question",
        answer_column="answer",
        max_eval_samples=2,
    )
    rows = dataset_rows(qa, GenerateArguments())
    assert rows[0]["videos"][0].startswith(str(folder / "all_test" / "v_")) and rows[0]["images"] == []
    assert [p["type"] for p in rows[0]["messages"][-1]["content"]] == ["video", "text"]
    path = build("tiny:qwen2_vl")
    model, processor = AutoModelForImageTextToText.from_pretrained(path), AutoProcessor.from_pretrained(path)
    records = predict(model, processor, rows, 2, 2, video=qa.video_settings | {"max_frames": 4})
    assert [r["reference"] for r in records] == [rows[0]["reference"], rows[1]["reference"]]


@pytest.mark.parametrize("family", FAMILIES)
def test_preference_pairs_with_a_video_train_only_the_responses(processors, family, clip):
    from vlm_recipes.data.collators import PreferenceCollator

    processor = processors[family]
    prompt = video_row(clip)["messages"][:1]
    row = {
        "videos": [clip],
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": "left"}],
        "rejected": [{"role": "assistant", "content": "right"}],
    }
    batch = PreferenceCollator(processor, video={"max_frames": 4})([row])
    media = torch.tensor(family_of(processor).image_token_ids(processor.tokenizer))
    assert torch.isin(batch["input_ids"], media).sum(dim=1).tolist()[0] > 0
    assert not (torch.isin(batch["input_ids"], media) & batch["completion_mask"].bool()).any()
    tok = processor.tokenizer
    kept = [tok.decode(ids[m.bool()]).strip() for ids, m in zip(batch["input_ids"], batch["completion_mask"])]
    assert kept == [f"left{EOT[family]}", f"right{EOT[family]}"]


@pytest.mark.parametrize("family", FAMILIES)
def test_worker_image_processing_gives_the_same_video_batches(processors, family, clip, red_image):

    processor = processors[family]
    rows = [video_row(clip), image_row(red_image), TEXT_ROW]
    plain = VisionChatCollator(processor, video={"max_frames": 4})(rows)
    worker = VisionChatCollator(processor, video={"max_frames": 4}, image_processing="worker")(rows)
    assert sorted(plain) == sorted(worker) and all(torch.equal(plain[k], worker[k]) for k in plain)
    device = VisionChatCollator(processor, video={"max_frames": 4}, image_processing="device")
    if family == "smolvlm":  # frames and images share SmolVLM's per-row pixel tensor: not deferred yet
        with pytest.raises(NotImplementedError, match="image_processing: processor"):
            device(rows)
    else:
        assert torch.equal(device(rows)["pixel_values_videos"], plain["pixel_values_videos"])


def test_a_family_without_video_input_refuses_videos_naming_the_row(processors, clip):
    with pytest.raises(SampleError, match=r"row row_id=5: LlavaProcessor takes no videos; give the frames as images"):
        VisionChatCollator(processors["llava"])([video_row(clip, row_id=5)])


@pytest.mark.parametrize("config", ["smolvlm2-2.2b-instruct", "qwen2.5-vl-3b-instruct"])
def test_activitynet_configs_find_every_video_of_the_real_layout(standins, config):
    """The real sft_video configs on the ActivityNet-QA stand-in, laid out as the real data is (bare YouTube ids in
    `video_name`, files `all_test/v_<id>.mp4`, one `.mkv`): every row of both splits finds and decodes its video."""
    from helpers import REPO_ROOT, parse_config

    from vlm_recipes.data.loading import load_splits

    folder = standins["lmms-eval/ActivityNetQA"]
    path = REPO_ROOT / "recipes" / "configs" / config / "sft_video.yaml"
    data_args = next(
        a
        for a in parse_config(
            path, "--dataset_name", str(folder), "--video_root", str(folder / "all_test"), "--use_cpu", "true"
        )
        if type(a).__name__ == "DataArguments"
    )
    train, held_out = load_splits(data_args)
    assert len(train) + len(held_out) == 12 and not set(train["question_id"]) & set(held_out["question_id"])
    for row in [*train, *held_out]:
        assert not row["video_name"].startswith("v_")  # the real column: the bare id
        video = load_video(row["videos"][0], max_frames=2)
        assert len(video) == 2 and f"v_{row['video_name']}." in video.source
    # Every path is named .mp4 by the template; the one .mkv file is found under its own extension when read.
    assert any(load_video(r["videos"][0], max_frames=1).source.endswith(".mkv") for r in [*train, *held_out])


def test_video_path_template_reads_any_layout_and_names_a_missing_column(tmp_path):
    from datasets import Dataset

    from vlm_recipes.data.loading import videos_as_list_column
    from vlm_recipes.settings import DataArguments

    (tmp_path / "val").mkdir()
    write_video(numbered_frames(4), tmp_path / "val" / "clip-7.mkv")
    ds = Dataset.from_list([{"split": "val", "clip_id": 7, "question": "q", "answer": "a"}])
    args = DataArguments(
        video_column="clip_id",
        video_root=str(tmp_path),
        video_path_template="{split}/clip-{clip_id}.mp4",
        question_column="question",
        answer_column="answer",
    )
    videos = videos_as_list_column(ds, args)["videos"]
    assert videos == [[str(tmp_path / "val" / "clip-7.mp4")]]
    assert load_video(videos[0][0], max_frames=1).source == str(tmp_path / "val" / "clip-7.mkv")
    paths = Dataset.from_list([{"video": "val/clip-7.mkv", "question": "q", "answer": "a"}])
    as_is = DataArguments(video_column="video", video_root=str(tmp_path), video_path_template="{video}",
                          question_column="question", answer_column="answer")  # fmt: skip
    assert videos_as_list_column(paths, as_is)["videos"] == [[str(tmp_path / "val" / "clip-7.mkv")]]
    default = DataArguments(video_column="video", question_column="question", answer_column="answer")
    with pytest.raises(ValueError, match=r"names column\(s\) \['video_name'\].*'\{video\}'.*null"):
        videos_as_list_column(paths, default)
    with pytest.raises(ValueError, match="must name row columns"):
        DataArguments(video_column="video", video_path_template="clips/{}.mp4")
    with pytest.raises(ValueError, match="applies to video_column only"):
        DataArguments(video_path_template="{video}.mp4")
