"""The planner against published memory measurements (each source cited)."""

from __future__ import annotations

import pytest

from planner.catalog import catalog_spec
from planner.estimate import Plan, estimate

#: Qwen's own transformers speed/memory benchmark for Qwen2.5-7B-Instruct:
#: https://qwen.readthedocs.io/en/latest/getting_started/speed_benchmark.html
#: (transformers 4.46, A100 80GB, flash-attention 2, bf16, batch 1, 2048 generated tokens).
#: Memory there is torch.cuda.max_memory_allocated() / 1024**3, so it excludes the CUDA context and
#: the allocator's reserved-but-free memory: it is weights + KV cache + activations.
QWEN25_7B_BF16_GIB = {1: 14.38, 6144: 15.38, 14336: 16.91, 30720: 19.97}
GENERATED = 2048
#: The issue's acceptance bar: within 5 % (the planner lands within 0.6 % today).
TOLERANCE = 0.05


@pytest.mark.parametrize("input_tokens,published_gib", sorted(QWEN25_7B_BF16_GIB.items()))
def test_qwen25_7b_transformers_memory_matches_qwen_benchmark(input_tokens, published_gib):
    spec = catalog_spec("qwen2.5-7b")
    plan = Plan(weights="bf16", batch=1, context=input_tokens + GENERATED, prompt_tokens=input_tokens,
                attention="flash_attention_2", engine="transformers")
    b = estimate(spec, plan)
    torch_allocated_gib = (b.weights_bytes + b.kv_cache_bytes + b.activations_bytes) / 2**30
    assert abs(torch_allocated_gib - published_gib) <= TOLERANCE * published_gib, torch_allocated_gib


def test_qwen25_7b_table_is_reproduced_closely_across_the_range():
    """Tighter than the acceptance bar: every point within 0.1 GiB (the DESIGN says about 0.4 GiB)."""
    spec = catalog_spec("qwen2.5-7b")
    for input_tokens, published in QWEN25_7B_BF16_GIB.items():
        b = estimate(spec, Plan(weights="bf16", context=input_tokens + GENERATED, prompt_tokens=input_tokens,
                                attention="flash_attention_2"))
        got = (b.weights_bytes + b.kv_cache_bytes + b.activations_bytes) / 2**30
        assert abs(got - published) < 0.1, (input_tokens, got, published)
