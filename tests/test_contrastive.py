"""CLIP and SigLIP losses: the properties that matter, and agreement with transformers' own CLIP loss."""

import math

import pytest
import torch

from vlm_recipes.baselines.contrastive import MAX_LOGIT_SCALE, clip_loss, siglip_loss

pytestmark = pytest.mark.unit

N, DIM = 6, 8
SCALE = torch.tensor(math.log(100.0))  # inverse temperature 100, CLIP's ceiling


def orthogonal_pairs():
    """Matched image/text embeddings: row i of both is the i-th basis vector (cosine 1 matched, 0 otherwise)."""
    eye = torch.eye(N, DIM)
    return eye, eye.clone()


def test_clip_loss_is_near_zero_for_matched_orthogonal_pairs():
    images, texts = orthogonal_pairs()
    assert clip_loss(images, texts, SCALE).item() < 1e-3


def test_clip_loss_is_high_for_swapped_pairs():
    images, texts = orthogonal_pairs()
    swapped = texts.roll(1, dims=0)  # every image now "matches" another image's text
    loss = clip_loss(images, swapped, SCALE).item()
    assert loss > math.log(N) and loss > 50  # far worse than chance (log N) at this temperature


def test_clip_loss_at_uniform_similarity_is_log_batch_size():
    images = torch.ones(N, DIM)
    assert clip_loss(images, images.clone(), SCALE).item() == pytest.approx(math.log(N), abs=1e-5)


def test_clip_loss_is_symmetric_and_scale_invariant_in_the_embeddings():
    torch.manual_seed(0)
    images, texts = torch.randn(N, DIM), torch.randn(N, DIM)
    scale = torch.tensor(2.0)
    assert clip_loss(images, texts, scale).item() == pytest.approx(clip_loss(texts, images, scale).item(), abs=1e-6)
    # Embeddings are normalised: their length must not matter.
    assert clip_loss(3 * images, 0.5 * texts, scale).item() == pytest.approx(clip_loss(images, texts, scale).item())


def test_clip_loss_clamps_the_temperature_like_clip():
    torch.manual_seed(0)
    images, texts = torch.randn(N, DIM), torch.randn(N, DIM)
    too_sharp = clip_loss(images, texts, torch.tensor(10.0)).item()
    assert too_sharp == pytest.approx(clip_loss(images, texts, torch.tensor(MAX_LOGIT_SCALE)).item())


def test_clip_loss_gradient_reaches_the_learnable_temperature():
    torch.manual_seed(0)
    images, texts = torch.randn(N, DIM), torch.randn(N, DIM)
    scale = torch.tensor(1.0, requires_grad=True)
    clip_loss(images, texts, scale).backward()
    assert scale.grad is not None and scale.grad.abs().item() > 0


@pytest.mark.integration
def test_clip_loss_equals_transformers_clip_model_loss():
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": 50, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 16, "eos_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 16, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    model = CLIPModel(config).eval()
    ids = torch.randint(2, 50, (4, 6))
    ids[:, -1] = 1
    out = model(input_ids=ids, pixel_values=torch.randn(4, 3, 16, 16), return_loss=True)
    ours = clip_loss(out.image_embeds, out.text_embeds, model.logit_scale)
    assert ours.item() == pytest.approx(out.loss.item(), abs=1e-5)


def test_siglip_loss_is_near_zero_for_matched_orthogonal_pairs():
    images, texts = orthogonal_pairs()
    # exp(scale) * cos + bias: +90 on the diagonal, -10 elsewhere.
    assert siglip_loss(images, texts, SCALE, torch.tensor(-10.0)).item() < 1e-3


def test_siglip_loss_is_high_for_swapped_pairs_and_symmetric():
    images, texts = orthogonal_pairs()
    swapped = texts.roll(1, dims=0)
    bias = torch.tensor(-10.0)
    assert siglip_loss(images, swapped, SCALE, bias).item() > 50
    torch.manual_seed(0)
    a, b = torch.randn(N, DIM), torch.randn(N, DIM)
    assert siglip_loss(a, b, SCALE, bias).item() == pytest.approx(siglip_loss(b, a, SCALE, bias).item(), rel=1e-6)


def test_siglip_loss_matches_its_definition_on_one_pair():
    images, texts = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]])
    scale, bias = torch.tensor(0.0), torch.tensor(0.5)  # logit = 1 * 0.6 + 0.5
    expected = -math.log(1 / (1 + math.exp(-1.1)))
    assert siglip_loss(images, texts, scale, bias).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.integration
def test_contrastive_trainer_trains_a_siglip_model_with_the_sigmoid_loss(tmp_path):
    """The `siglip` branch end to end: a small SiglipModel (learnable scale and bias) trained by ContrastiveTrainer on
    synthetic pairs; the held-out loss falls and the bias moves. (The tiny CLIP processor stands in for SigLIP's,
    whose tokenizer needs a sentencepiece model we cannot build offline.)"""
    from transformers import SiglipConfig, SiglipModel, TrainingArguments

    from vlm_recipes.baselines.contrastive import ContrastiveCollator, ContrastiveTrainer
    from vlm_recipes.data import synthetic
    from vlm_recipes.tiny import clip as tiny_clip

    processor = tiny_clip.build_processor()
    torch.manual_seed(0)
    tower = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2}
    text = {**tower, "vocab_size": len(processor.tokenizer), "max_position_embeddings": 32}
    model = SiglipModel(SiglipConfig(text_config=text, vision_config={**tower, "image_size": 64, "patch_size": 16}))
    collate = ContrastiveCollator(processor)
    held_out = collate([dict(r) for r in synthetic.make_caption_dataset(32, seed=5, two_shape_fraction=0.0)])

    def held_out_loss():
        with torch.no_grad():
            out = model(**held_out)
            return siglip_loss(out.image_embeds, out.text_embeds, model.logit_scale, model.logit_bias).item()

    before, bias_before = held_out_loss(), model.logit_bias.item()
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=40, per_device_train_batch_size=32, learning_rate=1e-3, use_cpu=True,
        report_to="none", save_strategy="no", remove_unused_columns=False, disable_tqdm=True,
    )  # fmt: skip
    train = synthetic.make_caption_dataset(640, seed=4, two_shape_fraction=0.0)
    ContrastiveTrainer(model=model, args=args, train_dataset=train, data_collator=collate, loss_name="siglip").train()
    assert held_out_loss() < before * 0.8
    assert model.logit_bias.item() != bias_before
