"""FP8, GPTQ and AWQ weight formats, format names and format resolution.

Sources:
- FP8: transformers' own ``FP8Linear`` / ``FP8Experts`` (``transformers/integrations/finegrained_fp8.py``)
  swapped into tiny models on the ``meta`` device with ``replace_with_fp8_linear`` and the quantizer's
  default ``get_keys_to_not_convert`` (keeps ``lm_head``): the real parameters are the ground truth.
- GPTQ: AutoGPTQ ``auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py`` ``QuantLinear.__init__``
  (https://github.com/AutoGPTQ/AutoGPTQ), the layout GPTQ checkpoints store and gptqmodel/transformers
  load::

      qweight int32 (infeatures // 32 * bits, outfeatures)
      qzeros  int32 (ceil(infeatures / group_size), outfeatures // 32 * bits)
      scales  fp16  (ceil(infeatures / group_size), outfeatures)
      g_idx   int32 (infeatures,)            group_size -1 means infeatures
      bias    fp16  (outfeatures,)           only when the Linear has one

- AWQ: AutoAWQ ``awq/modules/linear/gemm.py`` ``WQLinear_GEMM.__init__``
  (https://github.com/casper-hansen/AutoAWQ), 4-bit only::

      qweight int32 (in_features, out_features // (32 // w_bit))
      qzeros  int32 (in_features // group_size, out_features // (32 // w_bit))
      scales  fp16  (in_features // group_size, out_features)
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.errors import InputError
from planner.formats import (
    FORMATS,
    TensorBytes,
    list_formats,
    resolve_format,
    tensor_bytes,
    weight_bytes,
    weight_components,
    weight_format,
)
from planner.params import TensorInfo, tensors
from planner.spec import parse_config


def _linear(out, inp, name="self_attn.q_proj.weight"):
    return TensorInfo(name, "attention/qkv", (out, inp), "linear", "attn_q", (0,), "column")


# ---------------------------------------------------------------------------------------------------
# GPTQ / AWQ layouts, exact integers for Llama-2-7B's q_proj (4096 x 4096) and down_proj (4096 x 11008)


@pytest.mark.parametrize("fmt, out, inp, data, qstate", [
    # qweight 512x4096 int32; qzeros 32x512 int32 + scales 32x4096 fp16 + g_idx 4096 int32
    ("gptq-4bit-g128", 4096, 4096, 8_388_608, 65_536 + 262_144 + 16_384),
    # 3 bit: qweight 384x4096; qzeros 32x384
    ("gptq-3bit-g128", 4096, 4096, 6_291_456, 49_152 + 262_144 + 16_384),
    # 2 bit: qweight 256x4096; qzeros 32x256
    ("gptq-2bit-g128", 4096, 4096, 4_194_304, 32_768 + 262_144 + 16_384),
    # 8 bit: qweight 1024x4096; qzeros 32x1024
    ("gptq-8bit-g128", 4096, 4096, 16_777_216, 131_072 + 262_144 + 16_384),
    # group -1 is one group: qzeros 1x512, scales 1x4096
    ("gptq-4bit-g-1", 4096, 4096, 8_388_608, 2_048 + 8_192 + 16_384),
    # down_proj: in 11008, 86 groups of 128; qweight 1376x4096; qzeros 86x512; scales 86x4096; g_idx 11008
    ("gptq-4bit-g128", 4096, 11008, 22_544_384, 176_128 + 704_512 + 44_032),
    # AWQ: qweight 4096x512 int32; qzeros 32x512 int32 + scales 32x4096 fp16
    ("awq-4bit-g128", 4096, 4096, 8_388_608, 65_536 + 262_144),
    # AWQ down_proj: qweight 11008x512; qzeros 86x512; scales 86x4096
    ("awq-4bit-g128", 4096, 11008, 22_544_384, 176_128 + 704_512),
    ("awq-4bit-g64", 4096, 4096, 8_388_608, 131_072 + 524_288),
])
def test_gptq_awq_linear_bytes_follow_published_layout(fmt, out, inp, data, qstate):
    assert tensor_bytes(_linear(out, inp), weight_format(fmt)) == TensorBytes(data, qstate)


def _autogptq_buffers(out, inp, bits, group):
    """Buffer bytes of AutoGPTQ QuantLinear.__init__, transcribed shape by shape."""
    g = inp if group == -1 else group
    groups = -(-inp // g)
    qweight = (inp // 32 * bits) * out * 4
    qzeros = groups * (out // 32 * bits) * 4
    scales = groups * out * 2
    g_idx = inp * 4
    return qweight, qzeros + scales + g_idx


@given(out=st.integers(1, 64).map(lambda k: 32 * k), inp=st.integers(1, 64).map(lambda k: 32 * k),
       bits=st.sampled_from([2, 3, 4, 8]), group=st.sampled_from([-1, 32, 64, 128, 256, 100]))
@settings(max_examples=200, deadline=None)
def test_gptq_matches_autogptq_shapes(out, inp, bits, group):
    got = tensor_bytes(_linear(out, inp), weight_format(f"gptq-{bits}bit-g{group}"))
    assert (got.data, got.quant_state) == _autogptq_buffers(out, inp, bits, group)


LLAMA = dict(model_type="llama", hidden_size=256, intermediate_size=512, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, vocab_size=1000, attention_bias=True)


@pytest.mark.parametrize("fmt_name", ["gptq-4bit-g128", "awq-4bit-g128"])
def test_gptq_awq_keep_embeddings_norms_lm_head_in_fp16(fmt_name):
    spec = parse_config(LLAMA)
    fmt = weight_format(fmt_name)
    assert fmt.compute_dtype == "float16"
    for t in tensors(spec):
        b = tensor_bytes(t, fmt)
        if t.role in ("embedding", "norm", "lm_head", "bias"):
            assert b == TensorBytes(t.numel_each * 2), t.name
        else:
            assert t.role == "linear" and b.quant_state > 0, t.name
    comps = {c.path: c.bytes for c in weight_components(spec, fmt)}
    assert comps["weights/lm_head"] == 1000 * 256 * 2 and comps["weights/embeddings"] == 1000 * 256 * 2


def test_gptq_fused_moe_experts_are_per_expert_linears():
    """transformers 5.x fuses expert gate and up into (E, 2I, h); checkpoints hold E * 2 Linears (I, h)
    and E Linears (h, I) for down, each with its own g_idx; the router stays fp16."""
    E, inter, h = 8, 1024, 512
    fmt = weight_format("gptq-4bit-g128")
    gate_up = TensorInfo("mlp.experts.gate_up_proj", "experts", (E, 2 * inter, h), "expert", "ffn_gate_up_exps",
                         (0,), "expert")
    down = TensorInfo("mlp.experts.down_proj", "experts", (E, h, inter), "expert", "ffn_down_exps", (0,), "expert")
    router = TensorInfo("mlp.gate.weight", "router", (E, h), "router", "ffn_gate_inp", (0,))
    one_gate = tensor_bytes(_linear(inter, h), fmt)
    one_down = tensor_bytes(_linear(h, inter), fmt)
    assert tensor_bytes(gate_up, fmt) == one_gate * (2 * E)
    assert tensor_bytes(down, fmt) == one_down * E
    assert tensor_bytes(router, fmt) == TensorBytes(E * h * 2)


# ---------------------------------------------------------------------------------------------------
# FP8: transformers' FP8Linear / FP8Experts on the meta device are the ground truth

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _real_fp8(cfg, block):
    from transformers.integrations.finegrained_fp8 import replace_with_fp8_linear
    from transformers.modeling_utils import local_torch_dtype
    from transformers.quantizers.base import get_keys_to_not_convert

    # from_pretrained builds the model and swaps in the FP8 modules inside the same default-dtype context
    # (modeling_utils: `with ContextManagers(model_init_context): model = cls(config);
    # hf_quantizer.preprocess_model(...)`), so FP8Linear's bias is created in the load dtype.
    qcfg = transformers.FineGrainedFP8Config(weight_block_size=block)
    with torch.device("meta"), local_torch_dtype(torch.bfloat16, "fp8-test"):
        model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        model = replace_with_fp8_linear(model, modules_to_not_convert=get_keys_to_not_convert(model),
                                        quantization_config=qcfg)
    data = qstate = 0
    for name, p in model.named_parameters():
        n = p.numel() * p.element_size()
        if "scale" in name.rsplit(".", 1)[-1]:
            qstate += n
        else:
            data += n
    return data, qstate


FP8_CONFIGS = {
    # widths that are not multiples of 128 exercise the partial blocks
    "llama": lambda: transformers.LlamaConfig(
        hidden_size=320, intermediate_size=200, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=203),
    "mixtral": lambda: transformers.MixtralConfig(
        hidden_size=192, intermediate_size=72, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=199, num_local_experts=4, num_experts_per_tok=2),
    "gpt2": lambda: transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=40, vocab_size=197),
    "phi3": lambda: transformers.Phi3Config(
        hidden_size=192, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=211, pad_token_id=0, bos_token_id=1, eos_token_id=2),
    "qwen2_moe": lambda: transformers.Qwen2MoeConfig(
        hidden_size=192, intermediate_size=96, moe_intermediate_size=160, shared_expert_intermediate_size=48,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=150, num_experts=4,
        num_experts_per_tok=2),
    "deepseek_v3": lambda: transformers.DeepseekV3Config(
        hidden_size=192, intermediate_size=96, moe_intermediate_size=160, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, vocab_size=150, n_routed_experts=4, num_experts_per_tok=2,
        n_shared_experts=1, first_k_dense_replace=1, q_lora_rank=144, kv_lora_rank=64, qk_rope_head_dim=16,
        qk_nope_head_dim=32, v_head_dim=32, n_group=1, topk_group=1),
    # FalconLinear subclasses nn.Linear: replace_with_fp8_linear (type(m) is nn.Linear) leaves it alone
    "falcon": lambda: transformers.FalconConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                                vocab_size=150),
}


def _planned(spec, fmt_name):
    comps = {c.path: c.bytes for c in weight_components(spec, weight_format(fmt_name))}
    qstate = comps.pop("weights/quant_state", 0)
    return sum(comps.values()), qstate


@pytest.mark.parametrize("family", list(FP8_CONFIGS))
@pytest.mark.parametrize("fmt_name, block", [("fp8", None), ("fp8-block", (128, 128))])
def test_fp8_bytes_equal_transformers_fp8_modules(family, fmt_name, block):
    cfg = FP8_CONFIGS[family]()
    spec = parse_config(cfg.to_dict())
    assert _planned(spec, fmt_name) == _real_fp8(cfg, block)


def test_fp8_block_scales_exact_for_deepseek_v3_shape():
    """DeepSeek-V3's q_b_proj is 24576 x 1536: weight_scale_inv is 192 x 12 fp32."""
    t = _linear(24576, 1536)
    assert tensor_bytes(t, weight_format("fp8-block")) == TensorBytes(24576 * 1536, 192 * 12 * 4)
    assert tensor_bytes(t, weight_format("fp8")) == TensorBytes(24576 * 1536, 4)


# ---------------------------------------------------------------------------------------------------
# Names, listing, resolution


def test_every_listed_format_resolves_to_itself():
    names = [n for n, _ in list_formats()]
    assert len(names) == len(set(names))
    assert set(FORMATS) <= set(names)
    for name, label in list_formats():
        fmt = weight_format(name)
        assert fmt.name == name and fmt.label == label


@pytest.mark.parametrize("bad, hint", [
    ("gptq-5bit-g128", "2, 3, 4, 8-bit"),
    ("awq-3bit-g128", "4-bit"),
    ("gptq-4bit-g0", "group size"),
    ("int4", "gptq-4bit-g128"),
    ("", "unknown weight format"),
    ("bnb-nf8", "bnb-nf4"),
])
def test_bad_format_names_raise_one_clear_input_error(bad, hint):
    with pytest.raises(InputError, match=hint):
        weight_format(bad)


def test_non_string_format_is_an_input_error():
    with pytest.raises(InputError):
        weight_format(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("qcfg, expected", [
    ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True}, "gptq-4bit-g128"),
    ({"quant_method": "gptq", "bits": 3, "group_size": -1}, "gptq-3bit-g-1"),
    ({"quant_method": "awq", "bits": 4, "group_size": 128}, "awq-4bit-g128"),
    ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8-block"),
    ({"quant_method": "fp8"}, "fp8"),
    ({"quant_method": "fp8", "weight_block_size": [64, 128]}, "fp8-block-64x128"),
    ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "bnb-int8"),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
      "bnb_4bit_use_double_quant": True}, "bnb-nf4-dq"),
    ({"load_in_4bit": True, "bnb_4bit_quant_type": "fp4"}, "bnb-fp4"),
])
def test_auto_uses_the_checkpoint_quantization(qcfg, expected):
    spec = parse_config({**LLAMA, "quantization_config": qcfg})
    assert resolve_format(spec, "auto").name == expected


def test_auto_without_quantization_uses_declared_dtype():
    assert resolve_format(parse_config({**LLAMA, "torch_dtype": "float32"}), "auto").name == "fp32"
    assert resolve_format(parse_config({**LLAMA, "torch_dtype": "bfloat16"}), "auto").name == "bf16"


@given(h=st.integers(1, 16).map(lambda k: 64 * k), inter=st.integers(1, 32).map(lambda k: 64 * k),
       layers=st.integers(1, 4), vocab=st.integers(64, 5000),
       fmt_name=st.sampled_from(["bnb-nf4", "bnb-fp4-dq", "gptq-4bit-g128", "gptq-4bit-g-1", "awq-4bit-g128",
                                 "gguf-Q4_K_M", "gguf-Q4_0", "bnb-int8", "fp8", "fp8-block", "gptq-8bit-g32"]))
@settings(max_examples=150, deadline=None)
def test_quantized_weights_never_exceed_16_bit(h, inter, layers, vocab, fmt_name):
    spec = parse_config(dict(model_type="llama", hidden_size=h, intermediate_size=inter, num_hidden_layers=layers,
                             num_attention_heads=h // 64, vocab_size=vocab))
    assert weight_bytes(spec, weight_format(fmt_name)) <= weight_bytes(spec, weight_format("bf16"))


def test_format_notes_flag_what_stays_unquantized():
    from planner.formats import format_notes

    moe = parse_config(dict(model_type="mixtral", hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, vocab_size=100, num_local_experts=4,
                            num_experts_per_tok=2))
    assert any("MoE expert" in n for n in format_notes(moe, weight_format("bnb-nf4")))
    assert not any("MoE expert" in n for n in format_notes(moe, weight_format("gptq-4bit-g128")))
    assert not format_notes(parse_config(LLAMA), weight_format("bf16"))
