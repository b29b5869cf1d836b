"""Parsing config.json into ModelSpec: aliases, defaults and per-family rules, table by table.

Where a default or an alias is transformers' behaviour, the expected value comes from the transformers
config object built from the same dict (``tests/_configs.hf_config``), not from a hand-typed number.
"""

from __future__ import annotations

import json

import pytest

from planner.errors import ConfigError
from planner.params import parameter_count, tensors
from planner.spec import FULL, SLIDING, parse_config, supported_model_types

TINY = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 96, "vocab_size": 128}


def tiny(model_type: str, **extra) -> dict:
    cfg = {"model_type": model_type, **TINY, **extra}
    return {k: v for k, v in cfg.items() if v is not _DROP}


_DROP = object()


# --- defaults that transformers applies when a field is absent --------------------------------------

KV_DEFAULT_CASES = ["llama", "granite", "mistral", "mixtral", "qwen2", "qwen3", "qwen2_moe", "qwen3_moe",
                    "gemma", "gemma2", "gemma3_text", "phi3", "olmo2", "starcoder2"]
_MOE_FIELDS = {"mixtral": {"num_local_experts": 8},
               "qwen2_moe": {"num_experts": 8, "moe_intermediate_size": 16, "shared_expert_intermediate_size": 8},
               "qwen3_moe": {"num_experts": 8, "moe_intermediate_size": 16}}


@pytest.mark.parametrize("model_type", KV_DEFAULT_CASES)
def test_absent_kv_heads_and_head_dim_take_the_class_defaults(model_type):
    """num_key_value_heads / head_dim missing: the values transformers' config class gives them."""
    from tests._configs import hf_config

    # 32 heads: every class default for the KV heads (32, 16, 8, 4, 2 or "= heads") divides it
    cfg = tiny(model_type, num_attention_heads=32, hidden_size=128, num_key_value_heads=_DROP,
               **_MOE_FIELDS.get(model_type, {}))
    spec = parse_config(cfg)
    hf = hf_config(cfg)
    assert spec.num_kv_heads == hf.num_key_value_heads
    expected_head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    assert spec.head_dim == expected_head_dim


@pytest.mark.parametrize("model_type", sorted(set(supported_model_types()) - {"gemma3"}))
def test_absent_tie_word_embeddings_takes_the_class_default(model_type):
    import random

    from tests._configs import hf_config, random_config

    cfg = random_config(model_type, random.Random(7))
    cfg.pop("tie_word_embeddings", None)
    assert parse_config(cfg).tie_word_embeddings == hf_config(cfg).tie_word_embeddings


@pytest.mark.parametrize("model_type, expected", [
    ("llama", False), ("mistral", False), ("qwen2", False), ("qwen3", False), ("phi3", False),
    ("gemma", True), ("gemma2", True), ("gemma3_text", True), ("starcoder2", True),
])
def test_tied_embeddings_by_family_default(model_type, expected):
    spec = parse_config(tiny(model_type))
    assert spec.tie_word_embeddings is expected
    assert any(t.name == "lm_head.weight" for t in tensors(spec)) is (not expected)


# --- aliases ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_type, canonical, alias, value", [
    ("gpt2", {"n_embd": 64, "n_layer": 2, "n_head": 4}, {"hidden_size": 64, "num_hidden_layers": 2,
                                                          "num_attention_heads": 4}, None),
    ("gpt2", {"n_positions": 77}, {"max_position_embeddings": 77}, None),
    ("mixtral", {"num_local_experts": 5}, {"num_experts": 5}, None),
    ("qwen3_moe", {"num_experts": 5}, {"num_local_experts": 5}, None),
    ("deepseek_v3", {"n_routed_experts": 5}, {"num_experts": 5}, None),
])
def test_attribute_map_aliases_give_the_same_spec(model_type, canonical, alias, value):
    """Each transformers attribute_map alias parses to the same spec as the canonical field."""
    import random

    from tests._configs import random_config

    base = random_config(model_type, random.Random(3))
    for k in list(canonical) + list(alias):
        base.pop(k, None)
    if model_type == "deepseek_v3":
        base["num_experts_per_tok"] = 2
    assert parse_config({**base, **canonical}) == parse_config({**base, **alias})


@pytest.mark.parametrize("key", ["dtype", "torch_dtype"])
@pytest.mark.parametrize("value, expected", [("float16", "float16"), ("torch.bfloat16", "bfloat16"),
                                             ("float32", "float32")])
def test_dtype_field_and_prefix(key, value, expected):
    assert parse_config(tiny("llama", **{key: value})).torch_dtype == expected


def test_dtype_defaults_to_bfloat16():
    assert parse_config(tiny("llama")).torch_dtype == "bfloat16"


# --- sliding windows and layer types ------------------------------------------------------------------


@pytest.mark.parametrize("model_type, extra, types, window", [
    # Mistral v0.1 configs: the window applies to every layer; absent key = MistralConfig's 4096
    ("mistral", {}, (SLIDING,) * 4, 4096),
    ("mistral", {"sliding_window": None}, (FULL,) * 4, None),
    ("mistral", {"sliding_window": 512}, (SLIDING,) * 4, 512),
    ("mixtral", {"num_local_experts": 2}, (FULL,) * 4, None),
    ("phi3", {"sliding_window": 2047}, (SLIDING,) * 4, 2047),
    # Qwen2/3: only with use_sliding_window, and only layers >= max_window_layers
    ("qwen2", {"sliding_window": 256, "max_window_layers": 2}, (FULL,) * 4, None),
    ("qwen2", {"use_sliding_window": True, "sliding_window": 256, "max_window_layers": 2},
     (FULL, FULL, SLIDING, SLIDING), 256),
    ("qwen3", {"use_sliding_window": True, "max_window_layers": 3}, (FULL, FULL, FULL, SLIDING), 4096),
    # Gemma2 alternates starting with a sliding layer; Gemma3 slides five of six
    ("gemma2", {"sliding_window": 64}, (SLIDING, FULL, SLIDING, FULL), 64),
    ("gemma3_text", {"num_hidden_layers": 7}, (SLIDING,) * 5 + (FULL, SLIDING), 4096),
    ("gemma3_text", {"sliding_window_pattern": 2}, (SLIDING, FULL, SLIDING, FULL), 4096),
    ("gemma3_text", {"sliding_window": 100, "use_bidirectional_attention": True}, None, 51),
    # an explicit layer_types list wins (transformers' cache honours it)
    ("qwen2", {"layer_types": ["full_attention", "sliding_attention", "full_attention", "sliding_attention"],
               "use_sliding_window": True, "sliding_window": 32}, (FULL, SLIDING, FULL, SLIDING), 32),
    ("gemma2", {"layer_types": ["full_attention"] * 4}, (FULL,) * 4, None),
])
def test_sliding_layers_and_window(model_type, extra, types, window):
    from tests._configs import hf_layer_types

    cfg = tiny(model_type, **extra)
    spec = parse_config(cfg)
    if types is not None:
        assert spec.layer_types == types
    assert spec.sliding_window == window
    hf_types, hf_windows = hf_layer_types(cfg)
    assert spec.layer_types == hf_types
    assert {w for w in hf_windows if w is not None} == ({window} if window else set())


@pytest.mark.parametrize("model_type, extra, mlp_types", [
    ("qwen2_moe", {"num_experts": 4, "decoder_sparse_step": 2}, ("dense", "moe", "dense", "moe")),
    ("qwen2_moe", {"num_experts": 4, "mlp_only_layers": [0, 3]}, ("dense", "moe", "moe", "dense")),
    ("qwen2_moe", {"num_experts": 0}, ("dense",) * 4),
    ("qwen3_moe", {"num_experts": 4, "decoder_sparse_step": 3}, ("dense", "dense", "moe", "dense")),
    ("deepseek_v3", {"first_k_dense_replace": 1}, ("dense", "moe", "moe", "moe")),
    ("deepseek_v2", {"first_k_dense_replace": 0, "moe_layer_freq": 2}, ("moe",) * 4),
])
def test_moe_layer_placement(model_type, extra, mlp_types):
    cfg = tiny(model_type, moe_intermediate_size=16, shared_expert_intermediate_size=8, num_experts_per_tok=1,
               n_routed_experts=4, kv_lora_rank=8, qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=8,
               q_lora_rank=8, **extra)
    spec = parse_config(cfg)
    assert spec.mlp_types == mlp_types
    from tests._configs import meta_count

    assert parameter_count(spec) == meta_count(cfg)


def test_deepseek_moe_layer_freq_is_ignored_with_a_note():
    cfg = tiny("deepseek_v2", n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=8,
               kv_lora_rank=8, qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=8, moe_layer_freq=2)
    assert any("moe_layer_freq" in n for n in parse_config(cfg).notes)


@pytest.mark.parametrize("q_lora_rank, names", [
    (None, {"self_attn.q_proj.weight"}),
    (16, {"self_attn.q_a_proj.weight", "self_attn.q_a_layernorm.weight", "self_attn.q_b_proj.weight"}),
    (_DROP, {"self_attn.q_a_proj.weight", "self_attn.q_a_layernorm.weight", "self_attn.q_b_proj.weight"}),
])
def test_deepseek_q_lora_rank_null_means_plain_q_proj(q_lora_rank, names):
    """V2-Lite sets q_lora_rank to null; an absent key takes the class default (1536)."""
    cfg = tiny("deepseek_v2", n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=8,
               kv_lora_rank=8, qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=8, q_lora_rank=q_lora_rank)
    spec = parse_config(cfg)
    q = {t.name for t in tensors(spec) if t.name.startswith("self_attn.q")}
    assert q == names
    assert spec.mla.q_lora_rank == (1536 if q_lora_rank is _DROP else q_lora_rank)


def test_gemma3_multimodal_fills_text_defaults_and_notes_them():
    cfg = {"model_type": "gemma3", "text_config": {"hidden_size": 64, "num_hidden_layers": 2,
                                                   "intermediate_size": 96, "vocab_size": 128}}
    spec = parse_config(cfg)
    assert (spec.num_heads, spec.num_kv_heads, spec.head_dim) == (8, 4, 256)  # Gemma3TextConfig defaults
    assert spec.model_type == "gemma3" and spec.family == "gemma3_text"
    assert any("num_attention_heads" in n for n in spec.notes)
    assert any("vision tower" in n for n in spec.notes)


@pytest.mark.parametrize("model_type, extra, norms", [
    ("llama", {}, {"input_layernorm.weight", "post_attention_layernorm.weight"}),
    ("gemma2", {}, {"input_layernorm.weight", "post_attention_layernorm.weight",
                    "pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight"}),
    ("olmo2", {}, {"post_attention_layernorm.weight", "post_feedforward_layernorm.weight"}),
    ("falcon", {}, {"input_layernorm.weight", "input_layernorm.bias"}),
    ("falcon", {"new_decoder_architecture": True}, {"ln_attn.weight", "ln_attn.bias", "ln_mlp.weight",
                                                    "ln_mlp.bias"}),
    ("falcon", {"parallel_attn": False}, {"input_layernorm.weight", "input_layernorm.bias",
                                          "post_attention_layernorm.weight", "post_attention_layernorm.bias"}),
])
def test_per_layer_norms(model_type, extra, norms):
    spec = parse_config(tiny(model_type, **extra))
    per_layer = {t.name for t in tensors(spec) if t.role == "norm" and t.layers
                 and not t.name.startswith(("self_attn.", "attn.", "self_attention."))}
    assert per_layer == norms


@pytest.mark.parametrize("model_type, extra, qkv_width", [
    ("falcon", {}, 64 + 2 * 16),  # Falcon-7B multi-query: one K/V head of 16
    ("falcon", {"multi_query": False}, 3 * 64),
    ("falcon", {"new_decoder_architecture": True, "num_kv_heads": 2}, 64 + 2 * 2 * 16),
    ("phi3", {"num_key_value_heads": 2}, 64 + 2 * 2 * 16),
    ("gpt_neox", {}, 3 * 64),
])
def test_fused_qkv_width(model_type, extra, qkv_width):
    spec = parse_config(tiny(model_type, **extra))
    (qkv,) = [t for t in tensors(spec) if t.gguf == "attn_qkv"]
    assert qkv.shape == (qkv_width, 64)


def test_gpt2_conv1d_weights_keep_the_in_out_shape():
    spec = parse_config({"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100})
    shapes = {t.name: t.shape for t in tensors(spec)}
    assert spec.conv1d
    assert shapes["attn.c_attn.weight"] == (64, 192) and shapes["mlp.c_fc.weight"] == (64, 256)
    assert shapes["wpe.weight"] == (1024, 64)  # GPT2Config n_positions default


@pytest.mark.parametrize("model_type", ["mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3"])
def test_moe_experts_are_fused_3d_and_router_is_not_linear(model_type):
    cfg = tiny(model_type, num_local_experts=4, num_experts=4, n_routed_experts=4, num_experts_per_tok=2,
               moe_intermediate_size=16, shared_expert_intermediate_size=8, kv_lora_rank=8, qk_rope_head_dim=4,
               qk_nope_head_dim=4, v_head_dim=8, first_k_dense_replace=0)
    by_name = {t.name: t for t in tensors(parse_config(cfg))}
    inter = 96 if model_type == "mixtral" else 16
    assert by_name["mlp.experts.gate_up_proj"].shape == (4, 2 * inter, 64)
    assert by_name["mlp.experts.down_proj"].shape == (4, 64, inter)
    assert by_name["mlp.experts.gate_up_proj"].role == "expert"
    assert by_name["mlp.gate.weight"].role == "router"


# --- input forms and unsupported types --------------------------------------------------------------


@pytest.mark.parametrize("form", [json.dumps, lambda c: json.dumps(c).encode(), dict])
def test_dict_text_and_bytes_parse_alike(form):
    cfg = tiny("qwen2", num_key_value_heads=2)
    assert parse_config(form(cfg)) == parse_config(cfg)


def test_unknown_model_type_lists_the_supported_ones():
    with pytest.raises(ConfigError) as e:
        parse_config(tiny("mamba2"))
    assert e.value.field == "model_type"
    for t in supported_model_types():
        assert t in str(e.value)


def test_approximate_plans_unknown_type_as_llama_and_labels_it():
    spec = parse_config({"model_type": "fancy_new_lm", "d_model": 64, "n_layer": 2, "num_heads": 4,
                         "vocab_size": 100}, approximate=True)
    assert spec.approximate and spec.family == "llama" and spec.model_type == "fancy_new_lm"
    assert spec.intermediate_size == 256
    assert any("approximation" in n for n in spec.notes)


def test_supported_type_with_approximate_flag_is_exact():
    assert not parse_config(tiny("llama"), approximate=True).approximate


@pytest.mark.parametrize("qc, fmt", [
    ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8-block"),
    ({"quant_method": "fp8"}, "fp8"),
    ({"quant_method": "gptq", "bits": 4, "group_size": 128}, "gptq-4bit-g128"),
    ({"quant_method": "awq", "bits": 4, "group_size": 128}, "awq-4bit-g128"),
    ({"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}, "bnb-nf4-dq"),
    ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "bnb-int8"),
])
def test_quantization_config_default_format(qc, fmt):
    spec = parse_config(tiny("llama", quantization_config=qc))
    assert spec.quantization.default_format() == fmt


def test_name_is_taken_from_the_argument_or_name_or_path():
    assert parse_config(tiny("llama", _name_or_path="org/model")).name == "org/model"
    assert parse_config(tiny("llama"), name="mine").name == "mine"


def test_gpt_oss_mxfp4_checkpoint_is_planned_with_a_note():
    """Published gpt-oss configs carry quantization_config {"quant_method": "mxfp4"} (not modelled)."""
    cfg = tiny("gpt_oss", num_local_experts=4, quantization_config={"quant_method": "mxfp4",
                                                                    "modules_to_not_convert": ["model.layers.*.self_attn"]})
    spec = parse_config(cfg)
    assert spec.quantization is None
    assert any("mxfp4" in n for n in spec.notes)
    assert spec.layer_types == (SLIDING, FULL, SLIDING, FULL) and spec.sliding_window == 128
