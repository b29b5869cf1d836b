"""Test helpers: real transformers models on the meta device, and seeded random tiny configs per family.

Ground truth for tests/test_params_meta.py and tests/test_spec_parsing.py. Only tests import this
(transformers and torch stay out of ``planner``).
"""

from __future__ import annotations

import json
import random
import re
import warnings
from functools import lru_cache

#: the model types the planner supports; each has a random-config generator below
FAMILIES = ("llama", "granite", "mistral", "mixtral", "qwen2", "qwen3", "qwen2_moe", "qwen3_moe", "gemma",
            "gemma2", "gemma3_text", "gemma3", "phi3", "olmo2", "starcoder2", "deepseek_v2", "deepseek_v3",
            "gpt2", "gpt_neox", "falcon", "jamba", "gpt_oss", "phi", "smollm3")

_PREFIX = re.compile(r"^(?:model\.language_model\.|model\.|transformer\.|gpt_neox\.)?(?:(?:layers|h)\.(\d+)\.)?(.*)$")
_VISION = ("model.vision_tower.", "model.multi_modal_projector.")


def hf_config(cfg: dict):
    """The transformers config object, built as from_pretrained builds it from config.json."""
    from transformers import CONFIG_MAPPING

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CONFIG_MAPPING[cfg["model_type"]].from_dict(dict(cfg))


@lru_cache(maxsize=512)
def _meta_params(cfg_json: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    import logging

    import torch
    from transformers import AutoModelForCausalLM

    logging.getLogger("transformers").setLevel(logging.ERROR)
    config = hf_config(json.loads(cfg_json))
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_config(config)
    # named_parameters() yields a tied parameter once, as parameters() does
    return tuple((n, tuple(p.shape)) for n, p in model.named_parameters())


def meta_params(cfg: dict) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(name, shape) of every parameter of the transformers model built on the meta device."""
    return _meta_params(json.dumps(cfg, sort_keys=True))


def meta_count(cfg: dict, *, language_only: bool = True) -> int:
    """sum(p.numel() for p in model.parameters()) on the meta device (vision tower left out if asked)."""
    total = 0
    for name, shape in meta_params(cfg):
        if language_only and name.startswith(_VISION):
            continue
        n = 1
        for s in shape:
            n *= s
        total += n
    return total


def meta_structure(cfg: dict) -> dict[tuple[str, int | None], tuple[int, ...]]:
    """{(name relative to layer/base model, layer or None): shape} of the language model's parameters."""
    out = {}
    for name, shape in meta_params(cfg):
        if name.startswith(_VISION) or 0 in shape:
            continue
        m = _PREFIX.match(name)
        layer = int(m.group(1)) if m.group(1) is not None else None
        out[(m.group(2), layer)] = shape
    return out


def planner_structure(tensors) -> dict[tuple[str, int | None], tuple[int, ...]]:
    out = {}
    for t in tensors:
        for layer in t.layers or (None,):
            key = (t.name, layer)
            assert key not in out, f"duplicate tensor {key}"
            out[key] = t.shape
    return out


def hf_layer_types(cfg: dict) -> tuple[tuple[str, ...], tuple[int | None, ...]]:
    """(layer types, sliding window per layer) as transformers' DynamicCache derives them from the config."""
    from transformers.cache_utils import get_layer_types_and_kwargs

    config = hf_config(cfg).get_text_config(decoder=True)
    types, kwargs = get_layer_types_and_kwargs(config)
    return tuple(types), tuple(k.get("sliding_window") for k in kwargs)


# ---------------------------------------------------------------------------------------------------
# Random tiny configs


def _geometry(rng: random.Random, *, kv: bool = True) -> dict:
    heads = rng.choice([1, 2, 4, 8])
    d = rng.choice([4, 8, 16])
    cfg = {
        "hidden_size": heads * d,
        "num_hidden_layers": rng.randint(1, 4),
        "num_attention_heads": heads,
        "intermediate_size": rng.randint(8, 96),
        "vocab_size": rng.randint(40, 300),
        "tie_word_embeddings": rng.random() < 0.4,
    }
    if kv:
        cfg["num_key_value_heads"] = rng.choice([k for k in (1, 2, 4, 8) if heads % k == 0])
    return cfg


def _maybe_head_dim(rng: random.Random, cfg: dict) -> None:
    if rng.random() < 0.4:
        cfg["head_dim"] = rng.choice([4, 8, 12, 24])


def _window(rng: random.Random, cfg: dict, absent_ok: bool = True) -> None:
    r = rng.random()
    if r < 0.3 and absent_ok:
        return
    cfg["sliding_window"] = None if r < 0.55 else rng.randint(2, 64)


def random_config(family: str, rng: random.Random) -> dict:
    """A tiny config of ``family`` with randomized layout switches (seeded by ``rng``)."""
    cfg = _geometry(rng)
    cfg["model_type"] = family
    if family in ("llama", "granite"):
        _maybe_head_dim(rng, cfg)
        cfg["attention_bias"] = rng.random() < 0.3
        cfg["mlp_bias"] = rng.random() < 0.3
    elif family == "mistral":
        _maybe_head_dim(rng, cfg)
        _window(rng, cfg)
    elif family == "mixtral":
        cfg["num_local_experts"] = rng.randint(2, 6)
        cfg["num_experts_per_tok"] = rng.randint(1, cfg["num_local_experts"])
        _window(rng, cfg)
    elif family in ("qwen2", "qwen3"):
        if family == "qwen3":
            if rng.random() < 0.5:
                cfg["head_dim"] = rng.choice([4, 8, 16])
            cfg["attention_bias"] = rng.random() < 0.3
        cfg["use_sliding_window"] = rng.random() < 0.5
        cfg["max_window_layers"] = rng.randint(0, cfg["num_hidden_layers"])
        _window(rng, cfg, absent_ok=True)
        if cfg.get("sliding_window") is None and "sliding_window" in cfg and cfg["use_sliding_window"]:
            cfg["sliding_window"] = 16
    elif family in ("qwen2_moe", "qwen3_moe"):
        n = cfg["num_hidden_layers"]
        cfg["num_experts"] = rng.choice([0, 2, 3, 4, 6])
        cfg["num_experts_per_tok"] = rng.randint(1, max(1, cfg["num_experts"]))
        cfg["moe_intermediate_size"] = rng.randint(4, 48)
        cfg["decoder_sparse_step"] = rng.randint(1, 3)
        cfg["mlp_only_layers"] = sorted(rng.sample(range(n), rng.randint(0, n)))
        cfg["use_sliding_window"] = rng.random() < 0.3
        cfg["sliding_window"] = rng.randint(2, 64)
        if family == "qwen2_moe":
            cfg["shared_expert_intermediate_size"] = rng.choice([0, 8, 40])
            cfg["qkv_bias"] = rng.random() < 0.7
            cfg["max_window_layers"] = rng.randint(0, n)
        else:
            cfg["attention_bias"] = rng.random() < 0.3
            _maybe_head_dim(rng, cfg)
    elif family in ("gemma", "gemma2", "gemma3_text"):
        if rng.random() < 0.5:
            cfg["head_dim"] = rng.choice([4, 8, 16])
        cfg["attention_bias"] = rng.random() < 0.3
        if family != "gemma":
            _window(rng, cfg)
            if cfg.get("sliding_window") is None and "sliding_window" in cfg:
                cfg["sliding_window"] = 8  # Gemma2/3 always have sliding layers
        if family == "gemma3_text":
            if rng.random() < 0.5:
                cfg["sliding_window_pattern"] = rng.randint(1, 4)
            cfg["use_bidirectional_attention"] = rng.random() < 0.2
    elif family == "gemma3":
        text = random_config("gemma3_text", rng)
        for k in ("head_dim", "num_key_value_heads", "tie_word_embeddings"):
            if rng.random() < 0.3:
                text.pop(k, None)
        if "num_key_value_heads" not in text and text["num_attention_heads"] % 4:
            text["num_key_value_heads"] = 1
        cfg = {"model_type": "gemma3", "text_config": text,
               "vision_config": {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1,
                                 "num_attention_heads": 2, "image_size": 28, "patch_size": 14},
               "mm_tokens_per_image": 4}
    elif family == "phi3":
        cfg["pad_token_id"] = 0  # Phi3Config's default pad id (32000) must lie inside the tiny vocabulary
        _window(rng, cfg, absent_ok=True)
    elif family == "olmo2":
        cfg["attention_bias"] = rng.random() < 0.3
    elif family == "starcoder2":
        cfg["use_bias"] = rng.random() < 0.7
        _window(rng, cfg)
    elif family in ("deepseek_v2", "deepseek_v3"):
        n = cfg["num_hidden_layers"]
        cfg.pop("num_key_value_heads")
        cfg.update({
            "q_lora_rank": rng.choice([None, 8, 12]),
            "kv_lora_rank": rng.choice([4, 8, 16]),
            "qk_rope_head_dim": rng.choice([2, 4, 8]),
            "qk_nope_head_dim": rng.choice([4, 6, 8]),
            "v_head_dim": rng.choice([4, 6, 10]),
            "n_routed_experts": rng.randint(2, 6),
            "moe_intermediate_size": rng.randint(4, 32),
            "n_shared_experts": rng.randint(0, 2),
            "first_k_dense_replace": rng.randint(0, n),
            "attention_bias": rng.random() < 0.3,
            "n_group": 1, "topk_group": 1,
        })
        cfg["num_experts_per_tok"] = rng.randint(1, cfg["n_routed_experts"])
        if family == "deepseek_v2":
            cfg["mlp_bias"] = rng.random() < 0.3
        if rng.random() < 0.3:
            cfg["num_nextn_predict_layers"] = 1
    elif family == "gpt2":
        g = {"model_type": "gpt2", "n_embd": cfg["hidden_size"], "n_layer": cfg["num_hidden_layers"],
             "n_head": cfg["num_attention_heads"], "vocab_size": cfg["vocab_size"],
             "n_positions": rng.randint(8, 64), "tie_word_embeddings": cfg["tie_word_embeddings"]}
        if rng.random() < 0.5:
            g["n_inner"] = rng.randint(8, 96)
        cfg = g
    elif family == "gpt_neox":
        cfg.pop("num_key_value_heads")
        cfg["attention_bias"] = rng.random() < 0.7
    elif family == "falcon":
        cfg.pop("intermediate_size")
        cfg.pop("num_key_value_heads")
        cfg["new_decoder_architecture"] = rng.random() < 0.5
        cfg["multi_query"] = rng.random() < 0.5
        cfg["parallel_attn"] = rng.random() < 0.7
        cfg["bias"] = rng.random() < 0.3
        if cfg["new_decoder_architecture"] and rng.random() < 0.7:
            heads = cfg["num_attention_heads"]
            cfg["num_kv_heads"] = rng.choice([k for k in (1, 2, 4) if heads % k == 0])
        if rng.random() < 0.3:
            cfg["num_ln_in_parallel_attn"] = rng.choice([1, 2])
        if rng.random() < 0.5:
            cfg["ffn_hidden_size"] = rng.randint(8, 96)
    elif family == "jamba":
        n = rng.randint(2, 8)
        cfg["num_hidden_layers"] = n
        cfg["attn_layer_period"] = rng.randint(1, 4)
        cfg["attn_layer_offset"] = rng.randint(0, cfg["attn_layer_period"] - 1)
        cfg["expert_layer_period"] = rng.randint(1, 3)
        cfg["expert_layer_offset"] = rng.randint(0, cfg["expert_layer_period"] - 1)
        cfg["num_experts"] = rng.choice([1, 2, 4])
        cfg["num_experts_per_tok"] = rng.randint(1, cfg["num_experts"])
        cfg["mamba_d_state"] = rng.choice([2, 4, 8])
        cfg["mamba_d_conv"] = rng.choice([2, 4])
        cfg["mamba_expand"] = rng.choice([1, 2])
        cfg["mamba_dt_rank"] = rng.choice(["auto", 3, 8])
        cfg["mamba_conv_bias"] = rng.random() < 0.7
        cfg["mamba_proj_bias"] = rng.random() < 0.3
        cfg["use_mamba_kernels"] = False
    elif family == "gpt_oss":
        cfg["num_local_experts"] = rng.randint(2, 6)
        cfg["num_experts_per_tok"] = rng.randint(1, cfg["num_local_experts"])
        cfg["attention_bias"] = rng.random() < 0.7
        if rng.random() < 0.5:
            cfg["head_dim"] = rng.choice([4, 8, 16])
        _window(rng, cfg)
        if cfg.get("sliding_window") is None and "sliding_window" in cfg:
            cfg["sliding_window"] = 16  # GPT-OSS always has sliding layers
    elif family == "phi":
        cfg["qk_layernorm"] = rng.random() < 0.4
        if rng.random() < 0.3:
            cfg["head_dim"] = rng.choice([4, 8, 12])
    elif family == "smollm3":
        cfg["pad_token_id"] = 0  # SmolLM3Config's default pad id must lie inside the tiny vocabulary
        cfg["attention_bias"] = rng.random() < 0.3
        cfg["mlp_bias"] = rng.random() < 0.3
        cfg["use_sliding_window"] = rng.random() < 0.5
        cfg["sliding_window"] = rng.choice([None, 16])
        if rng.random() < 0.4:
            cfg["no_rope_layers"] = [rng.randint(0, 1) for _ in range(cfg["num_hidden_layers"])]
        else:
            cfg["no_rope_layer_interval"] = rng.randint(1, 4)
    else:
        raise KeyError(family)
    return cfg
