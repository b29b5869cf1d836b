"""The hardware catalog (``assets/gpus.json``): accelerators people run LLMs on.

Each :class:`GPU` carries sizes that users confuse: the *marketed* memory ("80 GB"), the device total a
tool reports (``reported_bytes``: ``nvidia-smi --query-gpu=memory.total``, the NVML total, e.g. 81559 MiB
for an H100 80GB HBM3; rocminfo's global memory pool for AMD; the GPU's default working-set limit for
Apple silicon, about 75 % of RAM on large-memory Macs) and, where a cited log gives it, the smaller total
CUDA itself reports (``cuda_total_bytes``, ``torch.cuda.mem_get_info()[1]``: 79.22 GiB on that H100; the
driver reserves the rest). ``memory_bytes`` is what programs can use: the CUDA total where known, else the
reported total. Everything that plans (fit, sweep, recommend, the app) uses ``memory_bytes``.
``memory_basis`` says whether the reported number was read from a cited device report or is an
assumption; ``memory_source`` / ``cuda_total_source`` / ``source`` cite where each number comes from.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from planner.errors import InputError

GPUS_FILE = Path(__file__).resolve().parent.parent / "assets" / "gpus.json"
VENDORS = ("nvidia", "amd", "apple", "intel", "other")


@dataclass(frozen=True)
class GPU:
    """One accelerator. ``memory_bytes``: bytes a program sees on ONE device (see module docstring)."""

    name: str  # friendly key, e.g. "h100-sxm-80gb"
    title: str
    vendor: str
    marketed_memory: str  # as marketed, e.g. "80 GB HBM3"
    marketed_memory_gb: float
    reported_bytes: int  # nvidia-smi memory.total / rocminfo pool / macOS GPU limit
    memory_basis: str  # "nvidia-smi: 81559 MiB ..." or "assumption: ..."
    memory_source: str  # URL
    bandwidth_gb_s: float | None  # datasheet memory bandwidth, GB/s
    bf16_tflops: float | None  # datasheet dense bf16 tensor TFLOPS (None: not published / not supported)
    source: str  # URL for the datasheet figures
    cuda_total_bytes: int | None = None  # torch.cuda.mem_get_info()[1], where a cited log gives it
    cuda_total_basis: str = ""
    cuda_total_source: str = ""

    def __post_init__(self) -> None:
        for v in (self.reported_bytes, self.cuda_total_bytes or 1):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{self.name}: memory sizes must be positive ints")
        if self.vendor not in VENDORS:
            raise ValueError(f"{self.name}: vendor must be one of {VENDORS}")

    @property
    def memory_is_assumption(self) -> bool:
        return self.memory_basis.startswith("assumption")

    @property
    def memory_bytes(self) -> int:
        """What programs can allocate on one device: CUDA's own total where known, else the reported total.

        CUDA reports less than nvidia-smi (the driver reserves a few hundred MiB: 79.22 GiB against
        81559 MiB = 79.65 GiB on an H100), and PyTorch and vLLM size everything from CUDA's figure.
        """
        return self.cuda_total_bytes or self.reported_bytes

    @property
    def usable_bytes(self) -> int:
        """Same as :attr:`memory_bytes`."""
        return self.memory_bytes

    @property
    def memory_basis_short(self) -> str:
        """``cuda`` (CUDA's total, cited), ``reported`` (a cited device report) or ``assumed``."""
        return "cuda" if self.cuda_total_bytes else ("assumed" if self.memory_is_assumption else "reported")

    def to_json(self) -> dict:
        return {
            "name": self.name, "title": self.title, "vendor": self.vendor,
            "marketed_memory": self.marketed_memory, "marketed_memory_gb": self.marketed_memory_gb,
            "memory_bytes": self.memory_bytes, "reported_bytes": self.reported_bytes,
            "memory_basis": self.memory_basis,
            "memory_is_assumption": self.memory_is_assumption, "memory_source": self.memory_source,
            "cuda_total_bytes": self.cuda_total_bytes,
            "cuda_total_basis": self.cuda_total_basis or None, "cuda_total_source": self.cuda_total_source or None,
            "bandwidth_gb_s": self.bandwidth_gb_s, "bf16_tflops": self.bf16_tflops, "source": self.source,
        }


@lru_cache(maxsize=1)
def _catalog() -> dict[str, GPU]:
    rows = json.loads(GPUS_FILE.read_text())["gpus"]
    out: dict[str, GPU] = {}
    for r in rows:
        g = GPU(
            name=r["name"], title=r["title"], vendor=r["vendor"], marketed_memory=r["marketed_memory"],
            marketed_memory_gb=r["marketed_memory_gb"], reported_bytes=int(r["reported_bytes"]),
            memory_basis=r["memory_basis"], memory_source=r["memory_source"],
            bandwidth_gb_s=r.get("bandwidth_gb_s"), bf16_tflops=r.get("bf16_tflops"), source=r["source"],
            cuda_total_bytes=r.get("cuda_total_bytes"), cuda_total_basis=r.get("cuda_total_basis", ""),
            cuda_total_source=r.get("cuda_total_source", ""),
        )
        out[g.name] = g
    return out


def gpus() -> tuple[GPU, ...]:
    """Every catalog GPU, in catalog order."""
    return tuple(_catalog().values())


def gpu_names() -> tuple[str, ...]:
    return tuple(_catalog())


def find_gpu(name: str) -> GPU:
    """A GPU by friendly name or title, case-insensitive.

    A fragment that names exactly one GPU (``"4090"``, ``"h200"``) is accepted; an ambiguous or unknown
    name raises :class:`InputError` listing the close names.
    """
    if not isinstance(name, str) or not name.strip():
        raise InputError("give a GPU name; run 'headroom gpus' for the catalog")
    key = name.strip().lower()
    cat = _catalog()
    if key in cat:
        return cat[key]
    for g in cat.values():
        if g.title.lower() == key:
            return g
    norm = key.replace(" ", "-").replace("_", "-")
    hits = [g for n, g in cat.items() if norm in n or key in g.title.lower()]
    if len(hits) == 1:
        return hits[0]
    close = [g.name for g in hits] or difflib.get_close_matches(norm, list(cat), n=4, cutoff=0.4)
    what = "is ambiguous" if len(hits) > 1 else "is not in the catalog"
    hint = f"; did you mean {', '.join(close)}?" if close else "."
    raise InputError(f"GPU {name!r} {what}{hint} Run 'headroom gpus' for the list, or give --memory-gib.")
