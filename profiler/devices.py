"""What this machine can profile on (imports torch when it is installed; never raises)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceInfo:
    device: str  # "cpu", "cuda:0", "mps"
    label: str
    memory_bytes: int | None = None
    nvml: bool = False  # NVML figures available (NVIDIA driver present, not a ROCm build)


@dataclass(frozen=True)
class Devices:
    devices: tuple[DeviceInfo, ...]
    notes: tuple[str, ...] = ()
    torch_installed: bool = True

    @property
    def has_gpu(self) -> bool:
        return any(d.device != "cpu" for d in self.devices)


def detect() -> Devices:
    """CPU always; each CUDA/ROCm GPU torch sees; Apple MPS. ``notes`` say what is missing and why."""
    if importlib.util.find_spec("torch") is None:
        return Devices((), ("torch is not installed: pip install 'headroom[profile]' to profile",), False)
    import torch

    notes: list[str] = []
    out = [DeviceInfo("cpu", "CPU")]
    hip = getattr(torch.version, "hip", None)
    try:
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        n = 0
    nvml_ok = False
    if n and not hip:
        try:
            import pynvml

            pynvml.nvmlInit()
            nvml_ok = True
        except Exception as e:
            notes.append(f"NVML unavailable ({type(e).__name__}): device and process totals come from torch only")
    if n and hip:
        notes.append("ROCm build of torch: torch.cuda works but NVML does not; NVML figures are absent and "
                     "memory comes from torch's counters")
    for i in range(n):
        p = torch.cuda.get_device_properties(i)
        out.append(DeviceInfo(f"cuda:{i}", f"cuda:{i} {p.name}", int(p.total_memory), nvml_ok))
    try:
        if torch.backends.mps.is_available():
            out.append(DeviceInfo("mps", "Apple MPS"))
    except Exception:
        pass
    if len(out) == 1:
        notes.append("No GPU found (torch.cuda.is_available() is False): profiling runs on the CPU")
    return Devices(tuple(out), tuple(notes))
