"""Weight storage formats: exact bytes per tensor.

(Skeleton: 16/32-bit float formats. Quantized formats are added by the weight-formats work.)
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.breakdown import Component
from planner.errors import InputError
from planner.params import TensorInfo, tensors
from planner.spec import ModelSpec

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class WeightFormat:
    name: str  # CLI/app name, e.g. "bf16", "bnb-nf4-dq", "gguf-Q4_K_M"
    label: str  # human label
    compute_dtype: str = "bfloat16"  # dtype of tensors the format leaves unquantized


@dataclass(frozen=True)
class TensorBytes:
    data: int  # the stored tensor itself
    quant_state: int = 0  # scales, zeros, absmax, g_idx ... that a quantized tensor carries


FORMATS: dict[str, WeightFormat] = {
    "fp32": WeightFormat("fp32", "float32", "float32"),
    "fp16": WeightFormat("fp16", "float16", "float16"),
    "bf16": WeightFormat("bf16", "bfloat16", "bfloat16"),
}


def weight_format(name: str) -> WeightFormat:
    """Look a format up by name; unknown names raise InputError listing the valid ones."""
    fmt = FORMATS.get(name)
    if fmt is None:
        raise InputError(f"unknown weight format {name!r}; expected one of: {', '.join(FORMATS)}")
    return fmt


def resolve_format(spec: ModelSpec, name: str) -> WeightFormat:
    """``auto`` means the checkpoint's own quantization, else its declared dtype."""
    if name == "auto":
        if spec.quantization is not None:
            return weight_format(spec.quantization.default_format())
        return weight_format({"float32": "fp32", "float16": "fp16"}.get(spec.torch_dtype, "bf16"))
    return weight_format(name)


def tensor_bytes(t: TensorInfo, fmt: WeightFormat) -> TensorBytes:
    """Exact bytes of one copy of tensor ``t`` stored in ``fmt``."""
    return TensorBytes(t.numel_each * DTYPE_BYTES[fmt.compute_dtype])


def weight_components(spec: ModelSpec, fmt: WeightFormat) -> tuple[Component, ...]:
    """Bytes per ``weights/<component>``, plus ``weights/quant_state`` for quantized formats."""
    data: dict[str, int] = {}
    qstate = 0
    for t in tensors(spec):
        b = tensor_bytes(t, fmt)
        data[t.component] = data.get(t.component, 0) + b.data * t.count
        qstate += b.quant_state * t.count
    comps = [Component(f"weights/{k}", v, f"{fmt.label} tensors") for k, v in data.items()]
    if qstate:
        comps.append(Component("weights/quant_state", qstate, "scales, zeros and absmax of quantized tensors"))
    return tuple(comps)
