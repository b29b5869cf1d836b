"""Exact stored bytes from safetensors headers, without reading any tensor data.

A safetensors file is an 8-byte little-endian header length N, then N bytes of JSON mapping each tensor
name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (plus an optional ``__metadata__`` object of
strings), then the raw data (https://huggingface.co/docs/safetensors/index#format). The header therefore
gives the exact bytes of every stored tensor; this module reads it (bounded and validated), and sums the
bytes per planner component (``embeddings``, ``attention/qkv``, ``mlp``, ``quant_state`` ...) from the
tensor names, so a checkpoint's real dtypes and shapes take precedence over the computed weight bytes.

Pure Python: local files only; the hub side (range requests) lives in ``app/hub.py`` and hands the header
bytes to :func:`parse_header`.

How to check a number by hand: ``python -c "import safetensors; f = safetensors.safe_open('model.safetensors',
'np'); ..."`` or sum ``data_offsets[1] - data_offsets[0]`` over the header.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from math import prod

from planner.breakdown import Component
from planner.errors import SourceError

#: Default bound on one safetensors header (bytes). huggingface_hub uses 25,000,000
#: (``constants.SAFETENSORS_MAX_HEADER_LENGTH``); the largest real headers (DeepSeek-V3 shards) are a few MB.
MAX_HEADER_BYTES = 25_000_000
#: Bound on ``model.safetensors.index.json`` (DeepSeek-V3's, with ~90,000 tensors, is about 9 MB).
MAX_INDEX_BYTES = 64 << 20
#: Bound on how many shard files one index may name.
MAX_SHARDS = 10_000

#: Bits per element of every safetensors dtype (safetensors 0.8 ``Dtype``).
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

SOURCE = "safetensors header"


@dataclass(frozen=True)
class StoredTensor:
    """One tensor as a safetensors header describes it. ``nbytes`` = data_offsets[1] - data_offsets[0]."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def numel(self) -> int:
        return prod(self.shape)

    @property
    def component(self) -> str:
        return component_of(self.name)


@dataclass(frozen=True)
class StoredWeights:
    """Every tensor of a checkpoint (all shards), from its safetensors headers.

    ``source`` says where the headers came from (a path, or ``hub:org/name@sha``); ``files`` lists the
    safetensors files read.
    """

    tensors: tuple[StoredTensor, ...]
    source: str
    files: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def component_bytes(self) -> dict[str, int]:
        """Stored bytes per planner component (``embeddings``, ``attention/qkv`` ... ``quant_state``)."""
        out: dict[str, int] = {}
        for t in self.tensors:
            c = t.component
            out[c] = out.get(c, 0) + t.nbytes
        return dict(sorted(out.items(), key=lambda kv: _ORDER.index(kv[0])))

    def dtype_bytes(self) -> dict[str, int]:
        """Stored bytes per safetensors dtype, largest first."""
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.dtype] = out.get(t.dtype, 0) + t.nbytes
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def components(self) -> tuple[Component, ...]:
        """``weights/<component>`` breakdown lines, source ``safetensors header``."""
        dt = ", ".join(self.dtype_bytes())
        return tuple(
            Component(f"weights/{name}", n, f"sum of stored tensor bytes ({dt})", SOURCE)
            for name, n in self.component_bytes().items()
        )

    def describe(self) -> str:
        """One line for a breakdown's assumptions."""
        dts = ", ".join(f"{k} {_human(v)}" for k, v in self.dtype_bytes().items())
        return (f"weights as stored: {len(self.tensors):,} tensors in {len(self.files) or 1} safetensors "
                f"file(s) from {self.source} ({dts})")


def _human(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


# ---------------------------------------------------------------------------------------------------------
# tensor name -> planner component
# ---------------------------------------------------------------------------------------------------------

_ORDER = ("embeddings", "attention/qkv", "attention/o", "mlp", "experts", "router", "norms", "lm_head",
          "quant_state", "other")

# Checked in order; the first match wins. Names are Hugging Face checkpoint names (Llama/Qwen/Mistral
# ``model.layers.N.self_attn.q_proj.weight``, GPT-2 ``h.N.attn.c_attn.weight``, NeoX
# ``gpt_neox.layers.N.attention.query_key_value.weight``, Falcon ``self_attention.dense``, DeepSeek MLA
# ``q_a_proj`` / ``kv_a_proj_with_mqa`` / ``kv_b_proj``, Mixtral ``block_sparse_moe.experts.N.w1``).
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((c, re.compile(p)) for c, p in (
    # quantization state: GPTQ/AWQ (qzeros, scales, g_idx), fp8 (weight_scale[_inv], input_scale),
    # bitsandbytes (absmax, quant_map, nested_*, quant_state.*, SCB, weight_format), compressed-tensors
    ("quant_state", r"\.(qzeros|scales|g_idx|weight_scale(_inv)?|input_scale|weight_zero_point|weight_g_idx"
                    r"|weight_shape|absmax|quant_map|nested_absmax|nested_quant_map|SCB|weight_format"
                    r"|k_scale|v_scale)$|\.quant_state\."),
    ("router", r"(block_sparse_moe|mlp|feed_forward|moe)\.(gate|router)\.|e_score_correction_bias"
               r"|shared_expert_gate\."),
    ("experts", r"\.experts\.|\.experts$|shared_experts?\."),
    ("embeddings", r"(^|\.)(embed_tokens|embed_in|wte|wpe|word_embeddings|tok_embeddings|embed_positions"
                   r"|position_embeddings|embeddings)\."),
    ("lm_head", r"(^|\.)(lm_head|embed_out)\.|^output\.weight$"),
    ("norms", r"norm|(^|\.)ln_(\d+|f)\.|layernorm"),
    ("attention/o", r"(attn|attention)\.(o_proj|out_proj|dense|c_proj|wo)\."),
    ("attention/qkv", r"(attn|attention)\.(q_proj|k_proj|v_proj|qkv_proj|query_key_value|c_attn|Wqkv|wq|wk|wv"
                      r"|q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj|query|key|value)\."),
    ("mlp", r"(mlp|feed_forward|ffn)\.|\.(gate_proj|up_proj|down_proj|gate_up_proj|fc1|fc2|c_fc"
            r"|dense_h_to_4h|dense_4h_to_h|w1|w2|w3)\."),
))


def component_of(name: str) -> str:
    """The planner component (``attention/qkv``, ``mlp``, ``quant_state``...) a checkpoint tensor belongs to."""
    for comp, pat in _RULES:
        if pat.search(name):
            return comp
    return "other"


# ---------------------------------------------------------------------------------------------------------
# header parsing
# ---------------------------------------------------------------------------------------------------------

def header_length(prefix: bytes, source: str, max_header_bytes: int = MAX_HEADER_BYTES) -> int:
    """The header length N from a file's first 8 bytes, bounded by ``max_header_bytes``."""
    if len(prefix) < 8:
        raise SourceError(f"{source} is not a safetensors file (shorter than its 8-byte header length)")
    (n,) = struct.unpack("<Q", prefix[:8])
    if n < 2:
        raise SourceError(f"{source} is not a safetensors file (header length {n})")
    if n > max_header_bytes:
        raise SourceError(
            f"{source}: safetensors header is {n:,} bytes; at most {max_header_bytes:,} bytes are accepted"
        )
    return n


def parse_header(header: bytes, source: str, data_bytes: int | None = None) -> tuple[StoredTensor, ...]:
    """Validated tensors of one safetensors header (the N JSON bytes after the length prefix).

    ``data_bytes``: size of the data section when known (local files); tensors must lie inside it.
    Raises :class:`SourceError` naming the file and the problem for anything malformed.
    """
    def bad(why: str) -> SourceError:
        return SourceError(f"{source}: invalid safetensors header: {why}")

    try:
        obj = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise bad("not UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise bad("not a JSON object")
    out: list[StoredTensor] = []
    for name, info in obj.items():
        if name == "__metadata__":
            if info is not None and not isinstance(info, dict):
                raise bad("__metadata__ is not an object")
            continue
        if not isinstance(info, dict):
            raise bad(f"entry {name!r} is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPE_BITS:
            raise bad(f"tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 1 << 48 for s in shape
        ) or len(shape) > 16:
            raise bad(f"tensor {name!r} has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
                and offsets[0] <= offsets[1]):
            raise bad(f"tensor {name!r} has invalid data_offsets {offsets!r}")
        nbytes = offsets[1] - offsets[0]
        bits = prod(shape) * DTYPE_BITS[dtype]
        if bits != nbytes * 8:
            raise bad(f"tensor {name!r}: {dtype} {shape} needs {bits / 8:g} bytes, data_offsets give {nbytes}")
        if data_bytes is not None and offsets[1] > data_bytes:
            raise bad(f"tensor {name!r} ends at byte {offsets[1]:,} past the data section ({data_bytes:,})")
        out.append(StoredTensor(name, dtype, tuple(shape), nbytes))
    return tuple(out)


def read_header(path: str | os.PathLike, max_header_bytes: int = MAX_HEADER_BYTES) -> tuple[StoredTensor, ...]:
    """Tensors of a local safetensors file, reading only its header (never the data)."""
    source = os.fspath(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            n = header_length(f.read(8), source, max_header_bytes)
            if 8 + n > size:
                raise SourceError(f"{source}: truncated safetensors file (header of {n:,} bytes, file {size:,})")
            header = f.read(n)
    except OSError as e:
        raise SourceError(f"cannot read {source}: {e.strerror or e}") from None
    return parse_header(header, source, data_bytes=size - 8 - n)


def shard_files(index_text: bytes | str, source: str) -> tuple[str, ...]:
    """Distinct shard file names of a ``model.safetensors.index.json`` (in first-seen order), validated."""
    if len(index_text) > MAX_INDEX_BYTES:
        raise SourceError(f"{source} is {len(index_text):,} bytes; at most {MAX_INDEX_BYTES:,} are accepted")
    try:
        obj = json.loads(index_text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise SourceError(f"{source} is not valid JSON") from None
    wm = obj.get("weight_map") if isinstance(obj, dict) else None
    if not isinstance(wm, dict) or not wm:
        raise SourceError(f"{source} has no 'weight_map' object naming the shard files")
    files: dict[str, None] = {}
    for f in wm.values():
        if (not isinstance(f, str) or not f.endswith(".safetensors") or "/" in f or "\\" in f
                or f.startswith(".")):
            raise SourceError(f"{source}: weight_map names an invalid shard file {f!r}")
        files[f] = None
    if len(files) > MAX_SHARDS:
        raise SourceError(f"{source} names {len(files):,} shard files; at most {MAX_SHARDS:,} are accepted")
    return tuple(files)


INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


def read_model_dir(path: str | os.PathLike, max_header_bytes: int = MAX_HEADER_BYTES) -> StoredWeights | None:
    """Stored weights of a local model directory, or ``None`` when it holds no safetensors files.

    Uses ``model.safetensors.index.json`` when present (sharded checkpoints), else ``model.safetensors``,
    else every ``*.safetensors`` file in the directory.
    """
    root = os.fspath(path)
    index = os.path.join(root, INDEX_FILE)
    if os.path.isfile(index):
        try:
            with open(index, "rb") as f:
                text = f.read(MAX_INDEX_BYTES + 1)
        except OSError as e:
            raise SourceError(f"cannot read {index}: {e.strerror or e}") from None
        files = shard_files(text, index)
        for name in files:
            if not os.path.isfile(os.path.join(root, name)):
                raise SourceError(f"{index} names {name}, which is not in {root}")
    elif os.path.isfile(os.path.join(root, SINGLE_FILE)):
        files = (SINGLE_FILE,)
    else:
        files = tuple(sorted(n for n in os.listdir(root) if n.endswith(".safetensors")))
        if not files:
            return None
    found: list[StoredTensor] = []
    for name in files:
        found.extend(read_header(os.path.join(root, name), max_header_bytes))
    return StoredWeights(tuple(found), root, files)
