"""Recommendations: every returned configuration fits by the planner's own arithmetic, the best one is
optimal for its objective over the enumerated space (brute force on small spaces), and every rejected
configuration carries a reason."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path

import pytest

from planner.catalog import catalog_spec
from planner.engines import llamacpp_memory, vllm_capacity
from planner.errors import InputError
from planner.estimate import Plan, estimate
from planner.fit import fit, fits_at
from planner.recommend import (
    OBJECTIVES,
    GPUOption,
    Workload,
    catalog_gpu_options,
    parse_prices,
    recommend,
    tp_problem,
    valid_counts,
)

REPO = Path(__file__).resolve().parent.parent
GIB = 1 << 30

#: Hypothetical devices spanning small to large; sizes and prices are test inputs, not catalog facts.
SMALL_GPUS = (
    GPUOption("g16", "16 GiB test GPU", 16 * GIB, 0.4),
    GPUOption("g24", "24 GiB test GPU", 24 * GIB, 0.7),
    GPUOption("g48", "48 GiB test GPU", 48 * GIB, 1.5),
    GPUOption("g80", "80 GiB test GPU", 80 * GIB, 3.0),
)


def independent_fit(spec, w: Workload, weights, kv, gpu: GPUOption, n: int):
    """The planner's own fit predicate (planner.fit.fits_at): (fits, free bytes per GPU, max concurrency).

    ``None`` for GPU counts vLLM refuses (its tensor-parallel rule, restated here). Free bytes and the
    concurrency are recomputed from the engines' capacity plan, as planner.fit.fit defines them.
    """
    plan = Plan(weights=weights, kv_dtype=kv, batch=w.concurrency, context=w.context, engine=w.engine, tp=n,
                gpu_memory_bytes=gpu.memory_bytes, gpu_memory_utilization=w.gpu_memory_utilization,
                max_num_seqs=w.concurrency)
    if w.engine == "vllm":
        heads, kvh = spec.num_heads, spec.num_kv_heads
        if heads % n or (kvh % n if n <= kvh else n % kvh):  # vLLM's tensor-parallel rule
            return None
        cap = vllm_capacity(spec, plan)
        need = w.concurrency * cap.blocks_per_request * cap.page_bytes * cap.layers_per_group
        free = cap.kv_pool_bytes - need if cap.available_kv_bytes > 0 else cap.available_kv_bytes
        return fits_at(spec, plan, gpu.memory_bytes, n), free, cap.max_requests if cap.fits else 0
    if w.engine == "llamacpp":
        total = llamacpp_memory(spec, plan).gpu.total_bytes
        return fits_at(spec, plan, gpu.memory_bytes, n), gpu.memory_bytes - -(-total // n), None
    total = estimate(spec, plan).total_bytes
    return fits_at(spec, plan, gpu.memory_bytes, n), gpu.memory_bytes - total, None


def brute_force(spec, w: Workload, gpus):
    out = {}
    for weights, kv, gpu, n in product(w.weights, w.kv_dtypes, gpus, range(1, w.max_gpus + 1)):
        r = independent_fit(spec, w, weights, kv, gpu, n)
        if r is not None and r[0]:
            out[(weights, kv, gpu.name, n)] = (r[1], r[2], gpu.price_per_hour * n)
    return out


VLLM_WORKLOAD = Workload(context=32768, concurrency=8, weights=("bf16", "fp8"), kv_dtypes=("auto", "fp8_e4m3"),
                         engine="vllm", max_gpus=4)


@pytest.fixture(scope="module")
def spec8b():
    return catalog_spec("llama-3.1-8b")


def test_every_returned_configuration_fits_by_the_planners_arithmetic(spec8b):
    for w in (VLLM_WORKLOAD,
              Workload(context=8192, concurrency=4, weights=("bf16", "bnb-nf4"), engine="transformers", max_gpus=4),
              Workload(context=16384, concurrency=4, weights=("gguf-Q4_K_M",), kv_dtypes=("auto", "q8_0"),
                       engine="llamacpp", max_gpus=4)):
        r = recommend(spec8b, w, SMALL_GPUS)
        assert r.feasible, w.engine
        for o in r.feasible:
            fits, free, _ = independent_fit(spec8b, w, o.weights, o.kv_dtype, o.gpu, o.count)
            assert fits, o.label
            assert o.free_bytes == free and o.free_bytes >= 0
            assert o.breakdown is not None and o.breakdown.total_bytes > 0
        best = r.best
        f = fit(spec8b, best.plan, best.gpu.memory_bytes, best.count)
        assert f.fits and f.free_bytes == best.free_bytes, (w.engine, f.free_bytes, best.free_bytes)
        if w.engine == "vllm":
            assert f.max_batch == best.max_concurrency


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_best_is_optimal_over_the_enumerated_space(spec8b, objective):
    w = VLLM_WORKLOAD
    brute = brute_force(spec8b, w, SMALL_GPUS)
    r = recommend(spec8b, w, SMALL_GPUS, objective)
    assert {(o.weights, o.kv_dtype, o.gpu.name, o.count) for o in r.feasible} == set(brute)
    best = r.best
    key = (best.weights, best.kv_dtype, best.gpu.name, best.count)
    if objective == "gpus":
        assert best.count == min(k[3] for k in brute)
    elif objective == "cost":
        assert brute[key][2] == min(v[2] for v in brute.values())
    elif objective == "free":
        assert brute[key][0] * best.count == max(v[0] * k[3] for k, v in brute.items())
    elif objective == "concurrency":
        assert brute[key][1] == max(v[1] for v in brute.values())


def test_ranking_is_sorted_by_the_objective(spec8b):
    r = recommend(spec8b, VLLM_WORKLOAD, SMALL_GPUS, "cost")
    costs = [o.cost_per_hour for o in r.feasible]
    assert costs == sorted(costs)


def test_rejected_configurations_carry_reasons(spec8b):
    w = VLLM_WORKLOAD
    brute = brute_force(spec8b, w, SMALL_GPUS)
    r = recommend(spec8b, w, SMALL_GPUS)
    assert r.rejected
    assert all(o.reason and not o.feasible for o in r.rejected)
    n_enumerated = len(w.weights) * len(w.kv_dtypes) * len(SMALL_GPUS) * w.max_gpus
    assert len(r.feasible) + len(r.rejected) == n_enumerated
    # "needs N GPUs" names the smallest count that fits, found by brute force
    checked = 0
    for o in r.rejected:
        fitting = [k[3] for k in brute if k[:3] == (o.weights, o.kv_dtype, o.gpu.name)]
        if fitting and o.count < min(fitting) and not tp_problem(spec8b, o.count):
            assert o.reason.startswith(f"needs {min(fitting)} GPUs;"), o.reason
            assert "% over" in o.reason
            checked += 1
    assert checked
    summary = r.rejected_summary()
    assert summary and all(o.reason for o in summary)


def test_tensor_parallel_counts_follow_vllm(spec8b):
    # Llama-3.1-8B: 32 attention heads, 8 KV heads
    assert valid_counts(spec8b, "vllm", 8) == (1, 2, 4, 8)
    assert "32 attention heads" in tp_problem(spec8b, 3)
    assert valid_counts(spec8b, "transformers", 3) == (1, 2)  # transformers plans tp = count (check_tp)
    assert valid_counts(spec8b, "llamacpp", 3) == (1, 2, 3)  # layer split: any count
    r = recommend(spec8b, VLLM_WORKLOAD, SMALL_GPUS)
    assert all(o.count != 3 for o in r.feasible)
    assert any("do not divide" in o.reason for o in r.rejected if o.count == 3)


@pytest.mark.parametrize("engine,weights,kv,message", [
    ("vllm", ("bf16", "no-such-format"), ("auto",), "unknown weight format 'no-such-format'"),
    ("transformers", ("nope",), ("auto",), "unknown weight format 'nope'"),
    ("vllm", ("bf16",), ("int4",), "vLLM has no int4 KV cache"),
    ("llamacpp", ("bf16",), ("auto",), "llamacpp engine runs GGUF files"),
    ("transformers", ("gguf-Q4_K_M",), ("auto",), "llama.cpp format"),
])
def test_bad_choices_raise_one_error_up_front(spec8b, engine, weights, kv, message):
    w = Workload(context=4096, concurrency=1, weights=weights, kv_dtypes=kv, engine=engine, max_gpus=2)
    with pytest.raises(InputError, match=message):
        recommend(spec8b, w, SMALL_GPUS)


def test_context_beyond_the_models_positions_is_rejected_up_front(spec8b):
    limit = spec8b.max_position_embeddings
    assert limit == 131072
    for engine, weights in (("vllm", "bf16"), ("transformers", "bf16"), ("llamacpp", "gguf-Q4_K_M")):
        w = Workload(context=limit + 1, weights=(weights,), engine=engine, max_gpus=8)
        with pytest.raises(InputError, match="max_position_embeddings"):
            recommend(spec8b, w, catalog_gpu_options(names=["mi325x-256gb"]))
    ok = recommend(spec8b, Workload(context=limit, weights=("bf16",), max_gpus=1),
                   catalog_gpu_options(names=["h100-sxm-80gb"]))
    assert ok.feasible


@pytest.mark.parametrize("engine,model,w", [
    ("transformers", "llama-3.1-8b", dict(context=32768, concurrency=4, weights=("bf16",))),
    ("transformers", "llama-3.1-70b", dict(context=8192, concurrency=1, weights=("bf16",))),
    ("vllm", "llama-3.1-70b", dict(context=8192, concurrency=1, weights=("bf16",))),
    ("llamacpp", "llama-3.1-8b", dict(context=16384, concurrency=2, weights=("gguf-Q4_K_M",))),
])
def test_every_verdict_and_concurrency_equals_fit(engine, model, w):
    """For every (GPU, count): recommend's verdict, free bytes and max concurrency are planner.fit.fit's, and
    every count 1..max_gpus the engine can use is evaluated (QA: transformers stopped at count 2, and
    its 'max conc.' was a KV-share estimate above fit's max_batch)."""
    spec = catalog_spec(model)
    gpus = catalog_gpu_options(names=["l4-24gb", "h100-sxm-80gb"])
    workload = Workload(engine=engine, max_gpus=4, **w)
    r = recommend(spec, workload, gpus)
    options = {(o.gpu.name, o.count): o for o in (*r.feasible, *r.rejected)}
    checked = 0
    for gpu in gpus:
        for n in range(1, 5):
            o = options[(gpu.name, n)]
            if engine != "llamacpp" and spec.num_heads % n:
                assert not o.feasible and "attention heads" in o.reason
                continue
            assert o.evaluated, (gpu.name, n, o.reason)
            f = fit(spec, o.plan, gpu.memory_bytes, n)
            assert o.feasible == f.fits, (gpu.name, n, o.reason, f.reason)
            assert o.max_concurrency == f.max_batch, (gpu.name, n, o.max_concurrency, f.max_batch)
            if engine != "llamacpp":  # llama.cpp: free per GPU of the layer split; fit: the combined memory
                assert o.free_bytes == f.free_bytes
            checked += 1
    assert checked >= 6
    if engine == "transformers" and model == "llama-3.1-8b":
        # the QA repro: 4 x L4 fits (fit: 7.07 GiB free), 1 x H100 serves 8 requests, not 12
        assert options[("l4-24gb", 4)].feasible
        assert options[("h100-sxm-80gb", 1)].max_concurrency == 8


@pytest.mark.parametrize("kwargs,message", [
    (dict(context=0), "context"),
    (dict(concurrency=-1), "concurrency"),
    (dict(engine="tgi"), "unknown engine"),
    (dict(weights=()), "weights"),
    (dict(gpu_memory_utilization=1.5), "gpu_memory_utilization"),
])
def test_bad_workloads_give_one_clear_error(kwargs, message):
    with pytest.raises(InputError, match=message):
        Workload(**kwargs)


def test_cost_needs_prices_and_prices_parse(spec8b):
    unpriced = tuple(GPUOption(g.name, g.title, g.memory_bytes) for g in SMALL_GPUS)
    with pytest.raises(InputError, match="needs a price"):
        recommend(spec8b, VLLM_WORKLOAD, unpriced, "cost")
    with pytest.raises(InputError, match="unknown objective"):
        recommend(spec8b, VLLM_WORKLOAD, SMALL_GPUS, "speed")
    assert parse_prices(["h200=3.5", "l40s = 0.99"]) == {"h200": 3.5, "l40s": 0.99}
    for bad in ("h100", "h100=abc", "h100=-1", "=2"):
        with pytest.raises(InputError):
            parse_prices([bad])
    priced = {g.name: g.price_per_hour for g in catalog_gpu_options({"h100": 2.0, "h200-sxm-141gb": 3.0})}
    assert priced["h100-sxm-80gb"] == priced["h100-pcie-80gb"] == 2.0 and priced["h200-sxm-141gb"] == 3.0
    assert priced["l4-24gb"] is None


# ---------------------------------------------------------------------------------------------------
# Command line (the done-when)


def _cli(capsys, *args):
    """Run the ``headroom`` command line in this process (no interpreter start-up): rc, stdout, stderr."""
    from types import SimpleNamespace

    from app.cli import main

    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    return SimpleNamespace(returncode=rc, stdout=out.out, stderr=out.err)


def test_cli_recommend_ranks_the_catalog_with_reasons_and_exports_the_best(capsys):
    args = ["recommend", "--model", "llama-3.1-70b", "--context", "32768", "--concurrency", "16", "--engine", "vllm"]
    r = _cli(capsys, *args)
    assert r.returncode == 0, r.stderr
    assert "objective: fewest GPUs" in r.stdout and "Rejected:" in r.stdout and "needs " in r.stdout
    assert "% over" in r.stdout
    j = _cli(capsys, *args, "--json", "--top", "3")
    data = json.loads(j.stdout)
    assert len(data["feasible"]) == 3 and data["rejected"]
    best = data["feasible"][0]
    assert best["feasible"] and best["free_bytes_per_gpu"] >= 0 and best["max_concurrency"] >= 16
    # the suggested export command prints a vLLM command whose flags are all documented
    cmd = data["export_command"].split()[1:]
    e = _cli(capsys, *cmd)
    assert e.returncode == 0, e.stderr
    from tests.test_export import check_argv

    argv = tuple(" ".join(ln.rstrip("\\").strip() for ln in e.stdout.splitlines()
                          if not ln.startswith("#")).split())
    seen = check_argv("vllm", argv)
    assert seen["--tensor-parallel-size"] == str(best["count"]) and seen["--max-model-len"] == "32768"


def test_cli_recommend_bad_choice_is_one_line_exit_2(capsys):
    for extra in (["--weights", "nope"], ["--kv-dtype", "int4"], ["--engine", "llamacpp", "--weights", "bf16"],
                  ["--context", "10000000"]):
        r = _cli(capsys, "recommend", "--model", "llama-3.1-8b", *extra)
        assert r.returncode == 2, (extra, r.stdout)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stdout == ""


def test_cli_recommend_bad_price_is_one_line(capsys):
    r = _cli(capsys, "recommend", "--model", "llama-3.1-8b", "--price", "h100=cheap")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "h100=cheap" in r.stderr


# ---------------------------------------------------------------------------------------------------
# The Recommend page (AppTest)


def test_recommend_page_ranks_what_fits_and_says_why_the_rest_does_not():
    from streamlit.testing.v1 import AppTest

    from planner.gpus import find_gpu

    at = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=120).run()
    at.switch_page("app_pages/recommend.py").run()
    at.selectbox(key="hr_rec_engine").set_value("vllm").run()
    at.number_input(key="hr_rec_context").set_value(32768)
    at.number_input(key="hr_rec_concurrency").set_value(16)
    at.selectbox(key="hr_rec_objective").set_value("cost")
    at.text_area(key="hr_rec_prices").set_value("h100 = 2.5\nl40s-48gb = 1\nnot-a-gpu = 1")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("not-a-gpu" in e.value for e in at.error)
    frames = [df.value for df in at.dataframe]
    ranked = next(f for f in frames if "rank" in f.columns)
    rejected = next(f for f in frames if "reason" in f.columns)
    assert len(ranked) > 0 and (rejected["reason"].str.len() > 0).all()
    spec = catalog_spec("llama-3.1-8b")
    w = Workload(context=32768, concurrency=16, weights=("bf16", "fp8"), engine="vllm")
    priced = ranked["cost_per_hour"].dropna().tolist()
    assert priced and priced == sorted(priced) and priced == ranked["cost_per_hour"].tolist()[: len(priced)]
    for _, row in ranked.head(5).iterrows():  # the top rows fit by the engine's own arithmetic
        g = find_gpu(row["gpu"])
        opt = GPUOption(g.name, g.title, g.memory_bytes)
        fits, free, _ = independent_fit(spec, w, row["weights"], row["kv_dtype"], opt, int(row["gpus"]))
        assert fits and row["free per GPU (GiB)"] == pytest.approx(free / GIB)
    # choosing an option hands a scenario to the Export page
    at.button(key="hr_rec_use").click().run()
    assert not at.exception
    from planner.scenario import loads

    s = loads(at.session_state["hr_export_scenario"])
    assert s.plan.engine == "vllm" and s.plan.context == 32768 and s.gpu == ranked.iloc[0]["gpu"]


def test_recommend_page_shows_a_bad_choice_once():
    """A format the engine cannot run is one error box, not one rejected row per GPU."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=120).run()
    at.switch_page("app_pages/recommend.py").run()
    at.selectbox(key="hr_rec_engine").set_value("llamacpp").run()
    at.multiselect(key="hr_rec_weights_llamacpp").set_value(["bf16"]).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "GGUF" in errors[0], errors
    assert not any("reason" in df.value.columns for df in at.dataframe)
