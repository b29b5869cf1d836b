"""Malformed configs: only ConfigError escapes parse_config, and it names the offending field.

Hypothesis mutates valid configs of every family (wrong types, missing fields, zero/negative/absurd
sizes, KV heads that do not divide heads, junk in nested objects), and feeds invalid / oversized JSON.
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.errors import ConfigError, HeadroomError
from planner.params import parameter_count
from planner.spec import MAX_CONFIG_BYTES, parse_config, supported_model_types
from tests._configs import FAMILIES, random_config

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: core fields per family whose absence is an error (the name ConfigError.field carries)
REQUIRED = {
    "llama": ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size"],
    "mixtral": ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "intermediate_size",
                "num_local_experts"],
    "qwen2_moe": ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "num_experts"],
    "deepseek_v3": ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "kv_lora_rank",
                    "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "moe_intermediate_size",
                    "n_routed_experts"],
    "gpt2": ["n_embd", "n_layer", "n_head", "vocab_size"],
    "falcon": ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"],
}

#: integer size fields per family that a mutation may break
SIZE_FIELDS = {
    "llama": ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "intermediate_size", "vocab_size", "head_dim"],
    "qwen2": ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "intermediate_size", "vocab_size"],
    "mixtral": ["num_local_experts", "num_experts_per_tok", "intermediate_size"],
    "qwen2_moe": ["moe_intermediate_size", "decoder_sparse_step", "num_experts_per_tok"],
    "deepseek_v3": ["kv_lora_rank", "qk_rope_head_dim", "v_head_dim", "n_routed_experts",
                    "moe_intermediate_size", "num_experts_per_tok"],
    "gpt2": ["n_embd", "n_layer", "n_head", "vocab_size", "n_positions"],
    "falcon": ["hidden_size", "num_attention_heads", "vocab_size"],
}


def _base(family: str, seed: int = 0) -> dict:
    cfg = random_config(family, random.Random(f"invalid-{family}-{seed}"))
    if family == "qwen2_moe":
        cfg.update(num_experts=4, num_experts_per_tok=2, mlp_only_layers=[], decoder_sparse_step=1,
                   shared_expert_intermediate_size=8)
    if family == "deepseek_v3":
        cfg.update(first_k_dense_replace=0)
    if family == "llama":
        cfg.setdefault("head_dim", 8)
    return cfg


def _parse_only_config_error(cfg) -> ConfigError | None:
    try:
        spec = parse_config(cfg)
    except ConfigError as e:
        assert str(e), "the message must not be empty"
        return e
    parameter_count(spec)  # a parsed spec always yields a count
    return None


# --- missing fields -----------------------------------------------------------------------------------

MISSING_CASES = [(f, k) for f, keys in REQUIRED.items() for k in keys]


@pytest.mark.parametrize("family,field", MISSING_CASES)
def test_missing_core_field_names_it(family, field):
    cfg = _base(family)
    cfg.pop(field)
    if family == "mixtral" and field == "num_local_experts":
        cfg.pop("num_experts", None)
    err = _parse_only_config_error(cfg)
    assert err is not None and err.field == field
    assert "missing" in str(err)


def test_missing_model_type():
    err = _parse_only_config_error({"hidden_size": 64})
    assert err is not None and err.field == "model_type"


# --- wrong values in size fields ----------------------------------------------------------------------

BAD_VALUES = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=1 << 31, max_value=1 << 80),
    st.text(max_size=8),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: x != int(x) if x == x and abs(x) != float("inf") else True),
    st.just(float("nan")),
)
SIZE_CASES = [(f, k) for f, keys in SIZE_FIELDS.items() for k in keys]


@pytest.mark.parametrize("family,field", SIZE_CASES)
@SETTINGS
@given(value=BAD_VALUES)
def test_bad_size_value_names_the_field(family, field, value):
    cfg = _base(family)
    cfg[field] = value
    err = _parse_only_config_error(cfg)
    assert err is not None, f"{field}={value!r} was accepted"
    assert err.field == field


@SETTINGS
@given(heads=st.integers(1, 64), kv=st.integers(1, 64))
def test_kv_heads_must_divide_heads(heads, kv):
    cfg = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": heads,
           "num_key_value_heads": kv, "head_dim": 8, "intermediate_size": 8, "vocab_size": 10}
    err = _parse_only_config_error(cfg)
    if heads % kv:
        assert err is not None and err.field == "num_key_value_heads"
        assert str(heads) in str(err) and str(kv) in str(err)
    else:
        assert err is None


def test_hidden_not_divisible_by_heads_without_head_dim():
    cfg = _base("llama")
    cfg.pop("head_dim")
    cfg.update(hidden_size=30, num_attention_heads=4, num_key_value_heads=2)
    err = _parse_only_config_error(cfg)
    assert err is not None and err.field == "num_attention_heads"


@pytest.mark.parametrize("field, value", [
    ("layer_types", ["full_attention"]),  # wrong length
    ("layer_types", ["banana"] * 4),
    ("layer_types", "full_attention"),
    ("tie_word_embeddings", "yes"),
    ("attention_bias", 1),
    ("torch_dtype", 16),
    ("quantization_config", "gptq"),
    ("model_type", 7),
])
def test_bad_switches_name_the_field(field, value):
    cfg = _base("llama")
    cfg["num_hidden_layers"] = 4
    cfg[field] = value
    err = _parse_only_config_error(cfg)
    assert err is not None and err.field is not None and err.field.startswith(field)


@pytest.mark.parametrize("family, field, value", [
    ("qwen2_moe", "mlp_only_layers", [99]),
    ("qwen2_moe", "mlp_only_layers", "0,1"),
    ("qwen2_moe", "num_experts_per_tok", 9),  # more than the 4 experts
    ("qwen2", "use_sliding_window", "true"),
    ("qwen2", "max_window_layers", -1),  # 0 is valid (every layer may slide)
    ("gpt2", "add_cross_attention", True),
    ("gemma3", "text_config", [1, 2]),
    ("gemma3", "vision_config", "siglip"),
    ("falcon", "num_kv_heads", 3),
])
def test_family_specific_errors_name_the_field(family, field, value):
    cfg = _base(family)
    if family == "falcon":
        cfg.update(new_decoder_architecture=True, num_attention_heads=4, hidden_size=64)
    cfg[field] = value
    err = _parse_only_config_error(cfg)
    assert err is not None and err.field == field


def test_sliding_layer_types_without_a_window():
    cfg = _base("qwen2")
    cfg.update(num_hidden_layers=2, use_sliding_window=False, layer_types=["sliding_attention", "full_attention"])
    err = _parse_only_config_error(cfg)
    assert err is not None and err.field == "layer_types"


@pytest.mark.parametrize("section, field, value", [("text_config", "hidden_size", -3),
                                                   ("text_config", "layer_types", ["x"]),
                                                   ("vision_config", "patch_size", 0),
                                                   ("vision_config", "vision_use_head", "no")])
def test_nested_gemma3_error_names_the_nested_field(section, field, value):
    cfg = _base("gemma3")
    cfg[section][field] = value
    err = _parse_only_config_error(cfg)
    assert err is not None and err.field == f"{section}.{field}"


# --- arbitrary junk: only ConfigError escapes ---------------------------------------------------------

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70),
                         st.floats(allow_nan=True), st.text(max_size=10))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                              max_size=4),
                           max_leaves=12)


@SETTINGS
@given(family=st.sampled_from(FAMILIES), data=st.data())
def test_random_mutations_raise_only_config_error(family, data):
    cfg = _base(family, data.draw(st.integers(0, 3)))
    keys = sorted(cfg)
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["drop", "set", "add"]))
        if action == "drop" and keys:
            cfg.pop(data.draw(st.sampled_from(keys)), None)
        elif action == "set" and keys:
            cfg[data.draw(st.sampled_from(keys))] = data.draw(JSON_VALUES)
        else:
            cfg[data.draw(st.text(max_size=12))] = data.draw(JSON_VALUES)
    _parse_only_config_error(cfg)


@SETTINGS
@given(doc=JSON_VALUES)
def test_any_json_document_raises_only_config_error(doc):
    _parse_only_config_error(json.dumps(doc))


@SETTINGS
@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_any_text_or_bytes_raises_only_config_error(text):
    _parse_only_config_error(text)


@pytest.mark.parametrize("text", ["{", "{'model_type': 'llama'}", "", "[1, 2]", "null", "\"llama\"",
                                  b"\xff\xfe{}", "{\"model_type\": \"llama\",}"])
def test_invalid_json_is_a_config_error(text):
    err = _parse_only_config_error(text)
    assert err is not None and err.field is None


def test_deeply_nested_json_is_a_config_error():
    err = _parse_only_config_error("[" * 100_000 + "]" * 100_000)
    assert err is not None


@pytest.mark.parametrize("kind", [str, bytes])
def test_oversized_input_is_refused(kind):
    padding = " " * (MAX_CONFIG_BYTES + 1)
    text = '{"model_type": "llama"' + padding + "}"
    err = _parse_only_config_error(text if kind is str else text.encode())
    assert err is not None and "at most" in str(err)


def test_config_error_is_a_headroom_error():
    with pytest.raises(HeadroomError):
        parse_config({"model_type": "nope"})


def test_every_supported_family_has_a_base_config():
    for family in supported_model_types():
        assert _parse_only_config_error(_base(family)) is None
