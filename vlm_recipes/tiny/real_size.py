"""Real-size architectures with random weights, built offline: what a benchmark needs to measure real shapes.

The published checkpoints cannot be downloaded here, but their architectures can be built from their configs: the
same layer counts, widths, vocabulary and vision towers, with random weights (the compute and memory of a training
step do not depend on the weights' values). The processor is the real class with the checkpoint's image settings
as our configs ship them, the family's locally trained tokenizer (vlm_recipes.tiny.vlm; text token counts differ a
little from the real tokenizer's, image token counts are exact) and TRL's copy of the real chat template.

    SmolVLM-256M  Idefics3: 30-layer 576-wide Llama text model, 12-layer 768-wide 512 px vision tower,
                  scale_factor 4 (64 tokens per tile), 228 M parameters; longest_edge 1024 with image splitting.
    Qwen2-VL-2B   28-layer 1536-wide text model with M-RoPE, 32-layer 1280-wide vision tower, 2.2 B parameters;
                  min_pixels 50,176 / max_pixels 401,408.
    Qwen2.5-VL-3B 36-layer 2048-wide text model with M-RoPE, 32-layer 1280-wide vision tower (window attention, full
                  attention at blocks 7/15/23/31, RMSNorm, SwiGLU), 3.75 B parameters; min_pixels 50,176 / max_pixels
                  401,408 (benches/bench_real_size_qwen2_5_vl.py reports every config's setting).
    Qwen3-VL-2B   28-layer 2048-wide text model (head_dim 128, interleaved M-RoPE), 24-layer 1024-wide vision tower
                  (patch 16, DeepStack at blocks 5/11/17), 2.1 B parameters; min_pixels 65,536 / max_pixels 524,288.
    Qwen3.5-0.8B  24-layer 1024-wide text model, Gated DeltaNet x3 then gated attention, 6 times; 12-layer 768-wide
                  vision tower (patch 16); `Qwen/Qwen3.5-0.8B`'s config.json (docs/families.md names the copies read);
                  min_pixels 65,536 / max_pixels 524,288 (recipes/configs/qwen3.5-0.8b/sft_lora.yaml).

    gemma-3-4b-it Gemma 3: 34-layer 2560-wide text model (5 sliding-window layers of 1024 tokens to 1 full), 262,208
                  tokens, 27-layer 1152-wide SigLIP tower at 896 px, 256 image tokens per image; build it on the meta
                  device (`build_model(..., device="meta")`) to count parameters: 4.3 B, 17 GB in float32.
    gemma-4-E2B-it Gemma 4: 35-layer 1536-wide text model (4 sliding-window layers of 512 tokens to 1 full; the last
                  20 reuse earlier layers' KV states; per-layer embeddings of 256 per layer over 262,144 tokens),
                  16-layer 768-wide vision tower (16 px patches pooled 3x3, 280 soft tokens per image at most), a
                  12-layer audio tower; 5.1 B parameters, build it on the meta device.

Not cached (0.9 GB and 8.8 GB in float32; built in about 30 s and 80 s on a 2-core CPU). For benchmarks only.
"""

from __future__ import annotations

import torch
from trl.chat_template_utils import smolvlm_chat_template

from . import qwen2_5_vl, qwen3_5
from . import vlm as tiny

REAL_SIZE = {
    "smolvlm-256m": {
        "family": "smolvlm",
        "text": {
            "hidden_size": 576,
            "intermediate_size": 1536,
            "num_hidden_layers": 30,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "vocab_size": 49280,
            "rope_theta": 100000.0,
            "rms_norm_eps": 1e-5,
            "max_position_embeddings": 8192,
            "tie_word_embeddings": True,
        },
        "vision": {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": 512,
            "patch_size": 16,
        },
        "scale_factor": 4,
        "image_seq_len": 64,
        "longest_edge": 1024,  # recipes/configs/smolvlm-256m-instruct/sft_lora.yaml
    },
    "qwen2-vl-2b": {
        "family": "qwen2_vl",
        "text": {
            "hidden_size": 1536,
            "intermediate_size": 8960,
            "num_hidden_layers": 28,
            "num_attention_heads": 12,
            "num_key_value_heads": 2,
            "vocab_size": 151936,
            "rms_norm_eps": 1e-6,
            "max_position_embeddings": 32768,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
        },
        "vision": {
            "depth": 32,
            "embed_dim": 1280,
            "num_heads": 16,
            "mlp_ratio": 4,
            "hidden_size": 1536,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        "min_pixels": 50176,  # recipes/configs/qwen2-vl-2b-instruct/sft_lora.yaml
        "max_pixels": 401408,
        "tie_word_embeddings": True,
    },
    # Qwen/Qwen2.5-VL-3B-Instruct's config.json (three third-party copies agree; docs/families.md#qwen25-vl).
    "qwen2.5-vl-3b": {
        "family": "qwen2_5_vl",
        "text": {
            "hidden_size": 2048,
            "intermediate_size": 11008,
            "num_hidden_layers": 36,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "vocab_size": 151936,
            "rms_norm_eps": 1e-6,
            "max_position_embeddings": 128000,
        },
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
        "vision": {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "tokens_per_second": 2,
            "hidden_act": "silu",
        },
        "min_pixels": 50176,  # recipes/configs/qwen2.5-vl-3b-instruct/sft_lora.yaml
        "max_pixels": 401408,
        "tie_word_embeddings": True,
    },
    # Qwen/Qwen3-VL-2B-Instruct's config.json (vlm_recipes/tiny/qwen3_vl.py REAL_2B; docs/families.md#qwen3-vl).
    "qwen3-vl-2b": {
        "family": "qwen3_vl",
        "min_pixels": 65536,  # recipes/configs/qwen3-vl-2b-instruct/sft_lora.yaml
        "max_pixels": 524288,
    },
    "qwen3.5-0.8b": {
        "family": "qwen3_5",
        "text": {
            "vocab_size": 248320,
            "hidden_size": 1024,
            "intermediate_size": 3584,
            "num_hidden_layers": 24,
            "num_attention_heads": 8,
            "num_key_value_heads": 2,
            "head_dim": 256,
            "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 6,
            "linear_conv_kernel_dim": 4,
            "linear_key_head_dim": 128,
            "linear_value_head_dim": 128,
            "linear_num_key_heads": 16,
            "linear_num_value_heads": 16,
            "rms_norm_eps": 1e-6,
            "max_position_embeddings": 262144,
        },
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000000.0,
            "mrope_section": [11, 11, 10],
            "mrope_interleaved": True,
            "partial_rotary_factor": 0.25,
        },
        "vision": {
            "depth": 12,
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_heads": 12,
            "out_hidden_size": 1024,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 2304,
            "hidden_act": "gelu_pytorch_tanh",
        },
        "min_pixels": 65536,  # recipes/configs/qwen3.5-0.8b/sft_lora.yaml
        "max_pixels": 524288,
        "tie_word_embeddings": True,
    },
}


# --- Gemma 3 (issue 29): google/gemma-3-4b-it's config.json and preprocessor_config.json ---
REAL_SIZE["gemma-3-4b-it"] = {
    "family": "gemma3",
    "text": {
        "hidden_size": 2560,
        "intermediate_size": 10240,
        "num_hidden_layers": 34,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "query_pre_attn_scalar": 256,
        "sliding_window": 1024,
        "vocab_size": 262208,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6,
    },
    "vision": {
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_hidden_layers": 27,
        "num_attention_heads": 16,
        "image_size": 896,
        "patch_size": 14,
    },
    "mm_tokens_per_image": 256,
    # The real ids of <start_of_image>, <end_of_image> and <image_soft_token> in its 262,208-token vocabulary.
    "token_ids": {"boi": 255999, "eoi": 256000, "image": 262144},
}


# --- Gemma 4 (issue 29): google/gemma-4-E2B-it's architecture (config.json) and processor (280 soft tokens) ---
REAL_SIZE["gemma-4-E2B-it"] = {
    "family": "gemma4",
    "text": {
        "hidden_size": 1536,
        "intermediate_size": 6144,
        "num_hidden_layers": 35,
        "num_attention_heads": 8,
        "num_key_value_heads": 1,
        "head_dim": 256,
        "global_head_dim": 512,
        "hidden_size_per_layer_input": 256,
        "num_kv_shared_layers": 20,
        "use_double_wide_mlp": True,
        "sliding_window": 512,
        "layer_types": (["sliding_attention"] * 4 + ["full_attention"]) * 7,
        "final_logit_softcapping": 30.0,
        "vocab_size": 262144,
        "vocab_size_per_layer_input": 262144,
        "max_position_embeddings": 131072,
    },
    "vision": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 16,
        "num_attention_heads": 12,
        "num_key_value_heads": 12,
        "head_dim": 64,
        "patch_size": 16,
        "pooling_kernel_size": 3,
        "position_embedding_size": 10240,
        "use_clipped_linears": True,
    },
    "audio": {"hidden_size": 1024, "num_hidden_layers": 12, "num_attention_heads": 8, "output_proj_dims": 1536},
    "max_soft_tokens": 280,
    # The real ids of <|image>, <image|>, <|image|>, <|video|>, <|audio>, <audio|>, <|audio|> (Gemma4Config defaults).
    "token_ids": {
        "boi": 255999,
        "eoi": 258882,
        "image": 258880,
        "video": 258884,
        "boa": 256000,
        "eoa": 258883,
        "audio": 258881,
    },  # fmt: skip
    # Measured here, on the meta device (tests/test_family_gemma4.py checks it).
    "parameters": 5_104_297_504,
}


def build_processor(name: str):
    """The real processor class with the checkpoint's image settings, the family's local tokenizer and TRL's
    real chat template."""
    spec = REAL_SIZE[name]
    tokenizer = tiny.build_tokenizer(spec["family"])
    if spec["family"] == "smolvlm":
        from transformers import Idefics3ImageProcessor, Idefics3Processor

        tile = spec["vision"]["image_size"]
        image_processor = Idefics3ImageProcessor(
            size={"longest_edge": spec["longest_edge"]},
            max_image_size={"longest_edge": tile},
            do_image_splitting=True,
        )
        return Idefics3Processor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            image_seq_len=spec["image_seq_len"],
            chat_template=smolvlm_chat_template,
        )
    if spec["family"] == "qwen2_5_vl":
        return qwen2_5_vl.qwen2_5_vl_processor(tokenizer, spec["min_pixels"], spec["max_pixels"])
    if spec["family"] == "qwen3_vl":
        from . import qwen3_vl

        bounds = {"shortest_edge": spec["min_pixels"], "longest_edge": spec["max_pixels"]}
        return qwen3_vl.processor(tokenizer, bounds, qwen3_vl.REAL_VIDEO)
    if spec["family"] == "qwen3_5":
        # the checkpoint's video settings (preprocessor_config.json): all frames within 4,096..25,165,824 pixels
        video = dict(size={"shortest_edge": 4096, "longest_edge": 25165824}, fps=2, min_frames=4, max_frames=768)
        bounds = {"shortest_edge": spec["min_pixels"], "longest_edge": spec["max_pixels"]}
        return qwen3_5.processor(tokenizer, bounds, video)
    if spec["family"] == "gemma3":
        from .gemma import gemma3_processor

        return gemma3_processor(spec, tokenizer)
    if spec["family"] == "gemma4":
        from .gemma import gemma4_processor

        return gemma4_processor(spec, tokenizer)
    return tiny.qwen2_vl_processor(tokenizer, spec["min_pixels"], spec["max_pixels"])


def build_model(name: str, processor, seed: int = 0, attn_implementation: str = "sdpa", device: str = "cpu"):
    """The architecture of `name` with random weights (float32), its special-token ids taken from `processor`
    (Gemma 3: the real ids; its vocabulary is the real size). `device="meta"`: shapes only, no memory."""
    spec = REAL_SIZE[name]
    tokenizer = processor.tokenizer
    ids = tokenizer.convert_tokens_to_ids
    torch.manual_seed(seed)
    if spec["family"] == "gemma3":
        from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

        from .gemma import GEMMA3_ROPE

        text = Gemma3TextConfig(
            pad_token_id=0, eos_token_id=1, bos_token_id=2, rope_parameters=GEMMA3_ROPE, **spec["text"]
        )
        config = Gemma3Config(
            text_config=text.to_dict(),
            vision_config=SiglipVisionConfig(**spec["vision"], vision_use_head=False).to_dict(),
            mm_tokens_per_image=spec["mm_tokens_per_image"],
            boi_token_index=spec["token_ids"]["boi"],
            eoi_token_index=spec["token_ids"]["eoi"],
            image_token_index=spec["token_ids"]["image"],
        )
        config._attn_implementation = attn_implementation
        with torch.device(device):
            return Gemma3ForConditionalGeneration(config).eval()
    if spec["family"] == "gemma4":
        from transformers import (
            Gemma4AudioConfig,
            Gemma4Config,
            Gemma4ForConditionalGeneration,
            Gemma4TextConfig,
            Gemma4VisionConfig,
        )

        from .gemma import GEMMA4_ROPE

        text = Gemma4TextConfig(
            pad_token_id=0, eos_token_id=1, bos_token_id=2, rope_parameters=GEMMA4_ROPE, **spec["text"]
        )
        t = spec["token_ids"]
        config = Gemma4Config(
            text_config=text.to_dict(),
            vision_config=Gemma4VisionConfig(**spec["vision"]).to_dict(),
            audio_config=Gemma4AudioConfig(**spec["audio"]).to_dict(),
            boi_token_id=t["boi"],
            eoi_token_id=t["eoi"],
            image_token_id=t["image"],
            video_token_id=t["video"],
            boa_token_id=t["boa"],
            eoa_token_index=t["eoa"],
            audio_token_id=t["audio"],
        )
        from ..models.families import family_for_model_type
        from ..models.modeling import attention_implementation

        # The audio tower has eager attention only (transformers 5.23): per sub-config, as the recipes load it.
        config._attn_implementation = attention_implementation(
            family_for_model_type("gemma4"), config, attn_implementation
        )
        with torch.device(device):
            return Gemma4ForConditionalGeneration(config).eval()
    if spec["family"] == "smolvlm":
        from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3VisionConfig, LlamaConfig

        text = LlamaConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **spec["text"],
        )
        config = Idefics3Config(
            vision_config=Idefics3VisionConfig(**spec["vision"]).to_dict(),
            text_config=text.to_dict(),
            scale_factor=spec["scale_factor"],
            image_token_id=ids("<image>"),
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=spec["text"]["tie_word_embeddings"],
        )
        config._attn_implementation = attn_implementation
        return Idefics3ForConditionalGeneration(config).eval()
    if spec["family"] == "qwen2_5_vl":
        from transformers import Qwen2_5_VLForConditionalGeneration

        text_ids = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
        config = qwen2_5_vl.model_config(spec, tokenizer, text_ids, spec["tie_word_embeddings"])
        config._attn_implementation = attn_implementation
        return Qwen2_5_VLForConditionalGeneration(config).eval()
    if spec["family"] == "qwen3_vl":
        from . import qwen3_vl

        return qwen3_vl.real_size_model(qwen3_vl.REAL_2B, tokenizer, attn_implementation)
    if spec["family"] == "qwen3_5":
        from transformers import Qwen3_5ForConditionalGeneration

        config = qwen3_5.model_config(
            spec["text"],
            spec["vision"],
            spec["rope_parameters"],
            tokenizer,
            tie_word_embeddings=spec["tie_word_embeddings"],
        )
        config._attn_implementation = attn_implementation
        return Qwen3_5ForConditionalGeneration(config).eval()
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    config = Qwen2VLConfig(
        text_config={**spec["text"], "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id},
        vision_config=spec["vision"],
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=spec["tie_word_embeddings"],
    )
    config._attn_implementation = attn_implementation
    return Qwen2VLForConditionalGeneration(config).eval()
