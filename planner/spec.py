"""The one parsing boundary: Hugging Face ``config.json`` -> frozen :class:`ModelSpec`.

This module is the only code in Headroom that knows Hugging Face field names, their aliases and the
defaults each ``model_type`` applies. Past :func:`parse_config`, code sees typed, validated, hashable
values; no raw ``dict`` travels deeper.

Where a branch exists because one model family needs it, a short comment names the family.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from planner.errors import ConfigError
from planner.jsondoc import parse_json_document

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
    experts_per_token: int  # 0 only when the config leaves it unset (DeepSeek-V2 class default)
    expert_intermediate_size: int
    shared_intermediate_size: int = 0  # total width of always-on shared experts (0: none)
    shared_expert_gate: bool = False  # Qwen2-MoE: a sigmoid gate Linear(h, 1) on the shared expert
    router_bias: bool = False  # DeepSeek-V3: e_score_correction_bias, one float per expert (a buffer)
    router_linear_bias: bool = False  # GPT-OSS: the router's own bias parameter (E,)
    expert_bias: bool = False  # GPT-OSS: gate_up_proj_bias (E, 2I) and down_proj_bias (E, h)
    #: GPT-OSS stores fused experts as (E, in, out): gate_up (E, h, 2I), down (E, I, h); others (E, out, in)
    experts_in_out: bool = False


@dataclass(frozen=True)
class MambaSpec:
    """Mamba (selective state-space) mixer dimensions, for the ``"mamba"`` entries of ``layer_types``.

    Per mamba layer transformers caches a conv state (d_inner x conv_kernel) and an SSM state
    (d_inner x state_size) per sequence, independent of context length.
    """

    state_size: int  # d_state
    conv_kernel: int  # d_conv
    expand: int
    dt_rank: int
    conv_bias: bool = True
    proj_bias: bool = False
    inner_norms: bool = True  # Jamba: RMSNorms on dt, B and C

    def d_inner(self, hidden_size: int) -> int:
        return self.expand * hidden_size


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
    qk_norm_per_head: bool = True  # False: OLMo2 normalizes the whole q (H*d) and k (KV*d) projections
    qk_norm_width: int = 0  # per-head q/k norm width when it is not head_dim (Phi: hidden // heads)
    #: per-layer norm modules in transformers' order (``input_layernorm``, ``post_attention_layernorm``,
    #: ``ln_1`` ...). Empty: the generic ``input_layernorm`` / ``post_attention_layernorm`` / Gemma's four.
    norm_names: tuple[str, ...] = ()
    #: parameters outside the language model that the checkpoint also holds (Gemma 3's SigLIP vision tower
    #: and multimodal projector). Not part of ``planner.params.tensors``; reported in ``notes``.
    vision_parameters: int = 0
    mla: MLASpec | None = None
    moe: MoESpec | None = None
    mamba: MambaSpec | None = None  # Jamba: the mixer of the "mamba" layers
    attn_sinks: bool = False  # GPT-OSS: one learned attention-sink logit per head and layer
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
    data = parse_json_document(text, source=source, kind="a model config", limit=MAX_CONFIG_BYTES,
                               error=ConfigError)
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
            if not (isinstance(block, list) and len(block) == 2 and all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block)):
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
#
# Each parser mirrors one transformers 5.23 ``configuration_*.py`` (defaults, ``attribute_map`` aliases,
# ``__post_init__`` rules) and the matching ``modeling_*.py`` (which modules exist). Core dimensions
# (hidden size, layers, heads, vocabulary, MLP width) are required: a config without them is broken, and
# silently planning the library's 7B defaults would mislead. Secondary fields take the class defaults,
# exactly as transformers does.


def _explicit(r: _Reader, name: str, default: Any) -> Any:
    """The raw value when the key is present (even ``null``), else the class default.

    Needed where transformers distinguishes a missing key (class default) from an explicit ``null``
    (Mistral's ``sliding_window``, DeepSeek's ``q_lora_rank``).
    """
    return r.cfg[name] if name in r.cfg else default


def _check_int(value: Any, name: str, lo: int = 1, hi: int = _MAX_DIM) -> int:
    return _Reader({name: value}).int(name, lo=lo, hi=hi)


def _window(r: _Reader, default: int | None) -> int | None:
    """``sliding_window`` with the class default when absent; ``null`` (or 0) means no window."""
    value = _explicit(r, "sliding_window", default)
    if value is None or value == 0:
        return None
    return _check_int(value, "sliding_window", hi=_MAX_POSITIONS)


def _heads(r: _Reader, kv_default: int | None, *, hidden: tuple[str, ...] = ("hidden_size",),
           layers: tuple[str, ...] = ("num_hidden_layers",), heads_names: tuple[str, ...] = ("num_attention_heads",),
           kv_names: tuple[str, ...] = ("num_key_value_heads",), head_dim_default: int | None = None):
    """(hidden, layers, heads, kv_heads, head_dim, vocab) with the shared validation.

    ``kv_default``: the config class default for the KV-head field (``None``: equal to heads).
    ``head_dim_default``: the class default for ``head_dim`` (Qwen3 128, Gemma 256); ``None``: hidden // heads.
    """
    h = r.int(*hidden)
    n_layers = r.int(*layers, hi=_MAX_LAYERS)
    heads = r.int(*heads_names, hi=_MAX_HEADS)
    kv = r.int(*kv_names, default=heads if kv_default is None else kv_default, hi=_MAX_HEADS)
    if heads % kv:
        raise ConfigError(f"({kv}) must divide {heads_names[0]} ({heads})", kv_names[0])
    if r.has("head_dim"):
        head_dim = r.int("head_dim")
    elif head_dim_default is not None:
        head_dim = head_dim_default
    else:
        if h % heads:
            raise ConfigError(
                f"({heads}) must divide {hidden[0]} ({h}) when no head_dim is given", heads_names[0]
            )
        head_dim = h // heads
    vocab = r.int("vocab_size", hi=_MAX_VOCAB)
    return h, n_layers, heads, kv, head_dim, vocab


_LEGACY_LAYER_TYPES = {"attention": FULL}  # transformers' remap_legacy_layer_types


def _layer_types(r: _Reader, n_layers: int, computed: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``layer_types`` from the config when given (transformers' cache honours it), else ``computed``."""
    raw = r.cfg.get("layer_types")
    if isinstance(raw, list):
        raw = [_LEGACY_LAYER_TYPES.get(v, v) if isinstance(v, str) else v for v in raw]
        explicit = _Reader({"layer_types": raw}).str_list("layer_types", n_layers, (FULL, SLIDING))
    else:
        explicit = r.str_list("layer_types", n_layers, (FULL, SLIDING))
    return explicit if explicit is not None else tuple(computed)


def _window_for(layer_types: tuple[str, ...], window: int | None) -> int | None:
    """The window the sliding layers use (``None`` when no layer slides); a sliding layer needs one."""
    if SLIDING not in layer_types:
        return None
    if window is None:
        raise ConfigError("marks sliding-attention layers but no sliding_window is set", "layer_types")
    return window


def _tie(r: _Reader, default: bool) -> bool:
    return r.bool("tie_word_embeddings", default)


def _common(r: _Reader, name_field: str = "_name_or_path") -> dict[str, Any]:
    return {
        "torch_dtype": _dtype(r),
        "quantization": _quantization(r),
        "name": r.str(name_field, "") or "",
    }


def _max_pos(r: _Reader, *names: str, default: int | None = None) -> int | None:
    v = r.opt_int(*names, hi=_MAX_POSITIONS)
    return default if v is None else v


def _int_list(r: _Reader, name: str, n_layers: int) -> tuple[int, ...]:
    value = r.cfg.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ConfigError("must be a list of layer indices", name)
    bad = [v for v in value if not 0 <= v < n_layers]
    if bad:
        raise ConfigError(f"has layer indices {bad} outside 0..{n_layers - 1}", name)
    return tuple(value)


def _llama_family(r: _Reader, model_type: str, *, kv_default: int | None = None,
                  head_dim_default: int | None = None, tie_default: bool = False,
                  layer_types: Any = None, window: int | None = None, **switches: Any) -> ModelSpec:
    """Separate q/k/v/o projections and a gated MLP (Llama, Mistral, Qwen2/3, Gemma, Granite, OLMo2)."""
    h, n_layers, heads, kv, head_dim, vocab = _heads(r, kv_default, head_dim_default=head_dim_default)
    inter = r.int("intermediate_size")
    if callable(layer_types):
        layer_types = layer_types(n_layers)
    lt = _layer_types(r, n_layers, layer_types or (FULL,) * n_layers)
    return ModelSpec(
        model_type=model_type,
        family=switches.pop("family", model_type),
        hidden_size=h, num_layers=n_layers, vocab_size=vocab, num_heads=heads, num_kv_heads=kv,
        head_dim=head_dim, intermediate_size=inter,
        layer_types=lt,
        mlp_types=switches.pop("mlp_types", None) or ("dense",) * n_layers,
        sliding_window=_window_for(lt, window),
        max_position_embeddings=_max_pos(r, "max_position_embeddings"),
        tie_word_embeddings=_tie(r, tie_default),
        **_common(r),
        **switches,
    )


def _parse_llama(r: _Reader, model_type: str) -> ModelSpec:
    # Llama (and Granite: the same modules plus scalar multipliers that hold no parameters):
    # attention_bias adds biases to q, k, v and o; mlp_bias to gate, up and down.
    bias = r.bool("attention_bias", False)
    return _llama_family(r, model_type, qkv_bias=bias, o_bias=bias, mlp_bias=r.bool("mlp_bias", False))


def _parse_mistral(r: _Reader, model_type: str) -> ModelSpec:
    # Mistral: MistralConfig.sliding_window defaults to 4096 when the key is absent (v0.1); v0.2+ set it to
    # null. The attention applies it to every layer and the cache (no layer_types) slides every layer.
    window = _window(r, 4096)
    return _llama_family(r, model_type, kv_default=8, window=window,
                         layer_types=lambda n: (SLIDING if window else FULL,) * n)


def _qwen_window_rule(r: _Reader):
    # Qwen2/Qwen3: sliding only with use_sliding_window, and then only for layers >= max_window_layers.
    use = r.bool("use_sliding_window", False)
    window = _window(r, 4096) if use else None
    max_window_layers = r.int("max_window_layers", default=28, lo=0, hi=_MAX_LAYERS)
    return window, lambda n: [SLIDING if window is not None and i >= max_window_layers else FULL for i in range(n)]


def _parse_qwen2(r: _Reader, model_type: str) -> ModelSpec:
    # Qwen2: q/k/v always carry a bias, o_proj never; Qwen2Config.num_key_value_heads defaults to 32.
    window, rule = _qwen_window_rule(r)
    return _llama_family(r, model_type, kv_default=32, window=window, layer_types=rule, qkv_bias=True)


def _parse_qwen3(r: _Reader, model_type: str) -> ModelSpec:
    # Qwen3: head_dim is independent of hidden_size (class default 128); q_norm/k_norm of head_dim each.
    window, rule = _qwen_window_rule(r)
    bias = r.bool("attention_bias", False)
    return _llama_family(r, model_type, kv_default=32, head_dim_default=128, window=window, layer_types=rule,
                         qkv_bias=bias, o_bias=bias, qk_norm=True)


def _parse_gemma(r: _Reader, model_type: str) -> ModelSpec:
    # Gemma: head_dim 256 by default, 16 KV heads by default, tied embeddings.
    bias = r.bool("attention_bias", False)
    return _llama_family(r, model_type, kv_default=16, head_dim_default=256, tie_default=True,
                         qkv_bias=bias, o_bias=bias)


_GEMMA2_NORMS = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                 "post_feedforward_layernorm")


def _parse_gemma2(r: _Reader, model_type: str) -> ModelSpec:
    # Gemma2: four norms per layer; sliding and full layers alternate (even layers slide).
    bias = r.bool("attention_bias", False)
    return _llama_family(r, model_type, kv_default=4, head_dim_default=256, tie_default=True,
                         window=_window(r, 4096),
                         layer_types=lambda n: [SLIDING if (i + 1) % 2 else FULL for i in range(n)],
                         qkv_bias=bias, o_bias=bias, norms_per_layer=4, norm_names=_GEMMA2_NORMS)


#: Gemma3TextConfig defaults (transformers 5.23). Published Gemma 3 configs rely on them: their
#: text_config often omits num_attention_heads, head_dim or vocab_size.
_GEMMA3_TEXT_DEFAULTS = {
    "vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 131072,
    "sliding_window": 4096, "tie_word_embeddings": True,
}


def _parse_gemma3_text(r: _Reader, model_type: str) -> ModelSpec:
    # Gemma3: Gemma2's four norms plus q_norm/k_norm; five of six layers slide (sliding_window_pattern 6),
    # bidirectional attention widens the window to window // 2 + 1 (transformers' exclusive bound).
    window = _window(r, 4096)
    if window is not None and r.bool("use_bidirectional_attention", False):
        window = window // 2 + 1
    pattern = r.int("sliding_window_pattern", default=6, hi=_MAX_LAYERS)
    bias = r.bool("attention_bias", False)
    return _llama_family(r, model_type, kv_default=4, head_dim_default=256, tie_default=True, window=window,
                         layer_types=lambda n: [SLIDING if (i + 1) % pattern else FULL for i in range(n)],
                         qkv_bias=bias, o_bias=bias, qk_norm=True, norms_per_layer=4, norm_names=_GEMMA2_NORMS)


def _parse_gemma3(r: _Reader, model_type: str) -> ModelSpec:
    # Gemma3 multimodal (Gemma3ForConditionalGeneration): plan the language model from text_config,
    # filling Gemma3TextConfig defaults as transformers does. The SigLIP vision tower is not counted.
    text = r.cfg.get("text_config")
    if text is None:
        text = {}
    if not isinstance(text, dict):
        raise ConfigError("must be an object", "text_config")
    filled = [k for k in _GEMMA3_TEXT_DEFAULTS if text.get(k) is None and k != "sliding_window"]
    merged = {**{k: v for k, v in _GEMMA3_TEXT_DEFAULTS.items() if k != "sliding_window"}, **text}
    if "sliding_window" not in text:
        merged["sliding_window"] = _GEMMA3_TEXT_DEFAULTS["sliding_window"]
    merged.setdefault("model_type", "gemma3_text")
    try:
        spec = _parse_gemma3_text(_Reader(merged), "gemma3")
    except ConfigError as e:
        raise ConfigError(str(e).split(": ", 1)[-1], f"text_config.{e.field}" if e.field else "text_config") from None
    vision = _siglip_parameters(r.cfg.get("vision_config"), spec.hidden_size)
    if vision:
        notes = [f"Gemma 3 multimodal config: the language model is planned; the SigLIP vision tower and the "
                 f"multimodal projector ({vision:,} parameters) are not counted"]
    else:
        notes = ["Gemma 3 multimodal config: the language model is planned; the vision tower and the "
                 "multimodal projector are not counted (vision_config is not a SigLIP config)"]
    if filled:
        notes.append("text_config omits " + ", ".join(filled) + "; the Gemma3TextConfig defaults were used")
    # Gemma3ForConditionalGeneration ties lm_head by the top-level tie_word_embeddings (default true);
    # text_config's own flag is not consulted.
    return _replace(spec, family="gemma3_text", notes=spec.notes + tuple(notes), vision_parameters=vision,
                    tie_word_embeddings=_tie(r, True), **_common(r))


def _siglip_parameters(vision: Any, text_hidden: int) -> int:
    """Parameters of Gemma 3's SigLIP vision tower plus its multimodal projector (0: not a SigLIP config).

    Mirrors transformers' SiglipVisionModel (patch Conv2d, position embedding, encoder layers of two
    LayerNorms, q/k/v/out Linears with bias and an fc1/fc2 MLP, post LayerNorm, optional attention-pooling
    head) and Gemma3MultiModalProjector (a (vision, text) projection and one RMSNorm). Missing fields take
    SiglipVisionConfig's defaults, as transformers does.
    """
    if vision is None:
        vision = {}
    if not isinstance(vision, dict):
        raise ConfigError("must be an object", "vision_config")
    if vision.get("model_type", "siglip_vision_model") != "siglip_vision_model":
        return 0
    v = _Reader(vision)

    def get(name: str, default: int) -> int:
        try:
            return v.int(name, default=default)
        except ConfigError as e:
            raise ConfigError(str(e).split(": ", 1)[-1], f"vision_config.{name}") from None

    h, inter = get("hidden_size", 768), get("intermediate_size", 3072)
    layers, channels = get("num_hidden_layers", 12), get("num_channels", 3)
    image, patch = get("image_size", 224), get("patch_size", 16)
    try:
        use_head = v.bool("vision_use_head", True)
    except ConfigError as e:
        raise ConfigError(str(e).split(": ", 1)[-1], "vision_config.vision_use_head") from None
    linear = lambda i, o: i * o + o  # noqa: E731  (weight + bias)
    mlp = linear(h, inter) + linear(inter, h)
    n = h * channels * patch * patch + h + (image // patch) ** 2 * h  # patch Conv2d + bias, positions
    n += layers * (2 * 2 * h + 4 * linear(h, h) + mlp)  # encoder layers
    n += 2 * h  # post_layernorm
    if use_head:  # SiglipMultiheadAttentionPoolingHead: probe, MultiheadAttention, LayerNorm, MLP
        n += h + linear(h, 3 * h) + linear(h, h) + 2 * h + mlp
    return n + h * text_hidden + h  # Gemma3MultiModalProjector


def _parse_phi3(r: _Reader, model_type: str) -> ModelSpec:
    # Phi-3: q, k, v fused in qkv_proj and gate, up fused in gate_up_proj (separate modules elsewhere).
    # Phi3Config.sliding_window (e.g. 2047 for Phi-3-mini-4k) applies to every layer.
    window = _window(r, None)
    return _llama_family(r, model_type, window=window, layer_types=lambda n: (SLIDING if window else FULL,) * n,
                         fused_qkv=True, fused_gate_up=True)


def _parse_olmo2(r: _Reader, model_type: str) -> ModelSpec:
    # OLMo2: no input norm; post-attention and post-feed-forward norms; q_norm/k_norm over the whole
    # q (heads x head_dim) and k (kv_heads x head_dim) projections, not per head.
    bias = r.bool("attention_bias", False)
    return _llama_family(r, model_type, qkv_bias=bias, o_bias=bias, qk_norm=True, qk_norm_per_head=False,
                         norm_names=("post_attention_layernorm", "post_feedforward_layernorm"))


def _parse_starcoder2(r: _Reader, model_type: str) -> ModelSpec:
    # StarCoder2: LayerNorm with bias, a plain c_fc/c_proj MLP, use_bias on every Linear but lm_head,
    # tied embeddings; sliding_window (if set) applies to every layer.
    bias = r.bool("use_bias", True)
    window = _window(r, None)
    return _llama_family(r, model_type, kv_default=2, tie_default=True, window=window,
                         layer_types=lambda n: (SLIDING if window else FULL,) * n,
                         qkv_bias=bias, o_bias=bias, mlp_bias=bias, mlp_gated=False, norm_bias=True)


# --- mixture of experts --------------------------------------------------------------------------


def _experts(r: _Reader, names: tuple[str, ...], lo: int = 1) -> int:
    return r.int(*names, lo=lo, hi=_MAX_EXPERTS)


def _top_k(r: _Reader, n_experts: int, default: int | None) -> int:
    k = r.int("num_experts_per_tok", default=default, hi=_MAX_EXPERTS)
    if n_experts and k > n_experts:
        raise ConfigError(f"({k}) cannot exceed the number of experts ({n_experts})", "num_experts_per_tok")
    return k


def _parse_mixtral(r: _Reader, model_type: str) -> ModelSpec:
    # Mixtral: every layer is MoE; experts are fused 3-D parameters (E, 2I, h) and (E, h, I) in
    # transformers 5.x, the router a plain (E, h) parameter. attribute_map: num_experts -> num_local_experts.
    n_exp = _experts(r, ("num_local_experts", "num_experts"))
    inter = r.int("intermediate_size")
    moe = MoESpec(num_experts=n_exp, experts_per_token=_top_k(r, n_exp, 2), expert_intermediate_size=inter)
    window = _window(r, None)
    return _llama_family(r, model_type, kv_default=8, window=window,
                         layer_types=lambda n: (SLIDING if window else FULL,) * n,
                         mlp_types=("moe",) * r.int("num_hidden_layers", hi=_MAX_LAYERS), moe=moe)


def _qwen_moe_layers(r: _Reader, n_layers: int, n_experts: int) -> tuple[str, ...]:
    # Qwen2-MoE / Qwen3-MoE: MoE where (i + 1) % decoder_sparse_step == 0 and i not in mlp_only_layers.
    step = r.int("decoder_sparse_step", default=1, hi=_MAX_LAYERS)
    dense_only = set(_int_list(r, "mlp_only_layers", n_layers))
    return tuple("moe" if i not in dense_only and n_experts > 0 and (i + 1) % step == 0 else "dense"
                 for i in range(n_layers))


def _parse_qwen2_moe(r: _Reader, model_type: str) -> ModelSpec:
    # Qwen2-MoE (Qwen1.5-MoE, Qwen2-57B-A14B): routed experts plus one always-on shared expert with a
    # sigmoid gate Linear(h, 1); q/k/v bias from qkv_bias. Its sliding rule differs from Qwen2's:
    # with use_sliding_window, even layers below max_window_layers slide.
    n_layers = r.int("num_hidden_layers", hi=_MAX_LAYERS)
    n_exp = _experts(r, ("num_experts",), lo=0)
    mlp_types = _qwen_moe_layers(r, n_layers, n_exp)
    moe = None
    if "moe" in mlp_types:
        moe = MoESpec(num_experts=n_exp, experts_per_token=_top_k(r, n_exp, 4),
                      expert_intermediate_size=r.int("moe_intermediate_size"),
                      shared_intermediate_size=r.int("shared_expert_intermediate_size", lo=0),
                      shared_expert_gate=True)
    use = r.bool("use_sliding_window", False)
    window = _window(r, 4096) if use else None
    mwl = r.int("max_window_layers", default=28, lo=0, hi=_MAX_LAYERS)
    rule = lambda n: [SLIDING if (i + 1) % 2 and i < mwl and use else FULL for i in range(n)]  # noqa: E731
    return _llama_family(r, model_type, kv_default=16, window=window, layer_types=rule,
                         qkv_bias=r.bool("qkv_bias", True), mlp_types=mlp_types, moe=moe)


def _parse_qwen3_moe(r: _Reader, model_type: str) -> ModelSpec:
    # Qwen3-MoE (Qwen3-30B-A3B, 235B-A22B): Qwen3 attention (q/k norms), routed experts, no shared
    # expert. No layer_types field: with use_sliding_window every layer slides (cache rule).
    n_layers = r.int("num_hidden_layers", hi=_MAX_LAYERS)
    n_exp = _experts(r, ("num_experts", "num_local_experts"), lo=0)
    mlp_types = _qwen_moe_layers(r, n_layers, n_exp)
    moe = None
    if "moe" in mlp_types:
        moe = MoESpec(num_experts=n_exp, experts_per_token=_top_k(r, n_exp, 8),
                      expert_intermediate_size=r.int("moe_intermediate_size"))
    window = _window(r, 4096) if r.bool("use_sliding_window", False) else None
    bias = r.bool("attention_bias", False)
    return _llama_family(r, model_type, kv_default=4, window=window,
                         layer_types=lambda n: (SLIDING if window else FULL,) * n,
                         qkv_bias=bias, o_bias=bias, qk_norm=True, mlp_types=mlp_types, moe=moe)


def _parse_deepseek(r: _Reader, model_type: str) -> ModelSpec:
    # DeepSeek-V2/V3: multi-head latent attention on every layer; MoE from first_k_dense_replace on
    # (transformers 5.23 ignores moe_layer_freq). Shared experts are one MLP of moe_intermediate_size x
    # n_shared_experts. V3's router also holds e_score_correction_bias, a buffer (not a parameter).
    # transformers does not build the multi-token-prediction layer (num_nextn_predict_layers).
    v3 = model_type == "deepseek_v3"
    h, n_layers, heads, kv, _, vocab = _heads(r, None, head_dim_default=1)
    q_lora = _explicit(r, "q_lora_rank", 1536)
    mla = MLASpec(
        q_lora_rank=None if q_lora is None else _check_int(q_lora, "q_lora_rank"),
        kv_lora_rank=r.int("kv_lora_rank"),
        qk_rope_head_dim=r.int("qk_rope_head_dim"),
        qk_nope_head_dim=r.int("qk_nope_head_dim", lo=0),
        v_head_dim=r.int("v_head_dim"),
    )
    n_exp = _experts(r, ("n_routed_experts", "num_experts", "num_local_experts"))
    first_dense = r.int("first_k_dense_replace", default=3 if v3 else 0, lo=0, hi=_MAX_LAYERS)
    mlp_types = tuple("moe" if i >= first_dense else "dense" for i in range(n_layers))
    moe_inter = r.int("moe_intermediate_size")
    n_shared = r.int("n_shared_experts", default=1 if v3 else 2, lo=0, hi=_MAX_EXPERTS)
    moe = None
    notes = []
    if "moe" in mlp_types:
        if v3 or r.has("num_experts_per_tok"):
            top_k = _top_k(r, n_exp, 8)
        else:  # DeepseekV2Config defaults num_experts_per_tok to None: the model builds but cannot route
            top_k = 0
            notes.append("num_experts_per_tok is not set (DeepseekV2Config's default is None); "
                         "per-token expert activations are unknown and counted as 0")
        moe = MoESpec(num_experts=n_exp, experts_per_token=top_k,
                      expert_intermediate_size=moe_inter, shared_intermediate_size=moe_inter * n_shared,
                      router_bias=v3)
    mtp = r.opt_int("num_nextn_predict_layers", lo=0, hi=_MAX_LAYERS)
    if mtp:
        notes.append(f"the multi-token-prediction layer(s) (num_nextn_predict_layers={mtp}) are not counted: "
                     "transformers does not build them")
    freq = r.opt_int("moe_layer_freq", lo=1, hi=_MAX_LAYERS)
    if freq and freq != 1:
        notes.append(f"moe_layer_freq={freq} is ignored, as transformers 5.23 does: every layer from "
                     f"first_k_dense_replace={first_dense} on is MoE")
    bias = r.bool("attention_bias", False)
    return ModelSpec(
        model_type=model_type, family=model_type,
        hidden_size=h, num_layers=n_layers, vocab_size=vocab, num_heads=heads, num_kv_heads=kv,
        # the query/key head width used by attention (nope + rope); the cache holds the latent instead
        head_dim=mla.qk_head_dim,
        intermediate_size=r.int("intermediate_size"),
        layer_types=("mla",) * n_layers, mlp_types=mlp_types,
        max_position_embeddings=_max_pos(r, "max_position_embeddings"),
        tie_word_embeddings=_tie(r, False),
        qkv_bias=bias, o_bias=bias, mlp_bias=(not v3) and r.bool("mlp_bias", False),
        mla=mla, moe=moe, notes=tuple(notes), **_common(r),
    )


def _parse_jamba(r: _Reader, model_type: str) -> ModelSpec:
    # Jamba: attention where i % attn_layer_period == attn_layer_offset, a Mamba mixer elsewhere; MoE
    # feed-forward where i % expert_layer_period == expert_layer_offset (and num_experts > 1), a gated MLP
    # elsewhere. attribute_map: num_local_experts -> num_experts.
    n_layers = r.int("num_hidden_layers", hi=_MAX_LAYERS)
    attn_period = r.int("attn_layer_period", default=8, hi=_MAX_LAYERS)
    attn_offset = r.int("attn_layer_offset", default=4, lo=0, hi=_MAX_LAYERS)
    if attn_offset >= attn_period:
        raise ConfigError(f"({attn_offset}) must be smaller than attn_layer_period ({attn_period})",
                          "attn_layer_offset")
    exp_period = r.int("expert_layer_period", default=2, hi=_MAX_LAYERS)
    exp_offset = r.int("expert_layer_offset", default=1, lo=0, hi=_MAX_LAYERS)
    if exp_offset >= exp_period:
        raise ConfigError(f"({exp_offset}) must be smaller than expert_layer_period ({exp_period})",
                          "expert_layer_offset")
    n_exp = _experts(r, ("num_experts", "num_local_experts"))
    mlp_types = tuple("moe" if n_exp > 1 and i % exp_period == exp_offset else "dense" for i in range(n_layers))
    moe = None
    if "moe" in mlp_types:
        moe = MoESpec(num_experts=n_exp, experts_per_token=_top_k(r, n_exp, 2),
                      expert_intermediate_size=r.int("intermediate_size"))
    h = r.int("hidden_size")
    dt_rank = _explicit(r, "mamba_dt_rank", "auto")
    mamba = MambaSpec(
        state_size=r.int("mamba_d_state", default=16),
        conv_kernel=r.int("mamba_d_conv", default=4),
        expand=r.int("mamba_expand", default=2, hi=1024),
        dt_rank=-(-h // 16) if dt_rank in ("auto", None) else _check_int(dt_rank, "mamba_dt_rank"),
        conv_bias=r.bool("mamba_conv_bias", True),
        proj_bias=r.bool("mamba_proj_bias", False),
    )
    layer_types = tuple(FULL if i % attn_period == attn_offset else "mamba" for i in range(n_layers))
    spec = _llama_family(r, model_type, kv_default=8, mlp_types=mlp_types, moe=moe, mamba=mamba,
                         norm_names=("input_layernorm", "pre_ff_layernorm"))
    return _replace(spec, layer_types=layer_types)


def _parse_gpt_oss(r: _Reader, model_type: str) -> ModelSpec:
    # GPT-OSS (gpt-oss-20b/120b): every layer MoE with biased experts stored (E, in, out) and a biased
    # router; attention with q/k/v/o biases and per-head sinks; sliding and full layers alternate
    # (window 128). head_dim defaults to 64, num_key_value_heads to 8. Published checkpoints ship MXFP4
    # experts (quant_method "mxfp4"), which the planner does not model: they are planned in bf16.
    notes: list[str] = []
    q = r.cfg.get("quantization_config")
    if isinstance(q, dict) and str(q.get("quant_method", "")).lower() == "mxfp4":
        r = _Reader({k: v for k, v in r.cfg.items() if k != "quantization_config"})
        notes.append("quantization_config mxfp4 (the published MoE expert format) is not modelled; "
                     "weights are planned in the compute dtype unless another format is chosen")
    n_exp = _experts(r, ("num_local_experts", "num_experts"))
    moe = MoESpec(num_experts=n_exp, experts_per_token=_top_k(r, n_exp, 4),
                  expert_intermediate_size=r.int("intermediate_size"),
                  router_linear_bias=True, expert_bias=True, experts_in_out=True)
    bias = r.bool("attention_bias", True)
    spec = _llama_family(r, model_type, kv_default=8, head_dim_default=64, window=_window(r, 128),
                         layer_types=lambda n: [SLIDING if (i + 1) % 2 else FULL for i in range(n)],
                         mlp_types=("moe",) * r.int("num_hidden_layers", hi=_MAX_LAYERS), moe=moe,
                         qkv_bias=bias, o_bias=bias, attn_sinks=True)
    return _replace(spec, notes=spec.notes + tuple(notes))


def _parse_smollm3(r: _Reader, model_type: str) -> ModelSpec:
    # SmolLM3: Llama modules, tied embeddings, 4 KV heads by default. Every no_rope_layer_interval-th layer
    # skips RoPE (no parameters); with use_sliding_window only those NoPE layers slide.
    bias = r.bool("attention_bias", False)
    use = r.bool("use_sliding_window", False)
    window = _window(r, None) if use else None
    n_layers = r.int("num_hidden_layers", hi=_MAX_LAYERS)
    no_rope = _int_flags(r, "no_rope_layers", n_layers)
    if no_rope is None:
        interval = r.int("no_rope_layer_interval", default=4, hi=_MAX_LAYERS)
        no_rope = tuple(int((i + 1) % interval != 0) for i in range(n_layers))
    # no_rope_layers[i] is 1 where the layer *uses* RoPE (transformers' naming)
    rule = [SLIDING if window is not None and not no_rope[i] else FULL for i in range(n_layers)]
    return _llama_family(r, model_type, kv_default=4, tie_default=True, window=window, layer_types=rule,
                         qkv_bias=bias, o_bias=bias, mlp_bias=r.bool("mlp_bias", False))


def _int_flags(r: _Reader, name: str, n_layers: int) -> tuple[int, ...] | None:
    value = r.cfg.get(name)
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != n_layers
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ConfigError(f"must be a list of {n_layers} integers (one per layer)", name)
    return tuple(value)


def _parse_phi(r: _Reader, model_type: str) -> ModelSpec:
    # Phi-1/1.5/2: parallel attention + MLP behind one LayerNorm; q/k/v/dense and fc1/fc2 all with bias;
    # lm_head has a bias too. qk_layernorm adds LayerNorms of hidden // heads on q and k.
    h, heads = r.int("hidden_size"), r.int("num_attention_heads", hi=_MAX_HEADS)
    qk = r.bool("qk_layernorm", False)
    return _llama_family(r, model_type, qkv_bias=True, o_bias=True, mlp_bias=True, mlp_gated=False,
                         norm_bias=True, lm_head_bias=True, norms_per_layer=1, norm_names=("input_layernorm",),
                         qk_norm=qk, qk_norm_width=h // heads if qk else 0)


# --- classic (non-gated) decoders ----------------------------------------------------------------


def _parse_gpt2(r: _Reader, model_type: str) -> ModelSpec:
    # GPT-2: Conv1D weights stored (in, out); fused c_attn; learned position embeddings (n_positions);
    # LayerNorms with bias; every projection has a bias; tied embeddings. attribute_map aliases
    # hidden_size/num_hidden_layers/num_attention_heads/max_position_embeddings to n_*.
    if r.bool("add_cross_attention", False):
        raise ConfigError("GPT-2 with cross-attention (an encoder-decoder) is not supported", "add_cross_attention")
    h, n_layers, heads, kv, head_dim, vocab = _heads(
        r, None, hidden=("n_embd", "hidden_size"), layers=("n_layer", "num_hidden_layers"),
        heads_names=("n_head", "num_attention_heads"), kv_names=("n_head", "num_attention_heads"))
    n_pos = r.int("n_positions", "max_position_embeddings", default=1024, hi=_MAX_POSITIONS)
    return ModelSpec(
        model_type=model_type, family=model_type,
        hidden_size=h, num_layers=n_layers, vocab_size=vocab, num_heads=heads, num_kv_heads=kv, head_dim=head_dim,
        intermediate_size=r.int("n_inner", default=4 * h),
        layer_types=(FULL,) * n_layers, mlp_types=("dense",) * n_layers,
        max_position_embeddings=n_pos, tie_word_embeddings=_tie(r, True),
        qkv_bias=True, o_bias=True, mlp_bias=True, mlp_gated=False, fused_qkv=True, norm_bias=True,
        learned_positions=n_pos, conv1d=True, norm_names=("ln_1", "ln_2"), **_common(r),
    )


def _parse_gpt_neox(r: _Reader, model_type: str) -> ModelSpec:
    # GPT-NeoX (NeoX-20B, Pythia): fused query_key_value (3h), attention_bias (default true) on it and
    # on dense; the MLP always has biases; LayerNorms with bias; untied embed_in / embed_out.
    h, n_layers, heads, kv, head_dim, vocab = _heads(r, None, kv_names=("num_attention_heads",))
    bias = r.bool("attention_bias", True)
    return ModelSpec(
        model_type=model_type, family=model_type,
        hidden_size=h, num_layers=n_layers, vocab_size=vocab, num_heads=heads, num_kv_heads=kv, head_dim=head_dim,
        intermediate_size=r.int("intermediate_size"),
        layer_types=(FULL,) * n_layers, mlp_types=("dense",) * n_layers,
        max_position_embeddings=_max_pos(r, "max_position_embeddings"), tie_word_embeddings=_tie(r, False),
        qkv_bias=bias, o_bias=bias, mlp_bias=True, mlp_gated=False, fused_qkv=True, norm_bias=True,
        **_common(r),
    )


def _parse_falcon(r: _Reader, model_type: str) -> ModelSpec:
    # Falcon: fused query_key_value sized by the architecture: new_decoder_architecture (40B/180B) has
    # num_kv_heads groups, multi_query (7B) one shared K/V head, otherwise full multi-head. Parallel
    # attention uses one LayerNorm per layer (7B) or two (ln_attn, ln_mlp; the new architecture).
    h, n_layers, heads, _, head_dim, vocab = _heads(r, None, kv_names=("num_attention_heads",))
    new_arch = r.bool("new_decoder_architecture", False)
    multi_query = r.bool("multi_query", True)
    if new_arch:
        kv = r.int("num_kv_heads", default=heads, hi=_MAX_HEADS)
        if heads % kv:
            raise ConfigError(f"({kv}) must divide num_attention_heads ({heads})", "num_kv_heads")
    else:
        kv = 1 if multi_query else heads
    parallel = r.bool("parallel_attn", True)
    n_ln = r.opt_int("num_ln_in_parallel_attn", hi=2)
    if n_ln is None and new_arch:
        n_ln = 2
    if not parallel:
        norm_names = ("input_layernorm", "post_attention_layernorm")
    elif n_ln == 2:
        norm_names = ("ln_attn", "ln_mlp")
    else:
        norm_names = ("input_layernorm",)
    bias = r.bool("bias", False)
    return ModelSpec(
        model_type=model_type, family=model_type,
        hidden_size=h, num_layers=n_layers, vocab_size=vocab, num_heads=heads, num_kv_heads=kv, head_dim=head_dim,
        intermediate_size=r.int("ffn_hidden_size", default=4 * h),
        layer_types=(FULL,) * n_layers, mlp_types=("dense",) * n_layers,
        max_position_embeddings=_max_pos(r, "max_position_embeddings"), tie_word_embeddings=_tie(r, True),
        qkv_bias=bias, o_bias=bias, mlp_bias=bias, mlp_gated=False, fused_qkv=True, norm_bias=True,
        norms_per_layer=len(norm_names), norm_names=norm_names, **_common(r),
    )


#: model_type -> parser; the keys are what ``supported_model_types`` lists.
_PARSERS: dict[str, Any] = {
    "llama": _parse_llama,
    "granite": _parse_llama,
    "mistral": _parse_mistral,
    "mixtral": _parse_mixtral,
    "qwen2": _parse_qwen2,
    "qwen3": _parse_qwen3,
    "qwen2_moe": _parse_qwen2_moe,
    "qwen3_moe": _parse_qwen3_moe,
    "gemma": _parse_gemma,
    "gemma2": _parse_gemma2,
    "gemma3_text": _parse_gemma3_text,
    "gemma3": _parse_gemma3,
    "phi3": _parse_phi3,
    "olmo2": _parse_olmo2,
    "starcoder2": _parse_starcoder2,
    "deepseek_v2": _parse_deepseek,
    "deepseek_v3": _parse_deepseek,
    "gpt2": _parse_gpt2,
    "gpt_neox": _parse_gpt_neox,
    "falcon": _parse_falcon,
    "jamba": _parse_jamba,
    "gpt_oss": _parse_gpt_oss,
    "phi": _parse_phi,
    "smollm3": _parse_smollm3,
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
        spec = _parse_approximate(r, model_type)
    else:
        spec = parser(r, model_type)
    if name:
        spec = _replace(spec, name=name)
    return spec


def _parse_approximate(r: _Reader, model_type: str) -> ModelSpec:
    """An unsupported model_type planned as a Llama decoder; common field aliases are accepted."""
    h = r.int("hidden_size", "n_embd", "d_model")
    n_layers = r.int("num_hidden_layers", "n_layer", "num_layers", hi=_MAX_LAYERS)
    heads = r.int("num_attention_heads", "n_head", "num_heads", hi=_MAX_HEADS)
    alias = {"hidden_size": h, "num_hidden_layers": n_layers, "num_attention_heads": heads}
    cfg = {**r.cfg, **alias}
    if cfg.get("intermediate_size") is None:
        cfg["intermediate_size"] = r.int("n_inner", "ffn_dim", "ffn_hidden_size", default=4 * h)
    spec = _parse_llama(_Reader(cfg), model_type)
    return _replace(spec, approximate=True, family="llama",
                    notes=spec.notes + (f"{model_type!r} is not a supported model_type; planned as a llama-like "
                                        "approximation (parameter counts may differ from the real model)",))


def _replace(spec: ModelSpec, **changes: Any) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, **changes)
