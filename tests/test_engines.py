"""vLLM and llama.cpp engine models.

Ground truth here is the engines' own arithmetic as their startup logs show it (cited per test), ggml's
block sizes from the ``gguf`` package, and the planner's own exact weight bytes.
"""

from __future__ import annotations

from dataclasses import replace

import gguf
import pytest

from planner.catalog import catalog_spec
from planner.engines import (
    LLAMACPP_N_UBATCH,
    VLLM_BLOCK_SIZE,
    llamacpp_breakdown,
    llamacpp_memory,
    llamacpp_n_ctx,
    vllm_activation_bytes,
    vllm_breakdown,
    vllm_capacity,
    weight_components_per_gpu,
)
from planner.errors import InputError
from planner.estimate import Plan
from planner.formats import resolve_format, weight_components
from planner.gpus import find_gpu
from planner.spec import parse_config

GiB = 1 << 30
MiB = 1 << 20
H100 = find_gpu("h100-sxm-80gb").memory_bytes
ZERO_OVERHEADS = (("activations/profile_peak", 0), ("overhead/non_torch", 0), ("overhead/cuda_graphs", 0))


def tiny(**kw):
    cfg = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
           "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 256, "max_position_embeddings": 4096}
    cfg.update(kw)
    return parse_config(cfg)


def weights_bytes(spec, name, tp=1):
    return sum(c.bytes for c in weight_components_per_gpu(spec, resolve_format(spec, name), tp))


def vllm_plan_with_blocks(spec, num_blocks, **kw):
    """A plan whose KV budget is exactly ``num_blocks`` blocks (all assumed overheads set to 0)."""
    probe = vllm_capacity(spec, Plan(engine="vllm", weights="bf16", gpu_memory_bytes=H100, overrides=ZERO_OVERHEADS, **kw))
    block_row = probe.page_bytes * probe.layers_per_group
    total = probe.weights_bytes + num_blocks * block_row + block_row // 2
    return Plan(engine="vllm", weights="bf16", gpu_memory_bytes=total, gpu_memory_utilization=1.0,
                overrides=ZERO_OVERHEADS, **kw)


# ------------------------------------------------------------------------------------------------ vLLM


def test_vllm_on_cpu_is_refused_with_a_pointer():
    with pytest.raises(InputError, match="llamacpp"):
        vllm_capacity(tiny(), Plan(engine="vllm", device="cpu", gpu_memory_bytes=H100))


def test_vllm_needs_the_gpu_memory():
    with pytest.raises(InputError, match="--gpu"):
        vllm_capacity(tiny(), Plan(engine="vllm"))


def test_vllm_parts_fill_the_budget_to_within_one_block_row():
    spec = catalog_spec("llama-3.1-8b")
    cap = vllm_capacity(spec, Plan(engine="vllm", gpu_memory_bytes=H100, context=8192))
    used = cap.weights_bytes + cap.activation_peak_bytes + cap.non_torch_bytes + cap.cuda_graph_bytes + cap.kv_pool_bytes
    assert cap.budget_bytes == int(0.9 * H100)
    assert 0 <= cap.budget_bytes - used < cap.page_bytes * cap.layers_per_group


def test_vllm_breakdown_kv_is_the_reserved_pool_and_total_is_within_budget():
    spec = catalog_spec("llama-3.1-8b")
    plan = Plan(engine="vllm", gpu_memory_bytes=H100)
    b, cap = vllm_breakdown(spec, plan), vllm_capacity(spec, plan)
    assert b.kv_cache_bytes == cap.kv_pool_bytes > 0
    assert b.total_bytes <= cap.budget_bytes
    assert any("GPU KV cache size" in a for a in b.assumptions)


def test_vllm_llama_8b_block_is_2_mib_as_in_a_vllm_log():
    # vllm-project/vllm#10517 (RTX 3090, meta-llama/Llama-3.1-8B-Instruct): "kv_cache_size=3.81GiB ...
    # GPU blocks: 1952 ... Maximum concurrency for 20000 tokens per request: 1.56x"
    spec = catalog_spec("llama-3.1-8b")
    plan = vllm_plan_with_blocks(spec, 1952, context=20000)
    cap = vllm_capacity(spec, plan)
    assert cap.page_bytes * cap.layers_per_group == 2 * MiB  # 16 tokens x 32 layers x K,V x 8 heads x 128 x 2 B
    assert cap.num_blocks == 1952
    assert round(cap.kv_pool_bytes / GiB, 2) == 3.81
    assert f"{cap.max_concurrency:.2f}" == "1.56"


def test_vllm_full_attention_concurrency_matches_pr_13596_log():
    # vllm-project/vllm PR #13596: "GPU KV cache size: 2,042,016 tokens" and
    # "Maximum concurrency for 2,048 tokens per request: 997.08x" (127,626 blocks of 16 tokens)
    spec = tiny()
    cap = vllm_capacity(spec, vllm_plan_with_blocks(spec, 127_626, context=2048))
    assert cap.num_blocks == 127_626
    assert cap.kv_cache_tokens == 2_042_016
    assert f"{cap.max_concurrency:.2f}" == "997.08"


def test_vllm_sliding_window_concurrency_matches_pr_19029_log():
    # vllm-project/vllm PR #19029, `vllm serve bigcode/starcoder2-3b` (every layer sliding, window 4096,
    # H100 default max_num_batched_tokens 8192): "GPU KV cache size: 2,198,512 tokens" (= 137,407 blocks)
    # and "Maximum concurrency for 16,384 tokens per request: 178.68x"
    spec = parse_config({"model_type": "starcoder2", "hidden_size": 3072, "intermediate_size": 12288,
                         "num_attention_heads": 24, "num_hidden_layers": 30, "num_key_value_heads": 2,
                         "vocab_size": 49152, "sliding_window": 4096, "max_position_embeddings": 16384,
                         "use_bias": True, "torch_dtype": "float32"})
    plan = vllm_plan_with_blocks(spec, 137_407, context=16384, max_num_batched_tokens=8192)
    cap = vllm_capacity(spec, plan)
    assert cap.num_blocks * VLLM_BLOCK_SIZE == 2_198_512
    assert cap.blocks_per_request == 769  # cdiv(min(4095 + 8192, 16384), 16) + 1
    assert f"{cap.max_concurrency:.2f}" == "178.68"


def test_vllm_hybrid_gemma2_groups_full_and_sliding_layers():
    spec = catalog_spec("gemma-2-9b")  # 21 sliding + 21 full layers, window 4096
    cap = vllm_capacity(spec, Plan(engine="vllm", gpu_memory_bytes=H100, context=8192, max_num_batched_tokens=2048))
    assert (cap.num_groups, cap.layers_per_group) == (2, 21)
    full_blocks = 8192 // 16
    sliding_blocks = -(-min(4095 + 2048, 8192) // 16) + 1
    assert cap.blocks_per_request == full_blocks + sliding_blocks
    assert cap.kv_cache_tokens == cap.num_blocks * 8192 // cap.blocks_per_request


def test_vllm_mla_latent_is_not_split_by_tensor_parallelism():
    spec = catalog_spec("deepseek-v3")
    p1 = vllm_capacity(spec, Plan(engine="vllm", gpu_memory_bytes=H100, tp=8)).page_bytes
    # one latent of kv_lora_rank + qk_rope_head_dim per token and layer, bf16
    assert p1 == 64 * (512 + 64) * 2  # FlashMLA's 64-token blocks


def test_vllm_tensor_parallel_kv_heads_and_weights_per_gpu():
    spec = catalog_spec("llama-3.1-70b")
    c1 = vllm_capacity(spec, Plan(engine="vllm", gpu_memory_bytes=H100, tp=4))
    c8 = vllm_capacity(spec, Plan(engine="vllm", gpu_memory_bytes=H100, tp=8))
    assert c1.page_bytes == VLLM_BLOCK_SIZE * 2 * 2 * 128 * 2  # 8 KV heads / 4 GPUs = 2 per GPU
    assert c8.page_bytes == VLLM_BLOCK_SIZE * 2 * 1 * 128 * 2
    assert c8.weights_bytes < c1.weights_bytes


def test_tp_shards_add_up_to_the_whole_model_except_replicated_norms():
    spec = tiny(num_key_value_heads=4)
    fmt = resolve_format(spec, "bf16")
    whole = {c.path: c.bytes for c in weight_components(spec, fmt)}
    half = {c.path: c.bytes for c in weight_components_per_gpu(spec, fmt, 2)}
    for path, n in whole.items():
        assert half[path] == (n if path == "weights/norms" else n // 2), path


def test_vllm_replicates_kv_projections_when_heads_are_fewer_than_gpus():
    spec = tiny(num_key_value_heads=1)
    fmt = resolve_format(spec, "bf16")
    qkv_2 = next(c.bytes for c in weight_components_per_gpu(spec, fmt, 2) if c.path == "weights/attention/qkv")
    # per layer: q 64x64 / 2 + k and v one head each (16 x 64), bf16, 2 layers
    assert qkv_2 == 2 * 2 * (64 * 64 // 2 + 2 * 16 * 64)


def test_vllm_fp8_kv_halves_the_page():
    spec = catalog_spec("llama-3.1-8b")
    auto = vllm_capacity(spec, Plan(engine="vllm", gpu_memory_bytes=H100))
    fp8 = vllm_capacity(spec, Plan(engine="vllm", gpu_memory_bytes=H100, kv_dtype="fp8"))
    assert fp8.page_bytes * 2 == auto.page_bytes
    assert fp8.num_blocks in (2 * auto.num_blocks, 2 * auto.num_blocks + 1)


@pytest.mark.parametrize("kv", ["int4", "int8"])
def test_vllm_rejects_kv_dtypes_it_does_not_have(kv):
    with pytest.raises(InputError, match="vLLM has no"):
        vllm_capacity(tiny(), Plan(engine="vllm", gpu_memory_bytes=H100, kv_dtype=kv))


def test_vllm_does_not_start_when_weights_exceed_the_budget():
    cap = vllm_capacity(catalog_spec("llama-3.1-70b"), Plan(engine="vllm", gpu_memory_bytes=H100))
    assert not cap.fits and cap.kv_pool_bytes == 0 and "exceed the budget" in cap.reason


def test_vllm_refuses_a_max_model_len_whose_one_request_does_not_fit():
    spec = tiny()
    plan = vllm_plan_with_blocks(spec, 10, context=161)  # 161 tokens need 11 blocks
    cap = vllm_capacity(spec, plan)
    assert cap.num_blocks == 10 and not cap.fits
    assert vllm_capacity(spec, replace(plan, context=160)).fits


#: vLLM's profiling log for `vllm serve meta-llama/Meta-Llama-3-8B` on an H100 (vllm-project/vllm PR #10511):
#: total_gpu_memory 79.22GiB, gpu_memory_utilization 0.90, "the current vLLM instance can use 71.29GiB",
#: "model weights take 14.96GiB", "non_torch_memory 1.79GiB", "PyTorch activation peak memory 1.26GiB",
#: "available_kv_cache_memory 53.29GiB". (Llama-3-8B and Llama-3.1-8B have the same shapes.)
LOG_10511 = dict(total=79.22, budget=71.29, weights=14.96, non_torch=1.79, peak=1.26, kv=53.29)
#: the activation peak is an assumption; it must come within this of vLLM's measured 1.26 GiB
ACTIVATION_TOLERANCE_GIB = 0.1


def test_vllm_budget_and_weights_reproduce_a_vllm_profiling_log():
    spec = catalog_spec("llama-3.1-8b")
    total = round(LOG_10511["total"] * GiB)
    overrides = (("overhead/non_torch", round(LOG_10511["non_torch"] * GiB)),
                 ("activations/profile_peak", round(LOG_10511["peak"] * GiB)), ("overhead/cuda_graphs", 0))
    cap = vllm_capacity(spec, Plan(engine="vllm", gpu_memory_bytes=total, overrides=overrides))
    assert abs(cap.budget_bytes / GiB - LOG_10511["budget"]) <= 0.01  # 0.9 x a total rounded to 0.01
    assert round(cap.weights_bytes / GiB, 2) == LOG_10511["weights"]
    assert abs(cap.available_kv_bytes / GiB - LOG_10511["kv"]) <= 0.02  # the log rounds each term to 0.01


def test_vllm_activation_peak_assumption_is_near_the_measured_one():
    spec = catalog_spec("llama-3.1-8b")
    plan = Plan(engine="vllm", gpu_memory_bytes=round(LOG_10511["total"] * GiB), max_num_batched_tokens=8192)
    peak = sum(vllm_activation_bytes(spec, plan, 2).values()) / GiB
    assert abs(peak - LOG_10511["peak"]) <= ACTIVATION_TOLERANCE_GIB


def test_vllm_non_torch_assumption_is_the_post_overhaul_measurement():
    # vllm-project/vllm PR #12126 (H100-80G, after the profiling overhaul): "non_torch_memory takes 0.16GiB"
    cap = vllm_capacity(catalog_spec("llama-3.1-8b"), Plan(engine="vllm", gpu_memory_bytes=H100))
    assert abs(cap.non_torch_bytes / GiB - 0.16) <= 0.05


def test_vllm_overrides_replace_the_assumptions():
    spec = catalog_spec("llama-3.1-8b")
    plan = Plan(engine="vllm", gpu_memory_bytes=H100, overrides=(("overhead/non_torch", 123),))
    b = vllm_breakdown(spec, plan)
    assert b.as_dict()["overhead/non_torch"] == 123


# ------------------------------------------------------------------------------------------- llama.cpp


def trilm_like():
    # the model in mozilla-ai/llamafile PR #552's log: 30 layers, n_embd 3072, MHA, n_vocab 50688
    return parse_config({"model_type": "llama", "hidden_size": 3072, "intermediate_size": 8192,
                         "num_attention_heads": 24, "num_hidden_layers": 30, "vocab_size": 50688})


def test_llamacpp_kv_compute_and_output_buffers_match_a_llamacpp_log():
    # mozilla-ai/llamafile PR #552, n_ctx 512, n_ubatch 512: "CUDA0 KV buffer size = 180.00 MiB",
    # "CUDA_Host output buffer size = 0.19 MiB", "CUDA0 compute buffer size = 105.00 MiB"
    mem = llamacpp_memory(trilm_like(), Plan(engine="llamacpp", weights="gguf-Q8_0", context=512))
    gpu, host = mem.gpu.as_dict(), mem.host.as_dict()
    assert gpu["kv_cache/full"] == 180 * MiB
    assert gpu["activations/compute_buffer"] == 105 * MiB
    assert round(host["activations/output_buffer"] / MiB, 2) == 0.19


@pytest.mark.parametrize("kv,qtype", [("q8_0", gguf.GGMLQuantizationType.Q8_0), ("q4_0", gguf.GGMLQuantizationType.Q4_0),
                                      ("fp16", gguf.GGMLQuantizationType.F16)])
def test_llamacpp_kv_cache_types_use_ggml_block_sizes(kv, qtype):
    spec = catalog_spec("llama-3.1-8b")
    mem = llamacpp_memory(spec, Plan(engine="llamacpp", weights="gguf-Q4_K_M", context=8192, kv_dtype=kv))
    blck, size = gguf.GGML_QUANT_SIZES[qtype]
    assert mem.gpu.kv_cache_bytes == 32 * 2 * 8192 * (8 * 128 // blck) * size
    assert mem.kv_type == {"fp16": "f16"}.get(kv, kv)


def test_llamacpp_context_is_shared_by_slots_and_padded():
    assert llamacpp_n_ctx(Plan(engine="llamacpp", batch=4, context=1000)) == 4096
    assert llamacpp_n_ctx(Plan(engine="llamacpp", batch=1, context=8192)) == 8192


@pytest.mark.parametrize("ngl", [0, 1, 16, 32, 33, None])
def test_llamacpp_offload_splits_weights_and_kv_without_loss(ngl):
    spec = catalog_spec("llama-3.1-8b")
    plan = Plan(engine="llamacpp", weights="gguf-Q4_K_M", context=4096, n_gpu_layers=ngl)
    mem = llamacpp_memory(spec, plan)
    whole = sum(c.bytes for c in weight_components(spec, resolve_format(spec, "gguf-Q4_K_M")))
    assert mem.gpu.weights_bytes + mem.host.weights_bytes == whole
    full_kv = 32 * 2 * 4096 * 8 * 128 * 2
    assert mem.gpu.kv_cache_bytes + mem.host.kv_cache_bytes == full_kv
    on_gpu = min(32 if ngl is None else ngl, 32)
    assert mem.gpu.kv_cache_bytes == full_kv * on_gpu // 32


def test_llamacpp_full_offload_leaves_only_token_embd_in_ram():
    spec = catalog_spec("llama-3.1-8b")
    mem = llamacpp_memory(spec, Plan(engine="llamacpp", weights="gguf-Q4_K_M"))
    assert set(mem.host.as_dict()) >= {"weights/embeddings"}
    assert not any(k.startswith("weights/") and k != "weights/embeddings" for k in mem.host.as_dict())
    assert mem.gpu_layers == 33 == mem.total_layers
    assert any("offloaded 33/33 layers" in a for a in mem.gpu.assumptions)


def test_llamacpp_auto_weights_default_to_q4_k_m_and_say_so():
    b = llamacpp_breakdown(tiny(hidden_size=256, intermediate_size=512), Plan(engine="llamacpp"))
    assert any("gguf-Q4_K_M" in a for a in b.assumptions)


def test_llamacpp_rejects_non_gguf_weights_and_unknown_kv_types():
    with pytest.raises(InputError, match="gguf"):
        llamacpp_breakdown(tiny(), Plan(engine="llamacpp", weights="bf16"))
    with pytest.raises(InputError, match="llama.cpp has no 'fp8_e4m3' KV cache type"):
        llamacpp_breakdown(catalog_spec("llama-3.1-8b"), Plan(engine="llamacpp", kv_dtype="fp8_e4m3"))


def test_llamacpp_int8_and_int4_mean_q8_0_and_q4_0():
    spec = catalog_spec("llama-3.1-8b")
    for plan_name, ggml in (("int8", "q8_0"), ("int4", "q4_0")):
        assert llamacpp_memory(spec, Plan(engine="llamacpp", kv_dtype=plan_name)).kv_type == ggml


def test_llamacpp_cpu_device_puts_everything_in_ram():
    spec = catalog_spec("llama-3.1-8b")
    mem = llamacpp_memory(spec, Plan(engine="llamacpp", device="cpu", context=2048))
    assert mem.gpu is mem.host and mem.gpu_layers == 0
    assert "overhead/cuda_context" not in mem.host.as_dict()


def test_llamacpp_compute_buffer_scales_with_ubatch_and_vocab():
    spec = catalog_spec("llama-3.1-8b")
    b = llamacpp_breakdown(spec, Plan(engine="llamacpp"))
    assert b.as_dict()["activations/compute_buffer"] == LLAMACPP_N_UBATCH * 4 * (128256 + 4096)


def test_llamacpp_gemma2_sliding_layers_keep_window_times_slots_plus_ubatch():
    # llama.cpp iSWA cache (without --swa-full): sliding layers hold pad256(window * n_seq + n_ubatch) cells
    spec = catalog_spec("gemma-2-9b")  # 21 sliding layers (window 4096) + 21 full, 8 KV heads x 256
    mem = llamacpp_memory(spec, Plan(engine="llamacpp", weights="gguf-Q4_K_M", context=32768, batch=2))
    kv = mem.gpu.as_dict()
    row = 2 * 8 * 256 * 2  # K and V, f16
    assert kv["kv_cache/full"] == 21 * row * 65536
    assert kv["kv_cache/sliding"] == 21 * row * (4096 * 2 + 512)


def test_llamacpp_mistral_sliding_window_is_not_used_by_llamacpp():
    spec = catalog_spec("mistral-7b-v0.1")  # llama.cpp runs it as plain llama: full context on every layer
    kv = llamacpp_memory(spec, Plan(engine="llamacpp", context=16384)).gpu.as_dict()
    assert set(k for k in kv if k.startswith("kv_cache")) == {"kv_cache/full"}
    assert kv["kv_cache/full"] == 32 * 2 * 16384 * 8 * 128 * 2
