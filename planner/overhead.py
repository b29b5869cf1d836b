"""Runtime overhead: memory a GPU process uses beyond what torch allocates for tensors.

``weights + kv_cache + activations`` is what torch allocates at the peak (``torch.cuda.max_memory_allocated``);
the ``overhead/...`` components are everything else ``nvidia-smi`` shows for the process:

* ``overhead/cuda_context``: the CUDA context (driver state, kernels of the loaded modules). 250-700 MiB
  depending on GPU, driver and libraries; about 290 MiB with lazy module loading, PyTorch's default
  (``CUDA_MODULE_LOADING=LAZY``). Check: ``nvidia-smi --query-compute-apps=used_memory`` right after
  ``torch.zeros(1, device="cuda")`` minus ``torch.cuda.memory_reserved()``.
* ``overhead/cublas_workspace``: cuBLAS/cuBLASLt workspaces per handle and stream.
* ``overhead/allocator_slack``: the caching allocator's reserved-but-unallocated memory
  (``torch.cuda.memory_reserved() - torch.cuda.memory_allocated()`` at the peak), a stated fraction of
  what torch allocates.
* ``overhead/nccl``: NCCL communicator buffers under tensor parallelism.
* ``overhead/cpu_runtime`` (``device="cpu"`` only): the resident memory of the Python process with torch
  and transformers imported, before any tensor exists. Check: ``VmRSS`` in ``/proc/<pid>/status``.

Every constant is a named assumption (:data:`ASSUMPTIONS`), shown in the breakdown and replaceable through
``Plan.overrides`` (name -> bytes; the CLI's ``--override NAME=BYTES``). On ``device="cpu"`` no GPU
term applies; only ``overhead/cpu_runtime`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.breakdown import Component
from planner.errors import InputError

MiB = 1 << 20


@dataclass(frozen=True)
class Assumption:
    """One overridable overhead constant. ``default_bytes`` for a fraction is its value at 1 GiB."""

    name: str  # the component path it produces, e.g. "overhead/cuda_context"
    default_bytes: int
    description: str
    source: str
    fraction: float | None = None  # set when the default scales with torch-allocated bytes
    gpu_only: bool = True
    tp_only: bool = False
    cpu_only: bool = False


#: Fraction of torch-allocated peak bytes the caching allocator holds reserved but unallocated.
ALLOCATOR_SLACK_FRACTION = 0.03

ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption(
        "overhead/cuda_context", 290 * MiB,
        "CUDA context of a PyTorch process with lazy module loading (250-700 MiB depending on GPU, driver "
        "and libraries; about 500 MiB with eager loading)",
        "PyTorch CUDA_MODULE_LOADING=LAZY default (PyTorch 2.x, CUDA >= 11.7); NVIDIA CUDA C++ Programming "
        "Guide, 'Lazy Loading'; measured as nvidia-smi process memory minus torch.cuda.memory_reserved()",
    ),
    Assumption(
        "overhead/cublas_workspace", 32 * MiB,
        "cuBLAS + cuBLASLt workspaces of the handle on the default stream",
        "PyTorch aten/src/ATen/cuda/CublasHandlePool.cpp: CUBLAS_WORKSPACE_CONFIG default (32 MiB on "
        "Hopper, ':4096:2:16:8' = 8.1 MiB before); CUBLASLT_WORKSPACE_SIZE",
    ),
    Assumption(
        "overhead/allocator_slack", int(ALLOCATOR_SLACK_FRACTION * (1 << 30)),
        f"caching-allocator memory reserved but not allocated at the peak: {ALLOCATOR_SLACK_FRACTION:.0%} of "
        "the torch-allocated peak (grows with fragmentation; expandable_segments reduces it)",
        "PyTorch CUDA caching allocator (torch.cuda.memory_reserved - memory_allocated); an assumption",
        fraction=ALLOCATOR_SLACK_FRACTION,
    ),
    Assumption(
        "overhead/nccl", 256 * MiB,
        "NCCL communicator buffers per GPU under tensor parallelism (NCCL_BUFFSIZE 4 MiB per channel and "
        "direction, up to 32 channels on NVLink)",
        "NCCL documentation, Environment Variables: NCCL_BUFFSIZE (default 4 MiB), NCCL_MAX_NCHANNELS",
        tp_only=True,
    ),
    Assumption(
        "overhead/cpu_runtime", 400 * MiB,
        "resident memory of the Python process itself on a CPU run: interpreter, torch and transformers "
        "libraries, before any tensor exists",
        "measured on this project's CPU profiles (headroom profile, torch 2.13 + transformers 5.23, Linux "
        "x86_64): 389-408 MiB of RSS beyond the model's tensors; check VmRSS in /proc/<pid>/status",
        gpu_only=False, cpu_only=True,
    ),
)

#: The terms that apply on a GPU (every assumption but the CPU-only ones).
GPU_ASSUMPTIONS = tuple(a for a in ASSUMPTIONS if not a.cpu_only)
CPU_ASSUMPTIONS = tuple(a for a in ASSUMPTIONS if a.cpu_only)

BY_NAME = {a.name: a for a in ASSUMPTIONS}


def _overrides(plan) -> dict[str, int]:
    out = {}
    for name, value in getattr(plan, "overrides", ()):
        out[name] = value
    return out


def check_overrides(plan, extra_names: tuple[str, ...] = ()) -> None:
    """Reject override names nobody uses, listing the valid ones."""
    valid = set(BY_NAME) | set(extra_names)
    for name, _ in getattr(plan, "overrides", ()):
        if name not in valid:
            raise InputError(f"unknown assumption {name!r} in overrides; expected one of: {', '.join(sorted(valid))}")


def overhead_components(plan, torch_allocated_bytes: int) -> tuple[tuple[Component, ...], list[str]]:
    """Overhead components for ``plan`` and the assumption lines explaining them.

    ``torch_allocated_bytes``: weights + KV cache + activations (the allocator slack scales with it).
    """
    over = _overrides(plan)
    comps: list[Component] = []
    lines: list[str] = []
    if plan.device == "cpu":
        lines.append("device cpu: no CUDA context, cuBLAS workspace, allocator slack or NCCL buffers")
    for a in CPU_ASSUMPTIONS if plan.device == "cpu" else GPU_ASSUMPTIONS:
        if a.tp_only and plan.tp <= 1:
            continue
        if a.name in over:
            value, how = over[a.name], "override"
        elif a.fraction is not None:
            value, how = int(a.fraction * torch_allocated_bytes), f"{a.fraction:.0%} of torch-allocated bytes"
        else:
            value, how = a.default_bytes, "assumption"
        comps.append(Component(a.name, int(value), a.description, "override" if how == "override" else "assumption"))
        lines.append(f"{a.name} = {value / MiB:,.1f} MiB ({how}; {a.source})")
    return tuple(comps), lines


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40, "k": 1 << 10, "m": 1 << 20,
          "g": 1 << 30}


def parse_size(text: str) -> int:
    """'300MiB', '1.5GiB', '2GB', '123456' (bytes) -> int bytes; InputError otherwise."""
    import re

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise InputError(f"size {text!r} is not understood; write bytes or a number with a unit "
                         "such as 300MiB, 1.5GiB or 2GB")
    return int(round(float(m.group(1)) * _UNITS[unit]))


def parse_override(text: str) -> tuple[str, int]:
    """'NAME=SIZE' (e.g. 'overhead/cuda_context=300MiB') -> (name, bytes)."""
    name, sep, size = str(text).partition("=")
    name = name.strip()
    if not sep or not name:
        raise InputError(f"override {text!r} must look like NAME=SIZE, e.g. overhead/cuda_context=300MiB")
    if "/" not in name:
        name = f"overhead/{name}"
    return name, parse_size(size)
