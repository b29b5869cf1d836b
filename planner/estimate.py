"""The top-level planner call: ModelSpec + Plan -> MemoryBreakdown."""

from __future__ import annotations

from dataclasses import dataclass

from planner.breakdown import MemoryBreakdown
from planner.errors import InputError
from planner.formats import resolve_format, weight_components
from planner.params import parameter_count
from planner.spec import ModelSpec

ENGINES = ("transformers", "vllm", "llamacpp")
ATTENTIONS = ("sdpa", "eager", "flash_attention_2")

#: Bounds on workload numbers: far beyond any real deployment, small enough to keep arithmetic sane.
MAX_BATCH = 1 << 20
MAX_CONTEXT = 1 << 24
MAX_TP = 64


@dataclass(frozen=True)
class Plan:
    """What the user chose. ``context`` is tokens held per sequence (prompt + generated)."""

    weights: str = "auto"
    kv_dtype: str = "auto"
    batch: int = 1
    context: int = 8192
    engine: str = "transformers"
    attention: str = "sdpa"
    tp: int = 1

    def __post_init__(self) -> None:
        for name, hi in (("batch", MAX_BATCH), ("context", MAX_CONTEXT), ("tp", MAX_TP)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= hi:
                raise InputError(f"{name} must be an integer from 1 to {hi:,}, got {v!r}")
        if self.engine not in ENGINES:
            raise InputError(f"unknown engine {self.engine!r}; expected one of: {', '.join(ENGINES)}")
        if self.attention not in ATTENTIONS:
            raise InputError(f"unknown attention {self.attention!r}; expected one of: {', '.join(ATTENTIONS)}")


def estimate(spec: ModelSpec, plan: Plan = Plan()) -> MemoryBreakdown:
    """Memory of running ``spec`` under ``plan``. (Foundation: weights only.)"""
    fmt = resolve_format(spec, plan.weights)
    comps = weight_components(spec, fmt)
    assumptions: list[str] = [f"weights stored as {fmt.label}"]
    if spec.approximate:
        assumptions.append("model planned as a llama-like approximation: numbers are approximate")
    assumptions.extend(spec.notes)
    return MemoryBreakdown(parameters=parameter_count(spec), components=comps, assumptions=tuple(assumptions))
