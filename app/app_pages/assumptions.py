"""Assumptions: every constant and formula the planner uses, with where it comes from."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts
from app.app_pages import common

st.title("Assumptions")
st.markdown(
    "Headroom computes parameters and weight bytes **exactly** from the model's config (checked against "
    "transformers on the `meta` device and real bitsandbytes quantization in the test suite). KV cache and "
    "activations follow the formulas below; runtime overhead is a set of **assumptions** you can replace "
    "with measured values in the sidebar (*Overhead assumptions*)."
)

r = common.resolved()
unit = r.unit if r is not None else "GiB"

st.header("Overhead assumptions")
rows = [{
    "engine": engine, "name": a.name,
    "default": a.default_text or (charts.fmt_bytes(a.default_bytes, unit, 3) if a.default_bytes is not None else ""),
    "bytes": a.default_bytes, "what": a.description, "source": a.source,
} for engine in ("transformers", "vllm", "llamacpp") for a in common.overhead_assumptions(engine)]
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="as_overhead")
else:
    st.info("The overhead model does not publish its assumptions in this build.")

if r is not None and r.ok:
    st.header(f"This plan, component by component ({r.model_label})")
    df = charts.breakdown_frame(r.breakdown)
    st.dataframe(df[["component", "bytes", "formula", "source"]], hide_index=True, key="as_components")
    st.markdown("\n".join(f"- {a}" for a in r.breakdown.assumptions))
    try:
        from planner.kv_cache import describe_kv

        lines = describe_kv(r.spec, r.plan)
        if lines:
            st.subheader("KV cache of this plan")
            st.markdown("\n".join(f"- {line}" for line in lines))
    except Exception:  # describe_kv is informative only; its absence must not break the page
        pass

st.header("Formulas")
st.markdown(r"""
Notation: *h* hidden size, *L* layers, *V* vocabulary, *H* attention heads, *KV* key/value heads,
*d* head dim (`head_dim`, else *h/H*), *I* intermediate size, *B* batch, *S* tokens held per sequence.

| Part | Formula | Source |
|---|---|---|
| Parameters | exact tensor inventory per architecture (tied embeddings once) | transformers model on the `meta` device |
| 16/32-bit weights | numel × 2 / 4 bytes | dtype sizes |
| FP8 (e4m3) | 1 byte per weight + fp32 scale per tensor, or per 128×128 block | DeepSeek-V3 `weight_block_size` |
| bitsandbytes LLM.int8 | int8 weight + one fp32 scale per output row; embeddings, norms, lm_head unquantized | bitsandbytes `Int8Params` (SCB) |
| bitsandbytes 4-bit | (n+1)//2 bytes + absmax ceil(n/64) fp32 (double quant: uint8 + fp32 per 256) | bitsandbytes `Params4bit` quant state |
| GPTQ / AWQ | packed qweight + qzeros + fp16 scales per group (+ int32 g_idx for GPTQ) | AutoGPTQ / AutoAWQ layouts |
| GGUF | bytes per block of 32/256 weights per type; per-tensor type mix of the file type | llama.cpp `ggml` type traits, `llama_model_quantize` |
| KV cache | Σ over attention layers 2 · B · tokens kept · KV · d · bytes(KV dtype); MLA caches kv_lora_rank + rope dim | transformers `DynamicCache`, vLLM paged KV (16-token blocks) |
| Sliding window | a sliding layer keeps at most `sliding_window − 1` tokens | transformers `DynamicSlidingWindowLayer` |
| Activations | MLP ≈ 3 · B · S · I values; residual a few B · S · h; logits B · V (generate) in fp32; eager attention B · H · S² scores | Qwen2.5 transformers benchmark tables |
| Overhead | CUDA context, cuBLAS workspaces, allocator slack, NCCL under tensor parallelism, vLLM non-torch memory | assumptions (above), replaceable by measurement |
| Units | GiB = 2³⁰ bytes (nvidia-smi, PyTorch); GB = 10⁹ bytes (vendor marketing) | — |
""")

st.header("Constants")
st.caption("Every numeric constant in the planner, with the note that documents it in the source.")
constants = common.planner_constants()
if constants:
    st.dataframe(pd.DataFrame(constants), hide_index=True, key="as_constants")

st.header("Weight formats")
st.dataframe(pd.DataFrame([{"format": n, "label": label} for n, label in common.weight_formats().items()]),
             hide_index=True, key="as_formats")

gcat = common.gpu_catalog()
if gcat:
    st.header("GPU memory")
    st.caption("What a program sees on one device (nvidia-smi memory.total), not the marketed figure.")
    st.dataframe(pd.DataFrame([{
        "gpu": g.name, "title": g.title, "marketed": g.marketed_memory, "usable bytes": g.memory_bytes,
        f"usable {unit}": g.memory_bytes / charts.UNIT_BYTES[unit], "basis": g.memory_basis,
        "source": g.memory_source,
    } for g in gcat.values()]), hide_index=True, key="as_gpus")
