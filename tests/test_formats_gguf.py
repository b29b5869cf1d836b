"""GGUF weight formats: ggml block sizes and llama.cpp's per-tensor type mix.

Sources:
- Block sizes: the ``gguf`` Python package's ``GGML_QUANT_SIZES`` (gguf-py, shipped with llama.cpp),
  and its reference quantizers (``gguf.quants.quantize``) for the bytes of real quantized rows.
- Type assignment: ggml-org/llama.cpp ``src/llama-quant.cpp`` (``llama_tensor_get_type_impl``,
  ``tensor_type_fallback``; master at commit 007dbbf3): for Q4_K_M and Q5_K_M, ``attn_v`` and
  ``ffn_down`` take Q6_K in the layers where ``use_more_bits(i, n)`` holds, i.e.
  ``i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2``; ``output.weight`` takes Q6_K; 1-D tensors stay F32.
- Published sizes: Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf is 4.92 GB = 4.58 GiB
  (https://huggingface.co/bartowski/Meta-Llama-3.1-8B-Instruct-GGUF, file table), and TheBloke's
  Llama-2-7B GGUF table (https://huggingface.co/TheBloke/Llama-2-7B-GGUF): llama-2-7b.Q4_K_M.gguf
  4.08 GB, Q4_0 3.83 GB, Q8_0 7.16 GB.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from planner.errors import InputError
from planner.formats import (
    GGML_TYPES,
    GGUF_FILE_TYPES,
    ggml_type_bytes,
    gguf_types,
    weight_bytes,
    weight_components,
    weight_format,
)
from planner.spec import parse_config

gguf = pytest.importorskip("gguf")

REF = Path("/work/shared/reference/model-configs")
HERE_REF = Path(__file__).resolve().parents[1] / "assets" / "models"

#: A published file size is rounded to 0.01 GB (+-5 MB) and also holds the GGUF header: tokenizer and
#: metadata, a few MB for Llama 3's 128k-token vocabulary and merges, under 1 MB for Llama 2's 32k.
ROUNDING_BYTES = 5_000_000
LLAMA2_HEADER_MAX_BYTES = 1_000_000
LLAMA3_HEADER_MAX_BYTES = 12_000_000

LLAMA2_7B = dict(model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=32, vocab_size=32000, torch_dtype="float16")


def _ref(name: str) -> dict:
    for base in (REF, HERE_REF):
        p = base / name
        if p.exists():
            return json.loads(p.read_text())
    raise FileNotFoundError(name)


@pytest.mark.parametrize("name", sorted(GGML_TYPES))
def test_block_table_equals_gguf_package(name):
    qt = gguf.GGMLQuantizationType[name]
    assert GGML_TYPES[name] == tuple(gguf.GGML_QUANT_SIZES[qt])


@pytest.mark.parametrize("name", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "F16", "BF16"])
def test_row_bytes_equal_real_quantized_rows(name):
    """gguf-py's reference quantizer (it implements these types) writes exactly the bytes counted."""
    rows, cols = 3, 512
    data = np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32)
    q = gguf.quants.quantize(data, gguf.GGMLQuantizationType[name])
    assert q.nbytes == ggml_type_bytes(name, rows, cols)


@pytest.mark.parametrize("name", sorted(GGML_TYPES))
def test_row_bytes_equal_gguf_byte_shape(name):
    """gguf-py's quant_shape_to_byte_shape (what a GGUF reader maps) gives the same bytes per tensor."""
    rows, cols = 5, 1024
    byte_shape = gguf.quants.quant_shape_to_byte_shape((rows, cols), gguf.GGMLQuantizationType[name])
    assert int(np.prod(byte_shape)) == ggml_type_bytes(name, rows, cols)


def test_llama31_8b_q4_k_m_is_about_4_58_gib():
    spec = parse_config(_ref("Llama-3.1-8B.json"))
    total = weight_bytes(spec, weight_format("gguf-Q4_K_M"))
    published = 4_920_000_000  # Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf, 4.92 GB
    assert published - ROUNDING_BYTES - LLAMA3_HEADER_MAX_BYTES <= total <= published + ROUNDING_BYTES
    assert round(total / 2**30, 2) == 4.58


@pytest.mark.parametrize("ftype, published", [("Q4_K_M", 4_080_000_000), ("Q4_0", 3_830_000_000),
                                              ("Q8_0", 7_160_000_000)])
def test_llama2_7b_matches_published_file_sizes(ftype, published):
    total = weight_bytes(parse_config(LLAMA2_7B), weight_format(f"gguf-{ftype}"))
    assert published - ROUNDING_BYTES - LLAMA2_HEADER_MAX_BYTES <= total <= published + ROUNDING_BYTES


def _types(spec, fmt_name):
    """gguf name base -> {layer: type}."""
    out: dict[str, dict] = {}
    for t, layer, ty in gguf_types(spec, weight_format(fmt_name)):
        out.setdefault(t.gguf, {})[layer] = ty
    return out


MORE_BITS_32 = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31}  # use_more_bits(i, 32)


@pytest.mark.parametrize("ftype, base", [("Q4_K_M", "Q4_K"), ("Q5_K_M", "Q5_K")])
def test_k_m_mix_uses_q6_k_for_attn_v_and_ffn_down_in_more_bits_layers(ftype, base):
    types = _types(parse_config(_ref("Llama-3.1-8B.json")), f"gguf-{ftype}")
    for name in ("attn_v", "ffn_down"):
        assert {i for i, ty in types[name].items() if ty == "Q6_K"} == MORE_BITS_32
        assert {ty for i, ty in types[name].items() if i not in MORE_BITS_32} == {base}
    for name in ("attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"):
        assert set(types[name].values()) == {base}
    assert types["output"] == {None: "Q6_K"}
    assert types["token_embd"] == {None: base}  # untied: the file type's default
    assert set(types["attn_norm"].values()) == {"F32"} and types["output_norm"] == {None: "F32"}


def test_q4_k_s_bumps_first_attn_v_and_first_eighth_of_ffn_down():
    types = _types(parse_config(_ref("Llama-3.1-8B.json")), "gguf-Q4_K_S")
    assert {i for i, ty in types["attn_v"].items() if ty == "Q5_K"} == {0, 1, 2, 3}
    assert {i for i, ty in types["ffn_down"].items() if ty == "Q5_K"} == {0, 1, 2, 3}


def test_single_type_files():
    spec = parse_config(_ref("Llama-3.1-8B.json"))
    q8 = Counter(ty for _, _, ty in gguf_types(spec, weight_format("gguf-Q8_0")))
    assert set(q8) == {"Q8_0", "F32"}  # output stays Q8_0 (llama.cpp: new_type != Q8_0 -> Q6_K)
    q6 = Counter(ty for _, _, ty in gguf_types(spec, weight_format("gguf-Q6_K")))
    assert set(q6) == {"Q6_K", "F32"}
    q40 = _types(spec, "gguf-Q4_0")
    assert q40["output"] == {None: "Q6_K"} and q40["token_embd"] == {None: "Q4_0"}
    f16 = Counter(ty for _, _, ty in gguf_types(spec, weight_format("gguf-F16")))
    assert set(f16) == {"F16", "F32"}


def test_tied_embeddings_take_the_output_type():
    """Llama-3.2-1B ties embeddings: GGUF has no output.weight, and token_embd gets Q6_K."""
    spec = parse_config(_ref("Llama-3.2-1B-Instruct.json"))
    assert spec.tie_word_embeddings
    types = _types(spec, "gguf-Q4_K_M")
    assert "output" not in types and types["token_embd"] == {None: "Q6_K"}


def test_llama_70b_attn_v_bumped_to_q5_k():
    """llama.cpp calls an 80-layer GQA llama LLM_TYPE_70B: attn_v Q3_K/Q4_K become Q5_K."""
    spec = parse_config(_ref("Llama-3.x-70B-Instruct.json"))
    types = _types(spec, "gguf-Q4_K_M")
    assert set(types["attn_v"].values()) == {"Q5_K", "Q6_K"}


def test_row_not_divisible_by_256_falls_back():
    """Q4_K needs rows of 256: hidden 896 (Qwen2.5-0.5B) falls back to Q5_0 (block 32)."""
    cfg = dict(model_type="llama", hidden_size=896, intermediate_size=4864, num_hidden_layers=4,
               num_attention_heads=14, num_key_value_heads=2, vocab_size=1000)
    types = _types(parse_config(cfg), "gguf-Q4_K_M")
    assert set(types["attn_q"].values()) == {"Q5_0"}  # ne[0] = 896
    assert types["ffn_down"][1] == "Q4_K"  # ne[0] = 4864 = 19 * 256; layer 1 is not a more-bits layer
    assert types["output"] == {None: "Q8_0"}  # output: nx % 256 != 0 -> Q8_0


def test_row_not_divisible_by_32():
    """ffn_down rows of 100 values: Q4_K falls back to Q5_0, then to F16 (llama.cpp's "unusual shape");
    Q4_0 has no fallback and llama.cpp refuses, so the planner says so in one clear error."""
    cfg = dict(model_type="llama", hidden_size=64, intermediate_size=100, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, vocab_size=100)
    types = _types(parse_config(cfg), "gguf-Q4_K_M")
    assert set(types["ffn_down"].values()) == {"F16"}
    assert set(types["attn_q"].values()) == {"Q5_0"}  # 64 % 256 != 0, 64 % 32 == 0
    with pytest.raises(InputError, match="not a multiple of 32"):
        weight_components(parse_config(cfg), weight_format("gguf-Q4_0"))


def test_components_add_up_and_have_no_quant_state():
    spec = parse_config(_ref("Llama-3.1-8B.json"))
    fmt = weight_format("gguf-Q4_K_M")
    comps = weight_components(spec, fmt)
    assert all(not c.path.endswith("quant_state") for c in comps)
    by_copy = sum(ggml_type_bytes(ty, *_rows_cols(t)) for t, _, ty in gguf_types(spec, fmt))
    assert sum(c.bytes for c in comps) == by_copy


def _rows_cols(t):
    if len(t.shape) == 1:
        return 1, t.shape[0]
    return t.numel_each // t.shape[-1], t.shape[-1]


@pytest.mark.parametrize("name", ["gguf-Q4_K_M", "gguf-q4_k_m", "GGUF-Q4_K_M"])
def test_names_are_case_insensitive(name):
    assert weight_format(name).name == "gguf-Q4_K_M"


@pytest.mark.parametrize("name", ["gguf-Q4_K_X", "gguf-", "gguf-Q7_0"])
def test_unknown_gguf_type_lists_valid_ones(name):
    with pytest.raises(InputError, match="Q4_K_M"):
        weight_format(name)


def test_every_file_type_plans_llama():
    spec = parse_config(_ref("Llama-3.1-8B.json"))
    sizes = {ft: weight_bytes(spec, weight_format(f"gguf-{ft}")) for ft in GGUF_FILE_TYPES}
    assert sizes["Q2_K"] < sizes["Q3_K_M"] < sizes["Q4_K_S"] < sizes["Q4_K_M"] < sizes["Q5_K_M"]
    assert sizes["Q5_K_M"] < sizes["Q6_K"] < sizes["Q8_0"] < sizes["F16"] == sizes["BF16"] < sizes["F32"]


def test_eight_expert_models_bump_attention():
    """llama.cpp's n_expert == 8 rules (Mixtral): attn_v and attn_k Q8_0, attn_output Q5_K for Q4_K_M;
    expert ffn_down follows use_more_bits by the layer parsed from the tensor name; the router
    (ffn_gate_inp) is never quantized."""
    spec = parse_config(_ref("Mixtral-8x7B.json"))
    types = _types(spec, "gguf-Q4_K_M")
    assert set(types["attn_v"].values()) == {"Q8_0"} and set(types["attn_k"].values()) == {"Q8_0"}
    assert set(types["attn_output"].values()) == {"Q5_K"}
    down = next(v for k, v in types.items() if k.startswith("ffn_down"))
    assert {i for i, ty in down.items() if ty == "Q6_K"} == MORE_BITS_32
    router = next(v for k, v in types.items() if k.startswith("ffn_gate_inp"))
    assert set(router.values()) == {"F32"}
