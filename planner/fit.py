"""Fit queries: does a plan fit a device, and what is the largest batch and context that do?

Every answer is an exact integer at the boundary of the planner's own arithmetic: ``max_batch`` fits and
``max_batch + 1`` does not (same for ``max_context``), found by binary search over the same functions that
produce the breakdown, never by inverting a formula with floats. 0 means not even 1 fits.

What "fits" means per engine (``device_bytes`` is the memory of ONE device, e.g.
:attr:`planner.gpus.GPU.memory_bytes`; ``gpus`` devices are used):

* transformers: the per-GPU peak of :func:`planner.estimate.estimate` with ``tp = gpus`` is at most
  ``device_bytes``. ``free_bytes`` = device_bytes - that peak.
* vllm: ``tp = gpus``; vLLM starts (weights, activation peak and overheads fit in
  ``gpu_memory_utilization x device_bytes`` and one ``max_model_len`` request fits in the KV pool) and the
  pool holds ``batch`` concurrent requests of ``context`` tokens. ``free_bytes`` = KV pool bytes those
  requests leave unused (negative: the shortfall). ``kv_cache_tokens`` and ``max_concurrency`` are what
  vLLM logs at startup.
* llamacpp: the GPU side (:func:`planner.engines.llamacpp_breakdown`) is at most ``gpus x device_bytes``
  (llama.cpp splits layers across GPUs, ``--split-mode layer``; an approximation for gpus > 1). Host RAM
  is not checked here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from planner.engines import llamacpp_breakdown, llamacpp_host_bytes, vllm_capacity
from planner.errors import InputError
from planner.estimate import MAX_BATCH, MAX_CONTEXT, MAX_TP, Plan, estimate
from planner.spec import ModelSpec


@dataclass(frozen=True)
class FitResult:
    """Answer of :func:`fit`. Byte counts are per device."""

    fits: bool
    free_bytes: int  # negative when it does not fit
    max_batch: int  # largest batch at plan.context (0: none)
    max_context: int  # largest context at plan.batch (0: none)
    kv_cache_tokens: int | None  # vLLM only
    max_concurrency: float | None  # vLLM only
    reason: str
    engine: str = "transformers"
    device_bytes: int = 0
    gpus: int = 1
    used_bytes: int = 0  # per device: the plan's peak (vLLM: non-KV + KV of the batch)
    context_limit: int = MAX_CONTEXT  # max_context was searched up to this (model's max positions)
    host_bytes: int | None = None  # llama.cpp: host RAM of the plan (token_embd, CPU layers, buffers)

    def to_json(self) -> dict:
        out = {
            "fits": self.fits,
            "free_bytes": self.free_bytes,
            "max_batch": self.max_batch,
            "max_context": self.max_context,
            "engine": self.engine,
            "device_bytes": self.device_bytes,
            "gpus": self.gpus,
            "used_bytes": self.used_bytes,
            "context_limit": self.context_limit,
            "reason": self.reason,
        }
        if self.host_bytes is not None:
            out["host_bytes"] = self.host_bytes
        if self.kv_cache_tokens is not None:
            out["kv_cache_tokens"] = self.kv_cache_tokens
            out["max_concurrency"] = round(self.max_concurrency, 2)
        return out


def largest(pred, lo: int, hi: int) -> int:
    """Largest x in [lo, hi] with pred(x) true, assuming pred is true up to some point then false.

    Returns lo - 1 when pred(lo) is false. Exponential probing from lo keeps the number of calls near
    2 log2(answer), so small answers are cheap.
    """
    if hi < lo or not pred(lo):
        return lo - 1
    good, step = lo, 1
    while True:  # find a failing upper bound
        probe = min(good + step, hi)
        if probe == good:
            return good
        if pred(probe):
            good = probe
            if probe == hi:
                return hi
            step *= 2
        else:
            bad = probe
            break
    while bad - good > 1:
        mid = (good + bad) // 2
        if pred(mid):
            good = mid
        else:
            bad = mid
    return good


def _with(plan: Plan, batch: int, context: int) -> Plan:
    prompt = plan.prompt_tokens
    if prompt is not None and prompt > context:
        prompt = context
    max_cache = plan.max_cache_len
    if max_cache is not None and max_cache < context:
        max_cache = context
    return replace(plan, batch=batch, context=context, prompt_tokens=prompt, max_cache_len=max_cache)


def fit(spec: ModelSpec, plan: Plan, device_bytes: int, gpus: int = 1, *, stored=None) -> FitResult:
    """Does ``plan`` fit ``gpus`` devices of ``device_bytes`` each; largest batch and context that do.

    ``stored``: safetensors headers of the checkpoint (see :mod:`planner.stored`), passed to
    :func:`planner.estimate.estimate` for the transformers engine.
    """
    if not isinstance(device_bytes, int) or isinstance(device_bytes, bool) or device_bytes <= 0:
        raise InputError(f"device memory must be a positive number of bytes, got {device_bytes!r}")
    if not isinstance(gpus, int) or isinstance(gpus, bool) or not 1 <= gpus <= MAX_TP:
        raise InputError(f"gpus must be an integer from 1 to {MAX_TP}, got {gpus!r}")
    limit = min(spec.max_position_embeddings or MAX_CONTEXT, MAX_CONTEXT)
    if plan.engine == "vllm":
        return _fit_vllm(spec, replace(plan, tp=gpus, gpu_memory_bytes=device_bytes), device_bytes, gpus, limit)
    if plan.engine == "llamacpp":
        base = plan
        capacity = device_bytes * gpus

        def used(p: Plan) -> int:
            return llamacpp_breakdown(spec, p).total_bytes
    else:
        base = replace(plan, tp=gpus)
        capacity = device_bytes

        def used(p: Plan) -> int:
            return estimate(spec, p, stored=stored).total_bytes

    def ok(b: int, c: int) -> bool:
        return used(_with(base, b, c)) <= capacity

    peak = used(base)
    fits = peak <= capacity
    max_batch = max(largest(lambda b: ok(b, base.context), 1, MAX_BATCH), 0)
    max_context = max(largest(lambda c: ok(base.batch, c), 1, limit), 0)
    where = f"{gpus} x {device_bytes / 2**30:.2f} GiB" if gpus > 1 else f"{device_bytes / 2**30:.2f} GiB"
    per = " per GPU" if gpus > 1 and plan.engine != "llamacpp" else ""
    if fits:
        reason = f"needs {peak / 2**30:.2f} GiB{per} of {where}; {(capacity - peak) / 2**30:.2f} GiB free"
    else:
        has = (f"each of the {gpus} GPUs has" if per else
               f"the {gpus} GPUs have" if gpus > 1 else "the device has")
        reason = (f"needs {peak / 2**30:.2f} GiB{per} but {has} {capacity / 2**30:.2f} GiB: "
                  f"{(peak - capacity) / 2**30:.2f} GiB short")
    if max_context == limit and limit < MAX_CONTEXT:
        reason += f"; max_context capped at the model's max_position_embeddings ({limit:,})"
    if plan.engine == "llamacpp" and gpus > 1:
        reason += "; llama.cpp splits layers over the GPUs: their combined memory is compared (approximate)"
    host = llamacpp_host_bytes(spec, base) if plan.engine == "llamacpp" else None
    return FitResult(fits=fits, free_bytes=capacity - peak, max_batch=max_batch, max_context=max_context,
                     kv_cache_tokens=None, max_concurrency=None, reason=reason, engine=plan.engine,
                     device_bytes=device_bytes, gpus=gpus, used_bytes=peak, context_limit=limit, host_bytes=host)


def _fit_vllm(spec: ModelSpec, plan: Plan, device_bytes: int, gpus: int, limit: int) -> FitResult:
    cap = vllm_capacity(spec, plan)

    def requests_fit(context: int) -> int:
        c = vllm_capacity(spec, _with(plan, plan.batch, context))
        return c.max_requests if c.fits else 0

    row = cap.page_bytes * cap.layers_per_group
    need = plan.batch * cap.blocks_per_request * row  # KV bytes of `batch` requests of `context` tokens
    fits = cap.fits and cap.max_requests >= plan.batch
    max_batch = cap.max_requests if cap.fits else 0
    max_context = max(largest(lambda c: requests_fit(c) >= plan.batch, 1, limit), 0)
    non_kv = cap.budget_bytes - cap.available_kv_bytes
    if cap.available_kv_bytes <= 0:
        free = cap.available_kv_bytes
    else:
        free = cap.kv_pool_bytes - need
    if not cap.fits:
        reason = cap.reason
    elif not fits:
        reason = (f"the KV pool holds {cap.max_requests} request(s) of {plan.context:,} tokens, "
                  f"fewer than batch {plan.batch}")
    else:
        reason = cap.reason
    if max_batch > plan.max_num_seqs:
        reason += f"; vLLM runs at most max_num_seqs={plan.max_num_seqs} sequences at once"
    if max_context == limit and limit < MAX_CONTEXT:
        reason += f"; max_context capped at the model's max_position_embeddings ({limit:,})"
    return FitResult(fits=fits, free_bytes=free, max_batch=max_batch, max_context=max_context,
                     kv_cache_tokens=cap.kv_cache_tokens, max_concurrency=cap.max_concurrency, reason=reason,
                     engine="vllm", device_bytes=device_bytes, gpus=gpus,
                     used_bytes=non_kv + min(need, cap.kv_pool_bytes) if cap.fits else non_kv,
                     context_limit=limit)


def fits_at(spec: ModelSpec, plan: Plan, device_bytes: int, gpus: int = 1) -> bool:
    """Whether exactly this plan fits (the predicate :func:`fit` searches with)."""
    return fit_predicate(spec, plan, device_bytes, gpus)(plan.batch, plan.context)


def fit_predicate(spec: ModelSpec, plan: Plan, device_bytes: int, gpus: int = 1):
    """``ok(batch, context) -> bool`` in the same arithmetic :func:`fit` uses (for tests and sweeps)."""
    if plan.engine == "vllm":
        p = replace(plan, tp=gpus, gpu_memory_bytes=device_bytes)

        def ok(b: int, c: int) -> bool:
            cap = vllm_capacity(spec, _with(p, b, c))
            return cap.fits and cap.max_requests >= b
        return ok
    if plan.engine == "llamacpp":
        return lambda b, c: llamacpp_breakdown(spec, _with(plan, b, c)).total_bytes <= device_bytes * gpus
    p = replace(plan, tp=gpus)
    return lambda b, c: estimate(spec, _with(p, b, c)).total_bytes <= device_bytes
