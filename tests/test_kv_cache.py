"""KV-cache bytes equal what transformers really holds.

Ground truth: a tiny random model of each supported family (hidden 64, 2-4 layers, window 8) runs a
forward pass on CPU with ``use_cache=True``; the cache tensors' ``nbytes`` are summed and compared with
:func:`planner.kv_cache.kv_cache_bytes` for the same config parsed by :func:`planner.spec.parse_config`.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from planner.errors import InputError  # noqa: E402
from planner.estimate import Plan  # noqa: E402
from planner.kv_cache import (  # noqa: E402
    KV_DTYPES,
    kv_bytes_per_token,
    kv_cache_bytes,
    kv_components,
)
from planner.spec import parse_config, supported_model_types  # noqa: E402

WINDOW = 8
_BASE = dict(hidden_size=64, intermediate_size=96, vocab_size=128, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=256)

#: One tiny config per family, with sliding windows and mixed layer types where the family has them.
TINY: dict[str, dict] = {
    "llama": dict(_BASE, model_type="llama", num_hidden_layers=2),
    "mistral": dict(_BASE, model_type="mistral", num_hidden_layers=2, sliding_window=WINDOW),
    "mixtral": dict(_BASE, model_type="mixtral", num_hidden_layers=2, num_local_experts=4,
                    num_experts_per_tok=2, sliding_window=None),
    "qwen2": dict(_BASE, model_type="qwen2", num_hidden_layers=3, use_sliding_window=True,
                  sliding_window=WINDOW, max_window_layers=1),
    "qwen3": dict(_BASE, model_type="qwen3", num_hidden_layers=2, head_dim=32),
    "qwen2_moe": dict(_BASE, model_type="qwen2_moe", num_hidden_layers=2, num_experts=4, num_experts_per_tok=2,
                      moe_intermediate_size=32, shared_expert_intermediate_size=48),
    "qwen3_moe": dict(_BASE, model_type="qwen3_moe", num_hidden_layers=2, num_experts=4, num_experts_per_tok=2,
                      moe_intermediate_size=32, head_dim=16),
    "gemma": dict(_BASE, model_type="gemma", num_hidden_layers=2, head_dim=16),
    "gemma2": dict(_BASE, model_type="gemma2", num_hidden_layers=4, head_dim=16, sliding_window=WINDOW),
    "gemma3_text": dict(_BASE, model_type="gemma3_text", num_hidden_layers=4, head_dim=16, sliding_window=WINDOW,
                        layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"]),
    "gemma3": dict(model_type="gemma3", text_config=dict(_BASE, model_type="gemma3_text", num_hidden_layers=2,
                                                         head_dim=16, sliding_window=WINDOW,
                                                         layer_types=["sliding_attention", "full_attention"])),
    "granite": dict(_BASE, model_type="granite", num_hidden_layers=2),
    "phi3": dict(_BASE, model_type="phi3", num_hidden_layers=2, pad_token_id=0),
    "deepseek_v3": dict(_BASE, model_type="deepseek_v3", num_hidden_layers=2, num_key_value_heads=4,
                        q_lora_rank=32, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=16,
                        n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, n_shared_experts=1,
                        first_k_dense_replace=1, n_group=1, topk_group=1),
    "deepseek_v2": dict(_BASE, model_type="deepseek_v2", num_hidden_layers=2, num_key_value_heads=4,
                        q_lora_rank=None, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=16,
                        n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, n_shared_experts=1,
                        first_k_dense_replace=1, n_group=1, topk_group=1),
    "olmo2": dict(_BASE, model_type="olmo2", num_hidden_layers=2),
    "starcoder2": dict(_BASE, model_type="starcoder2", num_hidden_layers=2, sliding_window=WINDOW),
    "jamba": dict(_BASE, model_type="jamba", num_hidden_layers=4, attn_layer_period=2, attn_layer_offset=1,
                  expert_layer_period=2, expert_layer_offset=1, num_experts=4, num_experts_per_tok=2,
                  mamba_d_state=8, mamba_d_conv=4, mamba_expand=2, mamba_dt_rank=8),
    "gpt_oss": dict(_BASE, model_type="gpt_oss", num_hidden_layers=2, head_dim=16, num_local_experts=4,
                    num_experts_per_tok=2, sliding_window=WINDOW,
                    layer_types=["sliding_attention", "full_attention"]),
    "smollm3": dict(_BASE, model_type="smollm3", num_hidden_layers=4, no_rope_layer_interval=2, pad_token_id=0,
                    use_sliding_window=True, sliding_window=WINDOW),
    "gpt2": dict(model_type="gpt2", n_embd=64, n_layer=2, n_head=4, vocab_size=128, n_positions=256),
    "gpt_neox": dict(_BASE, model_type="gpt_neox", num_hidden_layers=2, num_key_value_heads=None),
    "falcon": dict(_BASE, model_type="falcon", num_hidden_layers=2, num_key_value_heads=None,
                   new_decoder_architecture=True, num_kv_heads=2),
    "phi": dict(_BASE, model_type="phi", num_hidden_layers=2, num_key_value_heads=None),
}

FAMILIES = [f for f in supported_model_types() if f in TINY]
#: (batch, context) points: below, at and beyond the sliding window of 8
POINTS = [(1, 5), (2, 8), (3, 13)]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}

_models: dict = {}


def tiny_model(family: str, dtype: str):
    key = (family, dtype)
    if key not in _models:
        cfg = {k: v for k, v in TINY[family].items() if v is not None or k == "q_lora_rank"}
        if family == "gemma3":  # the multimodal wrapper's language model is a Gemma3ForCausalLM
            cfg = cfg["text_config"]
        config = transformers.AutoConfig.for_model(**cfg)
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(config).to(DTYPES[dtype]).eval()
        _models[key] = model
    return _models[key]


def real_cache_bytes(cache) -> int:
    """Sum of nbytes of every tensor the cache holds (keys, values, quantized storages and scales)."""
    cache = getattr(cache, "self_attention_cache", cache)
    total = 0

    def add(x):
        nonlocal total
        if isinstance(x, torch.Tensor) and hasattr(x, "__tensor_flatten__"):  # quanto's packed subclasses
            for name in x.__tensor_flatten__()[0]:
                add(getattr(x, name))
        elif isinstance(x, torch.Tensor):
            total += x.nbytes
        elif isinstance(x, (tuple, list)):
            for y in x:
                add(y)
        elif isinstance(x, dict):
            for y in x.values():
                add(y)

    for layer in cache.layers:
        for attr in ("keys", "values", "_quantized_keys", "_quantized_values", "conv_states", "recurrent_states"):
            add(getattr(layer, attr, None))
    return total


def run_forward(model, batch: int, context: int, prefill: int | None = None):
    """Prefill ``prefill`` tokens (default: all), then decode one token at a time up to ``context``."""
    prefill = prefill or context
    ids = torch.randint(1, 100, (batch, prefill))
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        cache = out.past_key_values
        for _ in range(context - prefill):
            nxt = torch.randint(1, 100, (batch, 1))
            out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
    return cache


def spec_of(family: str):
    return parse_config({k: v for k, v in TINY[family].items() if v is not None})


def test_every_supported_family_has_a_tiny_config():
    missing = [f for f in supported_model_types() if f not in TINY]
    assert not missing, f"add a tiny config for {missing} to TINY"


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("family", FAMILIES)
def test_prefill_cache_bytes_equal_transformers(family, dtype):
    spec = spec_of(family)
    model = tiny_model(family, dtype)
    for batch, context in POINTS:
        real = real_cache_bytes(run_forward(model, batch, context))
        assert kv_cache_bytes(spec, batch, context, weights_dtype=dtype) == real, (batch, context)


@pytest.mark.parametrize("family", FAMILIES)
def test_decode_cache_bytes_equal_transformers(family):
    spec = spec_of(family)
    model = tiny_model(family, "bfloat16")
    for batch, prefill, context in [(2, 6, 11)]:
        real = real_cache_bytes(run_forward(model, batch, context, prefill))
        assert kv_cache_bytes(spec, batch, context, weights_dtype="bfloat16") == real, (batch, prefill, context)


@pytest.mark.parametrize("family", [f for f in ("llama", "mistral", "gemma2", "gemma3_text", "qwen2")
                                    if f in FAMILIES])
def test_static_cache_bytes_equal_transformers(family):
    spec = spec_of(family)
    model = tiny_model(family, "float32")
    for batch, prompt, max_len in [(2, 5, 12), (1, 10, 24)]:
        cache = transformers.StaticCache(config=model.config, max_cache_len=max_len)
        with torch.no_grad():
            model(input_ids=torch.randint(1, 100, (batch, prompt)), past_key_values=cache, use_cache=True)
        expected = kv_cache_bytes(spec, batch, prompt, weights_dtype="float32", cache="static",
                                  max_cache_len=max_len)
        assert expected == real_cache_bytes(cache)


def test_fp8_quantized_cache_bytes_equal_transformers():
    spec = spec_of("llama")
    model = tiny_model("llama", "bfloat16")
    for batch, prefill, context in [(1, 7, 7), (2, 5, 9)]:
        cache = transformers.QuantizedCache(backend="fp8", config=model.config)
        ids = torch.randint(1, 100, (batch, prefill))
        with torch.no_grad():
            model(input_ids=ids, past_key_values=cache, use_cache=True)
            for _ in range(context - prefill):
                model(input_ids=torch.randint(1, 100, (batch, 1)), past_key_values=cache, use_cache=True)
        assert kv_cache_bytes(spec, batch, context, "fp8_e4m3", weights_dtype="bfloat16") == real_cache_bytes(cache)


def test_array_call_equals_loop_of_scalar_calls():
    spec = spec_of("gemma2" if "gemma2" in FAMILIES else "llama")
    batch = np.array([1, 2, 7, 64])[:, None]
    context = np.array([1, 7, 8, 9, 100, 4096])[None, :]
    arr = kv_cache_bytes(spec, batch, context)
    assert arr.shape == (4, 6) and arr.dtype == np.int64
    for i, b in enumerate(batch[:, 0]):
        for j, c in enumerate(context[0]):
            assert arr[i, j] == kv_cache_bytes(spec, int(b), int(c))


def test_bytes_per_token_times_tokens_equals_cache_bytes_for_full_attention():
    spec = spec_of("llama")
    per_tok = kv_bytes_per_token(spec, "bf16")
    assert set(per_tok) == {"full_attention"}
    assert kv_cache_bytes(spec, 3, 1000, "bf16") == 3 * 1000 * per_tok["full_attention"]


def test_tensor_parallel_splits_kv_heads_but_not_below_one():
    spec = spec_of("llama")  # 2 KV heads
    one = kv_cache_bytes(spec, 1, 100)
    assert kv_cache_bytes(spec, 1, 100, tp=2) == one // 2
    assert kv_cache_bytes(spec, 1, 100, tp=4) == one // 2  # one head per GPU, replicated


def test_fp8_is_half_of_bf16_plus_scales():
    spec = spec_of("llama")
    bf16 = kv_cache_bytes(spec, 2, 512, "bf16")
    assert kv_cache_bytes(spec, 2, 512, "fp8_e4m3") == bf16 // 2 + 2 * spec.num_layers * 4


def test_quantized_int4_is_smaller_than_int8_smaller_than_bf16():
    spec = spec_of("llama")
    sizes = [kv_cache_bytes(spec, 4, 4096, d) for d in ("int4", "int8", "bf16")]
    assert sizes[0] < sizes[1] < sizes[2]


def test_kv_components_name_parts_and_sum_to_total():
    spec = spec_of("gemma2" if "gemma2" in FAMILIES else "llama")
    plan = Plan(batch=2, context=100)
    comps = kv_components(spec, plan, "bfloat16")
    assert all(c.path.startswith("kv_cache/") for c in comps)
    assert sum(c.bytes for c in comps) == kv_cache_bytes(spec, 2, 100)


@pytest.mark.parametrize("bad", ["fp64", "q4_0", "", "int3"])
def test_unknown_kv_dtype_is_one_clear_error(bad):
    with pytest.raises(InputError, match="KV dtype"):
        kv_cache_bytes(spec_of("llama"), 1, 10, bad)


def test_all_kv_dtypes_accepted_for_full_attention():
    spec = spec_of("llama")
    for d in KV_DTYPES:
        assert kv_cache_bytes(spec, 1, 300, d) > 0


@pytest.mark.parametrize("backend,nbits,kv_dtype", [("quanto", 4, "int4"), ("hqq", 8, "int8")])
def test_int_quantized_cache_bytes_equal_transformers(backend, nbits, kv_dtype):
    # the quantized-cache backends are optional transformers extras (optimum-quanto, hqq)
    pytest.importorskip({"quanto": "optimum.quanto", "hqq": "hqq.core.quantize"}[backend])
    cfg = dict(TINY["llama"], head_dim=32)  # quanto needs KV*seq*head_dim divisible by its group of 64
    spec = parse_config(cfg)
    config = transformers.AutoConfig.for_model(**cfg)
    kv, d = spec.num_kv_heads, spec.head_dim
    # (batch, prompt, context): no residual, a residual of 4, a flush at 128 with an odd group count.
    # The cache is fed K/V states directly (what each attention layer passes to past_key_values.update).
    for batch, prompt, context in [(1, 7, 7), (2, 5, 9), (3, 1, 135)]:
        cache = transformers.QuantizedCache(backend=backend, config=config, nbits=nbits)
        steps = [prompt] + [1] * (context - prompt)
        for n in steps:
            for layer in range(spec.num_layers):
                k, v = torch.randn(2, batch, kv, n, d, dtype=torch.bfloat16)
                cache.update(k, v, layer)
        predicted = kv_cache_bytes(spec, batch, context, kv_dtype, weights_dtype="bfloat16", prompt=prompt)
        assert predicted == real_cache_bytes(cache), (batch, prompt, context)
