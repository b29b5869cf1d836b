"""Recommend configurations that fit: weight format x KV dtype x GPU model x GPU count.

:func:`recommend` enumerates every combination a :class:`Workload` allows, asks the planner's own
arithmetic whether each one fits (:func:`evaluate`: vLLM's and llama.cpp's memory plans from
:mod:`planner.engines`, :func:`planner.estimate.estimate` for transformers), and returns the feasible ones ranked by an objective together with the
rejected ones, each carrying a one-line reason ("needs 2 GPUs; KV cache 18 % over on 1").

Objectives (ties broken by the next key):

- ``gpus``: fewest GPUs, then lowest cost per hour (when priced), then most free memory.
- ``cost``: lowest cost per hour (GPU price x count); GPUs without a price are rejected.
- ``free``: most free memory summed over the GPUs, then fewest GPUs.
- ``concurrency``: most concurrent requests at the workload's context, then fewest GPUs, then cost.

Tensor-parallel counts follow vLLM's rule (``ModelConfig.verify_with_parallel_config`` and
``QKVParallelLinear``): the attention heads must divide evenly over the GPUs, and the KV heads must
either divide evenly or be replicated a whole number of times. The transformers engine is planned per GPU
with ``tp = count`` (as :func:`planner.fit.fit` does), so its counts must divide the attention heads
(:func:`planner.parallel.check_tp`); llama.cpp's layer split accepts any count.

Every verdict is :func:`planner.fit.fit`'s: an option fits exactly when ``fit`` says so for that GPU and
count, and ``max_concurrency`` is ``fit``'s ``max_batch`` (vLLM: whole requests of ``context`` tokens its
KV pool holds). Choices that can never work (an unknown weight format, a KV dtype the engine lacks, a
context beyond the model's ``max_position_embeddings``) raise one :class:`InputError` up front
(:func:`check_choices`).

Everything here is pure Python and frozen, so results can be cached and compared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from planner.breakdown import MemoryBreakdown
from planner.errors import HeadroomError, InputError
from planner.estimate import ENGINES, Plan, estimate
from planner.spec import ModelSpec

OBJECTIVES = ("gpus", "cost", "free", "concurrency")
OBJECTIVE_LABELS = {
    "gpus": "fewest GPUs",
    "cost": "lowest cost per hour",
    "free": "most free memory",
    "concurrency": "most concurrent requests",
}
#: engines that shard attention heads across GPUs (tensor parallelism) and so constrain the count
TP_ENGINES = ("vllm", "transformers")
#: engines that need CUDA or ROCm (no Apple-silicon GPU support)
CUDA_ENGINES = ("vllm",)
MAX_GPUS = 8
GIB = 1 << 30


@dataclass(frozen=True)
class GPUOption:
    """A GPU model to consider. ``memory_bytes``: what a program sees on ONE device.

    ``price_per_hour``: USD per GPU-hour (``None``: not priced).
    """

    name: str
    title: str
    memory_bytes: int
    price_per_hour: float | None = None
    vendor: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.memory_bytes, int) or isinstance(self.memory_bytes, bool) or self.memory_bytes <= 0:
            raise InputError(f"GPU {self.name!r}: memory must be a positive number of bytes")
        p = self.price_per_hour
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p < 0):
            raise InputError(f"price for GPU {self.name!r} must be a non-negative number of USD per hour, got {p!r}")


@dataclass(frozen=True)
class Workload:
    """What must run. ``context``: tokens per request (prompt + generated). ``concurrency``: requests
    served at once (the batch, for engines without a scheduler). ``weights`` / ``kv_dtypes``: the
    formats allowed. ``max_gpus``: largest GPU count tried (1..max_gpus)."""

    context: int = 8192
    concurrency: int = 1
    weights: tuple[str, ...] = ("bf16",)
    kv_dtypes: tuple[str, ...] = ("auto",)
    engine: str = "vllm"
    max_gpus: int = MAX_GPUS
    gpu_memory_utilization: float = 0.9
    attention: str = "sdpa"
    overrides: tuple[tuple[str, int], ...] = ()  # Plan.overrides (assumptions replaced by the user)

    def __post_init__(self) -> None:
        for name in ("context", "concurrency", "max_gpus"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError(f"{name} must be a whole number of at least 1, got {v!r}")
        if self.max_gpus > 64:
            raise InputError(f"max_gpus must be at most 64, got {self.max_gpus}")
        if self.engine not in ENGINES:
            raise InputError(f"unknown engine {self.engine!r}; expected one of: {', '.join(ENGINES)}")
        for name in ("weights", "kv_dtypes"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or not v or not all(isinstance(x, str) and x for x in v):
                raise InputError(f"{name} must be a non-empty tuple of names, got {v!r}")
        # Plan validates the remaining fields (utilization range, attention) with the same messages.
        self.plan("auto", "auto", 1)

    def plan(self, weights: str, kv_dtype: str, count: int, gpu_memory_bytes: int | None = None) -> Plan:
        """The planner input for one configuration of this workload."""
        return Plan(
            weights=weights, kv_dtype=kv_dtype, batch=self.concurrency, context=self.context,
            engine=self.engine, attention=self.attention, tp=count, gpu_memory_bytes=gpu_memory_bytes,
            gpu_memory_utilization=self.gpu_memory_utilization, max_num_seqs=self.concurrency,
            overrides=self.overrides,
        )


@dataclass(frozen=True)
class Option:
    """One enumerated configuration and the verdict on it. Byte figures are per GPU.

    ``needed_bytes``: what the plan needs on each GPU; ``budget_bytes``: what it may use there (vLLM:
    ``gpu_memory_utilization`` x memory); ``free_bytes``: budget minus need (negative: over), the same
    number :func:`planner.fit.fit` reports. For vLLM the need counts the KV cache of ``concurrency``
    requests at full context, not the pool vLLM reserves, and free is what they leave unused in the pool.
    ``max_concurrency``: requests at the full context that fit, :func:`planner.fit.fit`'s ``max_batch``
    (0 when not even one fits; ``None`` only for options rejected before any arithmetic).
    """

    weights: str
    kv_dtype: str
    gpu: GPUOption
    count: int
    plan: Plan
    feasible: bool
    reason: str = ""
    breakdown: MemoryBreakdown | None = None
    needed_bytes: int = 0
    budget_bytes: int = 0
    free_bytes: int = 0
    kv_bytes: int = 0
    max_concurrency: int | None = None
    kv_cache_tokens: int | None = None
    evaluated: bool = False  # False: rejected before any memory arithmetic (count, format or dtype invalid)

    @property
    def total_free_bytes(self) -> int:
        return self.free_bytes * self.count

    @property
    def cost_per_hour(self) -> float | None:
        p = self.gpu.price_per_hour
        return None if p is None else p * self.count

    @property
    def label(self) -> str:
        return f"{self.count} x {self.gpu.name}  {self.weights} / KV {self.kv_dtype}"

    def to_json(self) -> dict:
        return {
            "gpu": self.gpu.name, "gpu_title": self.gpu.title, "gpu_memory_bytes": self.gpu.memory_bytes,
            "count": self.count, "weights": self.weights, "kv_dtype": self.kv_dtype,
            "feasible": self.feasible, "reason": self.reason,
            "needed_bytes_per_gpu": self.needed_bytes, "budget_bytes_per_gpu": self.budget_bytes,
            "free_bytes_per_gpu": self.free_bytes, "total_free_bytes": self.total_free_bytes,
            "kv_cache_bytes_per_gpu": self.kv_bytes,
            "max_concurrency": self.max_concurrency, "kv_cache_tokens": self.kv_cache_tokens,
            "price_per_gpu_hour": self.gpu.price_per_hour, "cost_per_hour": self.cost_per_hour,
            "breakdown": self.breakdown.to_json() if self.breakdown is not None else None,
        }


@dataclass(frozen=True)
class Recommendation:
    """Feasible options ranked best first by ``objective``, and rejected ones with reasons."""

    workload: Workload
    objective: str
    feasible: tuple[Option, ...]
    rejected: tuple[Option, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def best(self) -> Option | None:
        return self.feasible[0] if self.feasible else None

    def rejected_summary(self) -> tuple[Option, ...]:
        """One rejected option per (weights, KV dtype, GPU) that explains what that GPU lacks.

        Where some count of the GPU fits, the option at the largest valid count below it ("needs 4 GPUs");
        where none fits, the option at the largest count tried. Options rejected only because the count
        does not divide the heads are left out unless nothing else is known about that GPU.
        """
        groups: dict[tuple[str, str, str], list[Option]] = {}
        for o in self.rejected:
            groups.setdefault((o.weights, o.kv_dtype, o.gpu.name), []).append(o)
        ok = {(o.weights, o.kv_dtype, o.gpu.name) for o in self.feasible}
        out: list[Option] = []
        for key, opts in groups.items():
            informative = [o for o in opts if o.evaluated] or opts
            best = max(informative, key=lambda o: o.count)
            if key in ok and best.count > min(o.count for o in self.feasible if (o.weights, o.kv_dtype, o.gpu.name) == key):
                continue
            out.append(best)
        return tuple(out)

    def to_json(self) -> dict:
        return {
            "objective": self.objective,
            "objective_label": OBJECTIVE_LABELS[self.objective],
            "workload": {
                "context": self.workload.context, "concurrency": self.workload.concurrency,
                "engine": self.workload.engine, "weights": list(self.workload.weights),
                "kv_dtypes": list(self.workload.kv_dtypes), "max_gpus": self.workload.max_gpus,
                "gpu_memory_utilization": self.workload.gpu_memory_utilization,
            },
            "feasible": [o.to_json() for o in self.feasible],
            "rejected": [o.to_json() for o in self.rejected_summary()],
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------------
# GPU options


def catalog_gpu_options(prices: Mapping[str, float] | None = None, names: Iterable[str] | None = None
                        ) -> tuple[GPUOption, ...]:
    """GPU options from the hardware catalog (``planner.gpus``), with prices by GPU name.

    ``prices`` keys may be any name :func:`planner.gpus.find_gpu` accepts ("h200", "h100-sxm-80gb"); a
    fragment that names several GPUs ("h100") prices all of them.
    ``names``: restrict to these GPUs (default: the whole catalog).
    """
    from planner.gpus import find_gpu, gpus

    price_by_name: dict[str, float] = {}
    for key, usd in (prices or {}).items():
        try:
            price_by_name[find_gpu(key).name] = usd
        except InputError:
            # a fragment naming several GPUs ("h100") prices each of them
            frag = key.strip().lower().replace(" ", "-").replace("_", "-")
            hits = [g.name for g in gpus() if frag and frag in g.name]
            if not hits:
                raise
            for name in hits:
                price_by_name.setdefault(name, usd)
    chosen = [find_gpu(n) for n in names] if names else list(gpus())
    seen: set[str] = set()
    out = []
    for g in chosen:
        if g.name in seen:
            continue
        seen.add(g.name)
        out.append(GPUOption(g.name, g.title, g.memory_bytes, price_by_name.get(g.name), g.vendor))
    return tuple(out)


def parse_prices(items: Sequence[str]) -> dict[str, float]:
    """``["h100=2.5", "l40s=1.1"]`` -> {"h100": 2.5, "l40s": 1.1}, with a clear error for bad items."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        if not sep or not name.strip():
            raise InputError(f"price {item!r} must look like NAME=USD_PER_HOUR, e.g. h100=2.49")
        try:
            usd = float(value)
        except ValueError:
            raise InputError(f"price {item!r}: {value!r} is not a number of USD per hour") from None
        if not math.isfinite(usd) or usd < 0:
            raise InputError(f"price {item!r} must be a non-negative number of USD per hour")
        out[name.strip()] = usd
    return out


# ---------------------------------------------------------------------------------------------------
# Tensor-parallel validity


def tp_problem(spec: ModelSpec, count: int, engine: str = "vllm") -> str:
    """Why ``count`` GPUs cannot shard this model's attention ('' when they can).

    vLLM: its rule (attention heads divide; KV heads divide or are replicated). transformers: the
    attention heads divide (:func:`planner.parallel.check_tp`). llama.cpp: any count (layer split).
    """
    if count == 1 or engine not in TP_ENGINES:
        return ""
    if spec.num_heads % count:
        return f"{count} GPUs do not divide the {spec.num_heads} attention heads (tensor parallelism)"
    if engine != "vllm":
        return ""
    kv = spec.num_kv_heads
    if spec.mla is None and (kv % count if count <= kv else count % kv):
        return f"{count} GPUs do not divide the {kv} KV heads (tensor parallelism)"
    return ""


def valid_counts(spec: ModelSpec, engine: str, max_gpus: int = MAX_GPUS) -> tuple[int, ...]:
    """GPU counts 1..max_gpus this engine can use for this model."""
    return tuple(n for n in range(1, max_gpus + 1) if not tp_problem(spec, n, engine))


# ---------------------------------------------------------------------------------------------------
# Evaluating one configuration


@dataclass(frozen=True)
class _Verdict:
    fits: bool
    breakdown: MemoryBreakdown | None
    needed: int
    budget: int
    free: int
    kv: int
    max_concurrency: int | None
    kv_cache_tokens: int | None
    reason: str


def _gib(n: int) -> str:
    return f"{n / GIB:,.1f} GiB"


@lru_cache(maxsize=4096)
def option_breakdown(spec: ModelSpec, plan: Plan) -> MemoryBreakdown:
    """The per-GPU breakdown shown for an option (vLLM: its memory plan; llama.cpp: the GPU side)."""
    if plan.engine == "vllm":
        from planner.engines import vllm_breakdown

        return vllm_breakdown(spec, plan)
    if plan.engine == "llamacpp":
        return _llamacpp_gpu(spec, replace(plan, tp=1, gpu_memory_bytes=None))
    return estimate(spec, plan)


@lru_cache(maxsize=512)
def _llamacpp_gpu(spec: ModelSpec, plan: Plan) -> MemoryBreakdown:
    """GPU side of llama.cpp's memory; it depends on neither the GPU model nor the count (cached)."""
    from planner.engines import llamacpp_memory

    return llamacpp_memory(spec, plan).gpu


@lru_cache(maxsize=8192)
def evaluate(spec: ModelSpec, workload: Workload, weights: str, kv_dtype: str, gpu: GPUOption, count: int
             ) -> _Verdict:
    """Whether one configuration fits, by the planner's own arithmetic (per GPU).

    - vLLM: :func:`planner.engines.vllm_capacity` (budget = ``gpu_memory_utilization`` x memory; weights
      shard, profiling peak and non-torch memory first, the rest becomes KV blocks). Fits when vLLM
      starts and its pool holds ``concurrency`` requests of ``context`` tokens.
    - llama.cpp: :func:`planner.engines.llamacpp_memory` for ``-c concurrency*context -np concurrency``;
      with several GPUs the GPU side is split evenly by layers (``--split-mode layer``), an approximation.
    - transformers: :func:`planner.estimate.estimate` with ``tp = count`` (per GPU), against the memory.

    ``max_concurrency`` is :func:`planner.fit.fit`'s ``max_batch`` at ``context`` (the same search over the
    same predicate); ``kv_cache_tokens`` is vLLM's pool size (``None`` for the other engines, as in fit).
    """
    plan = workload.plan(weights, kv_dtype, count, gpu.memory_bytes)
    conc, ctx = workload.concurrency, workload.context
    if plan.engine == "vllm":
        from planner.engines import vllm_capacity

        cap = vllm_capacity(spec, plan)
        b = None  # built only for options that are shown (see option_breakdown): it re-runs the capacity plan
        rest = cap.budget_bytes - cap.available_kv_bytes  # everything vLLM takes before the KV pool
        per_request = cap.blocks_per_request * cap.page_bytes * cap.layers_per_group
        kv = conc * per_request
        budget = cap.budget_bytes
        max_conc = cap.max_requests if cap.fits else 0
        tokens = cap.kv_cache_tokens
        fits = cap.fits and cap.max_requests >= conc  # as planner.fit: vLLM starts and the pool holds them
        left = cap.available_kv_bytes
        # free = what the requests leave unused in the pool vLLM allocates (planner.fit's free_bytes)
        free = cap.kv_pool_bytes - kv if cap.available_kv_bytes > 0 else cap.available_kv_bytes
    else:
        if plan.engine == "llamacpp":
            b = _llamacpp_gpu(spec, replace(plan, tp=1, gpu_memory_bytes=None))
            shares = count
        else:
            b = estimate(spec, plan)
            shares = 1
        from planner.estimate import MAX_BATCH
        from planner.fit import fit_predicate, largest

        budget = gpu.memory_bytes
        kv = -(-b.kv_cache_bytes // shares)
        rest = -(-b.total_bytes // shares) - kv
        left = budget - rest
        fits = rest + kv <= budget
        free = budget - rest - kv
        # planner.fit.fit's max_batch: the largest batch whose plan fits at this context (exact boundary)
        base = replace(plan, tp=1, gpu_memory_bytes=None) if plan.engine == "llamacpp" else plan
        ok = fit_predicate(spec, base, gpu.memory_bytes, count)
        max_conc = max(largest(lambda n: ok(n, ctx), 1, MAX_BATCH), 0)
        tokens = None
    needed = rest + kv
    reason = ""
    if not fits:
        if plan.engine == "vllm":
            wb = cap.weights_bytes
        else:
            wb = b.weights_bytes if plan.engine != "llamacpp" else -(-b.weights_bytes // count)
        if wb > budget:
            reason = f"weights alone need {_gib(wb)} per GPU, {100 * (wb / budget - 1):.0f} % over {_gib(budget)}"
        elif left <= 0:
            reason = (f"weights, activations and overhead need {_gib(rest)} per GPU, "
                      f"{100 * (rest / budget - 1):.0f} % over {_gib(budget)}")
        else:
            reason = (f"KV cache {100 * (kv / left - 1):.0f} % over: {conc} x {ctx:,} tokens need "
                      f"{_gib(kv)} per GPU, {_gib(left)} left")
    return _Verdict(fits, b, needed, budget, free, kv, max_conc, tokens, reason)


# ---------------------------------------------------------------------------------------------------
# Ranking


def objective_key(objective: str):
    """The sort key of an objective: smaller is better."""
    inf = float("inf")
    if objective == "gpus":
        return lambda o: (o.count, o.cost_per_hour if o.cost_per_hour is not None else inf, -o.free_bytes,
                          o.gpu.name, o.weights, o.kv_dtype)
    if objective == "cost":
        return lambda o: (o.cost_per_hour if o.cost_per_hour is not None else inf, o.count, -o.free_bytes,
                          o.gpu.name, o.weights, o.kv_dtype)
    if objective == "free":
        return lambda o: (-o.total_free_bytes, o.count, o.gpu.name, o.weights, o.kv_dtype)
    if objective == "concurrency":
        return lambda o: (-(o.max_concurrency or 0), o.count,
                          o.cost_per_hour if o.cost_per_hour is not None else inf, o.gpu.name, o.weights, o.kv_dtype)
    raise InputError(f"unknown objective {objective!r}; expected one of: {', '.join(OBJECTIVES)}")


def check_choices(spec: ModelSpec, workload: Workload, gpu_memory_bytes: int = 80 * GIB) -> None:
    """Raise one :class:`InputError` for a choice no GPU can fix, before anything is enumerated.

    - a context beyond the model's ``max_position_embeddings`` (vLLM refuses to start; other engines run
      past what the model was trained for);
    - a weight format or KV dtype the planner or the engine rejects (unknown names, int4 KV in vLLM, a
      non-GGUF format for llama.cpp, GGUF for transformers ...): checked on one GPU (1 x ``gpu_memory_bytes``),
      because those errors do not depend on the GPU or the count.
    """
    limit = spec.max_position_embeddings
    if limit and workload.context > limit:
        name = spec.name or spec.model_type
        raise InputError(f"context {workload.context:,} tokens is more than {name}'s max_position_embeddings "
                         f"({limit:,}); choose a context of at most {limit:,} tokens")
    for weights in dict.fromkeys(workload.weights):
        for kv_dtype in dict.fromkeys(workload.kv_dtypes):
            plan = workload.plan(weights, kv_dtype, 1, gpu_memory_bytes)
            try:
                if plan.engine == "vllm":
                    from planner.engines import vllm_capacity

                    vllm_capacity(spec, plan)
                elif plan.engine == "llamacpp":
                    _llamacpp_gpu(spec, replace(plan, gpu_memory_bytes=None))
                else:
                    estimate(spec, plan)
            except HeadroomError as e:
                raise InputError(f"weights {weights}, KV {kv_dtype} on {workload.engine}: {e}") from None


def recommend(spec: ModelSpec, workload: Workload, gpus: Sequence[GPUOption], objective: str = "gpus"
              ) -> Recommendation:
    """Enumerate weights x KV dtype x GPU x count (1..max_gpus) and rank what fits.

    Raises :class:`InputError` for an unknown objective, no GPUs, ``cost`` without any price, and for a
    choice that no GPU can fix (:func:`check_choices`: an unknown or engine-incompatible weight format or
    KV dtype, a context beyond the model's positions), once, before enumerating.
    """
    key = objective_key(objective)
    if not gpus:
        raise InputError("no GPUs to compare; give at least one GPU")
    if objective == "cost" and not any(g.price_per_hour is not None for g in gpus):
        raise InputError("objective 'cost' needs a price for at least one GPU (e.g. --price h100=2.49)")
    check_choices(spec, workload, gpus[0].memory_bytes)
    counts = range(1, workload.max_gpus + 1)
    feasible: list[Option] = []
    rejected: list[Option] = []
    notes: list[str] = []
    if workload.engine in CUDA_ENGINES:
        skipped = [g.name for g in gpus if g.vendor == "apple"]
        if skipped:
            notes.append(f"{workload.engine} does not run on Apple GPUs: {', '.join(skipped)} left out")
        gpus = [g for g in gpus if g.vendor != "apple"]
    for weights in dict.fromkeys(workload.weights):
        for kv_dtype in dict.fromkeys(workload.kv_dtypes):
            for gpu in gpus:
                group: list[Option] = []
                for n in counts:
                    plan = workload.plan(weights, kv_dtype, n, gpu.memory_bytes)
                    problem = tp_problem(spec, n, workload.engine)
                    if problem:
                        group.append(Option(weights, kv_dtype, gpu, n, plan, False, problem))
                        continue
                    try:
                        v = evaluate(spec, workload, weights, kv_dtype, gpu, n)
                    except HeadroomError as e:  # specific to this count (choices were checked up front)
                        group.append(Option(weights, kv_dtype, gpu, n, plan, False, str(e)))
                        continue
                    bd = v.breakdown if v.breakdown is not None or not v.fits else option_breakdown(spec, plan)
                    group.append(Option(
                        weights, kv_dtype, gpu, n, plan, v.fits, v.reason, bd, v.needed, v.budget,
                        v.free, v.kv, v.max_concurrency, v.kv_cache_tokens, True))
                fit_counts = [o.count for o in group if o.feasible]
                first = min(fit_counts) if fit_counts else None
                for o in group:
                    if o.feasible:
                        if objective == "cost" and gpu.price_per_hour is None:
                            rejected.append(replace(o, feasible=False, reason=f"fits, but no price given for {gpu.name}"))
                        else:
                            feasible.append(o)
                    elif first is not None and o.count < first and o.evaluated:
                        rejected.append(replace(o, reason=f"needs {first} GPUs; {o.reason} on {o.count}"))
                    elif first is None and o.evaluated:
                        rejected.append(replace(o, reason=f"needs more than {workload.max_gpus} GPUs; {o.reason}"
                                                if o.count == max(c.count for c in group if c.evaluated)
                                                else o.reason))
                    else:
                        rejected.append(o)
    if workload.engine in TP_ENGINES:
        bad = [n for n in counts if tp_problem(spec, n, workload.engine)]
        if bad:
            heads = (f"the {spec.num_heads} attention heads and {spec.num_kv_heads} KV heads"
                     if workload.engine == "vllm" else f"the {spec.num_heads} attention heads")
            notes.append(f"GPU counts {', '.join(map(str, bad))} skipped: tensor parallelism needs them to divide "
                         f"{heads}")
    feasible.sort(key=key)
    return Recommendation(workload, objective, tuple(feasible), tuple(rejected), tuple(notes))
