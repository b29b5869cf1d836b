"""The top-level planner call: ModelSpec + Plan -> MemoryBreakdown."""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.breakdown import MemoryBreakdown
from planner.errors import InputError
from planner.formats import format_notes, resolve_format, weight_components
from planner.params import parameter_count
from planner.spec import ModelSpec
from planner.stored import StoredWeights

ENGINES = ("transformers", "vllm", "llamacpp")
ATTENTIONS = ("sdpa", "eager", "flash_attention_2")
CACHES = ("dynamic", "static")
MODES = ("generate", "forward")
DEVICES = ("gpu", "cpu")

#: Bounds on workload numbers: far beyond any real deployment, small enough to keep arithmetic sane.
MAX_BATCH = 1 << 20
MAX_CONTEXT = 1 << 24
MAX_TP = 64
MAX_OVERRIDE_BYTES = 1 << 50


def _check_int(name: str, v, lo: int, hi: int, optional: bool = False) -> None:
    if optional and v is None:
        return
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise InputError(f"{name} must be an integer from {lo:,} to {hi:,}, got {v!r}")


def _check_choice(name: str, v, choices: tuple[str, ...]) -> None:
    if v not in choices:
        raise InputError(f"unknown {name} {v!r}; expected one of: {', '.join(choices)}")


@dataclass(frozen=True)
class Plan:
    """Everything the user chose besides the model. Frozen and hashable (cacheable, comparable).

    ``context``: tokens held per sequence (prompt + generated). ``prompt_tokens``: tokens prefilled in
    one forward pass (``None``: the whole context), which sets the activation peak.
    ``overrides``: (assumption name, bytes) pairs replacing overhead defaults, e.g.
    ``(("overhead/cuda_context", 300 * 2**20),)``.
    """

    weights: str = "auto"  # weight format name, "auto" = the checkpoint's own
    kv_dtype: str = "auto"  # "auto" = the compute dtype of the weights
    batch: int = 1
    context: int = 8192
    engine: str = "transformers"
    attention: str = "sdpa"
    tp: int = 1
    device: str = "gpu"  # "cpu" drops the GPU-only overhead terms
    # transformers
    cache: str = "dynamic"  # DynamicCache (default) or StaticCache
    max_cache_len: int | None = None  # StaticCache length (None: context)
    mode: str = "generate"  # generate() keeps last-position logits only; forward computes all
    prompt_tokens: int | None = None
    # vLLM
    gpu_memory_bytes: int | None = None  # memory of ONE GPU; needed by vLLM's "reserve what is left"
    gpu_memory_utilization: float = 0.9
    max_num_batched_tokens: int | None = None
    max_num_seqs: int = 256
    # llama.cpp
    n_gpu_layers: int | None = None  # -ngl; None = all layers on the GPU
    overrides: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        _check_int("batch", self.batch, 1, MAX_BATCH)
        _check_int("context", self.context, 1, MAX_CONTEXT)
        _check_int("tp", self.tp, 1, MAX_TP)
        _check_int("max_cache_len", self.max_cache_len, 1, MAX_CONTEXT, optional=True)
        _check_int("prompt_tokens", self.prompt_tokens, 1, MAX_CONTEXT, optional=True)
        _check_int("gpu_memory_bytes", self.gpu_memory_bytes, 1, MAX_OVERRIDE_BYTES, optional=True)
        _check_int("max_num_batched_tokens", self.max_num_batched_tokens, 1, MAX_CONTEXT, optional=True)
        _check_int("max_num_seqs", self.max_num_seqs, 1, MAX_BATCH)
        _check_int("n_gpu_layers", self.n_gpu_layers, 0, 100_000, optional=True)
        _check_choice("engine", self.engine, ENGINES)
        _check_choice("attention", self.attention, ATTENTIONS)
        _check_choice("cache", self.cache, CACHES)
        _check_choice("mode", self.mode, MODES)
        _check_choice("device", self.device, DEVICES)
        u = self.gpu_memory_utilization
        if isinstance(u, bool) or not isinstance(u, (int, float)) or not math.isfinite(u) or not 0 < u <= 1:
            raise InputError(f"gpu_memory_utilization must be a fraction in (0, 1], got {u!r}")
        if self.max_cache_len is not None:
            if self.cache != "static":
                raise InputError("max_cache_len applies to the static cache only (cache='static')")
            if self.max_cache_len < self.context:
                raise InputError(
                    f"max_cache_len ({self.max_cache_len:,}) must be at least context ({self.context:,}): "
                    "a StaticCache cannot hold more tokens than it preallocates"
                )
        if self.prompt_tokens is not None and self.prompt_tokens > self.context:
            raise InputError(
                f"prompt_tokens ({self.prompt_tokens:,}) cannot exceed context ({self.context:,})"
            )
        if not isinstance(self.overrides, tuple):
            raise InputError("overrides must be a tuple of (name, bytes) pairs")
        for item in self.overrides:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise InputError(f"override {item!r} must be a (name, bytes) pair")
            _check_int(f"override {item[0]}", item[1], 0, MAX_OVERRIDE_BYTES)

    @property
    def prefill_tokens(self) -> int:
        return self.prompt_tokens or self.context


def _transformers_breakdown(spec: ModelSpec, plan: Plan, stored: StoredWeights | None) -> MemoryBreakdown:
    from planner.activations import activation_breakdown, effective_attention
    from planner.kv_cache import describe_kv, kv_components
    from planner.overhead import check_overrides, overhead_components
    from planner.parallel import tp_notes, weights_per_gpu

    check_overrides(plan)
    fmt = resolve_format(spec, plan.weights)
    if fmt.kind == "gguf":
        raise InputError(f"{fmt.name} is a llama.cpp format; use --engine llamacpp, or a transformers format "
                         "such as bf16, fp8 or bnb-nf4")
    weights_dtype = fmt.compute_dtype
    if plan.tp > 1:
        wcomps = weights_per_gpu(spec, fmt, plan.tp)
    else:
        wcomps = weight_components(spec, fmt)
    assumptions: list[str] = [f"weights stored as {fmt.label}", *format_notes(spec, fmt)]
    if stored is not None and plan.weights == "auto" and plan.tp == 1:
        wcomps, assumptions = stored.components(), [stored.describe()]
    kcomps = kv_components(spec, plan, weights_dtype)
    acomps, phase = activation_breakdown(spec, plan, weights_dtype)
    allocated = sum(c.bytes for c in (*wcomps, *kcomps, *acomps))
    ocomps, olines = overhead_components(plan, allocated)

    assumptions += describe_kv(spec, plan, weights_dtype)
    attn = effective_attention(spec, plan.attention)
    if attn != plan.attention:
        assumptions.append(f"{spec.family} has no SDPA path in transformers: it runs {attn} attention")
    prefill = plan.prefill_tokens
    assumptions.append(
        f"activations: the largest transient of {plan.mode}() ({phase} phase; prefill of {prefill:,} tokens "
        f"per sequence, {attn} attention); peak = weights + KV cache at {plan.context:,} tokens + that transient"
    )
    assumptions += tp_notes(spec, plan.tp)
    assumptions += olines
    if spec.approximate:
        assumptions.append("model planned as a llama-like approximation: numbers are approximate")
    assumptions.extend(spec.notes)
    return MemoryBreakdown(parameters=parameter_count(spec), components=(*wcomps, *kcomps, *acomps, *ocomps),
                           assumptions=tuple(assumptions), tp=plan.tp)


def estimate(spec: ModelSpec, plan: Plan = Plan(), stored: StoredWeights | None = None) -> MemoryBreakdown:
    """Memory of running ``spec`` under ``plan``, per GPU when ``plan.tp > 1``.

    transformers: weights (planner.formats) + KV cache (planner.kv_cache, DynamicCache semantics) +
    the largest activation transient (planner.activations) + runtime overhead (planner.overhead).
    vllm / llamacpp: planner.engines.

    ``stored``: the checkpoint's safetensors headers (planner.stored); with ``plan.weights == "auto"`` and
    no tensor parallelism, their exact stored bytes replace the computed weight bytes.
    """
    from dataclasses import replace

    if plan.engine == "transformers":
        b = _transformers_breakdown(spec, plan, stored)
    else:
        from planner import engines  # imported here: engines builds on this module's Plan

        b = (engines.vllm_breakdown if plan.engine == "vllm" else engines.llamacpp_breakdown)(spec, plan)
        if plan.tp > 1 and b.tp != plan.tp:
            b = replace(b, tp=plan.tp)
    if spec.approximate:  # a llama-like stand-in for an unsupported architecture: nothing is exact
        b = replace(b, components=tuple(
            replace(c, source="approximate") if c.source == "exact" else c for c in b.components))
    return b
