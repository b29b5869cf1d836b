"""Scenario JSON: exact round trips, a newer schema is refused clearly, invalid content names the field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import HeadroomError, InputError, SourceError
from planner.estimate import ATTENTIONS, CACHES, ENGINES, MODES, Plan
from planner.scenario import SCHEMA_VERSION, ModelSource, Scenario, dumps, loads

TINY_CONFIG = {
    "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 1000, "max_position_embeddings": 2048,
}

@st.composite
def _cache(draw):
    """cache, context and max_cache_len as Plan accepts them: a length only for a static cache, >= context."""
    context = draw(st.integers(1, 1 << 20))
    cache = draw(st.sampled_from(CACHES))
    length = draw(st.none() | st.integers(context, 1 << 21)) if cache == "static" else None
    return dict(cache=cache, context=context, max_cache_len=length)


plans = _cache().flatmap(lambda c: st.builds(
    Plan,
    cache=st.just(c["cache"]), context=st.just(c["context"]), max_cache_len=st.just(c["max_cache_len"]),
    weights=st.sampled_from(["auto", "bf16", "fp8", "bnb-nf4-dq", "gguf-Q4_K_M"]),
    kv_dtype=st.sampled_from(["auto", "fp8_e4m3", "int4", "q8_0"]),
    batch=st.integers(1, 4096),
    engine=st.sampled_from(ENGINES), attention=st.sampled_from(ATTENTIONS), tp=st.integers(1, 8),
    mode=st.sampled_from(MODES), device=st.sampled_from(["gpu", "cpu"]),
    gpu_memory_bytes=st.none() | st.integers(1, 1 << 40),
    gpu_memory_utilization=st.floats(0.01, 1.0),
    max_num_batched_tokens=st.none() | st.integers(1, 1 << 16),
    max_num_seqs=st.integers(1, 1024), n_gpu_layers=st.none() | st.integers(0, 200),
    overrides=st.lists(st.tuples(st.sampled_from(["overhead/cuda_context", "overhead/non_torch"]),
                                 st.integers(0, 1 << 34)), max_size=2).map(tuple),
))
sources = st.one_of(
    st.sampled_from(["llama-3.1-8b", "qwen2.5-7b", "llama-3.1-70b"]).map(lambda n: ModelSource(catalog=n)),
    st.builds(lambda h, a: ModelSource.from_config(TINY_CONFIG, hub_id=h, approximate=a),
              st.none() | st.just("org/tiny-llama"), st.booleans()),
)
scenarios = st.builds(Scenario, model=sources, plan=plans,
                      gpu=st.none() | st.sampled_from(["h100-sxm-80gb", "l4-24gb", "mi300x-192gb"]),
                      gpu_count=st.integers(1, 8), title=st.text(max_size=40))


@settings(max_examples=60, deadline=None)
@given(scenarios)
def test_round_trip_is_exact(s):
    text = dumps(s)
    back = loads(text)
    assert back == s
    assert dumps(back) == text  # canonical text: byte-identical on the second trip


def test_file_is_versioned_and_readable():
    d = json.loads(dumps(Scenario(ModelSource(catalog="llama-3.1-8b"))))
    assert d["schema_version"] == SCHEMA_VERSION and d["kind"] == "headroom-scenario"
    assert d["model"] == {"catalog": "llama-3.1-8b"}
    assert d["plan"]["context"] == Plan().context and d["gpu"] == {"name": None, "count": 1}


def test_newer_schema_version_gives_a_clear_error():
    d = json.loads(dumps(Scenario(ModelSource(catalog="llama-3.1-8b"))))
    d["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(InputError, match=r"schema_version: is 2, written by a newer Headroom.*Upgrade"):
        loads(json.dumps(d))


def _with(path: str, value):
    d = json.loads(dumps(Scenario(ModelSource(catalog="llama-3.1-8b"), gpu="l4-24gb")))
    node = d
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return json.dumps(d)


@pytest.mark.parametrize("path,value,field", [
    ("plan.batch", "4", "plan.batch"),
    ("plan.batch", True, "plan.batch"),
    ("plan.batch", 0, "batch must be"),
    ("plan.context", None, "plan.context"),
    ("plan.engine", "tgi", "unknown engine"),
    ("plan.gpu_memory_utilization", 1.5, "gpu_memory_utilization"),
    ("plan.gpu_memory_utilization", "0.9", "plan.gpu_memory_utilization"),
    ("plan.overrides", [["overhead/x", -1]], "override"),
    ("plan.overrides", [["overhead/x"]], "plan.overrides"),
    ("plan.flash", 1, "unknown field"),
    ("gpu.count", 0, "gpu_count"),
    ("gpu.count", 2.5, "gpu.count"),
    ("gpu.name", "no-such-gpu", "gpu.name"),
    ("model.catalog", "no-such-model", "unknown model"),
    ("model.catalog", 7, "model.catalog"),
    ("model.approximate", "yes", "model.approximate"),
    ("schema_version", "1", "schema_version"),
    ("kind", "something-else", "kind"),
    ("title", 5, "title"),
])
def test_invalid_content_names_the_field(path, value, field):
    with pytest.raises(HeadroomError, match=field):
        loads(_with(path, value))


@pytest.mark.parametrize("text,message", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ("{}", "schema_version: is missing"),
    (b"\xff\xfe", "UTF-8"),
    ('{"schema_version": 1, "model": {}}', "model: needs 'catalog'"),
    ('{"schema_version": 1, "model": {"catalog": "llama-3.1-8b", "config": {}}}', "not both"),
])
def test_malformed_files_give_one_clear_error(text, message):
    with pytest.raises(InputError, match=message):
        loads(text)


def test_embedded_config_resolves_offline_and_hub_only_says_what_is_missing():
    s = Scenario(ModelSource.from_config(TINY_CONFIG, hub_id="org/tiny"))
    assert loads(dumps(s)).spec().hidden_size == 64
    with pytest.raises(SourceError, match="without its config"):
        Scenario(ModelSource(hub_id="org/tiny")).spec()


def test_huge_file_is_refused_before_parsing():
    with pytest.raises(InputError, match="at most"):
        loads(b"{" + b" " * (2 << 20) + b"}")
