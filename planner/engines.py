"""Serving engines: how vLLM and llama.cpp spend GPU memory.

vLLM (V1 engine)
----------------
Followed: ``vllm/v1/worker/gpu_worker.py`` ``Worker.determine_available_memory`` and
``vllm/v1/core/kv_cache_utils.py`` (``get_kv_cache_config_from_groups``, ``get_num_blocks``,
``_report_kv_cache_config``, ``get_max_concurrency_for_kv_cache_config``), vllm-project/vllm main, 2025-26:

* budget = ``gpu_memory_utilization`` (default 0.9) x the GPU's total memory, per GPU
  (https://docs.vllm.ai/en/latest/configuration/engine_args.html, ``--gpu-memory-utilization``).
* vLLM loads the weights (this GPU's tensor-parallel shard), runs one profiling forward pass of
  ``max_num_batched_tokens`` tokens plus a dummy sampler run over ``max_num_seqs`` requests, and measures
  the torch activation peak and the non-torch increase (NCCL, cuBLAS workspaces...).
* available KV memory = budget - (weights + activation peak + non-torch). It is cut into blocks of 16
  tokens: ``num_blocks = available // page_size // layers_per_group`` where one page holds 16 tokens of
  K and V of one layer (``2 * 16 * kv_heads_per_gpu * head_dim * dtype bytes``; MLA: one latent
  ``64 * (kv_lora_rank + qk_rope_head_dim) * dtype bytes`` in FlashMLA's 64-token blocks, not split by
  tensor parallelism).
* hybrid models (sliding + full attention) use the hybrid allocator: layers are grouped by type into
  groups of equal size sharing one block pool; a sliding layer needs only
  ``min(window - 1 + max_num_batched_tokens, max_model_len)`` tokens (+1 block) per request.
* logged: ``Maximum concurrency for X tokens per request: Y.YYx`` with Y = num_blocks / the blocks one
  request of ``max_model_len`` (= ``plan.context``) tokens needs, summed over the groups.
* Since v0.21 the estimated CUDA-graph memory is taken from the budget as well
  (``VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS``, on by default). The CUDA context and NCCL buffers are
  *outside* the budget (the init snapshot is taken after CUDA and NCCL are initialised): they must fit
  in the remaining ``1 - gpu_memory_utilization``.
* ``GPU KV cache size: N tokens`` is ``int(max_concurrency * max_model_len)`` in current vLLM
  (vllm-project/vllm#54662 quotes ``get_kv_cache_capacity``); for full-attention models with
  ``max_model_len`` a multiple of 16 that equals ``num_blocks * 16``, the older formula (PR #13596).

The activation peak, the non-torch and the CUDA-graph memory are *assumptions* (vLLM measures them):
see :data:`VLLM_SAMPLER_FP32_COPIES`, :data:`VLLM_NON_TORCH_BYTES`, :data:`VLLM_CUDA_GRAPH_BYTES` and
:func:`vllm_activation_bytes`. Each can be replaced with a measured number through ``Plan.overrides``
(``activations/profile_peak``, ``overhead/non_torch``, ``overhead/cuda_graphs``).

llama.cpp
---------
Followed: ggml-org/llama.cpp ``src/llama-model.cpp`` (layer placement), ``src/llama-kv-cache.cpp``,
``src/llama-context.cpp`` (output buffer, graph reservation), 2025-26:

* ``-ngl N`` puts the last N repeating layers on the GPU; with N > n_layer the output layer (``output``
  and ``output_norm``) goes too (llama.cpp logs "offloaded 33/33 layers to GPU" for a 32-layer model).
  ``token_embd`` always stays in host memory. ``plan.n_gpu_layers = None`` means everything (-ngl 999).
* the KV cache is allocated up front for the whole context, each layer's K and V on that layer's device.
  ``llama-server -c`` is the TOTAL context shared by the ``-np`` parallel slots, so a plan of ``batch``
  sequences of ``context`` tokens is ``-c (batch * context) -np batch``; the KV size is padded up to a
  multiple of 256 cells. ``--cache-type-k/v``: f16 (2 bytes), q8_0 (34 bytes / 32 values), q4_0 (18 / 32).
  Sliding-window layers (Gemma 2/3 iSWA, without ``--swa-full``) keep
  ``min(n_ctx, pad256(window * n_seq + n_ubatch))`` cells. MLA layers cache the latent only.
* compute buffer (logged "CUDA0 compute buffer size"): an assumption, the largest set of live f32 tensors
  of one ubatch (``n_ubatch = 512``): ``n_ubatch * 4 * (max(n_vocab, 2 * n_ff) + n_embd)`` bytes, i.e. the
  logits of the ubatch dominate. Check: a 30-layer model with n_vocab 50688, n_embd 3072 at n_ctx 512 logs
  "CUDA0 compute buffer size = 105.00 MiB" = 512 * 4 * (50688 + 3072) (mozilla-ai/llamafile PR #552).
  This assumes flash attention (llama.cpp's default ``-fa auto`` on CUDA); without it the KQ scores
  (n_ubatch x n_ctx x n_head x 4 bytes) dominate at long contexts and are not modelled.
* output buffer (logged "CUDA_Host output buffer size"): ``n_vocab * n_seq * 4`` bytes of host memory.

:func:`llamacpp_breakdown` returns the GPU side; :func:`llamacpp_memory` returns both sides
(``gpu`` and ``host``), so a partial offload reports what stays in RAM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from planner.breakdown import Component, MemoryBreakdown
from planner.errors import InputError
from planner.formats import LINEAR_SUBCLASS_FAMILIES, WeightFormat, gguf_types, resolve_format, tensor_bytes
from planner.kv_cache import canonical_kv_dtype, kv_bytes_per_token, kv_heads_per_gpu
from planner.params import TensorInfo, parameter_count, tensors
from planner.spec import FULL, SLIDING, ModelSpec

GiB = 1 << 30
MiB = 1 << 20

# --------------------------------------------------------------------------------------------------
# vLLM constants (named assumptions; each says where it comes from)

#: vLLM's KV block size in tokens (``--block-size`` default 16 on CUDA).
VLLM_BLOCK_SIZE = 16
#: MLA models (DeepSeek) run vLLM's FlashMLA backend on Hopper, which forces 64-token blocks
#: (vllm/platforms/cuda.py: "Forcing kv cache block size to 64 for FlashMLA backend"). An assumption
#: for other GPUs, where other MLA backends choose their own block size.
VLLM_MLA_BLOCK_SIZE = 64
#: ``--max-num-batched-tokens`` defaults of ``vllm serve`` (V1, ``EngineArgs._set_default_args``):
#: 8192 on GPUs with at least 70 GiB that are not A100s, else 2048.
VLLM_MAX_BATCHED_TOKENS_LARGE_GPU = 8192
VLLM_MAX_BATCHED_TOKENS_DEFAULT = 2048
VLLM_LARGE_GPU_BYTES = 70 * GiB
#: Non-torch memory that vLLM counts inside the budget: the growth of non-torch memory during the
#: profiling run (cuBLAS workspaces and the like). Since vLLM's profiling overhaul (PR #12126, Jan 2025)
#: the baseline snapshot is taken after CUDA and NCCL are initialised, so the CUDA context and NCCL
#: buffers are no longer in this term; that PR's H100 log shows "non_torch_memory takes 0.16GiB", and a
#: tensor-parallel 24 GB log in PR #14447 shows 0.20GiB. (Before it, vLLM logged 1.79 GiB for
#: Meta-Llama-3-8B on an H100, context included: PR #10511.) Assumed: 0.2 GiB.
VLLM_NON_TORCH_BYTES = GiB // 5
#: fp32 [num_requests, vocab] tensors alive at once in the dummy sampler run (logits, probabilities, a
#: sorted copy and its indices for top-p/top-k). Calibrated on the same PR #10511 log: Meta-Llama-3-8B
#: on an H100, 8192 batched tokens and 256 sequences, "PyTorch activation peak memory 1.26GiB"; this
#: model gives 1.27 GiB there.
VLLM_SAMPLER_FP32_COPIES = 4
#: CUDA-graph memory. Since v0.21 vLLM estimates it before sizing the KV cache and takes it from the
#: budget ("Estimated CUDA graph memory: 0.36 GiB total" and "0.58 GiB total" in logs quoted in
#: gpustack/runner#251 and wtdcode/vllm-backport#34). An assumption; 0 with --enforce-eager.
VLLM_CUDA_GRAPH_BYTES = GiB // 2

# llama.cpp constants
LLAMACPP_N_UBATCH = 512  # -ub default
LLAMACPP_KV_PAD = 256  # KV cells are padded to a multiple of 256
#: CUDA context + cuBLAS handles of a llama.cpp process (no PyTorch): an assumption (~300 MiB).
LLAMACPP_CUDA_CONTEXT_BYTES = 300 * MiB
#: llama.cpp K/V cache types -> (values per block, bytes per block)
LLAMACPP_KV_TYPES = {"f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18),
                     "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24)}
#: plan KV dtype names -> llama.cpp cache types (int8/int4 are llama.cpp's 8- and 4-bit block types, as in
#: planner.export's --cache-type-k/v mapping)
_LLAMACPP_KV_ALIASES = {"auto": "f16", "fp16": "f16", "float16": "f16", "fp32": "f32", "float32": "f32",
                        "bfloat16": "bf16", "int8": "q8_0", "int4": "q4_0"}
LLAMACPP_DEFAULT_WEIGHTS = "gguf-Q4_K_M"
#: families whose llama.cpp graph uses an interleaved sliding-window (iSWA) KV cache; for others
#: (e.g. Mistral v0.1, StarCoder2) llama.cpp allocates the full context on every layer
LLAMACPP_SWA_FAMILIES = ("gemma2", "gemma3", "gemma3_text")


def _override(plan, name: str) -> int | None:
    for k, v in plan.overrides:
        if k == name:
            return v
    return None


def _compute_dtype_bytes(spec: ModelSpec, fmt: WeightFormat) -> tuple[str, int]:
    """Compute dtype vLLM runs the model in: the format's, or the checkpoint's for GGUF (stored f32 there)."""
    dt = fmt.compute_dtype
    if fmt.kind == "gguf" or dt == "float32":
        dt = spec.torch_dtype if spec.torch_dtype in ("float16", "bfloat16") else "bfloat16"
    return dt, {"float32": 4, "float16": 2, "bfloat16": 2}[dt]


# --------------------------------------------------------------------------------------------------
# Tensor-parallel weight shards


def _shard_divisor(spec: ModelSpec, t: TensorInfo, tp: int) -> tuple[int, int]:
    """(numerator, denominator) of the fraction of ``t`` one GPU holds under TP ``tp``."""
    if tp == 1 or t.split == "replicated":
        return 1, 1
    kv = spec.num_kv_heads
    if kv < tp and t.split == "column" and not spec.mla:
        if ".k_proj" in t.name or ".v_proj" in t.name:  # vLLM replicates KV heads: one head per GPU
            return 1, kv
        if "qkv_proj" in t.name:  # fused: q / tp plus one K and one V head
            d, h = spec.head_dim, spec.num_heads
            return (h // tp + 2) * d, (h + 2 * kv) * d
    return 1, tp


@lru_cache(maxsize=512)
def weight_components_per_gpu(spec: ModelSpec, fmt: WeightFormat, tp: int = 1) -> tuple[Component, ...]:
    """``weights/<component>`` bytes one GPU holds when the engine shards the model over ``tp`` GPUs.

    Column-parallel (q/k/v, gate/up), row-parallel (o, down), vocab-parallel (embeddings, lm_head) and
    expert tensors are split ``tp`` ways (rounded up); norms and other 1-D tensors are replicated; K/V
    projections are replicated per head when there are fewer KV heads than GPUs (vLLM's QKVParallelLinear).
    Quantization state is split in the same proportion (an approximation for group-quantized formats).
    """
    data: dict[str, int] = {}
    qstate = 0
    if fmt.kind == "gguf":
        copies = [(t, tensor_bytes(t, fmt, conv1d=spec.conv1d, ggml_type=g)) for t, _layer, g in gguf_types(spec, fmt)]
    else:
        copies = []
        # Falcon's Linear subclasses stay unquantized under bitsandbytes/FP8, exactly as with tp=1
        subclass = spec.family in LINEAR_SUBCLASS_FAMILIES
        for t in tensors(spec):
            b = tensor_bytes(t, fmt, conv1d=spec.conv1d, linear_subclass=subclass)
            copies.extend([(t, b)] * t.count)
    for t, b in copies:
        num, den = _shard_divisor(spec, t, tp)
        data[t.component] = data.get(t.component, 0) + -(-b.data * num // den)
        qstate += -(-b.quant_state * num // den)
    label = fmt.label + (f", 1/{tp} tensor-parallel shard" if tp > 1 else "")
    comps = [Component(f"weights/{k}", v, f"{label} tensors") for k, v in data.items()]
    if qstate:
        comps.append(Component("weights/quant_state", qstate, "quantization scales/zeros of this GPU's shard"))
    return tuple(comps)


# --------------------------------------------------------------------------------------------------
# vLLM


@dataclass(frozen=True)
class VllmCapacity:
    """What vLLM's startup logs report for one plan, per GPU.

    ``kv_cache_tokens``: "GPU KV cache size: N tokens". ``max_concurrency``: "Maximum concurrency for
    ``max_model_len`` tokens per request: Y.YYx". ``fits``: vLLM starts, i.e. the non-KV memory fits in
    the budget and the KV pool holds at least one request of ``max_model_len`` tokens (else vLLM raises
    "To serve at least one request with the models's max seq len ...").
    """

    gpu_memory_bytes: int
    budget_bytes: int  # gpu_memory_utilization x gpu_memory_bytes
    weights_bytes: int
    activation_peak_bytes: int
    non_torch_bytes: int
    cuda_graph_bytes: int
    available_kv_bytes: int  # budget - non-KV (may be negative)
    page_bytes: int  # one block of one layer
    layers_per_group: int
    num_groups: int
    num_blocks: int
    kv_pool_bytes: int  # num_blocks x page x layers_per_group (what vLLM allocates)
    block_size: int
    kv_cache_tokens: int
    max_model_len: int
    blocks_per_request: int
    max_concurrency: float
    max_num_batched_tokens: int
    max_num_seqs: int
    fits: bool
    reason: str
    layout: tuple[tuple[str, int, int], ...] = ()  # (kind, layers, page bytes) per KV layer kind
    group_kinds: tuple[str, ...] = ()  # the kind of each KV cache group

    @property
    def max_requests(self) -> int:
        """Whole requests of ``max_model_len`` tokens the pool holds at once (floor of max_concurrency)."""
        return self.num_blocks // self.blocks_per_request if self.blocks_per_request else 0


def vllm_non_torch_bytes(gpu_memory_bytes: int, tp: int = 1) -> int:
    """Assumed non-torch memory vLLM counts inside the budget (see :data:`VLLM_NON_TORCH_BYTES`)."""
    return min(VLLM_NON_TORCH_BYTES, gpu_memory_bytes // 100)


def vllm_max_num_batched_tokens(plan) -> int:
    """``plan.max_num_batched_tokens``, else vLLM's default for the GPU size (see the constants)."""
    if plan.max_num_batched_tokens is not None:
        return plan.max_num_batched_tokens
    if plan.gpu_memory_bytes is not None and plan.gpu_memory_bytes >= VLLM_LARGE_GPU_BYTES:
        return VLLM_MAX_BATCHED_TOKENS_LARGE_GPU
    return VLLM_MAX_BATCHED_TOKENS_DEFAULT


def vllm_activation_bytes(spec: ModelSpec, plan, dtype_bytes: int) -> dict[str, int]:
    """Assumed torch activation peak of vLLM's profiling run, per GPU: ``forward`` and ``sampler``.

    forward: T tokens (``max_num_batched_tokens``) x dtype bytes x (2 h residual/normed stream + the wider
    of the attention projections ((H + 2 KV) d + H d) / tp and the MLP intermediates 3 I / tp
    (gate_up + activation); MoE: top_k x (3 I_moe / tp + h), vLLM's fused-MoE caches).
    sampler: min(max_num_seqs, T) x vocab x 4 bytes x :data:`VLLM_SAMPLER_FP32_COPIES`.
    """
    tp = plan.tp
    T = vllm_max_num_batched_tokens(plan)
    R = min(plan.max_num_seqs, T)
    h, d = spec.hidden_size, spec.head_dim
    if spec.mla is not None:
        m = spec.mla
        attn = spec.num_heads * (2 * m.qk_head_dim + m.v_head_dim) // tp + m.kv_lora_rank + m.qk_rope_head_dim
    else:
        attn = (spec.num_heads + 2 * kv_heads_per_gpu(spec, tp) * tp) * d // tp + spec.num_heads * d // tp
    mlp = 3 * spec.intermediate_size // tp if "dense" in spec.mlp_types else 0
    if spec.moe is not None and "moe" in spec.mlp_types:
        moe = spec.moe
        mlp = max(mlp, moe.experts_per_token * (3 * moe.expert_intermediate_size // tp + h)
                  + 3 * moe.shared_intermediate_size // tp)
    forward = T * dtype_bytes * (2 * h + max(attn, mlp))
    sampler = R * spec.vocab_size * 4 * VLLM_SAMPLER_FP32_COPIES
    return {"forward": forward, "sampler": sampler}


def vllm_block_size(spec: ModelSpec) -> int:
    """Tokens per KV block: 64 for MLA models (FlashMLA), else vLLM's default 16."""
    return VLLM_MLA_BLOCK_SIZE if "mla" in spec.layer_types else VLLM_BLOCK_SIZE


def _vllm_kv_layout(spec: ModelSpec, kv_name: str, weights_dtype: str, tp: int):
    """Per kind: (layers, page bytes per layer per block). Raises for what vLLM would refuse."""
    per_token = kv_bytes_per_token(spec, kv_name, weights_dtype=weights_dtype, tp=tp)
    bs = vllm_block_size(spec)
    kinds: dict[str, tuple[int, int]] = {}
    for kind, total in per_token.items():
        n = sum(1 for k in spec.layer_types if k == kind)
        if n:
            kinds[kind] = (n, bs * (total // n))
    if not kinds:
        raise InputError("this model has no attention layers that vLLM would give a KV cache")
    return kinds


def _vllm_groups(kinds: dict[str, tuple[int, int]]) -> tuple[int, list[str]]:
    """vLLM's grouping of layers (``_get_kv_cache_groups_uniform_page_size``): (layers per group, group kinds)."""
    if len(kinds) == 1:
        kind, (n, _) = next(iter(kinds.items()))
        return n, [kind]
    counts = [n for n, _ in kinds.values()]
    size = min(counts)
    if max(counts) < size * 1.25:  # vLLM pads small differences instead of adding a group
        size = max(counts)
    groups: list[str] = []
    for kind, (n, _) in kinds.items():
        groups += [kind] * math.ceil(n / size)
    return size, groups


def _per_layer_request_blocks(kind: str, max_model_len, window: int | None, batched: int, bs: int):
    """Blocks of vLLM's ``max_memory_usage_bytes`` of one layer for one request of max_model_len tokens.

    ``max_model_len`` may be an int or a numpy int64 array (the sweep uses the same code).
    """
    if kind == SLIDING and window:
        tokens = np.minimum(window - 1 + batched, max_model_len)
        return -(-tokens // bs) + 1
    return -(-max_model_len // bs)


def vllm_request_needs(spec: ModelSpec, layout, group_kinds, batched: int, max_model_len):
    """(blocks one request needs, KV bytes one request needs) at ``max_model_len`` (int or int64 array).

    ``layout``: (kind, layers, page bytes) per layer kind; ``group_kinds``: the kind of each KV cache group.
    Blocks follow ``get_max_concurrency_for_kv_cache_config`` (a sum over groups); bytes follow
    ``check_enough_kv_cache_memory`` (a sum over layers).
    """
    w, bs = spec.sliding_window, vllm_block_size(spec)
    blocks = sum(_per_layer_request_blocks(k, max_model_len, w, batched, bs) for k in group_kinds)
    need = sum(n * p * _per_layer_request_blocks(k, max_model_len, w, batched, bs) for k, n, p in layout)
    return blocks, need


def _vllm_check(spec: ModelSpec, plan) -> None:
    if plan.device == "cpu":
        raise InputError("vLLM's CPU backend is not modelled; for CPU use the llamacpp or transformers engine")
    if plan.gpu_memory_bytes is None:
        raise InputError("the vllm engine reserves a fraction of the GPU's memory: give the GPU "
                         "(--gpu NAME or --memory-gib X)")
    tp = plan.tp
    if spec.num_heads % tp:
        raise InputError(f"vLLM needs the attention heads ({spec.num_heads}) divisible by the tensor-parallel "
                         f"size ({tp})")
    kv = spec.num_kv_heads
    if spec.mla is None and kv % tp and tp % kv:
        raise InputError(f"vLLM needs the KV heads ({kv}) and the tensor-parallel size ({tp}) to divide one another")


def _vllm_format(spec: ModelSpec, plan) -> WeightFormat:
    """vLLM's ``--dtype auto`` runs float32 checkpoints in bfloat16 (it downcasts, logging a warning)."""
    fmt = resolve_format(spec, plan.weights)
    if plan.weights == "auto" and fmt.kind == "float" and fmt.compute_dtype == "float32":
        fmt = resolve_format(spec, "bf16")
    return fmt


def vllm_capacity(spec: ModelSpec, plan) -> VllmCapacity:
    """vLLM's memory plan for ``spec`` under ``plan`` on one GPU of ``plan.gpu_memory_bytes``."""
    _vllm_check(spec, plan)
    fmt = _vllm_format(spec, plan)
    dtype, eb = _compute_dtype_bytes(spec, fmt)
    kv_name = canonical_kv_dtype(plan.kv_dtype, dtype)
    if kv_name in ("int8", "int4"):
        raise InputError(f"vLLM has no {kv_name} KV cache; use auto, fp16, bf16, fp8_e4m3 or fp8_e5m2")
    total = plan.gpu_memory_bytes
    budget = int(total * plan.gpu_memory_utilization)
    weights = sum(c.bytes for c in weight_components_per_gpu(spec, fmt, plan.tp))
    act_o = _override(plan, "activations/profile_peak")
    act = act_o if act_o is not None else sum(vllm_activation_bytes(spec, plan, eb).values())
    nt_o = _override(plan, "overhead/non_torch")
    non_torch = nt_o if nt_o is not None else vllm_non_torch_bytes(total, plan.tp)
    cg_o = _override(plan, "overhead/cuda_graphs")
    graphs = cg_o if cg_o is not None else VLLM_CUDA_GRAPH_BYTES
    available = budget - weights - act - non_torch - graphs

    kinds = _vllm_kv_layout(spec, kv_name, dtype, plan.tp)
    size, groups = _vllm_groups(kinds)
    page = max(p for _, p in kinds.values())  # vLLM requires one page size across groups (equal here)
    num_blocks = max(available, 0) // page // size
    kv_pool = num_blocks * page * size
    batched = vllm_max_num_batched_tokens(plan)
    L = plan.context
    layout = tuple((k, n, p) for k, (n, p) in kinds.items())
    blocks_per_request, need_one = (int(x) for x in vllm_request_needs(spec, layout, groups, batched, L))
    concurrency = num_blocks / blocks_per_request
    tokens = num_blocks * L // blocks_per_request  # int(max_concurrency * max_model_len), exactly
    if available <= 0:
        fits, reason = False, (f"weights, activation peak and non-torch memory ({(budget - available) / GiB:.2f} GiB) "
                               f"exceed the budget ({budget / GiB:.2f} GiB = {plan.gpu_memory_utilization:g} x "
                               f"{total / GiB:.2f} GiB): no memory is left for the KV cache")
    elif need_one > kv_pool:
        fits, reason = False, (f"one request of {L:,} tokens needs {need_one / GiB:.2f} GiB of KV cache but only "
                               f"{kv_pool / GiB:.2f} GiB is available (vLLM refuses to start; lower max_model_len)")
    else:
        fits, reason = True, (f"{tokens:,} KV tokens; {concurrency:.2f}x concurrency at {L:,} tokens per request")
    return VllmCapacity(
        gpu_memory_bytes=total, budget_bytes=budget, weights_bytes=weights, activation_peak_bytes=act,
        non_torch_bytes=non_torch, cuda_graph_bytes=graphs, available_kv_bytes=available, page_bytes=page, layers_per_group=size,
        num_groups=len(groups), num_blocks=num_blocks, kv_pool_bytes=kv_pool, block_size=vllm_block_size(spec),
        kv_cache_tokens=tokens, max_model_len=L, blocks_per_request=blocks_per_request,
        max_concurrency=concurrency, max_num_batched_tokens=batched, max_num_seqs=plan.max_num_seqs,
        fits=fits, reason=reason, layout=layout, group_kinds=tuple(groups),
    )


def vllm_breakdown(spec: ModelSpec, plan) -> MemoryBreakdown:
    """Memory of one GPU under vLLM: weights shard, profiling activation peak, non-torch, KV pool."""
    cap = vllm_capacity(spec, plan)
    fmt = _vllm_format(spec, plan)
    dtype, eb = _compute_dtype_bytes(spec, fmt)
    comps = list(weight_components_per_gpu(spec, fmt, plan.tp))
    if _override(plan, "activations/profile_peak") is not None:
        comps.append(Component("activations/profile_peak", cap.activation_peak_bytes, "measured (override)", "override"))
    else:
        parts = vllm_activation_bytes(spec, plan, eb)
        comps.append(Component("activations/forward", parts["forward"],
                               f"profiling forward pass of {cap.max_num_batched_tokens:,} tokens: largest "
                               "intermediates + residual stream", "assumption"))
        comps.append(Component("activations/sampler", parts["sampler"],
                               f"dummy sampler run: {min(plan.max_num_seqs, cap.max_num_batched_tokens):,} requests "
                               f"x vocab x 4 bytes x {VLLM_SAMPLER_FP32_COPIES} fp32 copies", "assumption"))
    comps.append(Component("overhead/non_torch", cap.non_torch_bytes,
                           "non-torch memory vLLM measures while profiling (NCCL, cuBLAS workspaces)",
                           "override" if _override(plan, "overhead/non_torch") is not None else "assumption"))
    comps.append(Component("overhead/cuda_graphs", cap.cuda_graph_bytes,
                           "CUDA-graph memory vLLM (>= 0.21) estimates and takes from the budget",
                           "override" if _override(plan, "overhead/cuda_graphs") is not None else "assumption"))
    comps.append(Component("kv_cache/pool", cap.kv_pool_bytes,
                           f"{cap.num_blocks:,} blocks x {cap.block_size} tokens x {cap.layers_per_group} layers "
                           f"per group x {cap.page_bytes:,} bytes per layer-block"))
    kv_name = canonical_kv_dtype(plan.kv_dtype, dtype)
    downcast = plan.weights == "auto" and resolve_format(spec, "auto").name == "fp32"
    notes = [
        f"vLLM: budget {plan.gpu_memory_utilization:g} x {cap.gpu_memory_bytes / GiB:.2f} GiB = "
        f"{cap.budget_bytes / GiB:.2f} GiB per GPU; the KV pool takes everything left in it",
        f"vLLM: GPU KV cache size: {cap.kv_cache_tokens:,} tokens; maximum concurrency for "
        f"{cap.max_model_len:,} tokens per request: {cap.max_concurrency:.2f}x",
        f"vLLM: weights stored as {fmt.label}; compute dtype {dtype}; KV cache {kv_name}, blocks of {cap.block_size} tokens",
        f"vLLM: profiling run at max_num_batched_tokens={cap.max_num_batched_tokens:,}, max_num_seqs={plan.max_num_seqs}; "
        "its activation peak, the non-torch and the CUDA-graph memory are assumptions (override with measured values)",
        "vLLM: the CUDA context and NCCL buffers (initialised before vLLM's memory snapshot) sit outside the "
        f"budget, in the remaining {1 - plan.gpu_memory_utilization:.0%} of the GPU",
    ]
    if downcast:
        notes.append("vLLM: --dtype auto runs this float32 checkpoint in bfloat16")
    if cap.num_groups > 1:
        notes.append(f"vLLM: hybrid allocator, {cap.num_groups} groups of {cap.layers_per_group} layers; sliding-window "
                     "layers hold only the window per request")
    if "mla" in spec.layer_types:
        notes.append("vLLM: MLA layers cache one latent (kv_lora_rank + qk_rope_head_dim) per token, not split by TP; "
                     f"{VLLM_MLA_BLOCK_SIZE}-token blocks (FlashMLA on Hopper)")
    if "mamba" in spec.layer_types:
        notes.append("vLLM: mamba/SSM layer state is not modelled")
    if plan.tp > 1:
        notes.append(f"vLLM: tensor parallel over {plan.tp} GPUs; every number is per GPU")
    if not cap.fits:
        notes.append(f"vLLM would not start: {cap.reason}")
    if spec.approximate:
        notes.append("model planned as a llama-like approximation: numbers are approximate")
    notes.extend(spec.notes)
    return MemoryBreakdown(parameters=parameter_count(spec), components=tuple(comps), assumptions=tuple(notes),
                           tp=plan.tp)


# --------------------------------------------------------------------------------------------------
# llama.cpp


@dataclass(frozen=True)
class LlamaCppMemory:
    """llama.cpp memory on both sides of a (partial) offload.

    ``gpu``: the GPU's buffers (``CUDA0 buffer``, ``CUDA0 KV buffer``, ``CUDA0 compute buffer``, context).
    ``host``: host RAM (``CPU buffer`` incl. token_embd and CPU layers, their KV, ``CUDA_Host`` compute and
    output buffers). ``n_ctx``: KV cells allocated (after padding); ``gpu_layers``: layers offloaded as
    llama.cpp counts them (the output layer counts as one).
    """

    gpu: MemoryBreakdown
    host: MemoryBreakdown
    n_ctx: int
    n_seq: int
    gpu_layers: int
    total_layers: int
    kv_type: str

    @property
    def host_bytes(self) -> int:
        return self.host.total_bytes


def llamacpp_kv_type(kv_dtype: str) -> str:
    """Plan KV dtype -> llama.cpp ``--cache-type-k/v`` name (auto/fp16 -> f16, q8_0, q4_0 ...)."""
    name = str(kv_dtype).strip().lower()
    name = _LLAMACPP_KV_ALIASES.get(name, name)
    if name not in LLAMACPP_KV_TYPES:
        raise InputError(f"llama.cpp has no {kv_dtype!r} KV cache type; choose one of: auto, fp16, int8 (q8_0), "
                         f"int4 (q4_0), {', '.join(LLAMACPP_KV_TYPES)}")
    return name


def _kv_type_bytes(kv_type: str, values: int) -> int:
    blck, size = LLAMACPP_KV_TYPES[kv_type]
    if values % blck:
        raise InputError(f"a K/V row of {values} values cannot be stored as {kv_type} (blocks of {blck})")
    return values // blck * size


def _pad(n: int, to: int) -> int:
    return -(-n // to) * to


def llamacpp_n_ctx(plan) -> int:
    """KV cells llama.cpp allocates: ``-c`` = batch x context (all slots), padded to 256."""
    return _pad(plan.batch * plan.context, LLAMACPP_KV_PAD)


def llamacpp_swa_cells(spec: ModelSpec, n_ctx, n_seq):
    """Cells of a sliding-window layer (iSWA cache without --swa-full): min(n_ctx, pad(window x n_seq + ubatch))."""
    return np.minimum(n_ctx, _pad(spec.sliding_window * n_seq + LLAMACPP_N_UBATCH, LLAMACPP_KV_PAD))


def _llamacpp_swa(spec: ModelSpec) -> bool:
    return bool(spec.sliding_window) and spec.family in LLAMACPP_SWA_FAMILIES and SLIDING in spec.layer_types


def llamacpp_kv_bytes(spec: ModelSpec, kv_type: str, first_gpu: int, cpu_only: bool, batch, context):
    """KV bytes per label (``full``, ``sliding``, ``mla``) as (gpu, host), for int or int64-array batch/context.

    Layers ``>= first_gpu`` hold their K and V on the GPU (llama.cpp's default ``offload_kqv``).
    """
    n_ctx = _pad(batch * context, LLAMACPP_KV_PAD)
    swa = _llamacpp_swa(spec)
    n_swa = llamacpp_swa_cells(spec, n_ctx, batch) if swa else n_ctx
    rows: dict[str, list[int]] = {}  # label -> [gpu row bytes, host row bytes] per cell, summed over layers
    for i, kind in enumerate(spec.layer_types):
        if kind in (FULL, SLIDING):
            row = 2 * _kv_type_bytes(kv_type, spec.num_kv_heads * spec.head_dim)
            label = "sliding" if kind == SLIDING and swa else "full"
        elif kind == "mla":
            m = spec.mla
            row = _kv_type_bytes(kv_type, m.kv_lora_rank + m.qk_rope_head_dim)
            label = "mla"
        else:
            continue
        side = 0 if (not cpu_only and i >= first_gpu) else 1
        rows.setdefault(label, [0, 0])[side] += row
    return {label: (g * (n_swa if label == "sliding" else n_ctx), h * (n_swa if label == "sliding" else n_ctx))
            for label, (g, h) in rows.items()}


def _llamacpp_format(spec: ModelSpec, plan) -> tuple[WeightFormat, list[str]]:
    notes = []
    name = plan.weights
    if name == "auto":
        name = LLAMACPP_DEFAULT_WEIGHTS
        notes.append(f"llama.cpp: weights 'auto' planned as {LLAMACPP_DEFAULT_WEIGHTS} (the usual GGUF choice)")
    fmt = resolve_format(spec, name)
    if fmt.kind != "gguf":
        raise InputError(f"the llamacpp engine runs GGUF files; choose a gguf-* weight format (e.g. "
                         f"{LLAMACPP_DEFAULT_WEIGHTS}), not {fmt.name!r}")
    return fmt, notes


def llamacpp_memory(spec: ModelSpec, plan) -> LlamaCppMemory:
    """GPU and host memory of ``llama-server -m <gguf> -c (batch*context) -np batch -ngl N``."""
    fmt, notes = _llamacpp_format(spec, plan)
    n_layer = spec.num_layers
    cpu_only = plan.device == "cpu"
    ngl = 0 if cpu_only else (n_layer + 1 if plan.n_gpu_layers is None else min(plan.n_gpu_layers, n_layer + 1))
    first_gpu = max(n_layer - ngl, 0)  # layers >= first_gpu are on the GPU
    output_on_gpu = ngl > n_layer

    def on_gpu(t: TensorInfo, layer: int | None) -> bool:
        if layer is not None:
            return layer >= first_gpu
        if t.gguf in ("token_embd", "position_embd"):
            return False
        return output_on_gpu  # output, output_norm

    gpu_w: dict[str, int] = {}
    host_w: dict[str, int] = {}
    for t, layer, g in gguf_types(spec, fmt):
        b = tensor_bytes(t, fmt, conv1d=spec.conv1d, ggml_type=g).data
        side = gpu_w if (not cpu_only and on_gpu(t, layer)) else host_w
        side[t.component] = side.get(t.component, 0) + b

    # KV cache
    kv_type = llamacpp_kv_type(plan.kv_dtype)
    n_seq = plan.batch
    n_ctx = llamacpp_n_ctx(plan)
    n_swa = llamacpp_swa_cells(spec, n_ctx, n_seq) if _llamacpp_swa(spec) else 0
    gpu_kv: dict[str, int] = {}
    host_kv: dict[str, int] = {}
    for label, (g, h) in llamacpp_kv_bytes(spec, kv_type, first_gpu, cpu_only, n_seq, plan.context).items():
        if g:
            gpu_kv[label] = int(g)
        if h:
            host_kv[label] = int(h)

    # compute and output buffers
    n_ff = spec.intermediate_size
    if spec.moe is not None:
        n_ff = max(n_ff if "dense" in spec.mlp_types else 0, spec.moe.experts_per_token * spec.moe.expert_intermediate_size)
    widest = max(spec.vocab_size, 2 * n_ff)
    compute_main = LLAMACPP_N_UBATCH * 4 * (widest + spec.hidden_size)
    compute_small = LLAMACPP_N_UBATCH * 4 * 3 * spec.hidden_size  # input embeddings etc. on the host
    output_buf = spec.vocab_size * n_seq * 4

    ubatch_formula = f"n_ubatch ({LLAMACPP_N_UBATCH}) x 4 x (max(n_vocab, 2 n_ff) + n_embd)"
    gpu_comps = [Component(f"weights/{k}", v, f"{fmt.label} tensors on the GPU") for k, v in gpu_w.items()]
    gpu_comps += [Component(f"kv_cache/{k}", v, f"{n_ctx:,} cells x K and V rows in {kv_type}") for k, v in gpu_kv.items()]
    host_comps = [Component(f"weights/{k}", v, f"{fmt.label} tensors in host memory") for k, v in host_w.items()]
    host_comps += [Component(f"kv_cache/{k}", v, f"{n_ctx:,} cells x K and V rows in {kv_type}") for k, v in host_kv.items()]
    if cpu_only:
        host_comps.append(Component("activations/compute_buffer", compute_main, ubatch_formula, "assumption"))
    else:
        gpu_comps.append(Component("activations/compute_buffer", compute_main,
                                   ubatch_formula + " (CUDA0 compute buffer)", "assumption"))
        host_extra = compute_small if output_on_gpu and first_gpu == 0 else compute_main
        host_comps.append(Component("activations/compute_buffer", host_extra, "CUDA_Host / CPU compute buffer", "assumption"))
        ctx = _override(plan, "overhead/cuda_context")
        gpu_comps.append(Component("overhead/cuda_context", LLAMACPP_CUDA_CONTEXT_BYTES if ctx is None else ctx,
                                   "CUDA context and cuBLAS of a llama.cpp process", "assumption" if ctx is None else "override"))
    host_comps.append(Component("activations/output_buffer", output_buf, "n_vocab x n_seq x 4 bytes (logits)"))

    gpu_layers = 0 if cpu_only else min(ngl, n_layer + 1)
    notes += [
        f"llama.cpp: weights stored as {fmt.label}",
        f"llama.cpp: -c {n_ctx:,} -np {n_seq} (the context is shared by the parallel slots: batch x context, "
        f"padded to {LLAMACPP_KV_PAD}); KV cache {kv_type} allocated up front",
        f"llama.cpp: offloaded {gpu_layers}/{n_layer + 1} layers to GPU" if not cpu_only else "llama.cpp: CPU only",
        "llama.cpp: compute buffer sizes are an assumption (logits of one n_ubatch=512 ubatch; flash attention on)",
    ]
    host_total = sum(c.bytes for c in host_comps)
    if not cpu_only:
        notes.append(f"llama.cpp: host RAM {host_total / GiB:.2f} GiB (token_embd, CPU layers, their KV, host buffers)")
    if n_swa:
        notes.append(f"llama.cpp: sliding-window layers keep {n_swa:,} cells (window x slots + ubatch, padded)")
    if "mla" in spec.layer_types:
        notes.append("llama.cpp: MLA layers cache the latent (kv_lora_rank + qk_rope_head_dim) only; approximate")
    if spec.approximate:
        notes.append("model planned as a llama-like approximation: numbers are approximate")
    notes.extend(spec.notes)
    params = parameter_count(spec)
    host = MemoryBreakdown(params, tuple(host_comps), tuple(notes))
    gpu = host if cpu_only else MemoryBreakdown(params, tuple(gpu_comps), tuple(notes))
    return LlamaCppMemory(gpu=gpu, host=host, n_ctx=n_ctx, n_seq=n_seq, gpu_layers=gpu_layers,
                          total_layers=n_layer + 1, kv_type=kv_type)


def llamacpp_breakdown(spec: ModelSpec, plan) -> MemoryBreakdown:
    """The GPU side of a llama.cpp plan (the host side when ``plan.device == 'cpu'``).

    Host RAM of a partial offload is in :func:`llamacpp_memory` (``.host``) and in the assumptions.
    """
    return llamacpp_memory(spec, plan).gpu


def llamacpp_host_bytes(spec: ModelSpec, plan) -> int:
    """Host RAM a llama.cpp plan needs (weights and KV of CPU layers, token_embd, host buffers)."""
    return llamacpp_memory(spec, plan).host_bytes
