"""Export snippets: every emitted flag is in the engine's documented flag table with a value in range;
generated Python parses and its config objects construct in the real transformers/accelerate, offline.

Flag tables (tests/flag_tables/*.json) cite the project version and the documentation they come from.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from planner.errors import HeadroomError, InputError
from planner.estimate import Plan
from planner.export import COMMAND_TARGETS, TARGETS, launch_argv, snippet, snippets
from planner.gpus import find_gpu
from planner.scenario import ModelSource, Scenario, loads

TABLES = Path(__file__).parent / "flag_tables"
REPO = Path(__file__).resolve().parent.parent
GIB = 1 << 30


def _table(target: str) -> dict:
    return json.loads((TABLES / f"{target}.json").read_text())


def _scenario(weights="bf16", kv="auto", engine="vllm", tp=1, batch=4, context=8192, model="llama-3.1-8b",
              gpu="h100-sxm-80gb", **plan) -> Scenario:
    mem = find_gpu(gpu).memory_bytes
    return Scenario(ModelSource(catalog=model),
                    Plan(weights=weights, kv_dtype=kv, batch=batch, context=context, engine=engine, tp=tp,
                         gpu_memory_bytes=mem, max_num_seqs=batch, **plan),
                    gpu=gpu, gpu_count=tp)


def check_argv(target: str, argv: tuple[str, ...]) -> dict[str, str]:
    """Assert argv matches the documented table; return flag -> value."""
    t = _table(target)
    prog = t["program"]
    assert list(argv[: len(prog)]) == prog, argv
    rest = list(argv[len(prog) + t["positional"]:])
    seen: dict[str, str] = {}
    while rest:
        flag = rest.pop(0)
        assert flag in t["flags"], f"{target}: {flag} is not in the documented flag table ({t['sources'][0]})"
        spec = t["flags"][flag]
        assert rest, f"{flag} needs a value"
        value = rest.pop(0)
        assert flag not in seen, f"{flag} given twice"
        seen[flag] = value
        kind = spec["type"]
        if kind == "choice":
            assert value in spec["choices"], f"{flag} {value!r} not in {spec['choices']}"
        elif kind in ("int", "int_or_choice"):
            if kind == "int_or_choice" and value in spec["choices"]:
                continue
            n = int(value)
            assert n >= spec.get("min", n) and n <= spec.get("max", n), f"{flag} {n} out of range"
        elif kind == "float":
            x = float(value)
            assert x > spec["min_exclusive"] and x <= spec["max"], f"{flag} {x} out of range"
        elif kind == "float_list":
            assert all(float(v) >= spec["min"] for v in value.split(",")), value
        else:
            assert value and not value.startswith("-")
    return seen


# Plans covering every weight-format kind and KV dtype each engine can express.
CASES = {
    "vllm": [dict(), dict(weights="fp8"), dict(weights="fp8", kv="fp8_e4m3"), dict(kv="fp8_e5m2"),
             dict(weights="bnb-nf4"), dict(tp=2, batch=16, context=32768), dict(weights="fp16", kv="fp16"),
             dict(weights="gguf-Q4_K_M"), dict(model="llama-3.1-70b", tp=4, gpu="h200-sxm-141gb",
                                                gpu_memory_utilization=0.95, max_num_batched_tokens=4096)],
    "sglang": [dict(), dict(weights="fp8"), dict(kv="fp8_e4m3"), dict(kv="bf16"), dict(weights="bnb-nf4"),
               dict(tp=2), dict(weights="gguf-Q4_K_M")],
    "tgi": [dict(), dict(weights="bnb-nf4"), dict(weights="bnb-fp4-dq"), dict(weights="bnb-int8"),
            dict(weights="fp8"), dict(kv="fp8_e4m3"), dict(kv="fp8_e5m2", tp=2), dict(weights="gptq-4bit-g128"),
            dict(weights="awq-4bit-g128"), dict(weights="fp16"), dict(prompt_tokens=1000)],
    "llamacpp": [dict(engine="llamacpp", weights="gguf-Q4_K_M"),
                 dict(engine="llamacpp", weights="gguf-Q8_0", kv="q8_0", batch=3),
                 dict(engine="llamacpp", weights="gguf-Q4_K_M", kv="q4_0", tp=2),
                 dict(engine="llamacpp", weights="gguf-Q4_K_M", kv="int8", n_gpu_layers=20),
                 dict(engine="transformers", weights="bf16", kv="bf16")],
}


@pytest.mark.parametrize("target,case", [(t, c) for t, cs in CASES.items() for c in cs],
                         ids=lambda x: x if isinstance(x, str) else ",".join(f"{k}={v}" for k, v in x.items()))
def test_every_flag_is_documented_with_a_value_in_range(target, case):
    s = _scenario(**case)
    seen = check_argv(target, launch_argv(target, s))
    p = s.plan
    if target == "vllm":
        assert int(seen["--max-model-len"]) == p.context
        assert int(seen["--tensor-parallel-size"]) == p.tp
        assert int(seen["--max-num-seqs"]) == p.max_num_seqs
        assert float(seen["--gpu-memory-utilization"]) == p.gpu_memory_utilization
    elif target == "sglang":
        assert int(seen["--context-length"]) == p.context and int(seen["--tp-size"]) == p.tp
    elif target == "tgi":
        assert not ("--dtype" in seen and "--quantize" in seen), "TGI: --dtype cannot be used with --quantize"
        assert int(seen["--max-input-tokens"]) < int(seen["--max-total-tokens"]) == p.context
        assert int(seen["--num-shard"]) == p.tp
    elif target == "llamacpp":
        # llama-server -c is the total context shared by the -np slots
        assert int(seen["-c"]) == p.context * p.batch and int(seen["-np"]) == p.batch
        if seen["--cache-type-v"] not in ("f16", "f32", "bf16"):
            assert seen["-fa"] == "on", "a quantized V cache needs flash attention"


@pytest.mark.parametrize("target,case,expected", [
    ("vllm", dict(kv="int4"), "vLLM has no"),
    ("llamacpp", dict(engine="llamacpp", weights="gguf-Q4_K_M", kv="fp8_e4m3"), "llama.cpp has no"),
    ("llamacpp", dict(weights="bnb-nf4"), "llama.cpp runs GGUF"),
    ("tgi", dict(weights="gguf-Q4_K_M"), "does not serve GGUF"),
    ("sglang", dict(kv="int8"), "SGLang has no"),
    ("transformers", dict(weights="gguf-Q4_K_M"), "dequantizes GGUF"),
])
def test_inexpressible_plans_raise_one_clear_error(target, case, expected):
    with pytest.raises(InputError, match=expected):
        snippet(target, _scenario(**case))


def test_snippets_are_annotated_with_the_plans_numbers():
    s = _scenario(batch=16, context=32768, tp=2, model="llama-3.1-70b", gpu="h200-sxm-141gb")
    from planner.recommend import option_breakdown

    b = option_breakdown(s.spec(), s.plan)
    total = f"total {b.total_bytes / GIB:,.2f} GiB"
    for target in ("vllm", "sglang", "tgi"):
        text = snippet(target, s)
        assert total in text, target
        assert "2 x h200-sxm-141gb" in text
    # the transformers snippets run transformers: their numbers are the transformers plan of the same workload
    from dataclasses import replace

    from planner.estimate import estimate

    bt = estimate(s.spec(), replace(s.plan, engine="transformers"))
    for target in ("transformers", "accelerate"):
        text = snippet(target, s)
        assert f"total {bt.total_bytes / GIB:,.2f} GiB" in text and total not in text, target
        assert "2 x h200-sxm-141gb" in text and "made for the vLLM engine" in text
    assert "vLLM should log: GPU KV cache size" in snippet("vllm", s)
    from planner.fit import fit

    f = fit(s.spec(), s.plan, s.gpu_memory_bytes(), 2)
    word = "fits" if f.fits else "DOES NOT FIT"
    assert (f"{word}: {f.free_bytes / GIB:,.2f} GiB left unused in the KV pool per GPU; largest batch at this context "
            f"{f.max_batch:,}, largest context at this batch {f.max_context:,} tokens") in snippet("vllm", s)


def _header_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("# ")]


@pytest.mark.parametrize("kv,cache_type", [("auto", "f16"), ("fp16", "f16"), ("int8", "q8_0"), ("q4_0", "q4_0")])
def test_llamacpp_header_names_the_kv_type_the_flags_set(kv, cache_type):
    """QA: a gguf-Q4_K_M plan's header said 'KV cache fp32' (the GGUF compute dtype) while the flags said f16."""
    s = Scenario(ModelSource(catalog="llama-3.1-8b"), Plan(weights="gguf-Q4_K_M", kv_dtype=kv, engine="llamacpp"))
    text = snippet("llamacpp", s)
    argv = launch_argv("llamacpp", s)
    assert argv[argv.index("--cache-type-k") + 1] == cache_type
    plan_line = next(ln for ln in _header_lines(text) if "KV cache" in ln)
    assert f"KV cache {cache_type};" in plan_line, plan_line
    # weights auto on llama.cpp is planned as gguf-Q4_K_M: the header and the -m file say so
    auto = snippet("llamacpp", Scenario(ModelSource(catalog="llama-3.1-8b"), Plan(engine="llamacpp")))
    assert "weights gguf-Q4_K_M" in auto and "Q4_K_M.gguf" in auto and "KV cache f16;" in auto


def test_transformers_header_of_a_tp_plan_says_layer_split_not_tensor_parallel():
    """QA: device_map='auto' splits layers; the header claimed 'tensor parallel 2'."""
    s = _scenario(engine="transformers", tp=2, batch=1, model="llama-3.1-70b")
    for target in ("transformers", "accelerate"):
        head = "\n".join(_header_lines(snippet(target, s)))
        assert "tensor parallel 2" not in head, head
        assert "layers split over 2 GPUs with device_map='auto' (pipeline, not tensor parallel)" in head
        assert "planner's tensor-parallel estimate (tp 2)" in head
    assert 'device_map="auto"' in snippet("transformers", s)
    # a vLLM target of the same TP plan really is tensor parallel
    vs = _scenario(engine="vllm", tp=2, batch=1, model="llama-3.1-70b")
    assert "tensor parallel 2" in "\n".join(_header_lines(snippet("vllm", vs)))


def test_transformers_snippet_of_a_vllm_plan_is_planned_for_transformers():
    """QA: a transformers snippet of a vLLM plan carried vLLM's header and sized max_memory from vLLM's KV pool."""
    from dataclasses import replace

    from planner.estimate import estimate

    s = _scenario(engine="vllm", gpu="l4-24gb", batch=1)
    text = snippet("transformers", s)
    head = "\n".join(_header_lines(text))
    assert "engine transformers" in head and "engine vllm" not in head
    assert "made for the vLLM engine" in head and "vLLM should log" not in head
    b = estimate(s.spec(), replace(s.plan, engine="transformers"))
    room = b.kv_cache_bytes + b.activations_bytes + b.overhead_bytes
    assert f"max_memory = {{0: '{(s.gpu_memory_bytes() - room) // (1 << 20)}MiB'}}" in text
    # other targets of a plan made for another engine say whose numbers they carry
    assert "the planner's vLLM plan" in snippet("sglang", s)
    assert "made for" not in snippet("transformers", _scenario(engine="transformers", gpu="l4-24gb", batch=1))


def test_snippets_collects_every_target_or_its_reason():
    out = snippets(_scenario(weights="gguf-Q4_K_M"))
    assert set(out) == set(TARGETS)
    assert out["tgi"].startswith("# not available for this plan:")
    assert "llama-server" in snippets(_scenario(engine="llamacpp", weights="gguf-Q4_K_M"))["llamacpp"]


def test_scenario_target_round_trips():
    s = _scenario(weights="bnb-nf4-dq", kv="fp8_e4m3", tp=2)
    assert loads(snippet("scenario", s)) == s


# ---------------------------------------------------------------------------------------------------
# Python snippets in the real libraries, offline


def _exec_transformers(code: str) -> dict:
    """Run the snippet with from_pretrained replaced by a recorder (no download, no model load)."""
    import transformers

    calls = {}

    def record(model_id, **kwargs):
        calls["model_id"] = model_id
        calls.update(kwargs)
        return None

    orig = transformers.AutoModelForCausalLM.from_pretrained
    transformers.AutoModelForCausalLM.from_pretrained = record
    try:
        ns: dict = {"__name__": "headroom_snippet"}
        exec(compile(code, "load_model.py", "exec"), ns)
    finally:
        transformers.AutoModelForCausalLM.from_pretrained = orig
    calls["_ns"] = ns
    return calls


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.mark.parametrize("weights", ["bf16", "fp16", "bnb-int8", "bnb-nf4", "bnb-fp4-dq", "fp8", "fp8-block",
                                     "gptq-4bit-g128"])
def test_transformers_snippet_parses_and_its_config_objects_construct(weights):
    import torch
    import transformers

    s = _scenario(weights=weights, engine="transformers", tp=2)
    code = snippet("transformers", s)
    ast.parse(code)
    calls = _exec_transformers(code)
    assert calls["model_id"] == "meta-llama/Llama-3.1-8B"
    assert calls["device_map"] == "auto"
    assert calls["attn_implementation"] == "sdpa"
    assert set(calls["max_memory"]) == {0, 1}
    assert all(v.endswith("MiB") and int(v[:-3]) > 0 for v in calls["max_memory"].values())
    q = calls.get("quantization_config")
    if weights.startswith("bnb"):
        assert isinstance(q, transformers.BitsAndBytesConfig)
        if weights == "bnb-int8":
            assert q.load_in_8bit and not q.load_in_4bit
        else:
            assert q.load_in_4bit and q.bnb_4bit_quant_type == weights.split("-")[1]
            assert q.bnb_4bit_use_double_quant == weights.endswith("-dq")
            assert q.bnb_4bit_compute_dtype == torch.bfloat16
    elif weights.startswith("fp8"):
        assert isinstance(q, transformers.FineGrainedFP8Config)
        assert tuple(q.weight_block_size) == (128, 128)
    else:
        assert q is None
    expected_dtype = {"fp16": torch.float16, "gptq-4bit-g128": torch.float16}.get(weights, torch.bfloat16)
    assert calls["dtype"] == expected_dtype
    assert callable(calls["_ns"]["generate"])


def test_transformers_snippet_quantized_kv_uses_the_quantized_cache():
    code = snippet("transformers", _scenario(engine="transformers", kv="int4"))
    ast.parse(code)
    assert 'cache_implementation="quantized"' in code and '"nbits": 4' in code


def test_accelerate_snippet_builds_a_real_device_map_offline():
    """The max_memory map drives accelerate's real infer_auto_device_map on an empty (meta) model."""
    import transformers

    cfg = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 8, "num_attention_heads": 8,
           "num_key_value_heads": 4, "intermediate_size": 1024, "vocab_size": 32000}
    # two 1 GiB GPUs: the bf16 weights (about 42 MiB) fit beside the plan's runtime (CUDA context ~290 MiB...)
    mem = 1 << 30
    s = Scenario(ModelSource.from_config(cfg, hub_id="org/tiny-llama"),
                 Plan(weights="bf16", engine="transformers", tp=2, batch=1, context=256, gpu_memory_bytes=mem),
                 gpu=None, gpu_count=2)
    code = snippet("accelerate", s)
    ast.parse(code)
    assert "model_id = 'org/tiny-llama'" in code
    hf_cfg = transformers.LlamaConfig(**{k: v for k, v in cfg.items() if k != "model_type"})
    orig = transformers.AutoConfig.from_pretrained
    transformers.AutoConfig.from_pretrained = lambda *a, **k: hf_cfg
    try:
        ns: dict = {}
        exec(compile(code, "device_map.py", "exec"), ns)
    finally:
        transformers.AutoConfig.from_pretrained = orig
    devices = set(ns["device_map"].values())
    assert devices <= {0, 1}, devices  # everything placed on the two GPUs: nothing on cpu or disk
    assert set(ns["max_memory"]) == {0, 1}


# ---------------------------------------------------------------------------------------------------
# Command line


def _cli(capsys, *args):
    """Run the ``headroom`` command line in this process (no interpreter start-up): rc, stdout, stderr."""
    from types import SimpleNamespace

    from app.cli import main

    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    return SimpleNamespace(returncode=rc, stdout=out.out, stderr=out.err)


def test_cli_export_prints_a_documented_vllm_command(tmp_path, capsys):
    r = _cli(capsys, "export", "--target", "vllm", "--model", "llama-3.1-70b", "--engine", "vllm", "--weights", "fp8",
             "--context", "32768", "--batch", "16", "--tp", "2", "--gpu", "h200-sxm-141gb")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if not ln.startswith("#")]
    argv = tuple(" ".join(ln.rstrip("\\").strip() for ln in lines).split())
    seen = check_argv("vllm", argv)
    assert seen["--quantization"] == "fp8" and seen["--tensor-parallel-size"] == "2"
    # --scenario FILE reproduces the same command
    r2 = _cli(capsys, "export", "--target", "scenario", "--model", "llama-3.1-70b", "--engine", "vllm", "--weights", "fp8",
              "--context", "32768", "--batch", "16", "--tp", "2", "--gpu", "h200-sxm-141gb",
              "--out", str(tmp_path / "s.json"))
    assert r2.returncode == 0, r2.stderr
    r3 = _cli(capsys, "export", "--target", "vllm", "--scenario", str(tmp_path / "s.json"))
    assert r3.returncode == 0 and r3.stdout == r.stdout


def test_cli_export_bad_input_is_one_line_not_a_traceback(tmp_path, capsys):
    r = _cli(capsys, "export", "--target", "tgi", "--model", "llama-3.1-8b", "--weights", "gguf-Q4_K_M")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "GGUF" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 99}')
    r = _cli(capsys, "export", "--target", "vllm", "--scenario", str(bad))
    assert r.returncode == 2 and "newer Headroom" in r.stderr and "Traceback" not in r.stderr


def test_every_target_is_offered_by_the_cli():
    from app.cli import build_parser

    p = build_parser()
    for t in TARGETS:
        ns = p.parse_args(["export", "--target", t, "--model", "llama-3.1-8b"])
        assert ns.target == t
    assert set(COMMAND_TARGETS) <= set(TARGETS)


def test_export_errors_are_headroom_errors():
    assert issubclass(InputError, HeadroomError)


# ---------------------------------------------------------------------------------------------------
# The Export page (AppTest)


def test_export_page_shows_each_target_and_offers_the_downloads():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=120).run()
    at.switch_page("app_pages/export.py").run()
    assert not at.exception, [e.value for e in at.exception]
    for target in ("vllm", "transformers", "llamacpp", "scenario"):
        at.selectbox(key="hr_exp_target").set_value(target).run()
        assert not at.exception, [e.value for e in at.exception]
        shown = [c.value for c in at.code if c.value.startswith(("#", "{"))]
        if target == "llamacpp":  # the default plan (bf16 on transformers) is not a GGUF plan: one clear warning
            assert shown or any("llama.cpp" in w.value for w in at.warning)
            continue
        assert shown, target
        text = shown[0]
        if target == "scenario":
            s = loads(text)
            from app.state import DEFAULTS  # the app's default weights (the checkpoint's own: auto)

            assert s.model.catalog == "llama-3.1-8b" and s.plan.weights == DEFAULTS.weights
        elif target == "vllm":
            check_argv("vllm", tuple(" ".join(ln.rstrip("\\").strip() for ln in text.splitlines()
                                              if not ln.startswith("#")).split()))
        else:
            ast.parse(text)
    at.text_input(key="hr_exp_title").set_value("capacity plan").run()
    assert not at.exception
    assert "capacity plan" in [c.value for c in at.code][0]


def test_export_page_embeds_an_uploaded_config_in_the_scenario():
    from streamlit.testing.v1 import AppTest

    from app import state
    from planner.catalog import catalog_config

    cfg = catalog_config("llama-3.2-1b")
    at = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=120)
    at.query_params["src"] = "upload"
    at.query_params["config"] = state.encode_config(cfg)
    at.run()
    at.switch_page("app_pages/export.py").run()
    at.selectbox(key="hr_exp_target").set_value("scenario").run()
    assert not at.exception, [e.value for e in at.exception]
    s = loads(next(c.value for c in at.code if c.value.startswith("{")))
    assert s.model.catalog is None and s.model.config() == cfg
    assert s.spec().num_layers == cfg["num_hidden_layers"]
