"""app.hub against a local server that answers like the Hugging Face hub (tests/hubmock.py).

huggingface_hub reads HF_ENDPOINT at import time; app.hub reads it (and HF_HUB_CACHE, HF_TOKEN) at call
time, so setting the environment per test is enough. The safetensors files are written by the
safetensors library; their header bytes must equal the real tensors' bytes.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

import pytest
import torch
from safetensors.torch import save

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hubmock import HubMock  # noqa: E402

from app.hub import HubModel, clear_cache, fetch_hub_model, validate_repo_id  # noqa: E402
from planner.errors import ConfigError, SourceError  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = json.load(open(os.path.join(REPO, "assets", "models", "llama-3.2-1b.json")))
CONFIG.update(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=128, head_dim=16)

TENSORS = {
    "model.embed_tokens.weight": torch.randn(128, 64, dtype=torch.bfloat16),
    "model.layers.0.self_attn.q_proj.weight": torch.randn(64, 64, dtype=torch.bfloat16),
    "model.layers.0.self_attn.o_proj.weight": torch.randn(64, 64, dtype=torch.float32),
    "model.layers.0.mlp.down_proj.weight": torch.zeros(64, 96, dtype=torch.float8_e4m3fn),
    "model.layers.0.mlp.down_proj.weight_scale_inv": torch.ones(1, 1),
    "model.norm.weight": torch.ones(64, dtype=torch.bfloat16),
}
REAL_BYTES = sum(t.numel() * t.element_size() for t in TENSORS.values())
TOKEN = "hf_test_token_with_access"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with HubMock() as mock:
        monkeypatch.setenv("HF_ENDPOINT", mock.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        clear_cache()
        yield mock
    clear_cache()


def _config_bytes(**extra) -> bytes:
    return json.dumps({**CONFIG, **extra}).encode()


def test_single_file_header_bytes_equal_real_tensor_bytes(hub):
    sha = hub.add_repo("org/tiny", {"config.json": _config_bytes(), "model.safetensors": save(TENSORS)})
    m = fetch_hub_model("org/tiny")
    assert isinstance(m, HubModel) and m.sha == sha and m.repo_id == "org/tiny"
    assert m.config()["hidden_size"] == 64
    assert m.stored is not None and m.stored.files == ("model.safetensors",)
    assert m.stored.total_bytes == REAL_BYTES
    got = {t.name: t.nbytes for t in m.stored.tensors}
    assert got == {k: v.numel() * v.element_size() for k, v in TENSORS.items()}
    assert m.stored.component_bytes()["quant_state"] == 4


def test_weights_are_never_downloaded(hub):
    big = {"model.embed_tokens.weight": torch.zeros(4096, 256, dtype=torch.float32)}  # 4 MiB of data
    hub.add_repo("org/big", {"config.json": _config_bytes(), "model.safetensors": save(big)})
    m = fetch_hub_model("org/big")
    assert m.stored.total_bytes == 4096 * 256 * 4
    ranges = [r for method, path, r in hub.requests if method == "GET" and path.endswith(".safetensors")]
    assert ranges and all(r == "bytes=0-99999" for r in ranges)


def test_sharded_index_reads_every_shard_header(hub):
    a = {k: v for i, (k, v) in enumerate(TENSORS.items()) if i % 2 == 0}
    b = {k: v for i, (k, v) in enumerate(TENSORS.items()) if i % 2 == 1}
    index = {"metadata": {"total_size": REAL_BYTES},
             "weight_map": {**{k: "model-00001-of-00002.safetensors" for k in a},
                            **{k: "model-00002-of-00002.safetensors" for k in b}}}
    hub.add_repo("org/sharded", {"config.json": _config_bytes(), "model.safetensors.index.json":
                                 json.dumps(index).encode(), "model-00001-of-00002.safetensors": save(a),
                                 "model-00002-of-00002.safetensors": save(b)})
    m = fetch_hub_model("org/sharded")
    assert m.stored.files == ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    assert m.stored.total_bytes == REAL_BYTES == index["metadata"]["total_size"]


def test_large_header_takes_a_second_range_request(hub):
    many = {f"model.layers.{i}.mlp.up_proj.weight": torch.zeros(1, dtype=torch.float16) for i in range(2000)}
    data = save(many)
    assert int.from_bytes(data[:8], "little") > 100_000 - 8  # header larger than the first range
    hub.add_repo("org/many", {"config.json": _config_bytes(), "model.safetensors": data})
    m = fetch_hub_model("org/many")
    assert len(m.stored.tensors) == 2000 and m.stored.total_bytes == 4000


def test_repo_without_safetensors_has_no_stored_weights(hub):
    hub.add_repo("org/bin", {"config.json": _config_bytes(), "pytorch_model.bin": b"x"})
    m = fetch_hub_model("org/bin")
    assert m.stored is None and m.notes == ()


def test_unavailable_headers_fall_back_to_computed_weights_with_a_note(hub):
    hub.add_repo("org/flaky", {"config.json": _config_bytes(), "model.safetensors": save(TENSORS)},
                 failing=("model.safetensors",))
    m = fetch_hub_model("org/flaky")
    assert m.stored is None
    assert len(m.notes) == 1 and "HTTP 503" in m.notes[0] and "weights computed" in m.notes[0]


def test_missing_repo_says_check_the_repo_id(hub):
    with pytest.raises(SourceError, match="no model repo 'org/nope'.*check the repo id"):
        fetch_hub_model("org/nope")


def test_missing_revision(hub):
    hub.add_repo("org/tiny", {"config.json": _config_bytes()})
    with pytest.raises(SourceError, match="no revision 'v9'"):
        fetch_hub_model("org/tiny", revision="v9")


def test_repo_without_config(hub):
    hub.add_repo("org/noconfig", {"README.md": b"hi"})
    with pytest.raises(SourceError, match="has no config.json"):
        fetch_hub_model("org/noconfig")


def test_gated_without_token_says_set_hf_token(hub):
    hub.add_repo("org/gated", {"config.json": _config_bytes()}, gated=True, tokens=(TOKEN,))
    with pytest.raises(SourceError, match="gated repo: set HF_TOKEN"):
        fetch_hub_model("org/gated")


def test_gated_with_a_token_without_access(hub, monkeypatch):
    hub.add_repo("org/gated", {"config.json": _config_bytes()}, gated=True, tokens=(TOKEN,))
    monkeypatch.setenv("HF_TOKEN", "hf_someone_else")
    with pytest.raises(SourceError, match="your HF_TOKEN has no access: accept its license"):
        fetch_hub_model("org/gated")


def test_gated_with_token_from_environment(hub, monkeypatch):
    hub.add_repo("org/gated", {"config.json": _config_bytes(), "model.safetensors": save(TENSORS)},
                 gated=True, tokens=(TOKEN,))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    m = fetch_hub_model("org/gated")
    assert m.stored.total_bytes == REAL_BYTES
    assert f"Bearer {TOKEN}" in hub.auth_headers


def test_server_down_says_check_the_network(hub, monkeypatch):
    url = hub.url
    hub.stop()
    monkeypatch.setenv("HF_ENDPOINT", url)
    with pytest.raises(SourceError, match="cannot reach the hub.*use --config with a local copy"):
        fetch_hub_model("org/tiny", timeout_s=2)
    hub.start()  # the fixture stops it again


def test_stalled_server_times_out(hub, monkeypatch):
    with socket.socket() as s:  # accepts connections (backlog) and never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{s.getsockname()[1]}")
        t0 = time.monotonic()
        with pytest.raises(SourceError, match="cannot reach the hub"):
            fetch_hub_model("org/tiny", timeout_s=0.5)
        assert time.monotonic() - t0 < 10


def test_cached_config_is_served_when_the_hub_is_down(hub, monkeypatch):
    sha = hub.add_repo("org/tiny", {"config.json": _config_bytes(), "model.safetensors": save(TENSORS)})
    fetch_hub_model("org/tiny")
    clear_cache()  # in-process cache gone; only the on-disk caches remain
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    m = fetch_hub_model("org/tiny", revision=sha, timeout_s=2)
    assert m.sha == sha and m.stored.total_bytes == REAL_BYTES


def test_offline_mode_serves_config_and_headers_from_the_caches(hub, monkeypatch):
    hub.add_repo("org/tiny", {"config.json": _config_bytes(), "model.safetensors": save(TENSORS)})
    online = fetch_hub_model("org/tiny")
    clear_cache()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = len(hub.requests)
    m = fetch_hub_model("org/tiny")
    assert len(hub.requests) == n  # not one request
    assert m.sha == online.sha and m.stored.total_bytes == REAL_BYTES


def test_offline_mode_without_a_cached_copy(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceError, match="not in the local cache.*HF_HUB_OFFLINE"):
        fetch_hub_model("org/never-fetched")


def test_oversize_config_is_refused_before_download(hub):
    hub.add_repo("org/huge", {"config.json": _config_bytes(padding="x" * 5000)})
    with pytest.raises(SourceError, match="config.json is .* bytes; at most 4,096"):
        fetch_hub_model("org/huge", max_config_bytes=4096)
    assert not [p for m, p, _ in hub.requests if m == "GET" and p.endswith("config.json")]


def test_oversize_header_is_refused(hub):
    hub.add_repo("org/tiny", {"config.json": _config_bytes(), "model.safetensors": save(TENSORS)})
    with pytest.raises(SourceError, match="safetensors header is .* at most 100 bytes"):
        fetch_hub_model("org/tiny", max_header_bytes=100)


def test_invalid_header_is_refused(hub):
    bad = (20).to_bytes(8, "little") + b'{"w": {"dtype": 1}} '
    hub.add_repo("org/bad", {"config.json": _config_bytes(), "model.safetensors": bad})
    with pytest.raises(SourceError, match="invalid safetensors header"):
        fetch_hub_model("org/bad")


def test_invalid_config_json(hub):
    hub.add_repo("org/broken", {"config.json": b"{not json"})
    with pytest.raises(ConfigError, match="not valid JSON"):
        fetch_hub_model("org/broken")


def test_results_are_cached_in_process(hub):
    hub.add_repo("org/tiny", {"config.json": _config_bytes(), "model.safetensors": save(TENSORS)})
    first = fetch_hub_model("org/tiny")
    n = len(hub.requests)
    assert fetch_hub_model("org/tiny") is first
    assert len(hub.requests) == n


@pytest.mark.parametrize("bad", ["", "org/", "/name", "a/b/c", "org/na me", "../etc", "org/a..b", "org/a--b",
                                 "https://huggingface.co/org/x", "x" * 200, None, 3])
def test_repo_id_is_validated_before_any_request(bad):
    with pytest.raises(SourceError, match="not a Hugging Face repo id"):
        validate_repo_id(bad)


@pytest.mark.parametrize("good", ["gpt2", "meta-llama/Llama-3.1-8B", "Qwen/Qwen2.5-0.5B", "org_1/model.v2"])
def test_valid_repo_ids(good):
    assert validate_repo_id(good) == good
