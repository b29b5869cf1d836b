"""The result type: memory in bytes per slash-path component, with provenance.

Top-level groups are ``weights/``, ``kv_cache/``, ``activations/`` and ``overhead/``. One naming scheme
drives the table, the treemap, the CLI JSON and the predicted-vs-measured rows. The parts always add up
to the total: there is no separately stored total that could disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GROUPS = ("weights", "kv_cache", "activations", "overhead")


@dataclass(frozen=True)
class Component:
    """One line of a breakdown.

    ``path``: slash path such as ``weights/attention/qkv``. ``bytes``: an integer.
    ``formula``: how it was computed, in words a reader can check. ``source``: where the number comes from
    (``exact``, ``safetensors header``, ``assumption``, ``approximate``...).
    """

    path: str
    bytes: int
    formula: str = ""
    source: str = "exact"

    def __post_init__(self) -> None:
        if not isinstance(self.bytes, int) or isinstance(self.bytes, bool):
            raise TypeError(f"{self.path}: bytes must be an int, got {type(self.bytes).__name__}")
        if self.bytes < 0:
            raise ValueError(f"{self.path}: bytes must be >= 0, got {self.bytes}")
        if self.path.split("/")[0] not in GROUPS:
            raise ValueError(f"{self.path}: must start with one of {GROUPS}")

    @property
    def group(self) -> str:
        return self.path.split("/", 1)[0]


@dataclass(frozen=True)
class MemoryBreakdown:
    """Memory of one plan on one device (or per GPU under tensor parallelism)."""

    parameters: int
    components: tuple[Component, ...]
    assumptions: tuple[str, ...] = field(default=())
    tp: int = 1  # tensor-parallel GPUs; components are then per GPU

    def group_bytes(self, group: str) -> int:
        return sum(c.bytes for c in self.components if c.group == group)

    @property
    def weights_bytes(self) -> int:
        return self.group_bytes("weights")

    @property
    def kv_cache_bytes(self) -> int:
        return self.group_bytes("kv_cache")

    @property
    def activations_bytes(self) -> int:
        return self.group_bytes("activations")

    @property
    def overhead_bytes(self) -> int:
        return self.group_bytes("overhead")

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes for c in self.components)

    def as_dict(self) -> dict[str, int]:
        """slash path -> bytes, in component order (merging repeated paths)."""
        out: dict[str, int] = {}
        for c in self.components:
            out[c.path] = out.get(c.path, 0) + c.bytes
        return out

    def to_json(self) -> dict:
        """The stable JSON contract of ``headroom estimate --json`` (see README)."""
        out = {
            "parameters": self.parameters,
            "weights_bytes": self.weights_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "activations_bytes": self.activations_bytes,
            "overhead_bytes": self.overhead_bytes,
            "total_bytes": self.total_bytes,
            "components": self.as_dict(),
            "assumptions": list(self.assumptions),
        }
        if self.tp > 1:  # components are per GPU; per_gpu_bytes repeats the total for clarity
            out["tp"] = self.tp
            out["per_gpu_bytes"] = self.total_bytes
        return out
