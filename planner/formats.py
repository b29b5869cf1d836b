"""Weight storage formats: exact bytes per tensor.

A :class:`WeightFormat` says how each tensor of :func:`planner.params.tensors` is stored. Which tensors a
format quantizes is decided by the tensor's ``role`` (see :data:`planner.params.ROLES`), following what
the library that produces the format actually does:

``fp32`` / ``fp16`` / ``bf16``
    every tensor numel x 4 / 2 / 2.
``fp8``, ``fp8-block`` (transformers' ``FineGrainedFP8`` integration, ``integrations/finegrained_fp8.py``)
    every plain ``nn.Linear`` except ``lm_head`` becomes ``FP8Linear``: e4m3 weight (1 byte) plus
    ``weight_scale_inv`` in fp32, one per tensor or one per 128 x 128 block
    (ceil(out/128) x ceil(in/128), DeepSeek-V3). Fused MoE experts become ``FP8Experts``: per expert the
    same scales, and the fused gate_up projection keeps at least two scale rows (``min_sf_out=2``).
    GPT-2's ``Conv1D`` is not an ``nn.Linear`` and stays in the compute dtype.
``bnb-int8`` (bitsandbytes LLM.int8 through transformers)
    ``nn.Linear`` and GPT-2 ``Conv1D`` weights become int8 plus ``SCB``: one fp32 per output row.
``bnb-nf4`` / ``bnb-fp4`` and ``-dq`` (double quant)
    weights packed two per byte ((n + 1) // 2 bytes) plus the ``QuantState``: absmax per block of 64
    (fp32; with double quant uint8, plus fp32 absmax per 256 of those, a 256-entry fp32 code and an fp32
    offset) and the 16-entry fp32 4-bit code. Every Linear holds its own copy of the codes.
    Embeddings, norms, ``lm_head``, biases, routers and transformers 5.x fused 3-D expert parameters
    (not ``nn.Linear``) keep the compute dtype.
``gptq-<b>bit-g<group>`` (AutoGPTQ ``QuantLinear`` layout, the one GPTQ checkpoints store)
    qweight int32 (in // 32 * b, out), qzeros int32 (ceil(in/g), out // 32 * b), scales fp16
    (ceil(in/g), out), g_idx int32 (in,); group -1 means one group of ``in``. Embeddings, norms,
    ``lm_head`` and MoE routers stay fp16.
``awq-4bit-g<group>`` (AutoAWQ ``WQLinear_GEMM``)
    qweight int32 (in, out // 8), qzeros int32 (in // g, out // 8), scales fp16 (in // g, out), no g_idx.
``gguf-<FILETYPE>`` (llama.cpp)
    per tensor a ggml type chosen as ``llama_tensor_get_type`` in llama.cpp's ``src/llama-quant.cpp``
    does (followed: ggml-org/llama.cpp master, commit 007dbbf3, 2026), stored in blocks of 32 or 256
    values (:data:`GGML_TYPES`); tensors llama.cpp does not quantize (1-D, norms, MoE router, position
    embeddings, biases) are F32 as ``convert_hf_to_gguf.py`` writes them. Block scales are part of the
    ggml type, so GGUF formats report everything as data, no separate quant state.

Data bytes go to ``weights/<component>``; scales, zeros, absmax, g_idx, SCB and quantization maps go to
``weights/quant_state``, so the profiler can compare the two separately.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from math import ceil

from planner.breakdown import Component
from planner.errors import InputError
from planner.params import TensorInfo, tensors
from planner.spec import ModelSpec

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

#: ggml type -> (values per block, bytes per block). Same numbers as ``gguf.GGML_QUANT_SIZES`` (the
#: ``gguf`` Python package, checked in tests/test_formats_gguf.py) and ggml's ``type_traits``.
GGML_TYPES: dict[str, tuple[int, int]] = {
    "F32": (1, 4),
    "F16": (1, 2),
    "BF16": (1, 2),
    "Q4_0": (32, 18),
    "Q4_1": (32, 20),
    "Q5_0": (32, 22),
    "Q5_1": (32, 24),
    "Q8_0": (32, 34),
    "Q2_K": (256, 84),
    "Q3_K": (256, 110),
    "Q4_K": (256, 144),
    "Q5_K": (256, 176),
    "Q6_K": (256, 210),
    "IQ4_NL": (32, 18),
    "IQ4_XS": (256, 136),
}

#: llama.cpp file types (``llama-quantize`` names) we can assign per tensor -> their default ggml type
#: (``llama_ftype_get_default_type``).
GGUF_FILE_TYPES: dict[str, str] = {
    "F32": "F32", "F16": "F16", "BF16": "BF16",
    "Q4_0": "Q4_0", "Q4_1": "Q4_1", "Q5_0": "Q5_0", "Q5_1": "Q5_1", "Q8_0": "Q8_0",
    "Q2_K": "Q2_K", "Q3_K_S": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_L": "Q3_K",
    "Q4_K_S": "Q4_K", "Q4_K_M": "Q4_K", "Q5_K_S": "Q5_K", "Q5_K_M": "Q5_K", "Q6_K": "Q6_K",
    "IQ4_NL": "IQ4_NL", "IQ4_XS": "IQ4_XS",
}

#: bitsandbytes constants (bitsandbytes 0.50 ``functional.quantize_4bit`` / ``quantize_blockwise``)
BNB_4BIT_BLOCK = 64  # values per absmax (Linear4bit default blocksize)
BNB_NESTED_BLOCK = 256  # absmax values per nested absmax (double quant)
BNB_4BIT_CODE_BYTES = 16 * 4  # the nf4/fp4 code book, fp32, one copy per Linear
BNB_NESTED_CODE_BYTES = 256 * 4  # the 8-bit dynamic map for the nested absmax, one copy per Linear
BNB_OFFSET_BYTES = 4  # double quant: the fp32 mean subtracted from absmax


@dataclass(frozen=True)
class WeightFormat:
    """How weights are stored. Build one with :func:`weight_format`; the fields are derived from the name.

    ``kind``: ``float``, ``fp8``, ``bnb``, ``gptq``, ``awq`` or ``gguf``. ``bits``: bits per quantized
    weight (GGUF: the default type's bits per weight rounded down, Q4_K 4.5 -> 4, Q6_K 6.56 -> 6).
    ``group_size``: GPTQ/AWQ input columns per scale (-1: all). ``block``: fp8 scale block (out, in),
    ``None`` for one scale per tensor. ``variant``: bitsandbytes ``int8``/``nf4``/``fp4``, or the
    llama.cpp file type (``Q4_K_M``). ``double_quant``: bitsandbytes nested absmax.
    """

    name: str  # CLI/app name, e.g. "bf16", "bnb-nf4-dq", "gguf-Q4_K_M"
    label: str  # human label
    compute_dtype: str = "bfloat16"  # dtype of tensors the format leaves unquantized
    kind: str = "float"
    bits: int = 16
    group_size: int = 0
    block: tuple[int, int] | None = None
    variant: str = ""
    double_quant: bool = False


@dataclass(frozen=True)
class TensorBytes:
    data: int  # the stored tensor itself
    quant_state: int = 0  # scales, zeros, absmax, g_idx ... that a quantized tensor carries

    def __add__(self, other: TensorBytes) -> TensorBytes:
        return TensorBytes(self.data + other.data, self.quant_state + other.quant_state)

    def __mul__(self, k: int) -> TensorBytes:
        return TensorBytes(self.data * k, self.quant_state * k)


FORMATS: dict[str, WeightFormat] = {
    "fp32": WeightFormat("fp32", "float32", "float32", bits=32),
    "fp16": WeightFormat("fp16", "float16", "float16"),
    "bf16": WeightFormat("bf16", "bfloat16", "bfloat16"),
    "fp8": WeightFormat("fp8", "fp8 e4m3, one scale per tensor", kind="fp8", bits=8),
    "fp8-block": WeightFormat("fp8-block", "fp8 e4m3, 128x128 block scales", kind="fp8", bits=8, block=(128, 128)),
    "bnb-int8": WeightFormat("bnb-int8", "bitsandbytes LLM.int8", kind="bnb", bits=8, variant="int8"),
    "bnb-nf4": WeightFormat("bnb-nf4", "bitsandbytes 4-bit nf4", kind="bnb", bits=4, variant="nf4"),
    "bnb-nf4-dq": WeightFormat("bnb-nf4-dq", "bitsandbytes 4-bit nf4, double quant", kind="bnb", bits=4,
                               variant="nf4", double_quant=True),
    "bnb-fp4": WeightFormat("bnb-fp4", "bitsandbytes 4-bit fp4", kind="bnb", bits=4, variant="fp4"),
    "bnb-fp4-dq": WeightFormat("bnb-fp4-dq", "bitsandbytes 4-bit fp4, double quant", kind="bnb", bits=4,
                               variant="fp4", double_quant=True),
}

#: Named in :func:`list_formats` beside :data:`FORMATS`; any other valid bits/group combination and any
#: file type of :data:`GGUF_FILE_TYPES` is accepted by :func:`weight_format` too.
_LISTED_PARSED = (
    "gptq-4bit-g128", "gptq-8bit-g128", "gptq-3bit-g128", "gptq-2bit-g128", "gptq-4bit-g-1",
    "awq-4bit-g128",
    "gguf-Q8_0", "gguf-Q6_K", "gguf-Q5_K_M", "gguf-Q5_K_S", "gguf-Q4_K_M", "gguf-Q4_K_S", "gguf-Q4_0",
    "gguf-IQ4_XS", "gguf-Q3_K_M", "gguf-Q2_K", "gguf-F16",
)

_GPTQ_AWQ = re.compile(r"^(gptq|awq)-(\d+)bit-g(-1|\d+)$")
_FP8_BLOCK = re.compile(r"^fp8-block-(\d+)x(\d+)$")


def _parse(name: str) -> WeightFormat | None:
    m = _GPTQ_AWQ.match(name)
    if m:
        method, bits, group = m.group(1), int(m.group(2)), int(m.group(3))
        allowed = (2, 3, 4, 8) if method == "gptq" else (4,)
        if bits not in allowed:
            raise InputError(
                f"{method.upper()} stores {', '.join(map(str, allowed))}-bit weights, not {bits}-bit "
                f"(in weight format {name!r})"
            )
        if group == 0:
            raise InputError(f"group size must be positive or -1 (one group per column), got 0 in {name!r}")
        g = "per channel (group -1)" if group == -1 else f"group {group}"
        return WeightFormat(name, f"{method.upper()} {bits}-bit, {g}", "float16", kind=method, bits=bits,
                            group_size=group)
    m = _FP8_BLOCK.match(name)
    if m:
        bo, bi = int(m.group(1)), int(m.group(2))
        if bo <= 0 or bi <= 0:
            raise InputError(f"fp8 block sizes must be positive, got {name!r}")
        return WeightFormat(name, f"fp8 e4m3, {bo}x{bi} block scales", kind="fp8", bits=8, block=(bo, bi))
    if name[:5].lower() == "gguf-":
        ftype = name[5:].upper()
        if ftype in GGUF_FILE_TYPES:
            canon = f"gguf-{ftype}"
            return WeightFormat(canon, f"GGUF {ftype} (llama.cpp)", "float32", kind="gguf",
                                bits=_ggml_bits(GGUF_FILE_TYPES[ftype]), variant=ftype)
    return None


def _ggml_bits(ggml_type: str) -> int:
    blck, size = GGML_TYPES[ggml_type]
    return size * 8 // blck


def weight_format(name: str) -> WeightFormat:
    """Look a format up by name; unknown names raise InputError listing the valid ones.

    Besides the fixed names of :data:`FORMATS`, accepts ``gptq-<2|3|4|8>bit-g<group|-1>``,
    ``awq-4bit-g<group|-1>``, ``fp8-block-<out>x<in>`` and ``gguf-<file type>`` (case-insensitive file
    type, one of :data:`GGUF_FILE_TYPES`).
    """
    if not isinstance(name, str):
        raise InputError(f"weight format must be a name such as 'bf16', got {type(name).__name__}")
    fmt = FORMATS.get(name) or FORMATS.get(name.lower())
    if fmt is None:
        fmt = _parse(name.strip())
    if fmt is None:
        raise InputError(
            f"unknown weight format {name!r}; expected one of: {', '.join(FORMATS)}, "
            "gptq-<2|3|4|8>bit-g<group or -1> (e.g. gptq-4bit-g128), awq-4bit-g<group> (e.g. awq-4bit-g128), "
            f"or gguf-<type> with type one of {', '.join(GGUF_FILE_TYPES)}"
        )
    return fmt


def list_formats() -> list[tuple[str, str]]:
    """(name, label) of the formats offered in menus, in a sensible order."""
    out = [(f.name, f.label) for f in FORMATS.values()]
    out += [(n, weight_format(n).label) for n in _LISTED_PARSED]
    return out


def resolve_format(spec: ModelSpec, name: str) -> WeightFormat:
    """``auto`` means the checkpoint's own quantization, else its declared dtype."""
    if name == "auto":
        q = spec.quantization
        if q is not None:
            fmt = weight_format(q.default_format())
            if fmt.kind == "fp8" and q.block_size and q.block_size != (128, 128):
                fmt = weight_format(f"fp8-block-{q.block_size[0]}x{q.block_size[1]}")
            return fmt
        return weight_format({"float32": "fp32", "float16": "fp16"}.get(spec.torch_dtype, "bf16"))
    return weight_format(name)


# ---------------------------------------------------------------------------------------------------
# Bytes per tensor


def _out_in(t: TensorInfo, conv1d: bool) -> tuple[int, int]:
    """(out_features, in_features) of a 2-D Linear weight; GPT-2's Conv1D stores (in, out)."""
    a, b = t.shape[-2], t.shape[-1]
    return (b, a) if conv1d else (a, b)


def _plain(t: TensorInfo, fmt: WeightFormat) -> TensorBytes:
    return TensorBytes(t.numel_each * DTYPE_BYTES[fmt.compute_dtype])


def _bnb_linear(n: int, out: int, fmt: WeightFormat) -> TensorBytes:
    if fmt.variant == "int8":
        return TensorBytes(n, out * 4)  # int8 weight + SCB (fp32 per output row)
    blocks = ceil(n / BNB_4BIT_BLOCK)
    if fmt.double_quant:
        qs = (blocks  # uint8 absmax
              + ceil(blocks / BNB_NESTED_BLOCK) * 4  # nested absmax, fp32
              + BNB_NESTED_CODE_BYTES + BNB_OFFSET_BYTES + BNB_4BIT_CODE_BYTES)
    else:
        qs = blocks * 4 + BNB_4BIT_CODE_BYTES
    return TensorBytes((n + 1) // 2, qs)


def _fp8_scales(out: int, inp: int, block: tuple[int, int] | None, min_rows: int = 1) -> int:
    if block is None:
        return max(1, min_rows) * 4
    return max(ceil(out / block[0]), min_rows) * ceil(inp / block[1]) * 4


def _gptq_linear(out: int, inp: int, bits: int, group: int) -> TensorBytes:
    g = inp if group == -1 else group
    groups = ceil(inp / g)
    qweight = ceil(inp / 32) * bits * out * 4
    qzeros = groups * ceil(out / 32) * bits * 4
    scales = groups * out * 2
    g_idx = inp * 4
    return TensorBytes(qweight, qzeros + scales + g_idx)


def _awq_linear(out: int, inp: int, bits: int, group: int) -> TensorBytes:
    g = inp if group == -1 else group
    groups = ceil(inp / g)
    pack = 32 // bits
    qweight = inp * ceil(out / pack) * 4
    qzeros = groups * ceil(out / pack) * 4
    scales = groups * out * 2
    return TensorBytes(qweight, qzeros + scales)


def _is_fused_gate_up(t: TensorInfo) -> bool:
    return "gate_up" in t.name


def ggml_type_bytes(ggml_type: str, rows: int, cols: int) -> int:
    """Bytes of a ``rows x cols`` tensor of ``ggml_type`` (cols = ne[0], the row length)."""
    blck, size = GGML_TYPES[ggml_type]
    if cols % blck:
        raise InputError(f"a row of {cols} values cannot be stored as {ggml_type} (blocks of {blck})")
    return rows * (cols // blck) * size


def _gguf_rows_cols(t: TensorInfo, conv1d: bool) -> tuple[int, int]:
    """(rows, ne[0]) as llama.cpp sees the tensor; convert_hf_to_gguf transposes GPT-2's Conv1D."""
    if len(t.shape) >= 2:
        out, inp = _out_in(t, conv1d and t.role == "linear")
        lead = 1
        for s in t.shape[:-2]:
            lead *= s
        return lead * out, inp
    return 1, t.numel_each


#: Families whose transformers modules are ``nn.Linear`` subclasses (Falcon's ``FalconLinear``).
#: transformers' bitsandbytes and FP8 integrations replace only ``type(module) is nn.Linear`` (and
#: ``Conv1D`` for bitsandbytes), so these models load from them entirely unquantized (transformers 5.23).
LINEAR_SUBCLASS_FAMILIES = frozenset({"falcon"})


def tensor_bytes(t: TensorInfo, fmt: WeightFormat, *, conv1d: bool = False,
                 ggml_type: str | None = None, linear_subclass: bool = False) -> TensorBytes:
    """Exact bytes of one copy of tensor ``t`` stored in ``fmt``.

    ``conv1d``: the model stores Linear weights as GPT-2 ``Conv1D`` (in x out); pass ``spec.conv1d``.
    ``linear_subclass``: the model's Linear layers subclass ``nn.Linear`` (see
    :data:`LINEAR_SUBCLASS_FAMILIES`); bitsandbytes and FP8 then leave them unquantized.
    ``ggml_type``: for GGUF formats, the type llama.cpp picked for this copy (see :func:`gguf_types`);
    without it, the file type's default type (with llama.cpp's shape fallbacks) is used.
    """
    role = t.role
    if fmt.kind == "float":
        return _plain(t, fmt)
    if fmt.kind == "gguf":
        if ggml_type is None:
            ggml_type = _gguf_default_type(t, fmt, conv1d)
        rows, cols = _gguf_rows_cols(t, conv1d)
        return TensorBytes(ggml_type_bytes(ggml_type, rows, cols))
    if linear_subclass and fmt.kind in ("bnb", "fp8"):
        return _plain(t, fmt)
    if fmt.kind == "bnb":
        if role != "linear":  # bnb replaces only nn.Linear / Conv1D; 3-D experts are nn.Parameter
            return _plain(t, fmt)
        out, _ = _out_in(t, conv1d)
        return _bnb_linear(t.numel_each, out, fmt)
    if fmt.kind == "fp8":
        if role == "linear" and not conv1d:
            out, inp = _out_in(t, False)
            return TensorBytes(t.numel_each, _fp8_scales(out, inp, fmt.block))
        if role == "expert":
            e, out, inp = t.shape[0], t.shape[-2], t.shape[-1]
            min_rows = 2 if _is_fused_gate_up(t) else 1
            return TensorBytes(t.numel_each, e * _fp8_scales(out, inp, fmt.block, min_rows))
        return _plain(t, fmt)
    if fmt.kind in ("gptq", "awq"):
        per_linear = _gptq_linear if fmt.kind == "gptq" else _awq_linear
        if role == "linear":
            out, inp = _out_in(t, conv1d)
            return per_linear(out, inp, fmt.bits, fmt.group_size)
        if role == "expert":
            # checkpoints hold one Linear per expert and projection; transformers 5.x fuses gate and up
            # into one (E, 2I, h) parameter, which is two Linears (I, h) on disk
            e, out, inp = t.shape[0], t.shape[-2], t.shape[-1]
            if _is_fused_gate_up(t) and out % 2 == 0:
                return per_linear(out // 2, inp, fmt.bits, fmt.group_size) * (2 * e)
            return per_linear(out, inp, fmt.bits, fmt.group_size) * e
        return _plain(t, fmt)
    raise InputError(f"weight format {fmt.name!r} has an unknown kind {fmt.kind!r}")


# ---------------------------------------------------------------------------------------------------
# GGUF: llama.cpp's per-tensor type choice (src/llama-quant.cpp, llama_tensor_get_type)


def _gguf_name(t: TensorInfo, layer: int | None) -> str:
    base = t.gguf if "." in t.gguf else f"{t.gguf}.weight"
    return base if layer is None else f"blk.{layer}.{base}"


def _gguf_category(name: str) -> str:
    """tensor_get_category: broad categories by substring, in llama.cpp's order."""
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    for key, cat in (("attn_qkv.weight", "attn_qkv"), ("attn_kv_b.weight", "attn_kv_b"),
                     ("attn_v.weight", "attn_v"), ("attn_k.weight", "attn_k"), ("attn_q.weight", "attn_q"),
                     ("attn_output.weight", "attn_output"), ("ffn_up", "ffn_up"), ("ffn_gate", "ffn_gate"),
                     ("ffn_down", "ffn_down")):
        if key in name:
            return cat
    return "other"


def _gguf_quantizable(t: TensorInfo, name: str) -> bool:
    """tensor_allows_quantization: 2-D/3-D weights except norms, the MoE router, position embeddings."""
    # role "other" (Mamba A_log/D/conv1d, GPT-OSS sinks): llama.cpp stores ssm_a/ssm_d without a ".weight"
    # suffix and skips ssm_conv1d.weight explicitly, so none of them is quantized
    if len(t.shape) < 2 or t.role in ("norm", "bias", "router", "other"):
        return False
    return (name.endswith("weight") and "_norm.weight" not in name and "ffn_gate_inp.weight" not in name
            and name not in ("position_embd.weight", "token_types.weight"))


_FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
             "IQ4_XS": "IQ4_NL"}


def _gguf_fallback(ggml_type: str, cols: int, name: str) -> str:
    """tensor_type_fallback: a row length not divisible by the block size takes a 32-block type."""
    blck = GGML_TYPES[ggml_type][0]
    if cols % blck == 0:
        return ggml_type
    fb = _FALLBACK.get(ggml_type)
    if fb is None:
        raise InputError(
            f"llama.cpp cannot store {name} as {ggml_type}: its rows of {cols} values are not a multiple "
            f"of {blck} and {ggml_type} has no fallback type"
        )
    return fb if cols % GGML_TYPES[fb][0] == 0 else "F16"


def _gguf_default_type(t: TensorInfo, fmt: WeightFormat, conv1d: bool) -> str:
    name = _gguf_name(t, t.layers[0] if t.layers else None)
    if not _gguf_quantizable(t, name):
        return "F32"
    default = GGUF_FILE_TYPES[fmt.variant]
    if default in ("F32", "F16", "BF16"):
        return default
    return _gguf_fallback(default, _gguf_rows_cols(t, conv1d)[1], name)


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


@lru_cache(maxsize=256)
def gguf_types(spec: ModelSpec, fmt: WeightFormat) -> tuple[tuple[TensorInfo, int | None, str], ...]:
    """(tensor, layer or None, ggml type) for every stored copy, as llama-quantize assigns them.

    Follows ``llama_tensor_get_type`` / ``llama_tensor_get_type_impl`` / ``tensor_type_fallback`` of
    ggml-org/llama.cpp ``src/llama-quant.cpp`` (master, commit 007dbbf3, 2026) without an importance
    matrix and without user overrides. Tensors are visited in llama.cpp's order (by layer, then name) so
    that the attn_v counter matches.
    """
    if fmt.kind != "gguf":
        raise InputError(f"{fmt.name!r} is not a GGUF format")
    ftype = fmt.variant
    default = GGUF_FILE_TYPES[ftype]
    quantized = default not in ("F32", "F16", "BF16")
    conv1d = spec.conv1d
    n_layer = spec.num_layers
    n_expert = spec.moe.num_experts if spec.moe is not None else 0
    n_gqa = spec.num_heads // spec.num_kv_heads
    falcon = spec.family == "falcon"
    # llama.cpp calls an 80-layer llama with grouped-query attention LLM_TYPE_70B (llama-model.cpp)
    type_70b = spec.family == "llama" and n_layer == 80 and spec.num_heads != spec.num_kv_heads
    all_tensors = tensors(spec)
    tied = not any(_gguf_name(t, None) == "output.weight" for t in all_tensors)

    copies: list[tuple[TensorInfo, int | None, str]] = []
    for t in all_tensors:
        if t.layers:
            copies.extend((t, i, _gguf_name(t, i)) for i in t.layers)
        else:
            copies.append((t, None, _gguf_name(t, None)))
    # llama_model_loader's weights_map order: non-layer tensors by name, blk.N by layer number then name
    copies.sort(key=lambda c: (-1 if c[1] is None else c[1], c[2]))
    n_attention_wv = sum(1 for _, _, n in copies if _gguf_category(n) in ("attn_v", "attn_qkv", "attn_kv_b"))

    i_attention_wv = 0
    out: list[tuple[TensorInfo, int | None, str]] = []
    for t, layer, name in copies:
        if not _gguf_quantizable(t, name):
            out.append((t, layer, "F32"))
            continue
        new = default
        if quantized:
            cat = _gguf_category(name)
            cols = _gguf_rows_cols(t, conv1d)[1]
            i_layer = layer if layer is not None else 0
            if cat == "output" or (tied and cat == "token_embd"):
                if falcon or cols % GGML_TYPES[new][0]:
                    new = "Q8_0"
                elif new != "Q8_0":
                    new = "Q6_K"
            elif cat == "token_embd":
                pass
            elif cat in ("attn_v", "attn_qkv", "attn_kv_b"):
                i = i_attention_wv
                if ftype == "Q2_K":
                    new = "Q4_K" if n_gqa >= 4 else "Q3_K"
                elif ftype == "Q3_K_M":
                    new = "Q5_K" if i < 2 else "Q4_K"
                elif ftype == "Q3_K_L":
                    new = "Q5_K"
                elif ftype in ("IQ4_NL", "IQ4_XS") and n_gqa >= 4:
                    new = "Q5_K"
                elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n_attention_wv):
                    new = "Q6_K"
                elif ftype == "Q4_K_S" and i < 4:
                    new = "Q5_K"
                if type_70b and new in ("Q3_K", "Q4_K"):
                    new = "Q5_K"
                if n_expert == 8:
                    new = "Q8_0"
                i_attention_wv += 1
            elif cat == "attn_k":
                if n_expert == 8:
                    new = "Q8_0"
            elif cat == "ffn_down":
                n = n_layer
                if ftype == "Q2_K":
                    new = "Q3_K"
                elif ftype == "Q3_K_M":
                    new = ("Q5_K" if i_layer < n // 16
                           else "Q4_K" if (not falcon or _use_more_bits(i_layer, n)) else "Q3_K")
                elif ftype == "Q3_K_L":
                    new = "Q4_K" if falcon else "Q5_K"
                elif ftype == "Q4_K_M":
                    if falcon:
                        new = ("Q6_K" if i_layer < n // 16
                               else "Q5_K" if _use_more_bits(i_layer, n) else "Q4_K")
                    elif _use_more_bits(i_layer, n):
                        new = "Q6_K"
                elif i_layer < n // 8 and ftype in ("IQ4_NL", "IQ4_XS"):
                    new = "Q5_K"
                elif ftype == "Q5_K_M" and _use_more_bits(i_layer, n):
                    new = "Q6_K"
                elif ftype == "Q4_K_S" and not falcon and i_layer < n // 8:
                    new = "Q5_K"
            elif cat == "attn_output":
                if not falcon:
                    if n_expert == 8:
                        if ftype in ("Q2_K", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ4_XS"):
                            new = "Q5_K"
                    elif ftype == "Q2_K":
                        new = "Q3_K"
                    elif ftype == "Q3_K_M":
                        new = "Q4_K"
                    elif ftype == "Q3_K_L":
                        new = "Q5_K"
                elif ftype == "Q3_K_L":
                    new = "Q4_K"
            new = _gguf_fallback(new, cols, name)
        out.append((t, layer, new))
    return tuple(out)


# ---------------------------------------------------------------------------------------------------
# Components


@lru_cache(maxsize=1024)
def weight_components(spec: ModelSpec, fmt: WeightFormat) -> tuple[Component, ...]:
    """Bytes per ``weights/<component>``, plus ``weights/quant_state`` for quantized formats.

    Cached: specs and formats are frozen, and sweeps ask for the same pair many times."""
    data: dict[str, int] = {t.component: 0 for t in tensors(spec)}  # model order
    qstate = 0
    if fmt.kind == "gguf":
        for t, _layer, gtype in gguf_types(spec, fmt):
            b = tensor_bytes(t, fmt, conv1d=spec.conv1d, ggml_type=gtype)
            data[t.component] = data.get(t.component, 0) + b.data
    else:
        subclass = spec.family in LINEAR_SUBCLASS_FAMILIES
        for t in tensors(spec):
            b = tensor_bytes(t, fmt, conv1d=spec.conv1d, linear_subclass=subclass)
            data[t.component] = data.get(t.component, 0) + b.data * t.count
            qstate += b.quant_state * t.count
    comps = [Component(f"weights/{k}", v, f"{fmt.label} tensors") for k, v in data.items()]
    if qstate:
        comps.append(Component("weights/quant_state", qstate, _QSTATE_FORMULA.get(fmt.kind, "quantization state")))
    return tuple(comps)


_QSTATE_FORMULA = {
    "fp8": "fp32 weight_scale_inv per tensor or per block",
    "bnb": "bitsandbytes SCB / absmax / quantization maps",
    "gptq": "GPTQ qzeros, fp16 scales and g_idx",
    "awq": "AWQ qzeros and fp16 scales",
}


def format_notes(spec: ModelSpec, fmt: WeightFormat) -> tuple[str, ...]:
    """Plain-language caveats of storing ``spec`` in ``fmt``, for a breakdown's assumptions."""
    notes: list[str] = []
    if fmt.kind in ("bnb", "fp8") and spec.family in LINEAR_SUBCLASS_FAMILIES:
        notes.append(f"{spec.family}'s Linear layers subclass nn.Linear, which transformers' {fmt.kind} "
                     "integration does not replace: weights stay unquantized")
    if fmt.kind == "bnb" and any(t.role == "expert" for t in tensors(spec)):
        notes.append("bitsandbytes quantizes nn.Linear only: transformers 5.x fused MoE expert weights "
                     f"stay in {fmt.compute_dtype}")
    if fmt.kind == "fp8" and spec.conv1d:
        notes.append("GPT-2 Conv1D layers are not nn.Linear: transformers' FP8 integration leaves them unquantized")
    if fmt.kind in ("gptq", "awq"):
        notes.append(f"{fmt.kind.upper()} checkpoint layout (qweight, qzeros, fp16 scales"
                     f"{', g_idx' if fmt.kind == 'gptq' else ''}); embeddings, norms and lm_head in float16")
    if fmt.kind == "gguf":
        notes.append("GGUF tensor types per tensor as llama-quantize assigns them without an importance matrix; "
                     "tensor data only (the file header adds a few MB)")
    return tuple(notes)


def weight_bytes(spec: ModelSpec, fmt: WeightFormat) -> int:
    """Total bytes of all weights and their quantization state."""
    return sum(c.bytes for c in weight_components(spec, fmt))
