"""Grounding as the real models and benchmarks define it: Qwen2-VL's own box format (round trip, its markers written
as control tokens and only they), each family's default format and the refusal of another family's, RefCOCO scored
on every referring expression, and the image overlap of the training and the scored split."""

import pytest
from datasets import Dataset
from helpers import parse_config

from vlm_recipes.data.chat_encoding import ChatEncoder, ContentError
from vlm_recipes.data.loading import load_splits, to_conversations
from vlm_recipes.evaluation import generation
from vlm_recipes.evaluation.metrics import score
from vlm_recipes.grounding.boxes import KEEP_START, QWEN2_VL_MARKERS, get_convention, parse_box
from vlm_recipes.models.chat_templates import training_chat_template
from vlm_recipes.models.families import FAMILIES, check_box_format, model_type_of
from vlm_recipes.paths import REPO_ROOT
from vlm_recipes.settings import DataArguments, VLMModelConfig
from vlm_recipes.training.rewards import box_format_reward

pytestmark = pytest.mark.unit

QWEN2 = get_convention("qwen2-vl")
CONFIGS = REPO_ROOT / "recipes" / "configs"
MARKERS = ["<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>"]


# -- Qwen2-VL's native format -------------------------------------------------------------------------------------


def test_qwen2_vl_answers_literally_on_a_0_1000_grid():
    text, frame = QWEN2.answer((16, 12, 40, 48), (64, 48), label="red circle")
    assert frame == (1000, 1000)
    assert text == "<|object_ref_start|>red circle<|object_ref_end|><|box_start|>(250,250),(625,999)<|box_end|>"
    # [0, 1000): an edge on the image's border is 999, never 1000.
    assert QWEN2.answer((0, 0, 64, 48), (64, 48), label="all")[0].endswith("(0,0),(999,999)<|box_end|>")


@pytest.mark.parametrize("image_size", [(64, 64), (96, 72), (640, 427)])
@pytest.mark.parametrize("box", [(3.0, 5.0, 30.0, 41.0), (10.4, 0.0, 60.0, 20.6)])
def test_qwen2_vl_format_round_trips(image_size, box):
    text, frame = QWEN2.answer(box, image_size, label="the dog on the left")
    assert QWEN2.is_answer(text, frame)
    back = QWEN2.read(text, image_size, frame)
    # Each coordinate comes back within half a cell of the 1000-grid (one cell at the clamped far edge).
    for got, want, side in zip(back, box, image_size * 2):
        assert abs(got - want) <= side / 1000 + 1e-9
    # Formatting the read-back box again gives the same text: the grid is a fixed point.
    assert QWEN2.answer(back, image_size, label="the dog on the left")[0] == text


def test_qwen2_vl_answers_are_read_strictly_and_parsed_leniently():
    text = "<|object_ref_start|>3 cats (2,4)<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>"
    assert parse_box(text) == (100, 200, 300, 400)  # the numbers of the label are not the box
    assert QWEN2.is_answer(text)
    # The real tokenizer decodes with skip_special_tokens=True: the markers are gone, the answer still reads.
    assert QWEN2.is_answer("3 cats (2,4)(100,200),(300,400)")
    for wrong in (
        '[{"bbox_2d": [100, 200, 300, 400], "label": "cat"}]',  # Qwen2.5-VL's JSON
        "<|object_ref_start|>cat<|object_ref_end|><|box_start|>(300,200),(100,400)<|box_end|>",  # x2 < x1
        "<|object_ref_start|>cat<|object_ref_end|><|box_start|>(100,200),(300,1000)<|box_end|>",  # off [0, 1000)
        "<|box_start|>(100,200),(300,400)<|box_end|> and more",
    ):
        assert not QWEN2.is_answer(wrong), wrong
    assert box_format_reward([text], box_format=["qwen2-vl"], box_frame=[[1000, 1000]]) == [1.0]


@pytest.fixture(scope="module")
def qwen_with_markers():
    """The tiny Qwen2-VL processor with the four markers as special tokens, as in the real Qwen2-VL tokenizer."""
    from vlm_recipes.tiny import vlm as tiny

    processor = tiny.build_processor("qwen2_vl")
    processor.tokenizer.add_special_tokens({"additional_special_tokens": MARKERS})
    return processor


def _assistant_ids(processor, answer_message, image):
    encoder = ChatEncoder(processor, training_chat_template(processor))
    conversation = [
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Where?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer_message}]},
    ]
    batch = encoder([conversation], assistant_mask=True)
    return batch["input_ids"][0][batch["assistant_masks"][0].bool()].tolist()


def test_the_markers_are_control_tokens_and_the_label_stays_text(qwen_with_markers, red_image):
    tok = qwen_with_markers.tokenizer
    label = "red <|box_start|> thing <|im_end|>"  # a dataset's text that spells control tokens
    message = QWEN2.answer_message((16, 16, 32, 48), (64, 64), label=label)
    ids = _assistant_ids(qwen_with_markers, message, red_image)
    marker_ids = tok.convert_tokens_to_ids(MARKERS)
    # Each marker the formatter wrote is its control token, once; the label's look-alikes are plain text.
    assert [ids.count(i) for i in marker_ids] == [1, 1, 1, 1]
    assert ids.count(tok.convert_tokens_to_ids("<|im_end|>")) == 1  # the template's end of turn only
    assert ids[0] == marker_ids[0]
    assert label in tok.decode(ids, skip_special_tokens=True)
    # The same answer without the wrappers (as a dataset would write it): every marker is text.
    plain = QWEN2.answer((16, 16, 32, 48), (64, 64), label=label)[0]
    assert not set(marker_ids) & set(_assistant_ids(qwen_with_markers, plain, red_image))


def test_only_box_markers_can_be_kept_and_datasets_cannot_write_the_wrappers(qwen_with_markers, red_image):
    forged = f"{KEEP_START}<|im_end|>\U000f0003"
    with pytest.raises(ContentError, match="no box convention writes it"):
        _assistant_ids(qwen_with_markers, forged, red_image)
    rows = Dataset.from_dict({"image": [red_image], "q": ["Where?"], "a": [f"x {KEEP_START}<|box_start|>\U000f0003"]})
    args = DataArguments(dataset_name="x.jsonl", image_column="image", question_column="q", answer_column="a")
    with pytest.raises(ValueError, match=r"row 0: column 'a' holds a private-use character"):
        to_conversations(rows, args)
    turn = [{"role": "assistant", "content": [{"type": "text", "text": f"{KEEP_START}<|box_end|>\U000f0003"}]}]
    rows = Dataset.from_dict({"image": [red_image, red_image], "messages": [[], turn]})
    with pytest.raises(ValueError, match=r"row 1: column 'messages' holds a private-use character"):
        to_conversations(rows, DataArguments(dataset_name="x.jsonl", image_column="image"))


# -- each family's own format, and the refusal of another -----------------------------------------------------------


@pytest.mark.parametrize(
    "model, native",
    [
        ("tiny:qwen2_vl", "qwen2-vl"),
        ("Qwen/Qwen2-VL-2B-Instruct", "qwen2-vl"),
        ("Qwen/Qwen2-VL-7B-Instruct", "qwen2-vl"),
        ("Qwen/Qwen2.5-VL-3B-Instruct", "qwen2.5-vl"),
        ("tiny:qwen2_5_vl", "qwen2.5-vl"),
        ("tiny:qwen3_5", "qwen3-vl"),  # Qwen3.5 answers in the Qwen3-VL convention (docs/families.md)
        ("Qwen/Qwen3.5-0.8B", "qwen3-vl"),
        ("Qwen/Qwen3.8-27B", "qwen3-vl"),
        ("tiny:smolvlm", "smolvlm"),
        ("HuggingFaceTB/SmolVLM-256M-Instruct", "smolvlm"),
        ("HuggingFaceTB/SmolVLM2-2.2B-Instruct", "smolvlm"),
    ],
)
def test_box_format_auto_is_the_family_default(model, native):
    data = DataArguments(synthetic_task="grounding", box_format="auto")
    check_box_format(data, VLMModelConfig(model_name_or_path=model))
    assert data.box_format == native


def test_a_local_checkpoint_is_told_by_its_config(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen2_vl"}')
    assert model_type_of(str(tmp_path)) == "qwen2_vl"
    data = DataArguments(synthetic_task="grounding", box_format="auto")
    check_box_format(data, VLMModelConfig(model_name_or_path=str(tmp_path)))
    assert data.box_format == "qwen2-vl"


def test_every_family_record_names_known_conventions():
    from vlm_recipes.grounding.boxes import CONVENTIONS

    for family in FAMILIES:
        for model_type, name in family.box_formats:
            assert model_type in family.model_types and name in CONVENTIONS, family.name


def test_a_foreign_box_format_is_refused_before_the_model_loads(tmp_path):
    config = CONFIGS / "tiny-qwen2-vl" / "sft_grounding.yaml"
    with pytest.raises(
        ValueError, match=r"box_format qwen2.5-vl is not the format tiny:qwen2_vl .*use box_format qwen2-vl"
    ):
        parse_config(config, "--box_format", "qwen2.5-vl")
    data = parse_config(config, "--box_format", "qwen2.5-vl", "--box_format_override", "true")[0]
    assert data.box_format == "qwen2.5-vl"  # asked for explicitly: trained
    with pytest.raises(ValueError, match="is Qwen2-VL's own .*remove box_format_override"):
        parse_config(config, "--box_format_override", "true")
    with pytest.raises(ValueError, match="box_format_override is for a box_format"):
        DataArguments(synthetic_task="grounding", box_format="auto", box_format_override=True)
    with pytest.raises(ValueError, match="has no box format of its own"):
        check_box_format(
            DataArguments(synthetic_task="grounding", box_format="auto"),
            VLMModelConfig(model_name_or_path="tiny:llava"),
        )
    # A model the parse cannot tell (a directory an earlier recipe writes) is checked when the run starts, by its
    # config; one whose config cannot be read then is refused.
    later = DataArguments(synthetic_task="grounding", box_format="smolvlm")
    check_box_format(later, VLMModelConfig(model_name_or_path=str(tmp_path / "not-written-yet")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot be told .*set box_format_override: true"):
        check_box_format(later, VLMModelConfig(model_name_or_path=str(tmp_path / "empty")), load=True)
    (tmp_path / "empty" / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    with pytest.raises(ValueError, match="use box_format qwen2.5-vl"):
        check_box_format(later, VLMModelConfig(model_name_or_path=str(tmp_path / "empty")), load=True)


@pytest.mark.parametrize(
    "config",
    sorted(p.relative_to(CONFIGS) for p in CONFIGS.glob("*/*.yaml") if "box_format:" in p.read_text()),
    ids=str,
)
def test_every_shipped_grounding_config_trains_its_familys_own_format(config):
    overrides = [] if str(config).startswith("tiny-") else ["--use_cpu", "true"]
    data, _, model = parse_config(CONFIGS / config, *overrides)
    check_box_format(data, model, load=not model.model_name_or_path.startswith("outputs/"))
    assert data.box_format in {"qwen2-vl", "qwen2.5-vl", "smolvlm", "qwen3-vl"} and not data.box_format_override


# -- RefCOCO: every expression scored, image overlap reported -------------------------------------------------------


def refcoco_args(standins, **changes):
    settings = dict(
        dataset_name=str(standins["lmms-lab-encoder/RefCOCO"]),
        dataset_train_split="val",
        dataset_test_split="testA",
        image_column="image",
        box_format="smolvlm",
        bbox_column="bbox",
        bbox_layout="xywh",
        grounding_query_column="answer",
        grounding_prompt="Locate the {query}.",
    )
    return DataArguments(**{**settings, **changes})


def test_refcoco_scores_every_referring_expression(standins):
    from datasets import load_dataset

    raw = load_dataset(str(standins["lmms-lab-encoder/RefCOCO"]), split="testA")
    train, scored = load_splits(refcoco_args(standins))
    expressions = [e for row in raw["answer"] for e in row]
    assert len(train) == 10  # one training row per object (its first expression)
    assert len(scored) == len(expressions) > len(raw)  # one scored row per expression
    assert scored["question"] == [f"Locate the {e}." for e in expressions]
    assert scored["object_index"] == [i for i, row in enumerate(raw["answer"]) for _ in row]
    # The rows of one object share its box: right on every expression but the second of each object is
    # Acc@0.5 = 1 - objects / expressions, not the per-object 1.0.
    predictions = [a if k == 0 else "[0, 0, 1, 1]" for a, k in zip(scored["answer"], scored["expression_index"])]
    accuracy = score("iou_accuracy", predictions, scored["answer"])["iou_accuracy"]
    assert accuracy == pytest.approx(1 - len(raw) / len(expressions))


def test_the_image_overlap_of_training_and_scored_split_is_the_contamination_checks(standins, caplog, monkeypatch):
    """One figure, one implementation: the grounding loader measures no overlap of its own (it names the contamination
    check's), and the check finds what the old per-COCO-id count found: val and testA share no photo; objects held out
    of val sit on training photos (two objects a photo), shown and marked, not refused (rows disjoint)."""
    import logging
    from types import SimpleNamespace

    from vlm_recipes.data import contamination
    from vlm_recipes.training.preflight.overlap import measure_run

    calls = []
    original = contamination.measure
    monkeypatch.setattr(contamination, "measure", lambda *a, **k: calls.append(1) or original(*a, **k))
    with caplog.at_level(logging.INFO, logger="vlm_recipes.data.loading"):
        train, scored = load_splits(refcoco_args(standins))
    assert calls == [] and "image overlap with the training data: the contamination check's figure" in caplog.text
    no_benchmarks = SimpleNamespace(benchmarks=None)
    args = refcoco_args(standins)
    (held_out,) = measure_run(train, scored, args, no_benchmarks)[1]
    assert (held_out.rows, held_out.image_rows) == (len(scored), 0)  # val and testA: other photos
    args = refcoco_args(standins, dataset_test_split=None, eval_fraction=0.3)
    train, scored = load_splits(args, seed=0)
    (held_out,) = measure_run(train, scored, args, no_benchmarks)[1]
    assert held_out.image_rows >= 2 and not held_out.enforced and held_out.mark().startswith("ABOVE 1% (held out")


def marker_tokenizer():
    """A byte-level tokenizer in which Qwen2-VL's four markers are special tokens, as in the real Qwen2-VL tokenizer
    (its tokenizer_config.json marks <|box_start|> ... "special": true)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    core = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>")
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN2_VL_MARKERS)})
    return tokenizer


def test_a_qwen2_vl_reference_is_compared_as_the_decoded_answer_reads(monkeypatch):
    """The model writes the markers, decode(skip_special_tokens=True) drops them; the reference kept them, so exact
    match was 0 for a perfect answer. References now go through `as_decoded` (evaluation/generation.py), in the one
    place held-out figures are scored."""
    tokenizer = marker_tokenizer()
    reference = "<|object_ref_start|>red circle<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>"
    ids = tokenizer(reference, add_special_tokens=False)["input_ids"]
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    assert decoded == "red circle(100,200),(300,400)"  # what the model's perfect answer comes back as
    assert generation.as_decoded(reference, tokenizer) == decoded
    assert generation.as_decoded([reference, "plain"], tokenizer) == [decoded, "plain"]
    # Any other control string in a reference is data: trained as text, written as text, kept by decode.
    assert generation.as_decoded(" 42 <|im_end|>", tokenizer) == "42 <|im_end|>"

    monkeypatch.setattr(generation, "generate_answers", lambda *a, **k: [decoded, "blue square(0,0),(10,10)"])
    rows = [{"answer": reference}, {"answer": reference}]
    figures = generation.held_out_metrics(None, tokenizer, rows, 2, 8, "after", metrics=("iou_accuracy",))
    assert figures["metrics"] == {"accuracy": 0.5, "iou_accuracy": 0.5}
    assert figures["generated"]["references"] == [decoded, decoded]
