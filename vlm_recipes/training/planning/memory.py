"""Predicted peak memory per device of a training step, from the architecture, the settings and the longest batch.

What exists already: accelerate's `estimate-memory` counts weights (and Adam's states) only; DeepSpeed's
`estimate_zero*_model_states_mem_needs` the model states of ZeRO; neither knows a VLM's batch. What this module adds
is one documented model of the peak, term by term (bytes per device):

- weights: every parameter at its dtype (QLoRA: the quantised linear layers at 4 or 8 bits plus their block
  scales), LoRA adapters in float32 (PEFT keeps them there); ZeRO-3 / FSDP keep 1/world of them plus the two largest
  layers gathered at a time.
- trainable states: a gradient per trainable parameter (its dtype) and the optimizer's states (AdamW: two per
  parameter at its dtype; 8-bit AdamW: two bytes; SGD: none). Under DeepSpeed with 16-bit weights: float32 master
  weights and Adam states. ZeRO-1 shards the optimizer states, ZeRO-2 the gradients too, ZeRO-3 / FSDP everything.
- inputs: the batch (float32 pixel values, their copy in the model's dtype, int64 ids).
- activations: the tensors autograd saves for the backward pass, per token and layer, counted from the layers'
  code (`text_layer_elements`, `vision_layer_elements` below; tests/test_memory.py checks the whole prediction
  against measured peaks, not each count on its own): the language model's decoder layers over every token of the
  batch (padding included), the vision tower's layers over every patch, only where gradients must flow (a frozen
  vision tower under a frozen projector saves nothing). With gradient checkpointing each layer keeps only its
  input, and one layer's activations are rebuilt at a time in the backward pass. Qwen3.5's layers are counted as
  their own code computes them: its gated attention (`attention_layer_elements`) and its Gated DeltaNet linear
  attention (`linear_attention_layer_bytes`: the convolution window, the float32 tensors of the chunked delta rule
  over every sequence padded to 64-token chunks, the recurrent state entering each chunk), as transformers 5.23's
  torch fallback runs them (a CPU, or a GPU without flash-linear-attention; that library's kernels save other
  tensors, not modelled).
- logits: the loss head. TRL's fused head projects its positions in tiles of at most 4,096 tokens x 32,768
  vocabulary entries; on a CPU (or without `logits_at_labels`, where TRL does not compact) every position of the
  batch, otherwise the label positions only. Its transient is a few tiles (`HEAD_TILES`, measured).
- backward transient: the gradients flowing through the layer being differentiated, a multiple of one layer's
  activations (`BACKWARD_LAYERS`, measured).

The peak is the largest of three moments: the start of the backward pass (weights, optimizer states from the
previous step, inputs, all saved activations, the head's transient, the backward transient), the end of the backward
pass (weights, optimizer states, every gradient) and the optimizer step (weights, gradients, optimizer states).

Measured constants (on the CPU, float32; docs/memory.md gives the table they were checked against):
`HEAD_TILES` and `BACKWARD_LAYERS`. Every other figure is counted from the architecture. CUDA runs add what torch's
allocator does not count (the CUDA context, cuBLAS workspaces, fragmentation): `CUDA_OVERHEAD` (not validated here;
no GPU was at hand).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

GIB = 1024**3
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}

# Tiles of the fused head's running log-sum-exp alive at once (the projection tile and the temporaries of folding
# it, forward and backward: TRL's torch fallback on a CPU). Measured on the CPU with trl.kernels.
# ChunkedLogProbFunction by the prototype of issue 33; on CUDA the Triton kernels work in place (not measured here).
HEAD_TILES = {"cpu": 8.3, "cuda": 2.0}
# The backward pass of one layer holds the gradients of its activations while it frees them: measured peak above the
# saved activations, in units of one layer's saved activations (CPU, float32, every family we ship).
BACKWARD_LAYERS = 0.2
CUDA_OVERHEAD = int(0.75 * GIB)  # CUDA context + cuBLAS workspace + allocator slack (not validated: no GPU here)
TOKEN_TILE, VOCAB_TILE = 4096, 32768  # TRL's fused-head tile


@dataclass(frozen=True)
class TextStack:
    """The language model: `hidden` h, `intermediate` i, query width `q` (heads x head_dim), key/value width `kv`."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    q: int
    kv: int
    head_dim: int
    vocab: int
    linears: int = 7  # q, k, v, o, gate, up, down
    # Qwen3.5's full-attention layers: the query projection also yields the output gate, q and k have an RMSNorm.
    gated_attention: bool = False
    kv_heads: int = 0  # key/value heads (0: kv // head_dim)
    linear_attention: LinearAttention | None = None  # Qwen3.5's Gated DeltaNet layers (part of `layers`)

    @property
    def attention_layers(self) -> int:
        """The (softmax) attention layers: every layer but the linear-attention ones."""
        return self.layers - (self.linear_attention.layers if self.linear_attention else 0)


# The chunk length of transformers 5.23's torch fallback of the gated delta rule (`torch_chunk_gated_delta_rule`,
# chunk_size=64): every sequence is padded to a multiple of it.
DELTA_CHUNK = 64


@dataclass(frozen=True)
class LinearAttention:
    """Gated DeltaNet layers (Qwen3.5 / 3.6 / 3.8, `Qwen3_5GatedDeltaNet`): `layers` of them, query/key heads
    `key_heads` x `key_head_dim`, value heads `value_heads` x `value_head_dim`, a causal depthwise convolution of
    `conv_kernel` over q, k and v, `linears` linear layers (in_proj_qkv, in_proj_z, in_proj_b, in_proj_a, out_proj and
    the MLP's three)."""

    layers: int
    key_heads: int
    value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel: int
    linears: int = 8
    chunk: int = DELTA_CHUNK


@dataclass(frozen=True)
class VisionStack:
    """The vision tower: `kind` "vit" (CLIP / SigLIP / Idefics3 encoder layers) or "qwen2_vl" (Qwen2-VL's blocks);
    `quick_gelu`: an activation that saves its input and a sigmoid (CLIP, Qwen2-VL) instead of its input alone."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kind: str
    quick_gelu: bool
    linears: int
    patch_size: int = 14
    class_token: bool = False  # CLIP: one more position per image than patches
    gated_mlp: bool = False  # a SwiGLU MLP (gate, up, down: Qwen2.5-VL's tower) instead of fc1 / fc2


@dataclass(frozen=True)
class Architecture:
    """What the planner reads from a model: the two stacks and the parameters of each part (`vision_tower`,
    `projector`, `language_model` with its embeddings, `lm_head`: 0 when tied), and of its linear layers (the ones
    QLoRA quantises) and largest layer per part (what ZeRO-3 gathers)."""

    name: str
    text: TextStack
    vision: VisionStack
    params: dict
    linear_params: dict
    largest_layer: int
    tied: bool
    patches_per_token: int = 1  # vision patches per image token (Qwen2-VL: merge 2x2 -> 4; SmolVLM: scale_factor^2)


def text_layer_elements(t: TextStack, *, norm_weights_trained: bool, lora_r: int, masked: bool) -> int:
    """Elements one decoder layer (Llama / Qwen2 / Mistral) saves per token for the backward pass:
    the residual input and the attention residual (2h); each RMSNorm its rsqrt (1), its output (h) and, when its
    weight is trained, the normalised input (h); query after RoPE and attention output (2q); key and value after RoPE,
    repeated to every head when the batch has an attention mask (transformers then cannot use SDPA's GQA), else kv
    each; the log-sum-exp of SDPA's flash kernel (1 per head); the MLP's gate, up, SiLU output and product (4i);
    each LoRA layer its rank-r intermediate."""
    norms = 2 * (t.hidden + 1) + (2 * t.hidden if norm_weights_trained else 0)
    keys = 2 * (t.q if masked else t.kv)
    return 2 * t.hidden + norms + 2 * t.q + keys + t.heads + 4 * t.intermediate + t.linears * lora_r


def attention_layer_elements(t: TextStack, *, norm_weights_trained: bool, lora_r: int, masked: bool) -> int:
    """Elements one softmax-attention decoder layer saves per token: `text_layer_elements`, and for Qwen3.5's gated
    attention also the query projection's output (query and gate, 2q) that the q RMSNorm saves, the key projection's
    output (kv) that the k RMSNorm saves, their rsqrt (1 per head), the gate's sigmoid, the attention output made
    contiguous and its product with the gate (3q); with the norms' weights trained their normalised inputs (q + kv)."""
    elements = text_layer_elements(t, norm_weights_trained=norm_weights_trained, lora_r=lora_r, masked=masked)
    if t.gated_attention:
        kv_heads = t.kv_heads or t.kv // t.head_dim
        elements += 5 * t.q + t.kv + t.heads + kv_heads + ((t.q + t.kv) if norm_weights_trained else 0)
    return elements


def linear_attention_layer_bytes(
    t: TextStack, *, sequences: int, length: int, act_bytes: int, norm_weights_trained: bool, lora_r: int
) -> int:
    """Bytes one Gated DeltaNet decoder layer saves for the backward pass on `sequences` x `length` tokens, as
    transformers 5.23's torch fallback computes it (`Qwen3_5GatedDeltaNet` with `causal_conv1d_fn` and
    `torch_chunk_gated_delta_rule`: a CPU, or a GPU without flash-linear-attention / causal-conv1d); counted from its
    code and checked tensor by tensor with autograd's saved-tensor hooks (docs/memory.md). With K = key heads x key
    head dim, V = value heads x value head dim, D = 2K + V (the convolved q, k, v), Hv value heads of dims dk, dv:

    - at the activations' dtype, per token: the residual input, the attention residual and the two RMSNorms' outputs
      (4h; with their weights trained also their normalised inputs, 2h) and rsqrt (2); the convolution's input and
      the SiLU's input (2D), the latter with its causal padding (kernel - 1 positions of D per sequence); the gate
      projection z, the gated RMSNorm's input, its output, the SiLU of z and the out projection's input (5V, + V
      normalised when its weight trains) and its rsqrt (1 per value head); beta's sigmoid and the decay's input (2 per
      value head; + 1 when A_log trains); the MLP (4i); each LoRA layer its rank;
    - in float32 whatever the model's dtype (the fallback computes in float32), the query and key repeated to every
      value head before their L2 norm (2 Hv dk per token, their rsqrt 2 Hv), and over every sequence padded to a
      multiple of the 64-token chunk: five tensors of Hv dk (query, key, k*beta, the decayed queries, k_cumdecay) and,
      when a sequence has more than one chunk, a sixth (the chunk loop's per-chunk copies for its matrix products),
      three of Hv dv (v*beta, the UT transform's values, the per-chunk corrected values), five chunk-by-chunk matrices
      (the decay mask, the UT system before and after its decay, the intra-chunk scores and their product) of Hv x 64,
      the decays (4 Hv), and per chunk of every sequence the recurrent state entering it (Hv dk dv)."""
    la = t.linear_attention
    h, i = t.hidden, t.intermediate
    hv, dk, dv = la.value_heads, la.key_head_dim, la.value_head_dim
    key, value = la.key_heads * dk, hv * dv
    conv = 2 * key + value
    tokens = sequences * length
    chunks = sequences * math.ceil(length / la.chunk)
    padded = chunks * la.chunk
    trained = norm_weights_trained
    per_token = (4 + (2 if trained else 0)) * h + 2 + 2 * conv + (5 + (1 if trained else 0)) * value + hv
    per_token += (2 + (1 if trained else 0)) * hv + 4 * i + la.linears * lora_r
    at_dtype = tokens * per_token + sequences * (la.conv_kernel - 1) * conv
    # Five of the Hv dk tensors always; the sixth (per-chunk copies) only when a sequence has more than one chunk: a
    # single chunk's slice is already contiguous (seen with the saved-tensor hooks).
    keys = 5 + (1 if chunks > sequences else 0)
    float32 = tokens * (2 * hv * dk + 2 * hv) + padded * (keys * hv * dk + 3 * hv * dv + 5 * hv * la.chunk + 4 * hv)
    float32 += chunks * hv * dk * dv
    return at_dtype * act_bytes + float32 * 4


def vision_layer_elements(v: VisionStack, *, lora_r: int) -> int:
    """Elements one vision layer saves per patch: two residual inputs and two LayerNorm outputs (4h)
    with their mean and rstd (4); query, key, value (3h; Qwen2-VL: the fused qkv output 3h plus q and k after its
    rotary embedding, 2h) and the attention output (h; Qwen2-VL: again, reshaped, h); the log-sum-exp (1 per head);
    fc1's output and the activation's output (2i; QuickGELU also its sigmoid, i; a SwiGLU MLP its gate, up,
    activation and product, 4i); each LoRA layer its rank."""
    attention = 3 * v.hidden + v.hidden + (3 * v.hidden if v.kind == "qwen2_vl" else 0)
    mlp = (4 if v.gated_mlp else 3 if v.quick_gelu else 2) * v.intermediate
    return 4 * v.hidden + 4 + attention + v.heads + mlp + v.linears * lora_r


@dataclass(frozen=True)
class Setup:
    """How the model is trained (per device).

    Args:
        dtype: the weights' dtype (float32 / bfloat16 / float16).
        autocast: bf16 / fp16 mixed precision over float32 weights (activations at 2 bytes), or None.
        mode: "full", "lora", "qlora4" or "qlora8".
        trainable: trainable parameters per part (`vision_tower`, `projector`, `language_model`, `lm_head`, `lora`).
        lora_r: the LoRA rank; lora_vision / lora_text: whether LoRA adapts the vision tower's / language model's
            layers.
        quantize_vision_tower: QLoRA quantises the vision tower's linear layers too.
        optimizer: a transformers `optim` name (adamw_*, *8bit*, sgd, adafactor).
        zero_stage: DeepSpeed ZeRO stage (0: none); fsdp: FSDP full sharding (like ZeRO-3).
        world_size: processes sharing the sharded states.
        gradient_checkpointing, logits_at_labels: as in the training config.
        device: "cpu" or "cuda" (what the head compacts, and CUDA's overhead).
    """

    dtype: str = "float32"
    autocast: str | None = None
    mode: str = "lora"
    trainable: dict = field(default_factory=dict)
    lora_r: int = 0
    lora_vision: bool = False
    lora_text: bool = False
    quantize_vision_tower: bool = False
    optimizer: str = "adamw_torch_fused"
    zero_stage: int = 0
    fsdp: bool = False
    world_size: int = 1
    gradient_checkpointing: bool = False
    logits_at_labels: bool = True
    device: str = "cpu"

    @property
    def weight_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def activation_bytes(self) -> int:
        return 2 if self.autocast or self.weight_bytes == 2 else 4

    @property
    def vision_trains(self) -> bool:
        return bool(self.trainable.get("vision_tower")) or self.lora_vision

    @property
    def projector_trains(self) -> bool:
        return bool(self.trainable.get("projector"))

    @property
    def text_needs_grad(self) -> bool:
        """Whether the language model's layers save activations (something at or below them trains)."""
        t = self.trainable
        return bool(t.get("language_model") or t.get("lm_head") or self.lora_text or self.projector_trains) or (
            self.vision_trains
        )

    @property
    def shards(self) -> int:
        return self.world_size if (self.zero_stage >= 3 or self.fsdp) else 1


@dataclass(frozen=True)
class BatchShape:
    """The batch the planner sizes: `sequences` x `length` token positions (padding included; a padding-free batch
    is one sequence of every row's tokens), `label_tokens` of them trained, `vision_patches` patches through the
    vision tower, `pixel_elements` in the pixel input, `masked` whether it carries an attention mask (a padded
    batch)."""

    sequences: int
    length: int
    label_tokens: int
    vision_patches: int
    pixel_elements: int
    masked: bool = True

    @property
    def tokens(self) -> int:
        return self.sequences * self.length


@dataclass
class Plan:
    """The predicted peak and its terms, in bytes per device."""

    weights: int
    gradients: int
    optimizer: int
    inputs: int
    text_activations: int
    vision_activations: int
    logits: int
    backward_transient: int
    overhead: int
    peak: int
    moment: str  # which moment is the peak: "backward start", "backward end" or "optimizer step"

    @property
    def trainable_states(self) -> int:
        return self.gradients + self.optimizer

    @property
    def activations(self) -> int:
        """Activation memory at the backward start: the saved tensors and the larger of the head's and a layer's
        backward transient."""
        return self.text_activations + self.vision_activations + max(self.logits, self.backward_transient)

    def rows(self) -> list[tuple[str, int]]:
        return [
            ("weights", self.weights),
            ("trainable states (gradients + optimizer)", self.trainable_states),
            ("inputs (batch)", self.inputs),
            ("activations: language model", self.text_activations),
            ("activations: vision tower", self.vision_activations),
            ("logits (loss head)", self.logits),
            ("backward transient", self.backward_transient),
            *([("CUDA context and allocator", self.overhead)] if self.overhead else []),
        ]


def _optimizer_bytes(setup: Setup, params: int, grad_bytes: int) -> int:
    name = setup.optimizer
    if setup.zero_stage >= 1 and grad_bytes == 2:  # DeepSpeed mixed precision: fp32 master weights + fp32 Adam states
        return params * 12
    if name.startswith("sgd"):
        return 0
    if "8bit" in name:
        return params * 2
    if name.startswith("adafactor"):
        return params * 4 // 8  # factored second moments: far below one state (an upper-bound guess)
    return params * 2 * grad_bytes  # AdamW: exp_avg and exp_avg_sq at the parameter's dtype


def weights_bytes(arch: Architecture, setup: Setup) -> int:
    """Parameters at their dtype; quantised linear layers at 4 / 8 bits with a float32 scale per block of 64."""
    w = setup.weight_bytes
    total = 0
    for part, count in arch.params.items():
        quantised = 0
        if setup.mode.startswith("qlora") and (part == "language_model" or part == "vision_tower" and (
            setup.quantize_vision_tower
        )):  # fmt: skip
            quantised = arch.linear_params.get(part, 0)
        bits = 4 if setup.mode == "qlora4" else 8
        total += (count - quantised) * w + quantised * (bits / 8 + 4 / 64)
    total += setup.trainable.get("lora", 0) * 4  # adapters in float32
    if setup.shards > 1:
        total = total / setup.shards + 2 * arch.largest_layer * w  # sharded, plus the layers gathered at a time
    return int(total)


def plan_memory(arch: Architecture, setup: Setup, batch: BatchShape) -> Plan:
    """The predicted peak of one training step on `batch` (see the module docstring)."""
    e = setup.activation_bytes
    trainable = setup.trainable
    lora = trainable.get("lora", 0)
    full_params = sum(v for k, v in trainable.items() if k != "lora")
    gradients = lora * 4 + full_params * setup.weight_bytes
    optimizer = _optimizer_bytes(setup, lora, 4) + _optimizer_bytes(setup, full_params, setup.weight_bytes)
    if setup.zero_stage >= 1 or setup.fsdp:
        optimizer //= setup.world_size
    if setup.zero_stage >= 2 or setup.fsdp:
        gradients //= setup.world_size
    weights = weights_bytes(arch, setup)

    tokens = batch.tokens
    # Pixels in float32 (and their copy in a 16-bit model's dtype), int64 ids, labels and mask.
    inputs = batch.pixel_elements * (4 + (e if e != 4 else 0)) + tokens * 8 * 3
    t, v = arch.text, arch.vision
    ckpt = setup.gradient_checkpointing
    text_layer = linear_layer = vision_layer = text = vision = 0
    if setup.text_needs_grad:
        norms_trained = setup.mode == "full" and bool(trainable.get("language_model"))
        lora_r = setup.lora_r if setup.lora_text else 0
        elements = attention_layer_elements(t, norm_weights_trained=norms_trained, lora_r=lora_r, masked=batch.masked)
        text_layer = tokens * e * elements
        if t.linear_attention:
            linear_layer = linear_attention_layer_bytes(
                t, sequences=batch.sequences, length=batch.length, act_bytes=e, norm_weights_trained=norms_trained,
                lora_r=lora_r,
            )  # fmt: skip
        # Beside the layers: the final RMSNorm (2h + 1, 3h + 1 with its weight trained), RoPE's cos / sin (2 x
        # head_dim per position), the 4-D float mask of a padded batch.
        text = tokens * e * ((3 if norms_trained else 2) * t.hidden + 1) + 2 * t.head_dim * batch.length * e
        text += batch.sequences * batch.length**2 * e if batch.masked else 0
        # Gradient checkpointing keeps each layer's input; the backward rebuilds one layer at a time.
        text += t.attention_layers * (tokens * t.hidden * e if ckpt else text_layer)
        if t.linear_attention:
            text += t.linear_attention.layers * (tokens * t.hidden * e if ckpt else linear_layer)
    if setup.vision_trains:
        vision_layer = (
            batch.vision_patches * e * vision_layer_elements(v, lora_r=setup.lora_r if setup.lora_vision else 0)
        )
        vision = v.layers * (batch.vision_patches * v.hidden * e if ckpt else vision_layer)
    if setup.vision_trains or setup.projector_trains:
        # The tower's last LayerNorm and the projector's inputs: about 3h per patch in every family we ship.
        vision += batch.vision_patches * e * 3 * v.hidden

    compact = setup.logits_at_labels or setup.device == "cuda"
    positions = batch.label_tokens if compact else batch.sequences * max(batch.length - 1, 0)
    rows = min(positions, TOKEN_TILE)
    tile = rows * min(t.vocab, VOCAB_TILE) * 4
    # TRL's own head allocates its tile buffer 32,768 entries wide whatever the vocabulary; ours as wide as it.
    buffer = tile if setup.logits_at_labels else rows * VOCAB_TILE * 4
    head_grad = t.vocab * t.hidden * 4 if (trainable.get("lm_head") or setup.mode == "full" and arch.tied) else 0
    # The head's backward: its tiles, a trained head's float32 gradient, its input's copy and float32 gradient.
    logits = buffer + int((HEAD_TILES[setup.device] - 1) * tile) + head_grad + positions * t.hidden * (e + 4)
    # A layer's backward: the layer rebuilt (checkpointing), the gradient flowing in (float32 here) and the
    # gradients of its activations.
    largest_layer = max(text_layer, linear_layer, vision_layer)
    backward = (largest_layer if ckpt else 0) + int(BACKWARD_LAYERS * largest_layer) + tokens * t.hidden * 4

    overhead = CUDA_OVERHEAD if setup.device == "cuda" else 0
    moments = {
        # The head's backward runs first and frees its memory before the layers' backward: the larger one counts.
        "backward start": weights + optimizer + inputs + text + vision + max(logits, backward),
        "backward end": weights + optimizer + inputs + gradients,
        "optimizer step": weights + optimizer + gradients,
    }
    moment = max(moments, key=moments.get)
    return Plan(
        weights=weights,
        gradients=gradients,
        optimizer=optimizer,
        inputs=inputs,
        text_activations=text,
        vision_activations=vision,
        logits=logits,
        backward_transient=backward,
        overhead=overhead,
        peak=moments[moment] + overhead,
        moment=moment,
    )


def scaled(batch: BatchShape, sequences: int | None = None, length: int | None = None) -> BatchShape:
    """`batch` with another number of sequences (labels, patches and pixels in proportion) or a shorter length."""
    out = batch
    if sequences is not None:
        k = sequences / batch.sequences
        out = replace(
            out,
            sequences=sequences,
            label_tokens=math.ceil(batch.label_tokens * k),
            vision_patches=math.ceil(batch.vision_patches * k),
            pixel_elements=math.ceil(batch.pixel_elements * k),
        )
    if length is not None:
        out = replace(out, length=length, label_tokens=min(out.label_tokens, out.sequences * length))
    return out


def scaled_pixels(batch: BatchShape, arch: Architecture, factor: float) -> BatchShape:
    """`batch` with every image's pixels scaled by `factor` (patches, pixel values and image tokens in proportion; the
    text tokens unchanged): what a `max_pixels` (or `longest_edge` squared) `factor` times as large gives."""
    image_tokens = batch.vision_patches / max(arch.patches_per_token, 1) / max(batch.sequences, 1)
    length = max(1, round(batch.length + image_tokens * (factor - 1)))
    return replace(
        batch,
        length=length,
        vision_patches=math.ceil(batch.vision_patches * factor),
        pixel_elements=math.ceil(batch.pixel_elements * factor),
    )


def largest_pixel_factor(arch: Architecture, setup: Setup, batch: BatchShape, budget: int) -> float:
    """The largest factor of every image's pixels (0.01 to 16: 16 means 16 or more) whose batch fits `budget` bytes
    (0: none)."""
    if not batch.vision_patches or plan_memory(arch, setup, scaled_pixels(batch, arch, 0.01)).peak > budget:
        return 0.0
    low, high = 0.01, 16.0
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (
            (mid, high) if plan_memory(arch, setup, scaled_pixels(batch, arch, mid)).peak <= budget else (low, mid)
        )
    return low


def largest_batch(arch: Architecture, setup: Setup, batch: BatchShape, budget: int, limit: int = 4096) -> int:
    """The most sequences per device (each as long as `batch`'s) whose predicted peak fits `budget` bytes (0: none)."""
    per_row = scaled(batch, sequences=1)
    best = 0
    low, high = 1, limit
    while low <= high:
        mid = (low + high) // 2
        if plan_memory(arch, setup, scaled(per_row, sequences=mid)).peak <= budget:
            best, low = mid, mid + 1
        else:
            high = mid - 1
    return best
