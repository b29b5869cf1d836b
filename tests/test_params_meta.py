"""Parameter counts and tensor inventories equal the real transformers model's, built on the meta device.

Ground truth: ``sum(p.numel() for p in model.parameters())`` of ``AutoModelForCausalLM.from_config``
under ``torch.device("meta")`` (transformers 5.23), tied embeddings counted once; and the per-layer
``layer_types`` / sliding windows that transformers' DynamicCache derives from the same config.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from planner.catalog import ASSETS, catalog, catalog_config, catalog_spec  # noqa: E402
from planner.params import ROLES, parameter_components, parameter_count, tensors  # noqa: E402
from planner.spec import SLIDING, parse_config, supported_model_types  # noqa: E402
from tests._configs import (  # noqa: E402
    FAMILIES,
    hf_layer_types,
    meta_count,
    meta_params,
    meta_structure,
    planner_structure,
    random_config,
)

SEED = 20261121
RANDOM_PER_FAMILY = 6  # 24 families x 6 = 144 random configs per run

RANDOM_CASES = [
    (family, i) for family in FAMILIES for i in range(RANDOM_PER_FAMILY)
]


def _random(family: str, i: int) -> dict:
    return random_config(family, random.Random(f"{SEED}-{family}-{i}"))


def _default_config(model_type: str) -> dict:
    from transformers import CONFIG_MAPPING

    return CONFIG_MAPPING[model_type]().to_dict()


def _check_layer_types(cfg: dict) -> None:
    spec = parse_config(cfg)
    hf_types, hf_windows = hf_layer_types(cfg)
    kinds = {"mla": "full_attention", "mamba": "linear_attention"}  # transformers' names for these layers
    ours = tuple(kinds.get(t, t) for t in spec.layer_types)
    assert ours == hf_types
    for t, w in zip(spec.layer_types, hf_windows, strict=True):
        assert w == (spec.sliding_window if t == SLIDING else None)


# --- the families are the ones advertised --------------------------------------------------------


def test_supported_types_are_the_tested_families():
    assert set(supported_model_types()) == set(FAMILIES)


# --- catalog -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(catalog()))
def test_catalog_count_equals_meta_device_count(name):
    cfg = catalog_config(name)
    assert parameter_count(catalog_spec(name)) == meta_count(cfg)


@pytest.mark.parametrize("name", list(catalog()))
def test_catalog_reference_parameters_pinned(name):
    index = {m["name"]: m for m in json.loads((ASSETS / "models" / "index.json").read_text())["models"]}
    assert parameter_count(catalog_spec(name)) == index[name]["reference_parameters"]


def test_reference_readme_counts():
    """The counts published in shared/reference/model-configs/README.md (transformers 5.23, meta device)."""
    published = {
        "llama-3.1-8b": 8_030_261_248, "llama-3.1-70b": 70_553_706_496, "llama-3.2-1b": 1_235_814_400,
        "mistral-7b-v0.1": 7_241_732_096, "mixtral-8x7b": 46_702_792_704, "qwen2.5-0.5b": 494_032_768,
        "qwen2.5-7b": 7_615_616_512, "qwen3-8b": 8_190_735_360, "gemma-2-9b": 9_241_705_984,
        "phi-3-mini-4k": 3_821_079_552, "deepseek-v3": 671_026_404_352, "smollm2-135m": 134_515_008,
        "smollm2-1.7b": 1_711_376_384, "tinyllama-1.1b": 1_100_048_384, "gpt2": 124_439_808,
    }
    for name, n in published.items():
        assert parameter_count(catalog_spec(name)) == n, name


@pytest.mark.parametrize("name", list(catalog()))
def test_catalog_layer_types_match_transformers(name):
    _check_layer_types(catalog_config(name))


def test_catalog_files_are_all_indexed():
    files = {p.name for p in (ASSETS / "models").glob("*.json")} - {"index.json"}
    assert files == {e.file for e in catalog().values()}


# --- transformers' default config of every supported type ------------------------------------------


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_default_config_count_equals_meta_device_count(model_type):
    cfg = _default_config(model_type)
    assert parameter_count(parse_config(cfg)) == meta_count(cfg)


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_default_config_layer_types_match_transformers(model_type):
    _check_layer_types(_default_config(model_type))


# --- seeded random tiny configs -----------------------------------------------------------------------


@pytest.mark.parametrize("family,i", RANDOM_CASES)
def test_random_config_tensors_equal_real_parameters(family, i):
    """Same parameter names, layers and shapes as the real model (so the count is equal too)."""
    cfg = _random(family, i)
    spec = parse_config(cfg)
    assert planner_structure(tensors(spec)) == meta_structure(cfg)
    assert parameter_count(spec) == meta_count(cfg)


@pytest.mark.parametrize("family,i", RANDOM_CASES)
def test_random_config_layer_types_match_transformers(family, i):
    _check_layer_types(_random(family, i))


def test_random_configs_cover_the_switches():
    """The random set really exercises GQA, explicit head_dim, biases, tying, windows, MoE and MLA."""
    specs = [parse_config(_random(f, i)) for f, i in RANDOM_CASES]
    assert len(specs) >= 100
    assert any(s.num_kv_heads < s.num_heads for s in specs)
    assert any(s.num_kv_heads == 1 and s.num_heads > 1 for s in specs)
    assert any(s.head_dim * s.num_heads != s.hidden_size for s in specs)
    assert any(s.qkv_bias for s in specs) and any(s.mlp_bias for s in specs) and any(s.o_bias for s in specs)
    assert any(s.tie_word_embeddings for s in specs) and any(not s.tie_word_embeddings for s in specs)
    assert any(SLIDING in s.layer_types and "full_attention" in s.layer_types for s in specs)
    assert any(s.moe and "dense" in s.mlp_types and "moe" in s.mlp_types for s in specs)
    assert any(s.moe and s.moe.shared_intermediate_size for s in specs)
    assert any(s.mla and s.mla.q_lora_rank is None for s in specs)
    assert any(s.mla and s.mla.q_lora_rank for s in specs)


# --- per component, roles, layout of the real modules ----------------------------------------------


def test_components_sum_to_total():
    for f, i in RANDOM_CASES[::5]:
        spec = parse_config(_random(f, i))
        assert sum(parameter_components(spec).values()) == parameter_count(spec)


@pytest.mark.parametrize("name", ["llama-3.1-8b", "mixtral-8x7b", "deepseek-v3", "gpt2", "phi-3-mini-4k",
                                  "qwen2.5-7b", "gemma-2-9b", "qwen3-8b"])
def test_components_equal_checkpoint_name_grouping(name):
    """Per component, the planner's counts equal the real parameters grouped by planner.stored.component_of
    (the rule that maps checkpoint tensor names to the same components), so predicted and stored rows line up."""
    from planner.stored import component_of

    real: dict[str, int] = {}
    for pname, shape in meta_params(catalog_config(name)):
        n = 1
        for s in shape:
            n *= s
        real[component_of(pname)] = real.get(component_of(pname), 0) + n
    assert parameter_components(catalog_spec(name)) == real


def test_roles_are_known_and_linear_weights_are_2d():
    for f, i in RANDOM_CASES[::3]:
        for t in tensors(parse_config(_random(f, i))):
            assert t.role in ROLES
            if t.role != "other":  # Mamba's A_log (2-D) and conv1d (3-D) are 'other'
                # GPT-OSS: a 1-D router bias and 2-D per-expert biases
                dims = {"linear": {2}, "lm_head": {2}, "embedding": {2}, "router": {1, 2}, "expert": {3},
                        "bias": {1, 2}}.get(t.role, {1})
                assert len(t.shape) in dims


def test_roles_follow_module_types():
    """'linear' exactly for nn.Linear / Conv1D weights, 'expert' for the fused 3-D expert parameters,
    'router' for the TopKRouter parameter (not an nn.Linear), checked against the real modules."""
    import torch
    import torch.nn as nn
    from transformers import AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    from tests._configs import hf_config

    for family in ("mixtral", "qwen2_moe", "deepseek_v3", "gpt2", "falcon", "phi3", "jamba", "gpt_oss"):
        cfg = _random(family, 0)
        if family == "qwen2_moe":
            cfg.update(num_experts=3, num_experts_per_tok=1, mlp_only_layers=[], decoder_sparse_step=1,
                       shared_expert_intermediate_size=8)
        spec = parse_config(cfg)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(hf_config(cfg))
        by_name = {}
        for t in tensors(spec):
            by_name[t.name] = t.role
        for pname, _ in model.named_parameters():
            module = model.get_submodule(pname.rsplit(".", 1)[0])
            rel = pname.split(".", 3)[-1] if ".layers." in pname or ".h." in pname else pname.split(".", 1)[-1]
            role = by_name[rel] if rel in by_name else by_name[pname]
            if isinstance(module, (nn.Linear, Conv1D)) and pname.endswith(".weight") and "lm_head" not in pname:
                assert role == "linear", pname
            elif pname.endswith(".bias") and isinstance(module, (nn.Linear, Conv1D)):
                assert role == "bias", pname
            elif type(module).__name__.endswith("Experts"):
                assert role == ("bias" if pname.endswith("_bias") else "expert"), pname  # GPT-OSS expert biases
            elif type(module).__name__.endswith("Router"):
                assert role == "router", pname


def test_deepseek_v3_ignores_mtp_layer_and_says_so():
    spec = catalog_spec("deepseek-v3")
    assert spec.num_layers == 61 and spec.mlp_types.count("dense") == 3
    assert any("num_nextn_predict_layers" in n for n in spec.notes)


def test_gemma3_multimodal_counts_language_model_and_says_vision_is_not_counted():
    cfg = _random("gemma3", 0)
    spec = parse_config(cfg)
    assert parameter_count(spec) == meta_count(cfg, language_only=True) < meta_count(cfg, language_only=False)
    assert any("vision tower" in n for n in spec.notes)
    assert spec.vision_parameters == meta_count(cfg, language_only=False) - meta_count(cfg)


@pytest.mark.parametrize("vision", [{}, {"vision_use_head": False, "image_size": 56, "patch_size": 14},
                                    {"hidden_size": 48, "intermediate_size": 50, "num_hidden_layers": 2,
                                     "num_attention_heads": 4, "image_size": 32, "patch_size": 8,
                                     "num_channels": 1}])
def test_gemma3_vision_parameters_equal_meta_device_count(vision):
    cfg = {"model_type": "gemma3", "vision_config": vision, "mm_tokens_per_image": 1,
           "text_config": {"hidden_size": 32, "num_hidden_layers": 1, "intermediate_size": 40, "vocab_size": 64,
                           "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8}}
    spec = parse_config(cfg)
    assert parameter_count(spec) == meta_count(cfg)
    assert spec.vision_parameters == meta_count(cfg, language_only=False) - meta_count(cfg)


def test_assets_dir_exists():
    assert Path(ASSETS, "models", "index.json").is_file()


@pytest.mark.parametrize("name, published_billions, digits", [
    # Mistral AI, "Mixtral of experts" (2023-12-11): 46.7B total parameters, 12.9B used per token
    ("mixtral-8x7b", 12.9, 1),
    # Qwen team, "Qwen1.5-MoE: Matching 7B Model Performance with 1/3 Activated Parameters" (2024-03-28):
    # 14.3B total, 2.7B activated
    ("qwen1.5-moe-a2.7b", 2.7, 1),
    # AI21 Labs, "Introducing Jamba" (2024-03-28): 12B active parameters of 52B total
    ("jamba-v0.1", 12, 0),
])
def test_active_parameters_match_published_figures(name, published_billions, digits):
    from planner.params import active_parameter_count

    spec = catalog_spec(name)
    assert round(active_parameter_count(spec) / 1e9, digits) == published_billions


def test_active_parameters_equal_total_for_dense_models():
    from planner.params import active_parameter_count

    spec = catalog_spec("llama-3.1-8b")
    assert active_parameter_count(spec) == parameter_count(spec)


def test_active_parameters_count_top_k_experts_per_layer():
    from planner.params import active_parameter_count

    cfg = _random("mixtral", 1)
    spec = parse_config(cfg)
    e, k = spec.moe.num_experts, spec.moe.experts_per_token
    experts = sum(t.numel for t in tensors(spec) if t.role == "expert")
    assert active_parameter_count(spec) == parameter_count(spec) - experts + experts // e * k


@pytest.mark.parametrize("name, published_billions, digits", [
    # OpenAI, "gpt-oss-120b & gpt-oss-20b Model Card" (2025-08-05), table 1: 116.83B total parameters
    ("gpt-oss-120b", 116.83, 2),
    # Mistral AI, "Mixtral of experts" (2023-12-11): 46.7B total parameters
    ("mixtral-8x7b", 46.7, 1),
    # Qwen team, Qwen1.5-MoE announcement (2024-03-28): 14.3B parameters in total
    ("qwen1.5-moe-a2.7b", 14.3, 1),
    # AI21 Labs, "Introducing Jamba" (2024-03-28): 52B total parameters
    ("jamba-v0.1", 52, 0),
])
def test_total_parameters_match_published_figures(name, published_billions, digits):
    assert round(parameter_count(catalog_spec(name)) / 1e9, digits) == published_billions
