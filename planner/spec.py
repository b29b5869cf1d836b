"""The one parsing boundary: Hugging Face ``config.json`` -> frozen :class:`ModelSpec`.

This module is the only code in Headroom that knows Hugging Face field names, their aliases and the
defaults each ``model_type`` applies. Past :func:`parse_config`, code sees typed, validated, hashable
values; no raw ``dict`` travels deeper.

Where a branch exists because one model family needs it, a short comment names the family.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from planner.errors import ConfigError

#: Largest config.json we accept (bytes). Real configs are a few KiB; 1 MiB leaves room for
#: multimodal configs with long token maps while bounding what an upload or link can make us parse.
MAX_CONFIG_BYTES = 1 << 20

#: Upper bounds that no real model exceeds; a value above them is almost certainly a typo or an attack.
_MAX_DIM = 1 << 20  # hidden / intermediate / head sizes
_MAX_LAYERS = 4096
_MAX_VOCAB = 1 << 24
_MAX_HEADS = 1 << 14
_MAX_EXPERTS = 1 << 14
_MAX_POSITIONS = 1 << 27

FULL = "full_attention"
SLIDING = "sliding_attention"
#: layer kinds a ModelSpec may carry in ``layer_types``
LAYER_KINDS = (FULL, SLIDING, "mla", "mamba")


@dataclass(frozen=True)
class MLASpec:
    """DeepSeek-V2/V3 multi-head latent attention dimensions (per layer)."""

    q_lora_rank: int | None  # None: q_proj is a plain Linear (DeepSeek-V2-Lite)
    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int

    @property
    def qk_head_dim(self) -> int:
        return self.qk_rope_head_dim + self.qk_nope_head_dim

    @property
    def cached_per_token(self) -> int:
        """Values cached per token per layer: the compressed latent plus the shared rope key."""
        return self.kv_lora_rank + self.qk_rope_head_dim


@dataclass(frozen=True)
class MoESpec:
    """Mixture-of-experts layout. Which layers are MoE is in ``ModelSpec.mlp_types``."""

    num_experts: int
    experts_per_token: int
    expert_intermediate_size: int
    shared_intermediate_size: int = 0  # total width of always-on shared experts (0: none)
    shared_expert_gate: bool = False  # Qwen2-MoE: a sigmoid gate Linear(h, 1) on the shared expert
    router_bias: bool = False  # DeepSeek-V3: e_score_correction_bias, one float per expert


@dataclass(frozen=True)
class QuantSpec:
    """The ``quantization_config`` a checkpoint ships with, reduced to what sizing needs."""

    method: str  # "fp8", "gptq", "awq", "bitsandbytes"
    bits: int = 16
    group_size: int = -1
    block_size: tuple[int, int] | None = None  # fp8 block scales, e.g. (128, 128)
    desc_act: bool = False
    bnb_4bit_quant_type: str | None = None
    bnb_4bit_use_double_quant: bool = False

    def default_format(self) -> str:
        """The planner weight-format name this quantization_config corresponds to."""
        if self.method == "fp8":
            return "fp8-block" if self.block_size else "fp8"
        if self.method == "gptq":
            return f"gptq-{self.bits}bit-g{self.group_size}"
        if self.method == "awq":
            return f"awq-{self.bits}bit-g{self.group_size}"
        if self.method == "bitsandbytes":
            if self.bits == 8:
                return "bnb-int8"
            base = f"bnb-{self.bnb_4bit_quant_type or 'nf4'}"
            return base + ("-dq" if self.bnb_4bit_use_double_quant else "")
        raise ConfigError(f"unsupported quantization method {self.method!r}", "quantization_config")


@dataclass(frozen=True)
class ModelSpec:
    """Everything the planner needs to know about a model's architecture.

    Sizes are counts (elements, tokens, heads), never bytes. ``layer_types`` and ``mlp_types`` have
    one entry per decoder layer. Architectural switches (biases, norms, fusion) are explicit booleans so
    that :mod:`planner.params` is one generic builder and this module alone knows each family's rules.
    """

    model_type: str  # as in config.json ("llama", "qwen2", "gemma3_text", ...)
    family: str  # the planner's builder key; equals model_type except for aliases
    hidden_size: int
    num_layers: int
    vocab_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    layer_types: tuple[str, ...]  # per layer: "full_attention", "sliding_attention", "mla", "mamba"
    mlp_types: tuple[str, ...]  # per layer: "dense" or "moe"
    sliding_window: int | None = None
    max_position_embeddings: int | None = None
    tie_word_embeddings: bool = False
    torch_dtype: str = "bfloat16"  # the checkpoint's declared dtype ("auto" weights use it)
    # --- architectural switches (see planner.params for how each becomes tensors)
    qkv_bias: bool = False  # Qwen2 always; Llama/Mistral via attention_bias; GPT-2/NeoX/Falcon via bias
    o_bias: bool = False
    mlp_bias: bool = False
    mlp_gated: bool = True  # SwiGLU/GeGLU (gate, up, down) vs classic fc_in/fc_out (GPT-2, NeoX, Falcon)
    fused_qkv: bool = False  # Phi-3, GPT-2, GPT-NeoX, Falcon: one qkv Linear
    fused_gate_up: bool = False  # Phi-3: one gate_up Linear
    qk_norm: bool = False  # Qwen3, Gemma3, OLMo2: per-head RMSNorm on q and k (d each)
    norm_bias: bool = False  # LayerNorm (weight + bias) instead of RMSNorm (weight only)
    norms_per_layer: int = 2  # Gemma2/3: 4; Falcon-7B parallel attention: 1
    learned_positions: int = 0  # GPT-2: wpe rows (n_positions); 0 for rotary models
    lm_head_bias: bool = False
    conv1d: bool = False  # GPT-2 stores Linear weights as Conv1D (in x out)
    mla: MLASpec | None = None
    moe: MoESpec | None = None
    quantization: QuantSpec | None = None
    # --- provenance
    name: str = ""
    approximate: bool = False  # parsed as a llama-like approximation of an unsupported model_type
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for fname in ("hidden_size", "num_layers", "vocab_size", "num_heads", "num_kv_heads", "head_dim"):
            v = getattr(self, fname)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"must be a positive integer, got {v!r}", fname)
        if len(self.layer_types) != self.num_layers or len(self.mlp_types) != self.num_layers:
            raise ConfigError(
                f"needs one entry per layer ({self.num_layers}), got {len(self.layer_types)}",
                "layer_types",
            )

    # Convenience views -------------------------------------------------------------------------
    @property
    def n_sliding_layers(self) -> int:
        return sum(1 for t in self.layer_types if t == SLIDING)

    @property
    def is_moe(self) -> bool:
        return self.moe is not None


# ---------------------------------------------------------------------------------------------------
# Reading and validating raw values


def load_config_text(text: str | bytes, *, source: str = "config.json") -> dict[str, Any]:
    """Parse config.json text into a dict, with a clear error for anything that is not a JSON object."""
    if isinstance(text, bytes):
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{source} is {len(text):,} bytes; a model config is at most {MAX_CONFIG_BYTES:,} bytes"
            )
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{source} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source} is {len(text):,} characters; a model config is at most {MAX_CONFIG_BYTES:,}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{source} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise ConfigError(f"{source} is nested too deeply to be a model config") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a JSON object, got {type(data).__name__}")
    return data


class _Reader:
    """Typed access to a config dict; every failure is a ConfigError naming the field."""

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = cfg

    def has(self, *names: str) -> bool:
        return any(self.cfg.get(n) is not None for n in names)

    def raw(self, *names: str) -> Any:
        for n in names:
            if self.cfg.get(n) is not None:
                return self.cfg[n]
        return None

    def int(self, *names: str, default: int | None = None, lo: int = 1, hi: int = _MAX_DIM) -> int:
        value = self.raw(*names)
        name = next((n for n in names if self.cfg.get(n) is not None), names[0])
        if value is None:
            if default is None:
                alias = f" (or {', '.join(names[1:])})" if len(names) > 1 else ""
                raise ConfigError(f"is required{alias} and missing", names[0])
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"must be an integer, got {type(value).__name__} {value!r}", name)
        if isinstance(value, float):
            if not math.isfinite(value) or value != int(value):
                raise ConfigError(f"must be an integer, got {value!r}", name)
            value = int(value)
        if value < lo or value > hi:
            raise ConfigError(f"must be between {lo:,} and {hi:,}, got {value:,}", name)
        return value

    def opt_int(self, *names: str, lo: int = 1, hi: int = _MAX_DIM) -> int | None:
        return self.int(*names, lo=lo, hi=hi) if self.has(*names) else None

    def bool(self, name: str, default: bool) -> bool:
        value = self.cfg.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"must be true or false, got {value!r}", name)
        return value

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.cfg.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise ConfigError(f"must be a string, got {type(value).__name__}", name)
        return value

    def str_list(self, name: str, length: int, allowed: tuple[str, ...]) -> tuple[str, ...] | None:
        value = self.cfg.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError("must be a list of strings", name)
        if len(value) != length:
            raise ConfigError(f"has {len(value)} entries but the model has {length} layers", name)
        bad = sorted({v for v in value if v not in allowed})
        if bad:
            raise ConfigError(f"has unknown entries {bad}; expected {list(allowed)}", name)
        return tuple(value)


def _dtype(r: _Reader) -> str:
    value = r.raw("dtype", "torch_dtype")
    if value is None:
        return "bfloat16"
    if not isinstance(value, str):
        raise ConfigError("must be a dtype name such as 'bfloat16'", "torch_dtype")
    return value.removeprefix("torch.")


def _quantization(r: _Reader) -> QuantSpec | None:
    q = r.cfg.get("quantization_config")
    if q is None:
        return None
    if not isinstance(q, dict):
        raise ConfigError("must be an object", "quantization_config")
    qr = _Reader(q)
    method = qr.str("quant_method")
    if method is None:
        if qr.bool("load_in_4bit", False) or qr.bool("load_in_8bit", False):
            method = "bitsandbytes"
        else:
            raise ConfigError("has no quant_method", "quantization_config.quant_method")
    method = method.lower()
    if method == "fp8":
        block = q.get("weight_block_size")
        if block is not None:
            if not (isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and b > 0 for b in block)):
                raise ConfigError("must be two positive integers", "quantization_config.weight_block_size")
            return QuantSpec("fp8", bits=8, block_size=(block[0], block[1]))
        return QuantSpec("fp8", bits=8)
    if method in ("gptq", "awq"):
        bits = qr.int("bits", "w_bit", default=4, lo=2, hi=8)
        group = q.get("group_size", q.get("q_group_size", 128))
        if not isinstance(group, int) or isinstance(group, bool) or (group != -1 and group <= 0):
            raise ConfigError("must be a positive integer or -1", "quantization_config.group_size")
        return QuantSpec(method, bits=bits, group_size=group, desc_act=qr.bool("desc_act", False))
    if method == "bitsandbytes":
        if qr.bool("load_in_8bit", False):
            return QuantSpec("bitsandbytes", bits=8)
        return QuantSpec(
            "bitsandbytes",
            bits=4,
            bnb_4bit_quant_type=qr.str("bnb_4bit_quant_type", "fp4"),
            bnb_4bit_use_double_quant=qr.bool("bnb_4bit_use_double_quant", False),
        )
    raise ConfigError(
        f"method {method!r} is not supported; expected one of fp8, gptq, awq, bitsandbytes",
        "quantization_config.quant_method",
    )


# ---------------------------------------------------------------------------------------------------
# Families


def _llama_like(r: _Reader, model_type: str, **switches: Any) -> ModelSpec:
    """Decoder with separate q/k/v/o projections and a gated MLP (Llama, Mistral, Qwen2/3, Gemma...)."""
    h = r.int("hidden_size", "n_embd", "d_model")
    n_layers = r.int("num_hidden_layers", "n_layer", "num_layers", hi=_MAX_LAYERS)
    heads = r.int("num_attention_heads", "n_head", hi=_MAX_HEADS)
    kv = r.int("num_key_value_heads", default=heads, hi=_MAX_HEADS)
    if heads % kv:
        raise ConfigError(
            f"({kv}) must divide num_attention_heads ({heads})", "num_key_value_heads"
        )
    # Qwen3 and Gemma set head_dim independently of hidden_size.
    head_dim = r.int("head_dim", default=h // heads if h >= heads else 0 or 1)
    if not r.has("head_dim") and h % heads:
        raise ConfigError(f"hidden_size ({h}) is not divisible by num_attention_heads ({heads}) "
                          "and no head_dim is given", "num_attention_heads")
    inter = r.int("intermediate_size", "n_inner", "ffn_dim", default=switches.pop("default_intermediate", None))
    vocab = r.int("vocab_size", hi=_MAX_VOCAB)
    sliding_window = switches.pop("sliding_window", None)
    layer_types = switches.pop("layer_types", None) or (FULL,) * n_layers
    mlp_types = switches.pop("mlp_types", None) or ("dense",) * n_layers
    return ModelSpec(
        model_type=model_type,
        family=switches.pop("family", model_type),
        hidden_size=h,
        num_layers=n_layers,
        vocab_size=vocab,
        num_heads=heads,
        num_kv_heads=kv,
        head_dim=head_dim,
        intermediate_size=inter,
        layer_types=layer_types,
        mlp_types=mlp_types,
        sliding_window=sliding_window,
        max_position_embeddings=r.opt_int("max_position_embeddings", "n_positions", hi=_MAX_POSITIONS),
        tie_word_embeddings=r.bool("tie_word_embeddings", switches.pop("default_tie", False)),
        torch_dtype=_dtype(r),
        quantization=_quantization(r),
        name=r.str("_name_or_path", "") or "",
        **switches,
    )


def _parse_llama(r: _Reader, model_type: str) -> ModelSpec:
    bias = r.bool("attention_bias", False)
    return _llama_like(r, model_type, qkv_bias=bias, o_bias=bias, mlp_bias=r.bool("mlp_bias", False))


#: model_type -> parser. Extended by the families below; the keys are what ``supported_model_types`` lists.
_PARSERS: dict[str, Any] = {
    "llama": _parse_llama,
}


def supported_model_types() -> tuple[str, ...]:
    return tuple(sorted(_PARSERS))


def parse_config(config: Mapping[str, Any] | str | bytes, *, approximate: bool = False, name: str = "") -> ModelSpec:
    """Parse a Hugging Face config (dict, or JSON text) into a validated :class:`ModelSpec`.

    ``approximate=True`` plans an unsupported ``model_type`` as a llama-like decoder and marks the
    result ``approximate`` so every consumer can label it. Raises :class:`ConfigError` for anything else.
    """
    if isinstance(config, (str, bytes)):
        config = load_config_text(config)
    if not isinstance(config, Mapping):
        raise ConfigError(f"a model config must be a JSON object, got {type(config).__name__}")
    r = _Reader(config)
    model_type = r.str("model_type")
    if not model_type:
        raise ConfigError("is missing; it names the architecture (for example 'llama')", "model_type")
    parser = _PARSERS.get(model_type)
    if parser is None:
        if not approximate:
            raise ConfigError(
                f"{model_type!r} is not supported; supported: {', '.join(supported_model_types())}. "
                "Ask for a llama-like approximation (--approximate) to plan it anyway.",
                "model_type",
            )
        spec = _parse_llama(r, model_type)
        spec = _replace(spec, approximate=True, family="llama",
                        notes=spec.notes + (f"{model_type} planned as a llama-like approximation",))
    else:
        spec = parser(r, model_type)
    if name:
        spec = _replace(spec, name=name)
    return spec


def _replace(spec: ModelSpec, **changes: Any) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, **changes)
