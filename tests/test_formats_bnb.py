"""bitsandbytes formats: the planner's bytes equal what real bitsandbytes holds after transformers loads.

Ground truth: tiny models built from transformers configs, saved to ``tmp_path``, loaded on CPU with
``BitsAndBytesConfig`` (bitsandbytes 0.50, transformers 5.x). Counted are the distinct storages of every
parameter and buffer, plus the tensors bitsandbytes keeps outside them: ``Int8Params.SCB`` (and ``CB``,
which aliases the weight) and each ``Params4bit.quant_state`` (absmax, code, offset, and the nested
state's absmax and code). ``model.get_memory_footprint()`` counts parameters and buffers only, so it
under-counts by the whole quant state; a test below pins that too.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
bnb = pytest.importorskip("bitsandbytes")

from planner.formats import tensor_bytes, weight_components, weight_format  # noqa: E402
from planner.params import tensors  # noqa: E402
from planner.spec import parse_config  # noqa: E402

FORMATS = {
    "bnb-int8": dict(load_in_8bit=True),
    "bnb-nf4": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4"),
    "bnb-fp4": dict(load_in_4bit=True, bnb_4bit_quant_type="fp4"),
    "bnb-nf4-dq": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True),
    "bnb-fp4-dq": dict(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_use_double_quant=True),
}

# Tiny configs: odd vocab sizes and widths that are not multiples of 64 exercise the partial absmax
# blocks and the odd-numel packing; 2 layers keep each load well under a second.
CONFIGS = {
    "llama": lambda: transformers.LlamaConfig(
        hidden_size=64, intermediate_size=88, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=203, attention_bias=True),
    "gpt2": lambda: transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=40, vocab_size=197),
    "phi3": lambda: transformers.Phi3Config(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=211, pad_token_id=0, bos_token_id=1, eos_token_id=2),
    "mixtral": lambda: transformers.MixtralConfig(
        hidden_size=64, intermediate_size=72, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=199, num_local_experts=4, num_experts_per_tok=2),
}

# More families, checked with two formats (int8 and nf4 with double quant) to keep the file fast.
MORE_CONFIGS = {
    "qwen2": lambda: transformers.Qwen2Config(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=150),
    "qwen3": lambda: transformers.Qwen3Config(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, vocab_size=150),
    "gemma2": lambda: transformers.Gemma2Config(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, vocab_size=150),
    "gpt_neox": lambda: transformers.GPTNeoXConfig(
        hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, vocab_size=150),
    # Qwen2-MoE: the shared_expert_gate is an nn.Linear(h, 1) and is quantized like any other Linear
    "qwen2_moe": lambda: transformers.Qwen2MoeConfig(
        hidden_size=64, intermediate_size=96, moe_intermediate_size=32, shared_expert_intermediate_size=48,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=150, num_experts=4,
        num_experts_per_tok=2),
    # Falcon's FalconLinear subclasses nn.Linear; transformers replaces only `type(m) is nn.Linear`
    "falcon": lambda: transformers.FalconConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                                vocab_size=150),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """family -> (directory of a saved tiny model, its config dict)."""
    out = {}
    for family, make in {**CONFIGS, **MORE_CONFIGS}.items():
        cfg = make()
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(cfg)
        path = tmp_path_factory.mktemp(family)
        model.save_pretrained(path)
        out[family] = (path, cfg.to_dict())
    return out


def _quant_state_tensors(p):
    """Tensors bitsandbytes keeps beside a parameter (not parameters or buffers themselves)."""
    found = []
    scb = getattr(p, "SCB", None)
    if isinstance(scb, torch.Tensor):
        found.append(scb)
    qs = getattr(p, "quant_state", None)
    while qs is not None:
        for attr in ("absmax", "code", "offset"):
            v = getattr(qs, attr, None)
            if isinstance(v, torch.Tensor):
                found.append(v)
        qs = getattr(qs, "state2", None)
    return found


def _real_bytes(model) -> tuple[int, int]:
    """(data bytes, quant-state bytes) over distinct storages."""
    seen: set[int] = set()

    def add(t: torch.Tensor) -> int:
        s = t.untyped_storage()
        if s.data_ptr() in seen:
            return 0
        seen.add(s.data_ptr())
        return s.nbytes()

    tensors_ = list(model.parameters()) + list(model.buffers())
    # buffers: only persistent ones are weights (rotary inv_freq is a non-persistent buffer, not a weight)
    persistent = {id(b) for m in model.modules() for n, b in m._buffers.items()
                  if b is not None and n not in m._non_persistent_buffers_set}
    data = sum(add(t) for t in tensors_ if isinstance(t, torch.nn.Parameter) or id(t) in persistent)
    qstate = sum(add(q) for p in model.parameters() for q in _quant_state_tensors(p))
    return data, qstate


def _load(path, fmt_name):
    cfg = transformers.BitsAndBytesConfig(**FORMATS[fmt_name])
    return transformers.AutoModelForCausalLM.from_pretrained(
        path, quantization_config=cfg, device_map="cpu", dtype=torch.bfloat16)


def _planned(spec, fmt_name) -> tuple[int, int]:
    comps = {c.path: c.bytes for c in weight_components(spec, weight_format(fmt_name))}
    qstate = comps.pop("weights/quant_state", 0)
    return sum(comps.values()), qstate


@pytest.mark.parametrize("family", list(CONFIGS))
@pytest.mark.parametrize("fmt_name", list(FORMATS))
def test_planned_bytes_equal_real_bitsandbytes(saved, family, fmt_name):
    path, cfg = saved[family]
    spec = parse_config(cfg)
    model = _load(path, fmt_name)
    assert _planned(spec, fmt_name) == _real_bytes(model)


@pytest.mark.parametrize("family", list(MORE_CONFIGS))
@pytest.mark.parametrize("fmt_name", ["bnb-int8", "bnb-nf4-dq"])
def test_more_families_equal_real_bitsandbytes(saved, family, fmt_name):
    path, cfg = saved[family]
    assert _planned(parse_config(cfg), fmt_name) == _real_bytes(_load(path, fmt_name))


def test_falcon_linear_subclass_is_left_unquantized(saved):
    path, cfg = saved["falcon"]
    model = _load(path, "bnb-nf4")
    assert model.transformer.h[0].self_attention.query_key_value.weight.dtype == torch.bfloat16
    assert _planned(parse_config(cfg), "bnb-nf4") == (_real_bytes(model)[0], 0)


def test_unquantized_modules_match_transformers(saved):
    """Embeddings, norms and lm_head keep bf16; every nn.Linear inside the layers is quantized."""
    path, _ = saved["llama"]
    model = _load(path, "bnb-nf4")
    assert model.lm_head.weight.dtype == torch.bfloat16
    assert model.model.embed_tokens.weight.dtype == torch.bfloat16
    assert model.model.norm.weight.dtype == torch.bfloat16
    q = model.model.layers[0].self_attn.q_proj
    assert isinstance(q, bnb.nn.Linear4bit) and q.weight.dtype == torch.uint8
    assert q.bias.dtype == torch.bfloat16  # attention_bias=True: the bias keeps the compute dtype


def test_fused_moe_experts_stay_in_compute_dtype(saved):
    """transformers 5.x stores Mixtral experts as 3-D nn.Parameter: bitsandbytes leaves them alone."""
    path, _ = saved["mixtral"]
    model = _load(path, "bnb-nf4")
    experts = model.model.layers[0].mlp.experts
    assert experts.gate_up_proj.dtype == torch.bfloat16 and experts.gate_up_proj.dim() == 3
    spec_experts = [t for t in tensors(parse_config(saved["mixtral"][1])) if t.role == "expert"]
    assert spec_experts, "the planner lists the fused experts"
    fmt = weight_format("bnb-nf4")
    assert all(tensor_bytes(t, fmt).quant_state == 0 for t in spec_experts)


def test_memory_footprint_undercounts_quant_state(saved):
    """get_memory_footprint() misses the quant state the planner reports under weights/quant_state."""
    path, cfg = saved["llama"]
    model = _load(path, "bnb-nf4-dq")
    data, qstate = _planned(parse_config(cfg), "bnb-nf4-dq")
    # footprint = parameters + all buffers; the rotary inv_freq buffers are non-persistent, not weights
    rotary = sum(b.nbytes for b in model.model.rotary_emb.buffers())
    assert qstate > 0
    assert model.get_memory_footprint() == data + rotary


def test_gpt2_conv1d_int8_scales_per_output_feature(saved):
    """GPT-2 Conv1D weights are (in, out); transformers transposes them before quantizing, so SCB has one
    entry per output feature (c_attn: 3 * n_embd)."""
    path, cfg = saved["gpt2"]
    model = _load(path, "bnb-int8")
    c_attn = model.transformer.h[0].attn.c_attn
    assert c_attn.weight.shape == (3 * 64, 64)
    assert c_attn.weight.SCB.shape == (3 * 64,)
