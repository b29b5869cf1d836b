"""Arguments shared by the subcommands: where the model comes from, and the plan.

``add_model_args`` / ``spec_from_args`` resolve --model / --config / --hub / --approximate;
``add_plan_args`` / ``plan_from_args`` build a validated :class:`planner.estimate.Plan`.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from planner.catalog import catalog_spec
from planner.engines import VLLM_MAX_BATCHED_TOKENS_DEFAULT
from planner.errors import InputError, SourceError
from planner.estimate import ATTENTIONS, CACHES, ENGINES, MODES, Plan
from planner.gpus import find_gpu
from planner.spec import MAX_CONFIG_BYTES, ModelSpec, load_config_text, parse_config
from planner.stored import StoredWeights, read_model_dir


def positive_int(text: str) -> int:
    try:
        v = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {v}")
    return v


def add_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--model", help="catalog name (see 'headroom models')")
    src.add_argument("--config", help="path to a config.json or a model directory")
    src.add_argument("--hub", metavar="REPO_ID", help="Hugging Face repo id (uses HF_TOKEN for gated repos)")
    p.add_argument("--revision", metavar="REV", help="with --hub: branch, tag or commit sha (default main)")
    p.add_argument("--approximate", action="store_true",
                   help="plan an unsupported model_type as a llama-like decoder (labelled approximate)")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: its spec, and the checkpoint's safetensors headers when the source has them."""

    spec: ModelSpec
    stored: StoredWeights | None = None
    label: str = ""  # where it came from, for humans ("catalog llama-3.1-8b", "hub org/x@sha", a path)
    notes: tuple[str, ...] = ()  # what the source could not provide (e.g. hub headers unavailable)


def _read_config(path: str, approximate: bool) -> ModelSpec:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_CONFIG_BYTES:
                raise SourceError(f"{path} is {size:,} bytes; a model config is at most {MAX_CONFIG_BYTES:,} bytes")
            text = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror or e}") from None
    name = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return parse_config(load_config_text(text, source=path), approximate=approximate, name=name)


def source_from_args(args: argparse.Namespace) -> ModelSource:
    """--model / --config FILE|DIR / --hub REPO_ID [--revision R] -> ModelSource (SourceError if unreadable)."""
    approximate = getattr(args, "approximate", False)
    if getattr(args, "revision", None) and not getattr(args, "hub", None):
        raise InputError("--revision only applies to --hub")
    if getattr(args, "model", None):
        return ModelSource(catalog_spec(args.model), None, f"catalog {args.model}")
    if getattr(args, "config", None):
        path = args.config
        if os.path.isdir(path):
            cfg = os.path.join(path, "config.json")
            if not os.path.isfile(cfg):
                raise SourceError(f"{path} has no config.json; give a config.json or a model directory")
            return ModelSource(_read_config(cfg, approximate), read_model_dir(path), path)
        if not os.path.exists(path):
            raise SourceError(f"cannot read {path}: no such file or directory")
        return ModelSource(_read_config(path, approximate), None, path)
    if getattr(args, "hub", None):
        from app.hub import fetch_hub_model  # imports huggingface_hub: only when --hub is used

        m = fetch_hub_model(args.hub, getattr(args, "revision", None))
        label = f"hub {m.repo_id}@{(m.sha or m.revision or 'main')[:12]}"
        return ModelSource(m.spec(approximate=approximate), m.stored, label, m.notes)
    raise InputError("give one of --model, --config or --hub")


def spec_from_args(args: argparse.Namespace) -> ModelSpec:
    return source_from_args(args).spec


def add_plan_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("plan")
    g.add_argument("--weights", default="auto", help="weight format (default: the checkpoint's own)")
    g.add_argument("--kv-dtype", default="auto", help="KV-cache dtype (default: the weights' compute dtype)")
    g.add_argument("--batch", type=positive_int, default=1, help="sequences at once (default 1)")
    g.add_argument("--context", type=positive_int, default=8192,
                   help="tokens held per sequence, prompt + generated (default 8192)")
    g.add_argument("--prompt-tokens", type=positive_int, default=None,
                   help="tokens prefilled in one pass (default: the whole context)")
    g.add_argument("--engine", default="transformers", choices=ENGINES)
    g.add_argument("--attention", default="sdpa", choices=ATTENTIONS)
    g.add_argument("--cache", default="dynamic", choices=CACHES, help="transformers cache class")
    g.add_argument("--mode", default="generate", choices=MODES,
                   help="generate() keeps last-position logits; forward computes all")
    g.add_argument("--tp", type=positive_int, default=1, help="tensor-parallel GPUs")
    g.add_argument("--cpu", action="store_true", help="plan for CPU (no CUDA context or GPU overheads)")
    g.add_argument("--max-cache-len", type=positive_int, default=None,
                   help="StaticCache length in tokens (with --cache static; default: the context)")
    g.add_argument("--override", action="append", default=[], metavar="NAME=SIZE",
                   help="replace an assumption, e.g. overhead/cuda_context=300MiB (repeatable)")


def plan_from_args(args: argparse.Namespace, **extra) -> Plan:
    from planner.overhead import parse_override

    overrides = tuple(parse_override(o) for o in getattr(args, "override", None) or ())
    if overrides:
        extra.setdefault("overrides", overrides)
    if getattr(args, "max_cache_len", None) is not None:
        extra.setdefault("max_cache_len", args.max_cache_len)
    return Plan(
        weights=args.weights, kv_dtype=args.kv_dtype, batch=args.batch, context=args.context,
        prompt_tokens=args.prompt_tokens, engine=args.engine, attention=args.attention, cache=args.cache,
        mode=args.mode, tp=args.tp, device="cpu" if args.cpu else "gpu", **extra,
    )


#: --memory-gib upper bound: far above any single accelerator
MAX_MEMORY_GIB = 1 << 20


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def add_device_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("device")
    dev = g.add_mutually_exclusive_group(required=required)
    dev.add_argument("--gpu", metavar="NAME", help="GPU from the catalog (see 'headroom gpus')")
    dev.add_argument("--memory-gib", type=positive_float, metavar="X", help="memory of one device in GiB")
    g.add_argument("--gpus", type=positive_int, default=None,
                   help="number of GPUs (tensor parallel for transformers/vllm; default: --tp)")
    g.add_argument("--gpu-memory-utilization", type=positive_float, default=0.9,
                   help="vllm: fraction of each GPU vLLM may use (default 0.9)")
    g.add_argument("--max-num-batched-tokens", type=positive_int, default=None,
                   help="vllm: tokens of the profiling run (default: vLLM serve's, 8192 on >= 70 GiB "
                        "GPUs other than A100s, else 2048)")
    g.add_argument("--max-num-seqs", type=positive_int, default=256,
                   help="vllm: max sequences at once (default 256; vllm serve uses 1024 on >= 70 GiB GPUs "
                        "other than A100s)")
    g.add_argument("--n-gpu-layers", type=int, default=None, metavar="N",
                   help="llamacpp: layers offloaded to the GPU (-ngl; default all)")


def device_from_args(args) -> tuple[int | None, int, str]:
    """(bytes of one device or None when no device was given, number of devices, label)."""
    gpus = args.gpus if args.gpus is not None else args.tp
    if args.gpus is not None and args.tp not in (1, args.gpus):
        raise InputError(f"--tp {args.tp} and --gpus {args.gpus} disagree; give one of them")
    if not args.gpu and args.memory_gib is None:
        return None, gpus, ""
    if args.gpu:
        g = find_gpu(args.gpu)
        if getattr(args, "engine", None) == "vllm" and g.vendor == "apple":
            raise InputError(f"vLLM does not run on Apple GPUs ({g.name}); use --engine llamacpp or transformers")
        return g.memory_bytes, gpus, g.name
    if args.memory_gib > MAX_MEMORY_GIB:
        raise InputError(f"--memory-gib must be at most {MAX_MEMORY_GIB:,}, got {args.memory_gib:g}")
    return int(args.memory_gib * 2**30), gpus, f"{args.memory_gib:g} GiB"


def engine_extra(args, device_bytes: int | None) -> dict:
    tokens = args.max_num_batched_tokens
    if tokens is None and args.gpu and "a100" in args.gpu.lower():
        # vLLM keeps the small default (2048) on A100s whatever their memory (EngineArgs, PR #17885)
        tokens = VLLM_MAX_BATCHED_TOKENS_DEFAULT
    return dict(gpu_memory_bytes=device_bytes, gpu_memory_utilization=args.gpu_memory_utilization,
                max_num_batched_tokens=tokens, max_num_seqs=args.max_num_seqs, n_gpu_layers=args.n_gpu_layers)


def resolve_args(args: argparse.Namespace):
    """(model source, plan, (bytes of one device or None, device count, label)) for estimate and fit.

    The plan carries the engine settings sized to the device (vLLM needs the GPU's memory).
    """
    src = source_from_args(args)
    device = device_from_args(args)
    return src, plan_from_args(args, **engine_extra(args, device[0])), device

