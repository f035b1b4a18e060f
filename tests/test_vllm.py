"""GRPO with vLLM generation (`use_vllm: true`), checked without a GPU or vllm: the prompts vLLM is given
(vlm_recipes.training.vllm_prompts) against the prompt the processor builds, and the refusals.

vLLM runs the model's Hugging Face processor on the images it is given and expands each image placeholder of the
prompt itself; these tests run that same processor on our vLLM prompt and check it gives exactly the training prompt.
"""

import copy

import pytest
import torch
from helpers import REPO_ROOT, parse_config, run_recipe
from PIL import Image

from vlm_recipes.data.chat_encoding import ChatEncoder
from vlm_recipes.models.families import FAMILIES, QWEN2_VL, SMOLVLM
from vlm_recipes.tiny.vlm import build_processor
from vlm_recipes.training import vllm_prompts as vp

pytestmark = pytest.mark.unit

VLLM_CONFIGS = sorted((REPO_ROOT / "recipes" / "configs").rglob("grpo*vllm*.yaml"))


def _image(width, height, colour):
    return Image.new("RGB", (width, height), colour)


def _conversations():
    """One row with one image, one with two images (of other sizes), one text-only row."""
    system = {"role": "system", "content": [{"type": "text", "text": "Answer briefly."}]}
    return [
        [
            system,
            {
                "role": "user",
                "content": [{"type": "image", "image": _image(150, 97, "red")}, {"type": "text", "text": "Colour?"}],
            },
        ],
        [
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": _image(64, 64, "blue")},
                    {"type": "text", "text": "Left, then right:"},
                    {"type": "image", "image": _image(40, 120, "green")},
                    {"type": "text", "text": "same shape?"},
                ],
            }
        ],
        [{"role": "user", "content": [{"type": "text", "text": "No image here."}]}],
    ]


def _images(conv):
    return [p["image"] for m in conv for p in m["content"] if p["type"] == "image"]


def _image_token_id(processor):
    return processor.tokenizer.convert_tokens_to_ids(processor.image_token)


@pytest.fixture(scope="module", params=["smolvlm", "qwen2_vl"])
def processor(request):
    return build_processor(request.param)


def _training_ids(processor, convs):
    """The ids the loss is computed on: our encoder's expanded prompt (what GRPO's _tokenize_prompts returns)."""
    return ChatEncoder(processor)(convs, add_generation_prompt=True, padding_side=None)["input_ids"]


def test_colocate_prompt_has_one_unexpanded_placeholder_per_image_and_the_processor_expands_it_to_the_training_prompt(
    processor,
):
    convs = _conversations()
    got = vp.vllm_prompts(ChatEncoder(processor), convs, "colocate")
    image_id = _image_token_id(processor)
    family_ids = set(SMOLVLM.image_token_ids(processor.tokenizer) + QWEN2_VL.image_token_ids(processor.tokenizer))
    for ids, conv, images in zip(got.prompt_ids, convs, got.images):
        expected_images = _images(conv)
        assert ids.count(image_id) == len(expected_images)  # one placeholder per image, not image_seq_len of them
        # the images travel alongside, in placeholder order (Qwen2-VL's resized by our processor's resize)
        assert images == ([vp.resized_for_vllm(processor, i) for i in expected_images] or None)
        # TRL #6294's diagnostic: the prompt text rendered by the processor, tokenized by the tokenizer alone.
        text = processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
        assert ids == processor.tokenizer(text, add_special_tokens=False)["input_ids"]
        # Expanded by the processor, each placeholder once, it is exactly the loss's prompt (what vLLM's processor,
        # with the checkpoint's bounds, makes of the resized Qwen2-VL images is checked below).
        expanded = processor(text=[processor.tokenizer.decode(ids)], images=[expected_images] if images else None)
        assert list(expanded["input_ids"][0]) == _training_ids(processor, [conv])[0]
        if not expected_images:
            assert not family_ids.intersection(ids)


def test_the_pre_expanded_prompt_trl_sends_by_default_holds_many_placeholders_per_image(processor):
    """The prompt our colocate path replaces (TRL #6294): the processor-expanded ids hold many image tokens for one
    image, each a placeholder to vLLM's processor, which expands them again (the processor itself refuses that text:
    "Found total N <image> tokens and 1 images")."""
    conv = _conversations()[:1]
    pre_expanded = _training_ids(processor, conv)[0]
    assert pre_expanded.count(_image_token_id(processor)) > 1
    with pytest.raises(ValueError, match="tokens and 1 images"):
        processor(text=[processor.tokenizer.decode(pre_expanded)], images=[_images(conv[0])])


def test_control_token_text_in_a_question_stays_text_in_the_vllm_prompt(processor):
    conv = copy.deepcopy(_conversations()[0])
    conv[1]["content"][1]["text"] = f"What is {processor.image_token} here?"
    got = vp.vllm_prompts(ChatEncoder(processor), [conv], "colocate")
    assert got.prompt_ids[0].count(_image_token_id(processor)) == 1  # only the template's own placeholder
    assert f"What is {processor.image_token} here?" in processor.tokenizer.decode(got.prompt_ids[0])


def test_server_prompt_is_the_training_prompt_with_one_run_of_image_tokens_per_image():
    processor = build_processor("qwen2_vl")
    convs = _conversations()
    got = vp.vllm_prompts(ChatEncoder(processor), convs, "server")
    assert got.prompt_ids == _training_ids(processor, convs)
    for ids, conv in zip(got.prompt_ids, convs):
        assert vp.image_runs(ids, _image_token_id(processor)) == len(_images(conv))


def test_server_prompt_of_tiled_smolvlm_images_is_refused_naming_colocate():
    processor = build_processor("smolvlm")
    tile = processor.image_processor.max_image_size["longest_edge"]
    processor.image_processor.size = {"longest_edge": 2 * tile}
    processor.image_processor.do_image_splitting = True  # 4 tiles + the global image: 5 runs for one image
    with pytest.raises(ValueError, match="1 image.* 5 runs of image tokens.*vllm_mode: colocate"):
        vp.vllm_prompts(ChatEncoder(processor), _conversations()[:1], "server")


def test_qwen2_vl_images_reach_vllm_resized_so_that_its_processor_sees_the_losss_grid_and_pixels():
    processor = build_processor("qwen2_vl")
    checkpoint = copy.deepcopy(processor)  # vLLM's processor, with the checkpoint's bounds (Qwen2.5-VL's)
    checkpoint.image_processor.size = {"shortest_edge": 3136, "longest_edge": 12845056}
    conv = _conversations()[1]  # two images of other sizes than any patch grid
    ids = vp.vllm_prompts(ChatEncoder(processor), [conv], "colocate").prompt_ids[0]
    text = processor.tokenizer.decode(ids)
    originals = _images(conv)
    resized = vp.vllm_prompts(ChatEncoder(processor), [conv], "colocate").images[0]
    assert all(r.width % 28 == 0 and r.height % 28 == 0 for r in resized)
    loss = processor(text=[text], images=[originals], return_mm_token_type_ids=True)  # what the loss is computed on
    sampler = checkpoint(text=[text], images=[resized], return_mm_token_type_ids=True)  # what vLLM makes of ours
    # the same patch grid, image tokens and token types (from which the model computes the M-RoPE positions), pixels
    assert torch.equal(sampler["image_grid_thw"], loss["image_grid_thw"])
    assert sampler["input_ids"] == loss["input_ids"] and sampler["mm_token_type_ids"] == loss["mm_token_type_ids"]
    assert torch.equal(sampler["pixel_values"], loss["pixel_values"])
    # TRL's default hands vLLM the original images: the checkpoint's bounds resize them to another grid (TRL #6401)
    default = checkpoint(text=[text], images=[originals])
    assert not torch.equal(default["image_grid_thw"], loss["image_grid_thw"])


def test_smolvlm_images_are_left_to_vllm_at_the_checkpoints_settings():
    processor = build_processor("smolvlm")
    image = _image(150, 97, "red")
    assert vp.resized_for_vllm(processor, image) is image


class _ModelArgs:
    longest_edge = None
    image_splitting = None
    min_pixels = 200704
    max_pixels = None


def test_refusals_by_family_mode_and_image_settings():
    assert vp.vllm_refusal(QWEN2_VL, "colocate", _ModelArgs()) is None
    assert vp.vllm_refusal(QWEN2_VL, "server", _ModelArgs()) is None
    assert vp.vllm_refusal(SMOLVLM, "colocate", _ModelArgs()) is None
    assert "use vllm_mode: colocate" in vp.vllm_refusal(SMOLVLM, "server", _ModelArgs())
    tiled = _ModelArgs()
    tiled.longest_edge = 768
    assert "remove longest_edge" in vp.vllm_refusal(SMOLVLM, "colocate", tiled)
    for family in FAMILIES:
        if family.pixel_layout == "images":
            assert "set use_vllm: false" in vp.vllm_refusal(family, "colocate", _ModelArgs())
    assert "not one of" in vp.vllm_refusal(QWEN2_VL, "remote", _ModelArgs())


def test_family_is_told_from_the_name_without_loading():
    assert vp.family_of_name("tiny:smolvlm-sft") is SMOLVLM
    assert vp.family_of_name("tiny:qwen2_vl-sft") is QWEN2_VL
    assert vp.family_of_name("tiny:llava-onevision").name == "llava_onevision"
    assert vp.family_of_name("HuggingFaceTB/SmolVLM2-2.2B-Instruct") is SMOLVLM
    assert vp.family_of_name("someone/unknown-model") is None


@pytest.mark.parametrize("path", VLLM_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_vllm_configs_parse_beside_their_plain_config(path):
    _, args, model_args = parse_config(path, "--use_cpu", "true")  # parsed on a CPU machine; run only on a GPU
    assert args.use_vllm and args.vllm_mode in vp.MODES
    plain = path.with_name(path.name.replace("_vllm_server", "").replace("_vllm", ""))
    _, plain_args, plain_model = parse_config(plain, "--use_cpu", "true")
    assert not plain_args.use_vllm
    for field in ("reward_funcs", "num_generations", "max_completion_length", "learning_rate", "beta", "loss_type"):
        assert getattr(args, field) == getattr(plain_args, field), field
    assert model_args.model_name_or_path == plain_model.model_name_or_path


def test_smolvlm_server_mode_and_tiling_settings_are_refused_when_the_config_is_parsed():
    config = REPO_ROOT / "recipes/configs/smolvlm2-2.2b-instruct/grpo_vllm.yaml"
    with pytest.raises(ValueError, match="SmolVLM.*use vllm_mode: colocate"):
        parse_config(config, "--use_cpu", "true", "--vllm_mode", "server")
    with pytest.raises(ValueError, match="remove longest_edge"):
        parse_config(config, "--use_cpu", "true", "--longest_edge", "768")


class _Args:
    use_vllm = True
    use_cpu = False


def test_environment_refusals_name_the_fix(monkeypatch):
    cpu = _Args()
    cpu.use_cpu = True
    with pytest.raises(ValueError, match="use_cpu is true: set use_vllm: false"):
        vp.check_vllm_environment(cpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="needs a CUDA GPU.*set use_vllm: false"):
        vp.check_vllm_environment(_Args())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(vp.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"pip install 'trl\[vllm\]'"):
        vp.check_vllm_environment(_Args())
    monkeypatch.setattr(vp.importlib.util, "find_spec", lambda name: object())
    vp.check_vllm_environment(_Args())  # a GPU and the package: nothing to refuse


def test_the_recipe_refuses_use_vllm_here_before_loading_anything_and_leaves_no_output_directory(
    tmp_path, monkeypatch
):
    import vlm_recipes.training.run as run_module

    def must_not_load(*args, **kwargs):
        raise AssertionError("loaded before the refusal")

    monkeypatch.setattr(run_module, "load_processor", must_not_load)
    monkeypatch.setattr(run_module, "load_model", must_not_load)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU machine, even where tests find a GPU
    out = tmp_path / "out"
    config = REPO_ROOT / "recipes/configs/tiny-qwen2-vl/grpo.yaml"
    with pytest.raises(ValueError, match="use_vllm: true needs a CUDA GPU.*set use_vllm: false"):
        run_recipe("grpo", config, out, "--use_vllm", "true", "--use_cpu", "false")
    with pytest.raises(ValueError, match="use_cpu is true"):
        run_recipe("grpo", config, out, "--use_vllm", "true")
    assert not out.exists()


class ProcessorEngine:
    """Stands in for vLLM in TRL's `VLLMGeneration.generate`: it does what vLLM does with a prompt and samples greedily
    from the model, returning each token's log-probability. Colocate: the model's processor (with the checkpoint's
    own settings) expands the placeholders of the ids it is given against the images it is given. Server: the images
    are processed on their own and their features placed on the runs of image tokens of the ids, one run per image of
    the features' length (what TRL's `_place_features` and the server do)."""

    def __init__(self, model, processor, mode, max_new_tokens=3):
        self.model, self.processor, self.mode, self.max_new_tokens = model, processor, mode, max_new_tokens
        self.received = []

    def inputs(self, ids, images):
        if self.mode == "colocate":
            text = self.processor.tokenizer.decode(ids)
            return self.processor(text=[text], images=[images] if images else None, return_tensors="pt")
        features = self.processor.image_processor(images=images, return_tensors="pt")
        merge = self.processor.image_processor.merge_size**2
        token_id = _image_token_id(self.processor)
        runs = [len(run) for run in "".join("x" if t == token_id else " " for t in ids).split()]
        assert runs == [int(n) // merge for n in features["image_grid_thw"].prod(-1)]  # features fit their runs
        return {
            "input_ids": torch.tensor([ids]),
            "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
            "mm_token_type_ids": torch.tensor(self.processor.create_mm_token_type_ids([ids])),
            **features,
        }

    @torch.no_grad()
    def generate(self, prompts, images, num_generations, profiler=None):
        self.received.append((prompts, images))
        completions, logprobs = [], []
        for ids, imgs in zip(prompts, images or [None] * len(prompts)):
            inputs = self.inputs(ids, imgs)
            out = self.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, output_logits=True,
                return_dict_in_generate=True,
            )  # fmt: skip
            tokens = out.sequences[0, inputs["input_ids"].shape[1] :].tolist()
            steps = [torch.log_softmax(logit[0].float(), -1)[t].item() for logit, t in zip(out.logits, tokens)]
            completions.append(tokens)
            logprobs.append([[lp] for lp in steps])
        return prompts, completions, logprobs, None


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["colocate", "server"])
@pytest.mark.parametrize("family", ["smolvlm", "qwen2_vl", "qwen2_5_vl"])
def test_grpo_scores_vllm_completions_on_the_prompt_vllm_sampled_them_from(family, mode):
    """Through our GRPO trainer with `use_vllm`: vLLM gets our prompt (colocate: one placeholder per image; server: the
    expanded ids), and the loss's log-probabilities of its completions equal the sampler's (TRL's importance-sampling
    ratio between them is 1), for a one-image and a two-image row."""
    from datasets import Dataset
    from transformers import AutoModelForImageTextToText

    from vlm_recipes import tiny
    from vlm_recipes.models.modeling import load_processor
    from vlm_recipes.settings import GRPOConfig, VLMModelConfig
    from vlm_recipes.training.rewards import get_reward_funcs
    from vlm_recipes.training.trainers import VLMGRPOTrainer

    if family == "smolvlm" and mode == "server":
        pytest.skip("refused: a tiled SmolVLM image is several runs of image tokens (tested above)")
    name = f"tiny:{family}-random"
    processor = load_processor(VLMModelConfig(model_name_or_path=name))
    model = AutoModelForImageTextToText.from_pretrained(tiny.resolve(name)).eval()
    engine_processor = copy.deepcopy(processor)
    if family != "smolvlm":  # vLLM's processor has the checkpoint's (wider) pixel bounds, not the config's
        engine_processor.image_processor.size = {"shortest_edge": 3136, "longest_edge": 12845056}
    rows = []
    for conv in _conversations():
        images = _images(conv)
        prompt = [
            {**m, "content": [{"type": "image"} if p["type"] == "image" else p for p in m["content"]]} for m in conv
        ]
        rows.append({"images": images, "prompt": prompt, "answer": "red"})
    ds = Dataset.from_list(rows[:2])  # one image; two images of other sizes
    args = GRPOConfig(
        output_dir="unused", use_cpu=True, bf16=False, per_device_train_batch_size=4, num_generations=2,
        max_completion_length=3, report_to="none", max_steps=1, remove_unused_columns=False,
    )  # fmt: skip
    rewards = get_reward_funcs(["accuracy"])
    trainer = VLMGRPOTrainer(model, args=args, train_dataset=ds, processing_class=processor, reward_funcs=rewards)
    engine = ProcessorEngine(model, engine_processor, mode)
    trainer.use_vllm, trainer.vllm_mode, trainer.vllm_generation = True, mode, engine  # TRL's vLLM path, our engine
    trainer._last_loaded_step = trainer.state.global_step  # nothing to sync into the stand-in
    batch = [ds[0], ds[0], ds[1], ds[1]]
    out = trainer._generate_and_score_completions(batch)

    ((prompts, images),) = engine.received
    image_id = _image_token_id(processor)
    for r, ids in enumerate(prompts):
        loss_prompt = out["prompt_ids"][r][out["prompt_mask"][r].bool()].tolist()
        n_images = len(batch[r]["images"])
        assert len(images[r]) == n_images
        if mode == "colocate":
            assert ids.count(image_id) == n_images
        else:
            assert ids == loss_prompt
        # what the engine generated from is exactly the prompt the loss scores the completion on
        assert engine.inputs(ids, images[r])["input_ids"][0].tolist() == loss_prompt
    ratio = out["importance_sampling_ratio"]
    assert torch.allclose(ratio, torch.ones_like(ratio), atol=1e-3), ratio


def test_the_vllm_bench_exits_saying_what_is_missing_on_a_machine_without_a_gpu(tmp_path, monkeypatch, capsys):
    import importlib.util

    monkeypatch.syspath_prepend(str(REPO_ROOT / "benches"))
    spec = importlib.util.spec_from_file_location("bench_grpo_vllm", REPO_ROOT / "benches" / "bench_grpo_vllm.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "runs.jsonl"
    assert bench.main(["--out", str(out), "--runs_dir", str(tmp_path / "runs")]) == 2
    assert "no CUDA GPU on this machine" in capsys.readouterr().out
    assert not out.exists() and not (tmp_path / "runs").exists()
