"""`headroom fit`, `headroom sweep` and `headroom gpus` through the real command line."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from app.cli import main
from planner.catalog import catalog_spec
from planner.estimate import Plan
from planner.fit import fit
from planner.gpus import find_gpu
from planner.sweep import sweep
from tests.conftest import REPO

H100 = find_gpu("h100-sxm-80gb")


def run_cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_done_when_70b_on_two_80gb_gpus_with_vllm(capsys):
    rc, out, _ = run_cli(capsys, "fit", "--model", "llama-3.1-70b", "--gpu", "h100-sxm-80gb", "--gpus", "2",
                         "--engine", "vllm", "--json")
    assert rc == 0
    js = json.loads(out)
    expected = fit(catalog_spec("llama-3.1-70b"), Plan(engine="vllm", gpu_memory_bytes=H100.memory_bytes),
                   H100.memory_bytes, 2)
    assert js["kv_cache_tokens"] == expected.kv_cache_tokens > 0
    assert js["max_concurrency"] == round(expected.max_concurrency, 2) > 1
    for key in ("fits", "free_bytes", "max_batch", "max_context"):
        assert js[key] == getattr(expected, key)
    assert js["gpus"] == 2 and js["device_bytes"] == H100.memory_bytes


def test_memory_gib_is_the_same_as_a_catalog_gpu_of_that_size(capsys):
    gib = H100.memory_bytes / 2**30
    _, a, _ = run_cli(capsys, "fit", "--model", "llama-3.2-1b", "--memory-gib", repr(gib), "--json")
    _, b, _ = run_cli(capsys, "fit", "--model", "llama-3.2-1b", "--gpu", "h100-sxm-80gb", "--json")
    ja, jb = json.loads(a), json.loads(b)
    ja.pop("device"), jb.pop("device")
    assert ja == jb


def test_fit_text_output_shows_capacity(capsys):
    rc, out, _ = run_cli(capsys, "fit", "--model", "llama-3.1-8b", "--gpu", "l4-24gb", "--engine", "vllm")
    assert rc == 0
    assert "fits" in out and "KV cache" in out and "concurrency" in out


def test_fit_llamacpp_partial_offload(capsys):
    rc, out, _ = run_cli(capsys, "fit", "--model", "llama-3.1-8b", "--memory-gib", "4", "--engine", "llamacpp",
                         "--weights", "gguf-Q4_K_M", "--n-gpu-layers", "16", "--json")
    js = json.loads(out)
    assert rc == 0 and js["fits"] and "kv_cache_tokens" not in js
    assert js["host_bytes"] > 2 * 2**30  # half the layers stay in RAM


@pytest.mark.parametrize("argv,needle", [
    (["--gpu", "voodoo5"], "not in the catalog"),
    (["--gpu", "h100"], "ambiguous"),
    (["--gpu", "l4-24gb", "--tp", "2", "--gpus", "4"], "disagree"),
    (["--gpu", "l4-24gb", "--engine", "vllm", "--gpu-memory-utilization", "1.5"], "gpu_memory_utilization"),
    (["--gpu", "l4-24gb", "--weights", "int3"], "unknown weight format"),
])
def test_fit_errors_are_one_line_exit_2(capsys, argv, needle):
    rc, out, err = run_cli(capsys, "fit", "--model", "llama-3.1-8b", *argv)
    assert rc == 2 and out == ""
    assert needle in err and err.count("\n") == 1 and err.startswith("headroom: error:")


def test_fit_needs_a_device(capsys):
    with pytest.raises(SystemExit) as e:
        main(["fit", "--model", "llama-3.1-8b"])
    assert e.value.code == 2
    assert "--gpu" in capsys.readouterr().err


def test_sweep_csv_rows_equal_the_planner(capsys):
    rc, out, _ = run_cli(capsys, "sweep", "--model", "llama-3.2-1b", "--batch", "1,2,4", "--context", "1024,8192",
                         "--weights", "bf16,bnb-nf4", "--kv-dtype", "auto,fp16", "--csv")
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    df = sweep(catalog_spec("llama-3.2-1b"), Plan(), batch=[1, 2, 4], context=[1024, 8192],
               weights=["bf16", "bnb-nf4"], kv_dtype=["auto", "fp16"])
    assert len(rows) == len(df) == 24
    for r, (_, d) in zip(rows, df.iterrows(), strict=True):
        assert int(r["total_bytes"]) == d.total_bytes and r["weights"] == d.weights


def test_sweep_json_with_a_gpu_has_fits_and_vllm_capacity(capsys):
    rc, out, _ = run_cli(capsys, "sweep", "--model", "llama-3.1-8b", "--batch", "1,64", "--context", "1024:4096:1024",
                         "--engine", "vllm", "--gpu", "h100-sxm-80gb", "--json")
    rows = json.loads(out)
    assert rc == 0 and len(rows) == 2 * 4
    assert all(isinstance(r["fits"], bool) and r["kv_cache_tokens"] > 0 for r in rows)


@pytest.mark.parametrize("argv", [["--batch", "0"], ["--context", "a,b"], ["--batch", "5:1:0"]])
def test_sweep_bad_lists_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(["sweep", "--model", "llama-3.2-1b", *argv])
    assert e.value.code == 2


def test_sweep_vllm_without_gpu_is_one_line(capsys):
    rc, _, err = run_cli(capsys, "sweep", "--model", "llama-3.2-1b", "--engine", "vllm")
    assert rc == 2 and "--gpu" in err and err.count("\n") == 1


def test_installed_entry_point_runs_fit_and_reports_errors_without_traceback():
    cmd = [sys.executable, "-m", "app.cli", "fit", "--model", "llama-3.1-8b", "--gpu", "nope-gpu", "--json"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "not in the catalog" in p.stderr


def test_sweep_command_does_not_import_pandas_until_it_runs():
    code = ("import sys; from app.cli import build_parser; build_parser(); "
            "print('pandas' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr
