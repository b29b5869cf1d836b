"""Share links: every input survives the round trip; a link is untrusted input, validated like a form."""

from __future__ import annotations

import base64
import json
import os
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import state
from app.state import DEFAULTS, Choices, Inputs, decode_config, encode_config, from_query, to_query
from planner.catalog import catalog_config
from planner.errors import InputError
from planner.spec import MAX_CONFIG_BYTES

CHOICES = Choices(
    models=("llama-3.1-8b", "qwen2.5-7b"), weights=("auto", "bf16", "fp8", "bnb-nf4"),
    kv_dtypes=("auto", "fp16", "fp8_e4m3"), engines=("transformers", "vllm", "llamacpp"),
    attentions=("sdpa", "eager"), caches=("dynamic", "static"), modes=("generate", "forward"),
    gpus=("h100-sxm-80gb", "l4-24gb"), overrides=("overhead/cuda_context",),
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_every_field_survives_the_round_trip():
    cfg = {"model_type": "llama", "hidden_size": 64}
    inputs = Inputs(
        source="upload", config=encode_config(cfg), approximate=True, weights="fp8", kv_dtype="fp8_e4m3",
        batch=7, context=12345, prompt_tokens=100, engine="vllm", attention="eager", cache="static",
        mode="forward", gpu="l4-24gb", gpus=4, gpu_gib=23.5, gpu_memory_utilization=0.85, max_num_seqs=64,
        max_num_batched_tokens=4096, n_gpu_layers=20, unit="GB", overrides=(("overhead/cuda_context", 123456),),
    )
    back, errors = from_query(to_query(inputs), CHOICES)
    assert errors == []
    assert back == inputs
    assert json.loads(decode_config(back.config)) == cfg


def test_defaults_make_a_short_link_that_restores_the_defaults():
    q = to_query(DEFAULTS)
    assert q == {"src": "catalog", "model": DEFAULTS.model, "weights": "auto"}
    assert from_query(q, CHOICES) == (DEFAULTS, [])


def test_link_of_one_source_drops_the_fields_of_another():
    q = to_query(Inputs(source="catalog", hub="org/model", path="/etc/passwd"))
    assert "hub" not in q and "path" not in q


@pytest.mark.parametrize(("params", "field", "needle"), [
    ({"batch": "-3"}, "batch", "batch must be from 1"),
    ({"batch": "many"}, "batch", "whole number"),
    ({"context": "0"}, "context", "context must be from 1"),
    ({"weights": "int3"}, "weights", "unknown weight format"),
    ({"engine": "tgi"}, "engine", "unknown engine"),
    ({"gpu": "h900"}, "gpu", "unknown GPU"),
    ({"util": "1.5"}, "gpu_memory_utilization", "util must be"),
    ({"util": "nan"}, "gpu_memory_utilization", "util must be"),
    ({"gpu_gib": "-80"}, "gpu_gib", "gpu_gib must be"),
    ({"model": "gpt-5"}, "model", "unknown catalog model"),
    ({"hub": "../../etc"}, "hub", "is not a repo id"),
    ({"unit": "MB"}, "unit", "unknown unit"),
    ({"src": "ftp"}, "source", "unknown model source"),
])
def test_a_bad_value_is_reported_and_the_default_kept(params, field, needle):
    inputs, errors = from_query(params, CHOICES)
    assert getattr(inputs, field) == getattr(DEFAULTS, field)
    assert len(errors) == 1 and needle in errors[0] and "default is kept" in errors[0]


def test_unknown_names_are_reported_and_ignored():
    inputs, errors = from_query({"foo": "1", "ov.overhead/gremlins": "5", "batch": "2"}, CHOICES)
    assert inputs == Inputs(batch=2)
    assert any("unknown link parameter 'foo'" in e for e in errors)
    assert any("unknown assumption 'overhead/gremlins'" in e for e in errors)


def test_a_negative_override_is_rejected():
    inputs, errors = from_query({"ov.overhead/cuda_context": "-1"}, CHOICES)
    assert inputs.overrides == () and errors


def test_repeated_keys_use_the_last_value():
    inputs, errors = from_query({"batch": ["2", "3"]}, CHOICES)
    assert inputs.batch == 3 and errors == []


def test_a_small_config_travels_compressed():
    cfg = catalog_config("llama-3.1-8b")
    token = encode_config(cfg)
    assert token is not None and len(token) < 1500
    assert json.loads(decode_config(token)) == cfg


def test_a_config_too_large_for_a_link_is_not_encoded():
    cfg = {"model_type": "llama", "junk": [os.urandom(16).hex() for _ in range(2000)]}
    assert encode_config(cfg) is None


def test_decompression_is_bounded():
    # a zlib bomb: 2 MiB of spaces compresses to a few KB, inside the link size limit
    bomb = _b64(zlib.compress(b"{" + b" " * (2 * MAX_CONFIG_BYTES), 9))
    assert len(bomb) <= state.MAX_LINK_CONFIG_CHARS
    with pytest.raises(InputError, match="inflates to more than"):
        decode_config(bomb)
    inputs, errors = from_query({"src": "upload", "config": bomb}, CHOICES)
    assert inputs.config == "" and any("inflates to more than" in e for e in errors)


def test_decompression_stops_at_the_limit_exactly():
    data = b"x" * 1000
    assert decode_config(_b64(zlib.compress(data)), limit=1000) == data
    with pytest.raises(InputError):
        decode_config(_b64(zlib.compress(data)), limit=999)


@pytest.mark.parametrize(("token", "needle"), [
    ("not base64!", "not a valid compressed config"),
    (_b64(b"plain text, not zlib"), "damaged"),
    (_b64(zlib.compress(b'{"model_type": "llama"}'))[:-6], "truncated"),
    ("A" * (state.MAX_LINK_CONFIG_CHARS + 1), "not a valid compressed config"),
])
def test_a_damaged_config_gives_a_clear_message(token, needle):
    with pytest.raises(InputError, match=needle):
        decode_config(token)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=20), st.one_of(st.text(max_size=60), st.lists(st.text(max_size=20), max_size=3)),
                       max_size=8))
def test_any_query_string_gives_inputs_and_messages_never_an_exception(params):
    inputs, errors = from_query(params, CHOICES)
    assert isinstance(inputs, Inputs)
    assert all(isinstance(e, str) and e for e in errors)
    assert inputs.batch >= 1 and inputs.context >= 1 and inputs.gpus >= 1
