"""What 4-bit quantization does to a vision tower: image features and held-out answers of the pre-trained tiny models
loaded four ways.

- float32: the reference;
- bfloat16: 16-bit, no quantization;
- QLoRA (our default): the language model in 4-bit NF4, the vision tower, projector and output head in bfloat16;
- QLoRA + quantize_vision_tower: the vision tower in 4-bit NF4 too (what transformers does unless told otherwise).

For each: the relative error of the image features (the projector's output, what the language model sees) against
float32, ||f - f32|| / ||f32||, their mean cosine similarity per image token, and the greedy exact-match accuracy of
`tiny:<family>-sft` on held-out synthetic questions.

    python benches/bench_qlora_vision.py [--images 32] [--eval_samples 100]
"""

import argparse

import torch

from vlm_recipes.data import synthetic
from vlm_recipes.data.loading import SYNTHETIC_EVAL_SEED
from vlm_recipes.evaluation.generation import exact_match_accuracy
from vlm_recipes.models.families import family_of
from vlm_recipes.models.modeling import load_model, load_processor
from vlm_recipes.settings import VLMModelConfig

LOADINGS = {
    "float32": {"dtype": "float32"},
    "bfloat16": {"dtype": "bfloat16"},
    "QLoRA (vision bf16)": {"dtype": "bfloat16", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
    "QLoRA + 4-bit vision": {
        "dtype": "bfloat16",
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "quantize_vision_tower": True,
    },
}


def image_features(model, processor, images) -> torch.Tensor:
    nested = family_of(processor).pixel_layout == "tiles"  # SmolVLM's image processor takes a list of images per row
    inputs = processor.image_processor(images=[[im] for im in images] if nested else images, return_tensors="pt")
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}
    with torch.no_grad():
        out = model.get_image_features(**inputs)
    out = getattr(out, "pooler_output", out)
    if isinstance(out, (list, tuple)):
        out = torch.cat([o.reshape(-1, o.shape[-1]) for o in out])
    return out.reshape(-1, out.shape[-1]).float()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--eval_samples", type=int, default=100)
    args = parser.parse_args()
    images = [r["images"][0] for r in synthetic.make_dataset("color_shape", args.images, seed=7)]
    rows = synthetic.make_dataset("color_shape", args.eval_samples, SYNTHETIC_EVAL_SEED)
    print(f"{'model':<22} {'loading':<22} {'feature rel. error':>18} {'cosine':>8} {'accuracy':>9}")
    for family in ("smolvlm", "qwen2_vl"):
        reference = None
        for name, kwargs in LOADINGS.items():
            results = []
            for stage in ("", "-sft"):
                model_args = VLMModelConfig(model_name_or_path=f"tiny:{family}{stage}", **kwargs)
                model = load_model(model_args, use_cpu=True).eval()
                processor = load_processor(model_args)
                results.append((model, processor))
            feats = image_features(*results[0], images)
            if reference is None:
                reference = feats
            error = ((feats - reference).norm() / reference.norm()).item()
            cosine = torch.nn.functional.cosine_similarity(feats, reference, dim=-1).mean().item()
            accuracy = exact_match_accuracy(*results[1], rows, batch_size=16, max_new_tokens=8)["accuracy"]
            print(f"tiny:{family:<17} {name:<22} {error:>18.4f} {cosine:>8.4f} {accuracy:>9.3f}")


if __name__ == "__main__":
    main()
