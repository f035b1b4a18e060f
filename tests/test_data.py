"""Synthetic data and user-data loading into `images` + `messages` rows."""

import json

import pytest
from PIL import Image

from vlm_recipes.data import synthetic
from vlm_recipes.data.collators import VisionChatCollator
from vlm_recipes.data.loading import final_answer, load_splits
from vlm_recipes.settings import DataArguments

pytestmark = pytest.mark.unit


def pixels(image):
    return list(image.getdata())


def test_synthetic_is_reproducible_and_seeds_differ():
    a, b = synthetic.make_dataset("color", 5, seed=7), synthetic.make_dataset("color", 5, seed=7)
    c = synthetic.make_dataset("color", 5, seed=8)
    assert [pixels(r["images"][0]) for r in a] == [pixels(r["images"][0]) for r in b]
    assert [pixels(r["images"][0]) for r in a] != [pixels(r["images"][0]) for r in c]


@pytest.mark.parametrize(
    "task,vocab",
    [
        ("color", set(synthetic.COLORS)),
        ("shape", set(synthetic.SHAPES)),
        ("position", set(synthetic.POSITIONS)),
        ("count", set(synthetic.NUMBER_WORDS[1:])),
    ],
)
def test_synthetic_answers_come_from_the_task_vocabulary(task, vocab):
    ds = synthetic.make_dataset(task, 60, seed=0)
    answers = set(ds["answer"])
    assert answers <= vocab and len(answers) >= 2
    row = ds[0]
    assert isinstance(row["images"][0], Image.Image) and row["images"][0].size == (64, 64)
    assert row["messages"][-1]["content"][0]["text"] == row["answer"] == final_answer(row)


def dominant_color(image) -> tuple:
    """The most frequent colour of an image that is not a grey (r == g == b: the background)."""
    counts = {}
    for rgb in pixels(image):
        if not rgb[0] == rgb[1] == rgb[2]:
            counts[rgb] = counts.get(rgb, 0) + 1
    return max(counts, key=counts.get)


def test_synthetic_color_is_the_dominant_colour_of_the_image():
    # The dominant non-grey colour of each image is the answer's colour: the task is learnable from pixels.
    rows = synthetic.make_dataset("color", 20, seed=3)
    assert len(set(rows["answer"])) >= 3
    for row in rows:
        assert dominant_color(row["images"][0]) == synthetic.COLORS[row["answer"]]


def test_the_dominant_colour_check_can_fail():
    image = Image.new("RGB", (8, 8), (128, 128, 128))
    image.paste((220, 40, 40), (0, 0, 8, 5))  # 40 red pixels
    image.paste((40, 80, 220), (0, 5, 8, 8))  # 24 blue pixels
    assert dominant_color(image) == (220, 40, 40)


def test_unknown_task_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown synthetic task 'colour'"):
        synthetic.make_dataset("colour", 3)


def write_images(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (32, 32), (200, 10 * i, 10)).save(folder / f"{i}.png")


def test_local_jsonl_with_relative_image_paths(tmp_path, processors):
    write_images(tmp_path / "imgs", 10)
    rows = [
        {
            "images": [f"imgs/{i}.png"],
            "messages": [
                {"role": "user", "content": f"Which image is {i}?"},
                {"role": "assistant", "content": f"number {i}"},
            ],
        }
        for i in range(10)
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = DataArguments(dataset_name=str(path), eval_fraction=0.2, system_prompt="Be brief.")
    train, test = load_splits(args, seed=0)
    assert len(train) == 8 and len(test) == 2
    row = train[0]
    assert isinstance(row["images"][0], Image.Image)
    assert row["messages"][0]["role"] == "system"
    batch = VisionChatCollator(processors["qwen2_vl"])([train[i] for i in range(2)])
    labels = batch["labels"][0]
    decoded = processors["qwen2_vl"].tokenizer.decode(labels[labels != -100])
    assert decoded.startswith("number ") and decoded.endswith("<|im_end|>")


def test_image_folder_with_metadata_and_question_answer_columns(tmp_path, processors):
    write_images(tmp_path, 6)
    meta = [{"file_name": f"{i}.png", "q": "What is the number?", "a": str(i)} for i in range(6)]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    args = DataArguments(
        dataset_name=str(tmp_path), image_column="image", question_column="q", answer_column="a", eval_fraction=0.5
    )
    train, test = load_splits(args, seed=0)
    assert len(train) + len(test) == 6
    row = test[0]
    assert len(row["images"]) == 1 and row["messages"][0]["content"][1]["text"] == "What is the number?"
    assert final_answer(row) == row["a"]
    batch = VisionChatCollator(processors["smolvlm"])([row])
    assert (batch["labels"] != -100).sum() == len(processors["smolvlm"].tokenizer.encode(" " + row["a"])) + 1


def test_missing_image_file_names_the_file(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"images": ["nope.png"], "messages": []}) + "\n")
    with pytest.raises(FileNotFoundError, match=r"data.jsonl:1: image 'nope.png' not found"):
        load_splits(DataArguments(dataset_name=str(path)))


def test_missing_column_and_non_string_answer_are_named(tmp_path):
    write_images(tmp_path, 4)
    meta = [{"file_name": f"{i}.png", "q": "How many?", "a": i} for i in range(4)]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    with pytest.raises(ValueError, match="no column 'question'"):
        load_splits(
            DataArguments(
                dataset_name=str(tmp_path), image_column="image", question_column="question", answer_column="a"
            )
        )
    with pytest.raises(ValueError, match="column 'a' must hold strings"):
        load_splits(
            DataArguments(dataset_name=str(tmp_path), image_column="image", question_column="q", answer_column="a")
        )


def test_a_list_of_accepted_answers_trains_on_the_most_common_and_keeps_the_list(tmp_path):
    """ChartQA's `label`, DocVQA's / TextVQA's `answers`: the trained answer is the most common entry (first among
    ties); the list stays in its column for eval_references_column."""
    write_images(tmp_path, 3)
    answers = [["7"], ["blue", "navy", "blue"], ["cat", "dog"]]
    meta = [{"file_name": f"{i}.png", "q": "What?", "answers": a} for i, a in enumerate(answers)]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    args = DataArguments(
        dataset_name=str(tmp_path),
        image_column="image",
        question_column="q",
        answer_column="answers",
        eval_fraction=0.5,
    )
    rows = [*load_splits(args)[0], *load_splits(args)[1]]  # the one split: half trained on, half held out
    by_list = {tuple(r["answers"]): (r["answer"], final_answer(r)) for r in rows}
    assert by_list == {("7",): ("7", "7"), ("blue", "navy", "blue"): ("blue", "blue"), ("cat", "dog"): ("cat", "cat")}


def test_synthetic_splits_have_the_requested_sizes():
    train, test = load_splits(DataArguments(synthetic_train_samples=30, max_eval_samples=12, synthetic_task="shape"))
    assert (len(train), len(test)) == (30, 12)
    assert [pixels(r["images"][0]) for r in train.select(range(3))] != [
        pixels(r["images"][0]) for r in test.select(range(3))
    ]


def test_preference_image_folder_with_a_single_image_column(tmp_path, processors):
    """One image per row in an `image` column (imagefolder's layout) becomes the `images` list the collator reads."""
    from vlm_recipes.data.collators import PreferenceCollator
    from vlm_recipes.data.loading import load_preference_splits

    write_images(tmp_path, 4)
    user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is the number?"}]}]
    meta = [
        {
            "file_name": f"{i}.png",
            "prompt": user,
            "chosen": [{"role": "assistant", "content": [{"type": "text", "text": str(i)}]}],
            "rejected": [{"role": "assistant", "content": [{"type": "text", "text": str(i + 1)}]}],
        }
        for i in range(4)
    ]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    train, test = load_preference_splits(DataArguments(dataset_name=str(tmp_path), image_column="image"), seed=0)
    row = train[0]
    assert "image" not in train.column_names and len(row["images"]) == 1
    batch = PreferenceCollator(processors["smolvlm"])([row])
    assert batch["input_ids"].shape[0] == 2 and batch["pixel_values"].shape[0] == 2


def test_transparent_palette_pixels_become_white_like_rgba():
    from vlm_recipes.data.images import to_rgb

    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0  # palette index 0 (black) is transparent
    assert list(to_rgb(image).getdata()) == [(255, 255, 255), (255, 0, 0)]
