"""planner.stored: safetensors headers -> exact stored bytes per component.

Ground truth: files written by the safetensors library (tensor bytes = numel * element_size of the real
torch tensors) and checkpoints saved by transformers' ``save_pretrained`` from tiny random models.
"""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save, save_file

from planner.errors import SourceError
from planner.estimate import Plan, estimate
from planner.formats import weight_components, weight_format
from planner.spec import parse_config
from planner.stored import (
    DTYPE_BITS,
    StoredWeights,
    component_of,
    parse_header,
    read_header,
    read_model_dir,
    shard_files,
)

# ---------------------------------------------------------------------------------------------------
# header bytes equal the real tensors' bytes
# ---------------------------------------------------------------------------------------------------

REAL = {
    "model.embed_tokens.weight": torch.randn(50, 16, dtype=torch.bfloat16),
    "model.layers.0.self_attn.q_proj.weight": torch.randn(16, 16, dtype=torch.float16),
    "model.layers.0.self_attn.q_proj.weight_scale_inv": torch.ones(1, 1, dtype=torch.float32),
    "model.layers.0.mlp.down_proj.weight": torch.zeros(16, 40, dtype=torch.float8_e4m3fn),
    "model.layers.0.mlp.down_proj.qweight": torch.zeros(5, 16, dtype=torch.int32),
    "model.layers.0.input_layernorm.weight": torch.ones(16, dtype=torch.float64),
    "lm_head.weight": torch.randn(50, 16, dtype=torch.float32),
    "model.layers.0.mlp.flag": torch.zeros(3, dtype=torch.bool),
    "scalar": torch.tensor(1.0),
    "empty": torch.zeros(0, 4, dtype=torch.float16),
}


def _real_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def test_header_bytes_equal_the_real_tensor_bytes(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(REAL, str(path))
    got = {t.name: t for t in read_header(path)}
    assert set(got) == set(REAL)
    for name, t in REAL.items():
        assert got[name].nbytes == _real_bytes(t), name
        assert got[name].shape == tuple(t.shape)


def test_header_total_is_the_files_data_section(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(REAL, str(path))
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    stored = StoredWeights(read_header(path), str(path))
    assert stored.total_bytes == os.path.getsize(path) - 8 - n == sum(_real_bytes(t) for t in REAL.values())


def test_component_bytes_sum_to_total(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(REAL, str(path))
    stored = StoredWeights(read_header(path), str(path))
    comps = stored.component_bytes()
    assert sum(comps.values()) == stored.total_bytes
    assert comps["quant_state"] == 4  # the one fp32 weight_scale_inv
    assert comps["embeddings"] == 50 * 16 * 2
    assert sum(c.bytes for c in stored.components()) == stored.total_bytes
    assert {c.source for c in stored.components()} == {"safetensors header"}


# ---------------------------------------------------------------------------------------------------
# tensor names -> planner components (real checkpoint names of each family)
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, component", [
    ("model.embed_tokens.weight", "embeddings"),
    ("transformer.wte.weight", "embeddings"),
    ("transformer.wpe.weight", "embeddings"),
    ("transformer.word_embeddings.weight", "embeddings"),  # Falcon
    ("gpt_neox.embed_in.weight", "embeddings"),
    ("model.layers.3.self_attn.q_proj.weight", "attention/qkv"),
    ("model.layers.3.self_attn.k_proj.bias", "attention/qkv"),
    ("model.layers.3.self_attn.qkv_proj.weight", "attention/qkv"),  # Phi-3
    ("transformer.h.0.attn.c_attn.weight", "attention/qkv"),  # GPT-2
    ("gpt_neox.layers.0.attention.query_key_value.weight", "attention/qkv"),
    ("transformer.h.0.self_attention.query_key_value.weight", "attention/qkv"),  # Falcon
    ("model.layers.0.self_attn.kv_a_proj_with_mqa.weight", "attention/qkv"),  # DeepSeek MLA
    ("model.layers.0.self_attn.q_b_proj.weight", "attention/qkv"),
    ("model.layers.0.self_attn.o_proj.weight", "attention/o"),
    ("transformer.h.0.attn.c_proj.weight", "attention/o"),
    ("gpt_neox.layers.0.attention.dense.weight", "attention/o"),
    ("transformer.h.0.self_attention.dense.weight", "attention/o"),
    ("model.layers.0.mlp.gate_proj.weight", "mlp"),
    ("model.layers.0.mlp.gate_up_proj.weight", "mlp"),
    ("transformer.h.0.mlp.c_fc.weight", "mlp"),
    ("transformer.h.0.mlp.c_proj.bias", "mlp"),
    ("gpt_neox.layers.0.mlp.dense_h_to_4h.weight", "mlp"),
    ("model.layers.0.block_sparse_moe.experts.7.w1.weight", "experts"),  # Mixtral
    ("model.layers.0.mlp.experts.gate_up_proj", "experts"),  # transformers 5 fused experts
    ("model.layers.0.mlp.shared_expert.down_proj.weight", "experts"),  # Qwen2-MoE
    ("model.layers.5.mlp.shared_experts.up_proj.weight", "experts"),  # DeepSeek
    ("model.layers.0.block_sparse_moe.gate.weight", "router"),
    ("model.layers.0.mlp.gate.weight", "router"),
    ("model.layers.3.mlp.gate.e_score_correction_bias", "router"),
    ("model.layers.0.mlp.shared_expert_gate.weight", "router"),
    ("model.layers.0.input_layernorm.weight", "norms"),
    ("model.layers.0.self_attn.q_norm.weight", "norms"),
    ("model.layers.0.self_attn.kv_a_layernorm.weight", "norms"),
    ("model.norm.weight", "norms"),
    ("transformer.ln_f.bias", "norms"),
    ("transformer.h.0.ln_1.weight", "norms"),
    ("lm_head.weight", "lm_head"),
    ("embed_out.weight", "lm_head"),  # GPT-NeoX
    ("model.layers.0.mlp.down_proj.weight_scale_inv", "quant_state"),  # DeepSeek-V3 fp8 blocks
    ("model.layers.0.self_attn.q_proj.weight_scale", "quant_state"),
    ("model.layers.0.self_attn.q_proj.qzeros", "quant_state"),  # GPTQ / AWQ
    ("model.layers.0.self_attn.q_proj.scales", "quant_state"),
    ("model.layers.0.self_attn.q_proj.g_idx", "quant_state"),
    ("model.layers.0.self_attn.q_proj.qweight", "attention/qkv"),  # the packed weight itself
    ("model.layers.0.mlp.up_proj.weight.absmax", "quant_state"),  # bitsandbytes 4-bit
    ("model.layers.0.mlp.up_proj.weight.nested_absmax", "quant_state"),
    ("model.layers.0.mlp.up_proj.weight.quant_state.bitsandbytes__nf4", "quant_state"),
    ("model.layers.0.mlp.up_proj.SCB", "quant_state"),  # LLM.int8
    ("some.unknown.tensor", "other"),
])
def test_component_of_real_checkpoint_names(name, component):
    assert component_of(name) == component


# ---------------------------------------------------------------------------------------------------
# transformers checkpoints: stored bytes per component == the planner's computed bytes
# ---------------------------------------------------------------------------------------------------

REF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "reference",
                   "model-configs")
TINY = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=128)


def _tiny_checkpoint(tmp_path, ref: str, dtype: torch.dtype, **save_kw):
    transformers = pytest.importorskip("transformers")
    cfg = json.load(open(os.path.join(REF, ref)))
    cfg.update(TINY)
    cfg.pop("head_dim", None)
    cfg.update(pad_token_id=None, bos_token_id=None, eos_token_id=None)  # ids beyond the tiny vocabulary
    cfg["torch_dtype"] = cfg["dtype"] = str(dtype).removeprefix("torch.")
    config = transformers.AutoConfig.for_model(**cfg)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(tmp_path, **save_kw)
    return json.load(open(tmp_path / "config.json")), model


@pytest.mark.parametrize("ref, dtype", [
    ("Llama-3.2-1B-Instruct.json", torch.bfloat16), ("Llama-3.1-8B.json", torch.float32),
    ("Qwen2.5-0.5B.json", torch.bfloat16), ("Qwen3-8B.json", torch.bfloat16), ("gpt2.json", torch.float32),
    ("Phi-3-mini-4k-instruct.json", torch.bfloat16), ("Gemma-2-9B.json", torch.float32),
    ("Mixtral-8x7B.json", torch.bfloat16), ("Mistral-7B-v0.1.json", torch.bfloat16),
])
def test_saved_checkpoint_components_equal_planner_components(tmp_path, ref, dtype):
    cfg, model = _tiny_checkpoint(tmp_path, ref, dtype)
    stored = read_model_dir(tmp_path)
    assert stored is not None
    unique = {p.data_ptr(): p for p in model.state_dict().values()}  # tied embeddings stored once
    assert stored.total_bytes == sum(p.numel() * p.element_size() for p in unique.values())
    spec = parse_config(cfg)
    fmt = weight_format({torch.bfloat16: "bf16", torch.float32: "fp32"}[dtype])
    planned = {c.path: c.bytes for c in weight_components(spec, fmt)}
    assert {f"weights/{k}": v for k, v in stored.component_bytes().items()} == planned


@pytest.mark.parametrize("ref", ["Qwen2.5-0.5B.json", "Qwen3-8B.json", "gpt2.json", "Phi-3-mini-4k-instruct.json",
                                 "Gemma-2-9B.json", "Mixtral-8x7B.json", "Mistral-7B-v0.1.json"])
def test_every_tensor_of_a_real_checkpoint_has_a_planner_component(tmp_path, ref):
    _tiny_checkpoint(tmp_path, ref, torch.float16)
    stored = read_model_dir(tmp_path)
    assert [t.name for t in stored.tensors if t.component == "other"] == []
    assert "mlp" in stored.component_bytes() or "experts" in stored.component_bytes()
    assert {"embeddings", "attention/qkv", "attention/o", "norms"} <= set(stored.component_bytes())


def test_sharded_checkpoint_reads_every_shard(tmp_path):
    _, model = _tiny_checkpoint(tmp_path, "Llama-3.2-1B-Instruct.json", torch.float32, max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    stored = read_model_dir(tmp_path)
    assert len(stored.files) > 1
    unique = {p.data_ptr(): p for p in model.state_dict().values()}
    assert stored.total_bytes == sum(p.numel() * 4 for p in unique.values())


def test_estimate_uses_stored_bytes_only_for_auto_weights(tmp_path):
    cfg, _ = _tiny_checkpoint(tmp_path, "Llama-3.2-1B-Instruct.json", torch.float32)
    stored = read_model_dir(tmp_path)
    spec = parse_config(cfg)
    auto = estimate(spec, Plan(), stored=stored)
    assert auto.weights_bytes == stored.total_bytes
    assert {c.source for c in auto.components if c.group == "weights"} == {"safetensors header"}
    fp16 = estimate(spec, Plan(weights="fp16"), stored=stored)
    assert fp16.weights_bytes == stored.total_bytes // 2  # all fp32 tensors, recomputed at 2 bytes


def test_model_dir_without_safetensors_is_none(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert read_model_dir(tmp_path) is None


# ---------------------------------------------------------------------------------------------------
# malformed files: one SourceError naming the file and the problem
# ---------------------------------------------------------------------------------------------------

def _file(tmp_path, header: bytes, data: bytes = b"", length: int | None = None):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)
    return p


@pytest.mark.parametrize("header, data, length, message", [
    (b"", b"", None, "not a safetensors file"),
    (b"{}", b"", 1 << 40, "at most"),
    (b"{}", b"", 100, "truncated"),
    (b"[1, 2]", b"", None, "not a JSON object"),
    (b"\xff\xfe{", b"", None, "not UTF-8 JSON"),
    (b'{"a": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}}', b"x", None, "unknown dtype"),
    (b'{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', b"xxxx", None, "invalid shape"),
    (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', b"xxxx", None, "needs 8 bytes"),
    (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}', b"xxxx", None, "invalid data_offsets"),
    (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', b"xxxx", None, "past the data section"),
    (b'{"a": 3}', b"", None, "is not an object"),
])
def test_malformed_header_is_a_source_error(tmp_path, header, data, length, message):
    p = _file(tmp_path, header, data, length)
    with pytest.raises(SourceError, match=message):
        read_header(p)


def test_header_bound_is_configurable(tmp_path):
    p = tmp_path / "m.safetensors"
    p.write_bytes(save({"w": torch.zeros(4)}))
    assert read_header(p)  # fine with the default bound
    with pytest.raises(SourceError, match="at most 10 bytes"):
        read_header(p, max_header_bytes=10)


def test_missing_file_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="cannot read"):
        read_header(tmp_path / "nope.safetensors")


def test_parse_header_ignores_metadata():
    h = json.dumps({"__metadata__": {"format": "pt"},
                    "w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}}).encode()
    (t,) = parse_header(h, "x")
    assert (t.name, t.dtype, t.shape, t.nbytes) == ("w", "BF16", (2, 3), 12)


@pytest.mark.parametrize("index, message", [
    (b"not json", "not valid JSON"),
    (b'{"weight_map": {}}', "no 'weight_map'"),
    (b'{"weight_map": {"a": "../../etc/passwd.safetensors"}}', "invalid shard file"),
    (b'{"weight_map": {"a": "model.bin"}}', "invalid shard file"),
])
def test_bad_index_is_a_source_error(index, message):
    with pytest.raises(SourceError, match=message):
        shard_files(index, "model.safetensors.index.json")


def test_index_naming_a_missing_shard(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors"}}))
    with pytest.raises(SourceError, match="model-00001-of-00002.safetensors, which is not in"):
        read_model_dir(tmp_path)


# ---------------------------------------------------------------------------------------------------
# property: no input escapes as anything but a SourceError
# ---------------------------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 1 << 50) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_entries = st.dictionaries(
    st.text(max_size=12),
    st.fixed_dictionaries({"dtype": st.sampled_from([*DTYPE_BITS, "Q4", 3]),
                           "shape": st.lists(st.integers(-2, 64), max_size=3) | _json_values,
                           "data_offsets": st.lists(st.integers(-4, 4096), min_size=0, max_size=3)})
    | _json_values,
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=64), _entries.map(lambda d: json.dumps(d).encode())),
       st.none() | st.integers(0, 4096))
def test_any_header_is_tensors_or_a_source_error(header, data_bytes):
    try:
        tensors = parse_header(header, "x.safetensors", data_bytes=data_bytes)
    except SourceError as e:
        assert str(e).startswith("x.safetensors: invalid safetensors header")
        return
    for t in tensors:
        assert t.nbytes * 8 == t.numel * DTYPE_BITS[t.dtype]
        assert data_bytes is None or t.nbytes <= data_bytes
