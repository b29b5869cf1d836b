"""Configuration snippets for a chosen plan: launch commands and code, annotated with the plan's numbers.

Targets: ``transformers`` (Python: ``from_pretrained`` with dtype, quantization config, ``device_map`` and
``max_memory``, attention implementation), ``vllm`` (``vllm serve``), ``sglang``
(``python -m sglang.launch_server``), ``tgi`` (``text-generation-launcher``), ``llamacpp``
(``llama-server``), ``accelerate`` (a ``max_memory`` map and ``infer_auto_device_map``), and ``scenario``
(the plan as scenario JSON).

Pure string generation: nothing here imports torch, transformers or any engine. The argument vectors
(:func:`launch_argv`) are what the tests check, flag by flag, against tables taken from each project's
documentation (``tests/flag_tables/``). A choice an engine cannot express (an fp8 KV cache in
llama.cpp, GGUF weights in TGI) is an :class:`InputError` saying what to pick instead.
"""

from __future__ import annotations

import json
import shlex
from functools import cached_property

from planner.breakdown import MemoryBreakdown
from planner.errors import InputError
from planner.estimate import estimate
from planner.formats import WeightFormat, resolve_format
from planner.scenario import Scenario, dumps
from planner.spec import ModelSpec

TARGETS = ("transformers", "vllm", "sglang", "tgi", "llamacpp", "accelerate", "scenario")
#: targets whose snippet is a shell command built from :func:`launch_argv`
COMMAND_TARGETS = ("vllm", "sglang", "tgi", "llamacpp")
LANGUAGES = {"transformers": "python", "accelerate": "python", "scenario": "json",
             "vllm": "bash", "sglang": "bash", "tgi": "bash", "llamacpp": "bash"}
FILENAMES = {"transformers": "load_model.py", "accelerate": "device_map.py", "scenario": "scenario.json",
             "vllm": "serve_vllm.sh", "sglang": "serve_sglang.sh", "tgi": "serve_tgi.sh",
             "llamacpp": "serve_llamacpp.sh"}
GIB = 1 << 30
MIB = 1 << 20

_GGUF_FLOAT = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}
_TORCH_DTYPE = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}
_KV_ALIASES = {"fp8": "fp8_e4m3", "float16": "fp16", "half": "fp16", "bfloat16": "bf16", "float32": "fp32",
               "fp8_e4m3fn": "fp8_e4m3"}


class _Ctx:
    """Everything a snippet needs, resolved once."""

    def __init__(self, scenario: Scenario, spec: ModelSpec | None = None):
        self.s = scenario
        self.plan = scenario.plan
        self.spec = spec if spec is not None else scenario.spec()
        self.fmt: WeightFormat = resolve_format(self.spec, self.plan.weights)
        if self.plan.engine == "llamacpp" and self.plan.weights == "auto":
            from planner.engines import LLAMACPP_DEFAULT_WEIGHTS

            self.fmt = resolve_format(self.spec, LLAMACPP_DEFAULT_WEIGHTS)  # what the plan's numbers use
        self.gpu_bytes = scenario.gpu_memory_bytes()
        self.count = max(scenario.gpu_count, self.plan.tp)
        self.repo = scenario.model.repo_id or "PATH/TO/MODEL"
        kv = self.plan.kv_dtype.strip().lower()
        self.kv = _KV_ALIASES.get(kv, kv)
        # the checkpoint already stores this format: engines read its quantization_config themselves
        q = self.spec.quantization
        self.prequantized = q is not None and q.default_format() == self.fmt.name

    @cached_property
    def breakdown(self) -> MemoryBreakdown:
        """Computed on first use, after the target has checked the plan is expressible (its error wins)."""
        return _breakdown(self.spec, self.plan)

    @property
    def compute_dtype(self) -> str:
        return self.fmt.compute_dtype

    def kv_resolved(self) -> str:
        """The KV dtype the plan's engine uses, ``auto`` resolved: llama.cpp's cache type (auto -> f16,
        int8 -> q8_0), else the compute dtype's name (fp16, bf16, fp32)."""
        return resolved_names(self.spec, self.plan)[1]


def resolved_names(spec: ModelSpec, plan) -> tuple[str, str]:
    """(weight format, KV dtype) the plan's engine actually uses, ``auto`` resolved.

    transformers: the checkpoint's format; KV auto = the compute dtype. vLLM: ``--dtype auto`` runs
    float32 checkpoints in bfloat16. llama.cpp: weights auto = gguf-Q4_K_M, KV auto = f16 (its
    ``--cache-type-k/v`` default). Names the planner rejects are returned as given.
    """
    from planner.kv_cache import canonical_kv_dtype

    weights, kv = plan.weights, plan.kv_dtype
    try:
        if plan.engine == "llamacpp":
            from planner.engines import _llamacpp_format, llamacpp_kv_type

            kv = llamacpp_kv_type(plan.kv_dtype)
            weights = _llamacpp_format(spec, plan)[0].name
        else:
            if plan.engine == "vllm":
                from planner.engines import _vllm_format

                fmt = _vllm_format(spec, plan)
            else:
                fmt = resolve_format(spec, plan.weights)
            weights = fmt.name
            kv = canonical_kv_dtype(plan.kv_dtype, fmt.compute_dtype)
    except InputError:
        pass
    return weights, kv


def _breakdown(spec: ModelSpec, plan) -> MemoryBreakdown:
    """Per-GPU breakdown: the engine's own memory plan where it applies (as ``headroom recommend`` uses)."""
    from planner.recommend import option_breakdown

    try:
        return option_breakdown(spec, plan)
    except InputError:
        return estimate(spec, plan)  # e.g. vLLM without a GPU size: weights and runtime without the pool


def _fit_line(c: _Ctx) -> str:
    """planner.fit's verdict on the chosen GPUs (the same numbers as ``headroom fit`` and the reports)."""
    from planner.fit import fit

    gpus = c.s.gpu_count if c.plan.engine == "llamacpp" else c.plan.tp
    try:
        f = fit(c.spec, c.plan, c.gpu_bytes, gpus)
    except InputError as e:
        return f"fit: not available ({e})"
    word = "fits" if f.fits else "DOES NOT FIT"
    what = "left unused in the KV pool" if c.plan.engine == "vllm" else "free"
    return (f"{word}: {_gib(f.free_bytes)} {what} per GPU; largest batch at this context {f.max_batch:,}, "
            f"largest context at this batch {f.max_context:,} tokens")


def _engine_lines(c: _Ctx) -> list[str]:
    """What the engine itself will report at startup, as the planner predicts it."""
    plan = c.plan
    try:
        if plan.engine == "vllm" and plan.gpu_memory_bytes:
            from planner.engines import vllm_capacity

            cap = vllm_capacity(c.spec, plan)
            return [f"vLLM should log: GPU KV cache size {cap.kv_cache_tokens:,} tokens; maximum concurrency "
                    f"{cap.max_concurrency:.2f}x for {plan.context:,} tokens per request"]
        if plan.engine == "llamacpp":
            from planner.engines import llamacpp_memory

            m = llamacpp_memory(c.spec, plan)
            return [f"llama.cpp: {m.gpu_layers}/{m.total_layers} layers on the GPU, {m.n_ctx:,} KV cells "
                    f"({m.kv_type}); host RAM {_gib(m.host_bytes)}"]
    except InputError:
        return []
    return []


def _gib(n: int | float) -> str:
    return f"{n / GIB:,.2f} GiB"


#: the planner engine each target runs on (sglang and tgi are not modelled)
TARGET_ENGINES = {"transformers": "transformers", "accelerate": "transformers", "vllm": "vllm",
                  "llamacpp": "llamacpp"}
_ENGINE_TITLES = {"transformers": "transformers", "vllm": "vLLM", "llamacpp": "llama.cpp", "sglang": "SGLang",
                  "tgi": "TGI", "accelerate": "accelerate"}


def _parallel_text(c: _Ctx, target: str) -> str:
    """How the GPUs are used, as the snippet really uses them."""
    if c.count <= 1:
        return ""
    if TARGET_ENGINES.get(target) == "transformers":
        basis = (f"per-GPU numbers are the planner's tensor-parallel estimate (tp {c.plan.tp})" if c.plan.tp > 1
                 else "the numbers are for the whole model on one GPU (tp 1)")
        return (f"; layers split over {c.count} GPUs with device_map='auto' (pipeline, not tensor parallel); "
                f"{basis}")
    if target == "llamacpp":
        return f"; layers split over {c.count} GPUs (--split-mode layer)"
    return f"; tensor parallel {c.plan.tp}" if c.plan.tp > 1 else ""


def _header(c: _Ctx, target: str, prefix: str = "# ") -> list[str]:
    b = c.breakdown
    gpu = c.s.gpu or ("custom GPU" if c.gpu_bytes else "no GPU chosen")
    per = "per GPU" if c.plan.tp > 1 else "on the GPU"
    lines = [
        f"Headroom plan for {c.s.model.display_name} ({c.spec.model_type}, {b.parameters:,} parameters)",
        f"weights {c.fmt.name} ({c.fmt.label}); KV cache {c.kv_resolved()}; engine {c.plan.engine}; "
        f"batch {c.plan.batch}, context {c.plan.context:,} tokens",
        f"GPUs: {c.count} x {gpu}" + (f" ({_gib(c.gpu_bytes)} each)" if c.gpu_bytes else "") + _parallel_text(c, target),
        f"predicted {per}: weights {_gib(b.weights_bytes)}, KV cache {_gib(b.kv_cache_bytes)}, "
        f"activations {_gib(b.activations_bytes)}, overhead {_gib(b.overhead_bytes)}; total {_gib(b.total_bytes)}",
    ]
    if c.gpu_bytes:
        lines.append(_fit_line(c))
    lines += _engine_lines(c)
    made_for = getattr(c, "made_for", None)
    if made_for:
        lines.append(f"the plan was made for the {_ENGINE_TITLES[made_for]} engine; the numbers above are "
                     f"re-planned for {_ENGINE_TITLES[c.plan.engine]}, the engine this snippet runs")
    elif TARGET_ENGINES.get(target, target) != c.plan.engine:
        lines.append(f"the numbers above are the planner's {_ENGINE_TITLES[c.plan.engine]} plan (the engine the plan "
                     f"was made for), not a {_ENGINE_TITLES[target]} plan")
    if c.s.title:
        lines.insert(0, c.s.title)
    return [prefix + line for line in lines]


# ---------------------------------------------------------------------------------------------------
# Launch commands (argument vectors)


def _vllm(c: _Ctx) -> tuple[list[str], list[str]]:
    notes: list[str] = []
    fmt = c.fmt
    if fmt.kind == "gguf":
        argv = ["vllm", "serve", f"./{_gguf_file(c)}", "--tokenizer", c.repo]
        notes.append("GGUF support in vLLM is experimental and loads one local .gguf file")
    else:
        argv = ["vllm", "serve", c.repo]
    dtype = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}[c.compute_dtype]
    argv += ["--dtype", dtype]
    if fmt.kind == "fp8" and not c.prequantized:
        argv += ["--quantization", "fp8"]
        if fmt.block:
            notes.append("vLLM's online fp8 uses one scale per tensor; block scales need a block-quantized checkpoint")
    elif fmt.kind == "bnb":
        argv += ["--quantization", "bitsandbytes"]
        if fmt.bits == 8 and not c.prequantized:
            notes.append("vLLM quantizes bitsandbytes in flight to 4 bits only; 8-bit needs a bitsandbytes 8-bit checkpoint")
        notes.append("older vLLM releases also need --load-format bitsandbytes")
    elif fmt.kind in ("gptq", "awq") and not c.prequantized:
        notes.append(f"{fmt.kind.upper()} needs a {fmt.kind.upper()}-quantized checkpoint: replace the model id; "
                     "vLLM reads its quantization_config (and picks Marlin kernels when it can)")
    kv = c.kv
    if kv == "auto" or _same_float(kv, c.compute_dtype):
        kv_flag = "auto"
    elif kv in ("fp8_e4m3", "fp8_e5m2"):
        kv_flag = kv
    else:
        raise InputError(f"vLLM has no {c.plan.kv_dtype!r} KV cache; choose auto (the model dtype) or fp8 "
                         "(fp8_e4m3, fp8_e5m2)")
    argv += ["--kv-cache-dtype", kv_flag]
    argv += ["--max-model-len", str(c.plan.context), "--max-num-seqs", str(c.plan.max_num_seqs),
             "--gpu-memory-utilization", _frac(c.plan.gpu_memory_utilization),
             "--tensor-parallel-size", str(c.plan.tp)]
    if c.plan.max_num_batched_tokens:
        argv += ["--max-num-batched-tokens", str(c.plan.max_num_batched_tokens)]
    argv += ["--port", "8000"]
    return argv, notes


def _sglang(c: _Ctx) -> tuple[list[str], list[str]]:
    notes: list[str] = []
    fmt = c.fmt
    argv = ["python", "-m", "sglang.launch_server"]
    if fmt.kind == "gguf":
        argv += ["--model-path", f"./{_gguf_file(c)}", "--tokenizer-path", c.repo, "--load-format", "gguf"]
    else:
        argv += ["--model-path", c.repo]
    argv += ["--tp-size", str(c.plan.tp)]
    dtype = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}[c.compute_dtype]
    argv += ["--dtype", dtype]
    if fmt.kind == "fp8" and not c.prequantized:
        argv += ["--quantization", "fp8"]
    elif fmt.kind == "bnb":
        argv += ["--load-format", "bitsandbytes"]
        notes.append("SGLang loads bitsandbytes weights through --load-format bitsandbytes; check its docs "
                     "for in-flight quantization of an unquantized checkpoint")
    elif fmt.kind in ("gptq", "awq") and not c.prequantized:
        notes.append(f"{fmt.kind.upper()} needs a {fmt.kind.upper()}-quantized checkpoint: replace the model path")
    kv = c.kv
    if kv == "auto" or _same_float(kv, c.compute_dtype):
        kv_flag = "auto"
    elif kv in ("fp8_e4m3", "fp8_e5m2"):
        kv_flag = kv
    elif kv == "bf16":
        kv_flag = "bf16"
    else:
        raise InputError(f"SGLang has no {c.plan.kv_dtype!r} KV cache; choose auto, bf16 or fp8 (fp8_e4m3, fp8_e5m2)")
    argv += ["--kv-cache-dtype", kv_flag]
    argv += ["--context-length", str(c.plan.context), "--max-running-requests", str(c.plan.max_num_seqs),
             "--mem-fraction-static", _frac(c.plan.gpu_memory_utilization), "--host", "127.0.0.1",
             "--port", "30000"]
    notes.append("--mem-fraction-static covers weights and the KV pool; SGLang's own default is chosen "
                 "by GPU size, the value here is the plan's memory fraction")
    return argv, notes


def _tgi(c: _Ctx) -> tuple[list[str], list[str]]:
    notes: list[str] = []
    fmt = c.fmt
    if fmt.kind == "gguf":
        raise InputError("Text Generation Inference does not serve GGUF files; choose the llamacpp target, "
                         "or a bf16/fp8/bitsandbytes/GPTQ/AWQ weight format")
    argv = ["text-generation-launcher", "--model-id", c.repo, "--num-shard", str(c.plan.tp)]
    quantize = None
    if fmt.kind == "bnb":
        quantize = "bitsandbytes" if fmt.bits == 8 else f"bitsandbytes-{fmt.variant}"
        if fmt.double_quant:
            notes.append("TGI's bitsandbytes 4-bit has no double-quant switch; absmax is stored as fp32")
    elif fmt.kind == "fp8" and not c.prequantized:
        quantize = "fp8"
    elif fmt.kind in ("gptq", "awq"):
        if not c.prequantized:
            notes.append(f"{fmt.kind.upper()} needs a {fmt.kind.upper()}-quantized checkpoint: replace the model id")
        quantize = fmt.kind
    if quantize:
        argv += ["--quantize", quantize]
    else:
        # TGI: --dtype cannot be combined with --quantize, and only float16/bfloat16 exist
        if c.compute_dtype == "float32":
            raise InputError("TGI serves float16 or bfloat16 weights, not float32; choose bf16 or fp16")
        argv += ["--dtype", c.compute_dtype]
    kv = c.kv
    if kv in ("fp8_e4m3", "fp8_e5m2"):
        argv += ["--kv-cache-dtype", {"fp8_e4m3": "fp8_e4m3fn", "fp8_e5m2": "fp8_e5m2"}[kv]]
    elif not (kv == "auto" or _same_float(kv, c.compute_dtype)):
        raise InputError(f"TGI has no {c.plan.kv_dtype!r} KV cache; choose auto (the model dtype) or fp8 "
                         "(fp8_e4m3, fp8_e5m2)")
    total = c.plan.context
    max_input = min(c.plan.prompt_tokens or total - 1, total - 1) if total > 1 else 1
    if total < 2:
        raise InputError("TGI needs a context of at least 2 tokens (one input, one generated)")
    argv += ["--max-input-tokens", str(max_input), "--max-total-tokens", str(total),
             "--max-concurrent-requests", str(c.plan.max_num_seqs),
             "--cuda-memory-fraction", _frac(c.plan.gpu_memory_utilization), "--port", "3000"]
    notes.append("the same flags follow the image name in: docker run --gpus all --shm-size 1g -p 3000:3000 "
                 "ghcr.io/huggingface/text-generation-inference ...")
    return argv, notes


def _gguf_file(c: _Ctx) -> str:
    base = (c.s.model.display_name.split("/")[-1] or "model").replace(" ", "-")
    if c.fmt.kind == "gguf":
        return f"{base}-{c.fmt.variant}.gguf"
    return f"{base}-{_GGUF_FLOAT[c.compute_dtype]}.gguf"


def _llamacpp(c: _Ctx) -> tuple[list[str], list[str]]:
    notes: list[str] = []
    if c.fmt.kind not in ("gguf", "float"):
        raise InputError(f"llama.cpp runs GGUF files; weight format {c.fmt.name!r} is not one. Choose a gguf-* "
                         "format (e.g. gguf-Q4_K_M) or bf16/fp16")
    slots = c.plan.batch
    n_ctx = c.plan.context * slots
    ngl = c.plan.n_gpu_layers if c.plan.n_gpu_layers is not None else c.spec.num_layers + 1
    argv = ["llama-server", "-m", f"./{_gguf_file(c)}", "-c", str(n_ctx), "-np", str(slots), "-ngl", str(ngl)]
    kv = c.kv
    table = {"auto": "f16", "fp16": "f16", "bf16": "bf16", "fp32": "f32", "int8": "q8_0", "q8_0": "q8_0",
             "int4": "q4_0", "q4_0": "q4_0", "f16": "f16", "f32": "f32", "q4_1": "q4_1", "q5_0": "q5_0",
             "q5_1": "q5_1", "iq4_nl": "iq4_nl"}
    if kv not in table:
        raise InputError(f"llama.cpp has no {c.plan.kv_dtype!r} KV cache; choose f16, bf16, q8_0 (int8) or q4_0 (int4)")
    cache_type = table[kv]
    # a quantized V cache needs flash attention in llama.cpp
    argv += ["-fa", "on", "--cache-type-k", cache_type, "--cache-type-v", cache_type]
    if c.count > 1:
        argv += ["--split-mode", "layer", "--tensor-split", ",".join(["1"] * c.count)]
    argv += ["--host", "127.0.0.1", "--port", "8080"]
    notes.append(f"-m: the path of your GGUF file ({c.fmt.variant if c.fmt.kind == 'gguf' else 'converted'} "
                 "weights, e.g. from a -GGUF repository on the hub)")
    notes.append(f"-c is shared by the -np slots: {slots} x {c.plan.context:,} = {n_ctx:,} tokens")
    if c.plan.n_gpu_layers is None:
        notes.append(f"-ngl {ngl}: all {c.spec.num_layers} layers plus the output layer on the GPU")
    if c.fmt.kind == "float":
        notes.append("convert the checkpoint first: python convert_hf_to_gguf.py MODEL_DIR "
                     f"--outtype {_gguf_file(c).rsplit('-', 1)[-1].removesuffix('.gguf').lower()}")
    return argv, notes


_BUILDERS = {"vllm": _vllm, "sglang": _sglang, "tgi": _tgi, "llamacpp": _llamacpp}


def _same_float(kv: str, compute_dtype: str) -> bool:
    return {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}.get(kv) == compute_dtype


def _frac(x: float) -> str:
    return f"{x:.4f}".rstrip("0").rstrip(".") if x < 1 else "1.0"


def launch_argv(target: str, scenario: Scenario, spec: ModelSpec | None = None) -> tuple[str, ...]:
    """The command line of a launch target as an argument vector (no shell quoting)."""
    if target not in _BUILDERS:
        raise InputError(f"{target!r} is not a launch-command target; expected one of: {', '.join(COMMAND_TARGETS)}")
    argv, _ = _BUILDERS[target](_Ctx(scenario, spec))
    return tuple(argv)


def _render_command(argv: list[str]) -> str:
    """One flag (and its value) per line, joined with backslashes."""
    head: list[str] = []
    i = 0
    while i < len(argv) and not argv[i].startswith("-"):
        head.append(argv[i])
        i += 1
    if argv[:3] == ["python", "-m", "sglang.launch_server"]:
        head = argv[:3]
        i = 3
    lines = [" ".join(shlex.quote(a) for a in head)]
    while i < len(argv):
        part = [argv[i]]
        if i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            part.append(argv[i + 1])
            i += 1
        lines.append("  " + " ".join(shlex.quote(a) for a in part))
        i += 1
    return " \\\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Python snippets


def max_memory_map(c: _Ctx) -> dict:
    """accelerate ``max_memory``: per GPU, its memory minus what the plan needs besides weights (KV cache,
    activations, overhead), so ``device_map="auto"`` leaves that room free; in MiB strings."""
    if not c.gpu_bytes:
        return {}
    b = c.breakdown
    room = b.kv_cache_bytes + b.activations_bytes + b.overhead_bytes
    per_gpu = max(0, c.gpu_bytes - room) // MIB
    return {i: f"{per_gpu}MiB" for i in range(c.count)}


def _bnb_config(c: _Ctx) -> str:
    fmt = c.fmt
    if fmt.bits == 8:
        return "BitsAndBytesConfig(load_in_8bit=True)"
    return (
        "BitsAndBytesConfig(\n"
        "    load_in_4bit=True,\n"
        f"    bnb_4bit_quant_type={fmt.variant!r},\n"
        f"    bnb_4bit_use_double_quant={fmt.double_quant},\n"
        f"    bnb_4bit_compute_dtype=torch.{_TORCH_DTYPE[c.compute_dtype]},\n"
        ")"
    )


def _transformers(c: _Ctx) -> str:
    fmt, plan = c.fmt, c.plan
    if fmt.kind == "gguf":
        raise InputError("transformers dequantizes GGUF files on load, so the plan's GGUF sizes would not hold; "
                         "use the llamacpp target, or a bf16/bitsandbytes/fp8/GPTQ/AWQ weight format")
    imports = ["AutoModelForCausalLM", "AutoTokenizer"]
    lines = _header(c, "transformers") + ["", "import torch"]
    qconf = None
    notes: list[str] = []
    if fmt.kind == "bnb":
        imports.append("BitsAndBytesConfig")
        qconf = _bnb_config(c)
    elif fmt.kind == "fp8" and not c.prequantized:
        imports.append("FineGrainedFP8Config")
        block = fmt.block or (128, 128)
        qconf = f"FineGrainedFP8Config(weight_block_size={tuple(block)!r})"
        if not fmt.block:
            notes.append("# transformers quantizes fp8 on load with 128x128 block scales (a few MiB more than per tensor)")
    elif fmt.kind in ("gptq", "awq") and not c.prequantized:
        notes.append(f"# {fmt.kind.upper()}: point model_id at a {fmt.kind.upper()}-quantized checkpoint; "
                     "transformers reads its quantization_config")
    elif c.prequantized:
        notes.append("# the checkpoint is already quantized; transformers reads its quantization_config")
    lines.append(f"from transformers import {', '.join(sorted(imports))}")
    lines.append("")
    lines.append(f"model_id = {c.repo!r}")
    mm = max_memory_map(c)
    if mm:
        lines.append("# per GPU: its memory minus the KV cache, activations and overhead the plan needs there")
        lines.append(f"max_memory = {mm!r}")
    if qconf:
        lines.append(f"quantization_config = {qconf}")
    lines += notes
    lines.append("")
    lines.append("model = AutoModelForCausalLM.from_pretrained(")
    lines.append("    model_id,")
    lines.append(f"    dtype=torch.{_TORCH_DTYPE[c.compute_dtype]},")
    if qconf:
        lines.append("    quantization_config=quantization_config,")
    lines.append('    device_map="auto",')
    if mm:
        lines.append("    max_memory=max_memory,")
    lines.append(f"    attn_implementation={plan.attention!r},")
    lines.append(")")
    lines.append("")
    gen_kwargs = [f"max_new_tokens={max(1, plan.context - (plan.prompt_tokens or 0)) if plan.prompt_tokens else 256}"]
    kv = c.kv
    if plan.cache == "static":
        gen_kwargs.append('cache_implementation="static"')
    if kv in ("int4", "int8"):
        backend, nbits = ("quanto", 4) if kv == "int4" else ("HQQ", 8)
        gen_kwargs.append('cache_implementation="quantized"')
        gen_kwargs.append(f'cache_config={{"backend": "{backend}", "nbits": {nbits}}}')
    elif kv in ("fp8_e4m3", "fp8_e5m2"):
        lines.append("# fp8 KV cache: the plan sizes it as transformers' fp8 QuantizedCache")
    lines.append("")
    lines.append("def generate(prompts: list[str]) -> list[str]:")
    lines.append(f'    """Generate for up to {plan.batch} prompts at once (the plan\'s batch)."""')
    lines.append("    tokenizer = AutoTokenizer.from_pretrained(model_id)")
    lines.append("    if tokenizer.pad_token is None:")
    lines.append("        tokenizer.pad_token = tokenizer.eos_token")
    lines.append('    inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)')
    lines.append(f"    out = model.generate(**inputs, {', '.join(gen_kwargs)})")
    lines.append("    return tokenizer.batch_decode(out, skip_special_tokens=True)")
    return "\n".join(lines) + "\n"


def _accelerate(c: _Ctx) -> str:
    mm = max_memory_map(c) or {0: "PUT_GPU_MEMORY_HEREMiB"}
    lines = _header(c, "accelerate") + [
        "",
        "import torch",
        "from accelerate import infer_auto_device_map, init_empty_weights",
        "from transformers import AutoConfig, AutoModelForCausalLM",
        "",
        f"model_id = {c.repo!r}",
        "# per GPU: its memory minus the KV cache, activations and overhead the plan needs there",
        f"max_memory = {mm!r}",
        "",
        "config = AutoConfig.from_pretrained(model_id)",
        "with init_empty_weights():",
        "    empty_model = AutoModelForCausalLM.from_config(config)",
        "device_map = infer_auto_device_map(",
        "    empty_model,",
        "    max_memory=max_memory,",
        "    no_split_module_classes=empty_model._no_split_modules,",
        f"    dtype=torch.{_TORCH_DTYPE[c.compute_dtype]},",
        ")",
        "# pass device_map (or max_memory) to AutoModelForCausalLM.from_pretrained(model_id, device_map=device_map)",
    ]
    return "\n".join(lines) + "\n"


def snippet(target: str, scenario: Scenario, spec: ModelSpec | None = None) -> str:
    """The snippet for ``target``, annotated with the plan's numbers (comments)."""
    if target not in TARGETS:
        raise InputError(f"unknown export target {target!r}; expected one of: {', '.join(TARGETS)}")
    if target == "scenario":
        return dumps(scenario)
    made_for = None
    if TARGET_ENGINES.get(target) == "transformers" and scenario.plan.engine != "transformers":
        # the snippet runs transformers: plan it for transformers (a vLLM plan's KV pool is not a
        # transformers cache), and say which engine the plan was made for
        from dataclasses import replace

        made_for = scenario.plan.engine
        scenario = replace(scenario, plan=replace(scenario.plan, engine="transformers"))
    c = _Ctx(scenario, spec)
    c.made_for = made_for
    if target == "transformers":
        return _transformers(c)
    if target == "accelerate":
        return _accelerate(c)
    argv, notes = _BUILDERS[target](c)
    lines = _header(c, target) + [f"# note: {n}" for n in notes] + [_render_command(argv)]
    return "\n".join(lines) + "\n"


def snippets(scenario: Scenario, spec: ModelSpec | None = None) -> dict[str, str]:
    """Every target's snippet, or the error message (as a comment) where the plan cannot be expressed."""
    out = {}
    for t in TARGETS:
        try:
            out[t] = snippet(t, scenario, spec)
        except InputError as e:
            marker = "//" if LANGUAGES[t] == "json" else "#"
            out[t] = f"{marker} not available for this plan: {e}\n"
    return out


def to_json(scenario: Scenario) -> str:
    return json.dumps({t: s for t, s in snippets(scenario).items()}, indent=2)
