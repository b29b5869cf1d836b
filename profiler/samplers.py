"""Memory samplers used inside the worker. Each says how to check its number by hand.

All return ints in bytes (or ``None`` when the source is unavailable); none raises.
"""

from __future__ import annotations

import os

_PROC_STATUS = "/proc/self/status"


def proc_status() -> dict[str, int]:
    """Process memory from ``/proc/self/status`` (Linux), in bytes.

    Keys: ``rss_bytes`` (VmRSS), ``rss_anon_bytes`` (RssAnon: heap, tensors), ``rss_file_bytes``
    (RssFile: memory-mapped files such as a safetensors checkpoint and shared libraries),
    ``peak_rss_bytes`` (VmHWM, the high-water mark since start or since :func:`reset_peak_rss`),
    ``vm_bytes`` (VmSize, the address space that RLIMIT_AS limits).
    Check by hand: ``grep -E 'VmRSS|RssAnon|RssFile|VmHWM|VmSize' /proc/<pid>/status``.
    Outside Linux falls back to psutil (``rss_bytes`` and ``vm_bytes`` only).
    """
    fields = {"VmRSS": "rss_bytes", "RssAnon": "rss_anon_bytes", "RssFile": "rss_file_bytes",
              "VmHWM": "peak_rss_bytes", "VmSize": "vm_bytes"}
    out: dict[str, int] = {}
    try:
        with open(_PROC_STATUS) as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in fields:
                    out[fields[key]] = int(rest.split()[0]) * 1024  # the file says kB (KiB)
    except OSError:
        try:
            import psutil

            mi = psutil.Process().memory_info()
            out = {"rss_bytes": int(mi.rss), "vm_bytes": int(mi.vms)}
        except Exception:
            return {}
    return out


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0).

    Check by hand: ``echo 5 > /proc/<pid>/clear_refs`` then watch VmHWM in ``/proc/<pid>/status``.
    Returns False where the kernel or sandbox refuses; the peak then counts from process start.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def torch_device_memory(device) -> dict[str, int]:
    """torch's caching allocator on ``device``: ``allocated_bytes`` (``memory_allocated``: live tensors),
    ``reserved_bytes`` (``memory_reserved``: held by the allocator), ``peak_allocated_bytes`` /
    ``peak_reserved_bytes`` (since the last :func:`reset_torch_peak`), ``device_free_bytes`` and
    ``device_total_bytes`` (``cuda.mem_get_info``, the driver's view: ``nvidia-smi
    --query-gpu=memory.free,memory.total --format=csv``). MPS: ``torch.mps.current_allocated_memory`` and
    ``driver_allocated_memory`` (no peak counters). CPU: empty.
    """
    import torch

    if device.type == "cuda":
        try:
            free, total = torch.cuda.mem_get_info(device)
        except Exception:
            free = total = None
        out = {
            "allocated_bytes": int(torch.cuda.memory_allocated(device)),
            "reserved_bytes": int(torch.cuda.memory_reserved(device)),
            "peak_allocated_bytes": int(torch.cuda.max_memory_allocated(device)),
            "peak_reserved_bytes": int(torch.cuda.max_memory_reserved(device)),
        }
        if free is not None:
            out["device_free_bytes"] = int(free)
            out["device_total_bytes"] = int(total)
        return out
    if device.type == "mps":
        try:
            return {"allocated_bytes": int(torch.mps.current_allocated_memory()),
                    "reserved_bytes": int(torch.mps.driver_allocated_memory())}
        except Exception:
            return {}
    return {}


def reset_torch_peak(device) -> None:
    """``torch.cuda.reset_peak_memory_stats``: peaks count from now (no-op off CUDA)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


class Nvml:
    """NVML totals for one GPU and this process (``nvidia-ml-py``, module ``pynvml``).

    ``nvml_device_used_bytes``: ``nvidia-smi --query-gpu=memory.used --format=csv,nounits``;
    ``nvml_process_used_bytes``: this pid's row of ``nvidia-smi --query-compute-apps=pid,used_memory
    --format=csv`` (CUDA context + torch reserved + anything allocated outside torch).
    ``available`` is False with ``reason`` set when there is no driver (``nvmlInit`` raises NVMLError),
    on ROCm builds, or when pynvml is missing: those figures are then absent, not zero.
    """

    def __init__(self, device) -> None:
        self.available = False
        self.reason = "NVML unavailable"
        self.handle = None
        if device.type != "cuda":
            self.reason = f"NVML not used on {device.type}"
            return
        import torch

        if getattr(torch.version, "hip", None):
            self.reason = "NVML unavailable: ROCm build of torch; figures come from torch only"
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            index = device.index if device.index is not None else torch.cuda.current_device()
            # NVML numbers GPUs in PCI order; CUDA_VISIBLE_DEVICES may remap, so match by UUID when possible
            self.handle = self._handle_for(pynvml, torch, index)
            self.pynvml = pynvml
            self.available = True
            self.reason = ""
        except Exception as e:  # NVMLError without a driver, ImportError without nvidia-ml-py
            self.reason = f"NVML unavailable: {type(e).__name__}: {e}"

    @staticmethod
    def _handle_for(pynvml, torch, index: int):
        try:
            uuid = str(torch.cuda.get_device_properties(index).uuid)
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                u = pynvml.nvmlDeviceGetUUID(h)
                u = u.decode() if isinstance(u, bytes) else u
                if u.removeprefix("GPU-") == uuid.removeprefix("GPU-"):
                    return h
        except Exception:
            pass
        return pynvml.nvmlDeviceGetHandleByIndex(index)

    def sample(self) -> dict[str, int]:
        if not self.available:
            return {}
        out: dict[str, int] = {}
        try:
            out["nvml_device_used_bytes"] = int(self.pynvml.nvmlDeviceGetMemoryInfo(self.handle).used)
            pid = os.getpid()
            for p in self.pynvml.nvmlDeviceGetComputeRunningProcesses(self.handle):
                if p.pid == pid and p.usedGpuMemory is not None:
                    out["nvml_process_used_bytes"] = int(p.usedGpuMemory)
        except Exception:
            pass
        return out

    def facts(self) -> dict:
        if not self.available:
            return {"nvml": self.reason}
        p = self.pynvml
        out: dict = {"nvml": "available"}
        try:
            v = p.nvmlSystemGetDriverVersion()
            out["driver"] = v.decode() if isinstance(v, bytes) else v
            out["nvml_total_bytes"] = int(p.nvmlDeviceGetMemoryInfo(self.handle).total)
        except Exception:
            pass
        return out
