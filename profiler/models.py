"""Building the model to profile, inside the worker (imports torch and transformers).

Synthetic weights: ``AutoModelForCausalLM.from_config`` under ``torch.device(target)`` in the compute
dtype, so random weights are created directly on the target device; no download. For bitsandbytes formats
every ``nn.Linear`` that transformers itself would quantize (it skips ``lm_head``/tied output embeddings,
see ``transformers.quantizers.base.get_keys_to_not_convert``) is replaced one at a time by a
``Linear8bitLt`` / ``Linear4bit`` whose ``Int8Params`` / ``Params4bit`` quantize when moved to the device,
the same bitsandbytes calls ``from_pretrained(quantization_config=...)`` ends in. Peak memory while loading
a quantized synthetic model is therefore the compute-dtype model (plus one layer), not the quantized one;
measurements start after load.

Real weights: ``from_pretrained(checkpoint_dir)`` (safetensors are memory-mapped; on CPU the mapped pages
show up as file-backed RSS, which the worker reports apart from anonymous RSS).
"""

from __future__ import annotations

from profiler.source import hf_config_dict

DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def compute_dtype_name(weights: str) -> str:
    from planner.formats import weight_format

    return weight_format(weights).compute_dtype


def hf_config(config: dict):
    """A transformers config object from a config.json dict (never ``trust_remote_code``)."""
    from transformers import AutoConfig

    d = hf_config_dict(config)
    model_type = d.pop("model_type")
    return AutoConfig.for_model(model_type, **d)


def bnb_config(weights: str, compute):
    from transformers import BitsAndBytesConfig

    if weights == "bnb-int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    quant_type = "fp4" if weights.startswith("bnb-fp4") else "nf4"
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                              bnb_4bit_use_double_quant=weights.endswith("-dq"), bnb_4bit_compute_dtype=compute)


def _modules_to_not_convert(model) -> list[str]:
    try:
        from transformers.quantizers.base import get_keys_to_not_convert

        return list(get_keys_to_not_convert(model))
    except Exception:  # older transformers
        return ["lm_head"]


def _should_convert(name: str, patterns: list[str]) -> bool:
    try:
        from transformers.quantizers.quantizers_utils import should_convert_module

        return should_convert_module(name, patterns)
    except Exception:
        return not any(name == p or name.endswith("." + p) for p in patterns)


def quantize_bnb(model, weights: str, device, compute) -> int:
    """Replace ``nn.Linear`` modules by bitsandbytes ones, quantizing on ``device``. Returns how many."""
    import bitsandbytes as bnb
    import torch

    skip = _modules_to_not_convert(model)
    targets = [(n, m) for n, m in model.named_modules() if type(m) is torch.nn.Linear and _should_convert(n, skip)]
    quant_type = "fp4" if weights.startswith("bnb-fp4") else "nf4"
    for name, lin in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        w = lin.weight.data
        bias = lin.bias.data if lin.bias is not None else None
        with torch.device("meta"):
            if weights == "bnb-int8":
                new = bnb.nn.Linear8bitLt(lin.in_features, lin.out_features, bias=bias is not None,
                                          has_fp16_weights=False, threshold=6.0)
            else:
                new = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=bias is not None,
                                        compute_dtype=compute, compress_statistics=weights.endswith("-dq"),
                                        quant_type=quant_type, quant_storage=torch.uint8)
        if weights == "bnb-int8":
            # _quantize is what Int8Params.to / Params4bit.to call on their first move to a device
            new.weight = bnb.nn.Int8Params(w, requires_grad=False, has_fp16_weights=False)._quantize(device)
        else:
            new.weight = bnb.nn.Params4bit(w, requires_grad=False, compress_statistics=weights.endswith("-dq"),
                                           quant_type=quant_type, quant_storage=torch.uint8,
                                           module=new)._quantize(device)
        if bias is not None:
            new.bias = torch.nn.Parameter(bias, requires_grad=False)
        new.requires_grad_(False)
        setattr(parent, child, new)
        del lin, w
    model.config.quantization_config = bnb_config(weights, compute)
    return len(targets)


def build_model(config: dict, *, weights: str, device, attention: str, synthetic: bool,
                checkpoint: str | None, seed: int = 0):
    """The model on ``device`` in eval mode. See the module docstring for what each path does."""
    import torch
    from transformers import AutoModelForCausalLM

    compute = torch_dtype(compute_dtype_name(weights))
    torch.manual_seed(seed)
    if not synthetic:
        kwargs = {"dtype": compute, "attn_implementation": attention, "device_map": str(device)}
        if weights.startswith("bnb-"):
            kwargs["quantization_config"] = bnb_config(weights, compute)
        model = AutoModelForCausalLM.from_pretrained(checkpoint, trust_remote_code=False, **kwargs)
        return model.eval()
    cfg = hf_config(config)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=compute, attn_implementation=attention)
    model = model.eval().requires_grad_(False)
    if weights.startswith("bnb-"):
        quantize_bnb(model, weights, device, compute)
    return model
