"""What a profile run asks for, validated once on the parent side and sent to the worker as JSON.

Pure Python (no torch): the app and the CLI build a :class:`ProfileRequest`, the parent validates it,
and the worker (:mod:`profiler.worker`) receives ``request.to_json()`` on its stdin.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

from planner.errors import InputError

#: Weight formats the worker can build (the planner knows more, e.g. GPTQ/GGUF, which need checkpoints).
WEIGHT_FORMATS = ("fp32", "bf16", "fp16", "bnb-int8", "bnb-nf4", "bnb-nf4-dq", "bnb-fp4", "bnb-fp4-dq")
SOURCE_KINDS = ("catalog", "config", "hub", "checkpoint")
ATTENTIONS = ("sdpa", "eager")
STATUSES = ("ok", "oom", "timeout", "crashed")
_DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d{1,2})?)$")

MAX_POINTS = 256
MAX_BATCH = 1 << 16
MAX_TOKENS = 1 << 22


@dataclass(frozen=True)
class Point:
    """One measured scenario: ``batch`` sequences, ``prompt_tokens`` prefilled in one forward pass, then
    ``new_tokens`` single-token decode steps. The cache then holds ``prompt_tokens + new_tokens`` tokens
    per sequence (the planner's ``context``)."""

    batch: int
    prompt_tokens: int
    new_tokens: int = 0

    def __post_init__(self) -> None:
        for name, v, lo, hi in (("batch", self.batch, 1, MAX_BATCH),
                                ("prompt tokens", self.prompt_tokens, 1, MAX_TOKENS),
                                ("new tokens", self.new_tokens, 0, MAX_TOKENS)):
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise InputError(f"{name} must be a whole number from {lo:,} to {hi:,}, got {v!r}")

    @property
    def context(self) -> int:
        return self.prompt_tokens + self.new_tokens

    @property
    def size(self) -> tuple[int, int, int]:
        """Sort key: tokens held in the cache first (what grows memory), then prompt length, then batch."""
        return (self.batch * self.context, self.prompt_tokens, self.batch)


@dataclass(frozen=True)
class ProfileRequest:
    """A profile run. ``source`` is a catalog name, a config.json path, a hub id or a checkpoint directory
    depending on ``source_kind``. ``synthetic``: random weights built from the config (no download); else
    the checkpoint's own safetensors (``source_kind == "checkpoint"`` only). ``timeout_s`` bounds each
    point, ``load_timeout_s`` (default: ``timeout_s``) the model load. ``points`` are kept in ascending size (see :attr:`Point.size`).

    Test and safety knobs: ``cpu_memory_limit_bytes`` caps the address space each point may add to the
    worker (RLIMIT_AS, reset before every point), so a point that needs more raises an allocation error,
    recorded ``oom``;
    ``debug_hang_at`` / ``debug_crash_at`` make the worker sleep forever / kill itself at that point index.
    """

    source: str
    source_kind: str = "catalog"
    synthetic: bool = True
    weights: str = "bf16"
    device: str = "cpu"
    attention: str = "sdpa"
    points: tuple[Point, ...] = (Point(1, 128, 0),)
    timeout_s: float = 600.0
    load_timeout_s: float | None = None  # None: timeout_s
    seed: int = 0
    sample_interval_s: float = 0.2
    cpu_memory_limit_bytes: int | None = None
    debug_hang_at: int | None = None
    debug_crash_at: int | None = None
    label: str = ""
    extra: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.source_kind not in SOURCE_KINDS:
            raise InputError(f"unknown model source kind {self.source_kind!r}; expected one of: "
                             f"{', '.join(SOURCE_KINDS)}")
        if not isinstance(self.source, str) or not self.source.strip():
            raise InputError("give a model: a catalog name, a config path, a hub id or a checkpoint directory")
        if self.weights not in WEIGHT_FORMATS:
            raise InputError(f"the profiler cannot build weight format {self.weights!r}; expected one of: "
                             f"{', '.join(WEIGHT_FORMATS)}")
        if not isinstance(self.device, str) or not _DEVICE_RE.match(self.device):
            raise InputError(f"device must be cpu, mps, cuda or cuda:N, got {self.device!r}")
        if self.attention not in ATTENTIONS:
            raise InputError(f"unknown attention {self.attention!r}; expected one of: {', '.join(ATTENTIONS)}")
        if not self.synthetic and self.source_kind != "checkpoint":
            raise InputError("real weights need a local checkpoint directory (--checkpoint); "
                             "otherwise use --synthetic")
        if not isinstance(self.points, tuple) or not self.points:
            raise InputError("give at least one (batch, prompt tokens) point")
        if len(self.points) > MAX_POINTS:
            raise InputError(f"at most {MAX_POINTS} points per run, got {len(self.points)}")
        if not all(isinstance(p, Point) for p in self.points):
            raise InputError("points must be Point values")
        ordered = tuple(sorted(dict.fromkeys(self.points), key=lambda p: p.size))
        if ordered != self.points:
            object.__setattr__(self, "points", ordered)  # normalization of a frozen value, not a default
        for t in (self.timeout_s, self.load_timeout_s if self.load_timeout_s is not None else 1):
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 < t <= 86400:
                raise InputError(f"timeout must be a number of seconds up to 86,400, got {t!r}")
        lim = self.cpu_memory_limit_bytes
        if lim is not None and (not isinstance(lim, int) or isinstance(lim, bool) or lim < 1):
            raise InputError(f"memory limit must be a positive number of bytes, got {lim!r}")

    @property
    def load_timeout(self) -> float:
        return self.timeout_s if self.load_timeout_s is None else self.load_timeout_s

    @property
    def device_kind(self) -> str:
        """The planner's device: ``gpu`` for cuda/mps, ``cpu`` otherwise."""
        return "cpu" if self.device == "cpu" else "gpu"

    def to_json(self) -> dict:
        d = asdict(self)
        d["points"] = [asdict(p) for p in self.points]
        d["extra"] = [list(x) for x in self.extra]
        return d

    @classmethod
    def from_json(cls, d: dict) -> ProfileRequest:
        d = dict(d)
        try:
            d["points"] = tuple(Point(**p) for p in d.get("points", ()))
            d["extra"] = tuple(tuple(x) for x in d.get("extra", ()))
            return cls(**d)
        except TypeError as e:
            raise InputError(f"malformed profile request: {e}") from None


def parse_int_list(text: str, what: str) -> tuple[int, ...]:
    """``"1,4"`` -> ``(1, 4)`` with a clear message for anything else."""
    out = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        try:
            v = int(part.replace("_", ""))
        except ValueError:
            raise InputError(f"{what} must be a comma-separated list of whole numbers, got {text!r}") from None
        if v < 1:
            raise InputError(f"{what} values must be at least 1, got {v}")
        out.append(v)
    if not out:
        raise InputError(f"give at least one {what} value")
    return tuple(out)


def grid(batches, prompts, new_tokens: int = 0) -> tuple[Point, ...]:
    """Every (batch, prompt) combination, ascending."""
    return tuple(sorted({Point(b, p, new_tokens) for b in batches for p in prompts}, key=lambda p: p.size))
