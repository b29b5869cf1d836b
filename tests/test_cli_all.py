"""The command line as a whole: every subcommand loads, and usage errors are one line with exit 2."""

from __future__ import annotations

import contextlib
import io

import pytest

from app.cli import COMMANDS, main
from planner.catalog import catalog_spec
from planner.errors import InputError
from planner.estimate import Plan, estimate
from planner.spec import parse_config

NAMES = [m.rsplit(".", 1)[1] for m in COMMANDS]


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse exits for --help and usage errors
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", NAMES)
def test_every_subcommand_imports_and_has_help(name):
    rc, out, _ = _run([name, "--help"])
    assert rc == 0 and f"usage: headroom {name}" in out


@pytest.mark.parametrize("argv", [
    ["fit", "--model", "llama-3.1-8b"],  # no device
    ["sweep", "--model", "llama-3.1-8b", "--batch", "x"],
    ["recommend"],
    ["estimate", "--model", "llama-3.1-8b", "--batch", "-1"],
    ["no-such-command"],
])
def test_usage_errors_are_one_line_and_exit_2(argv):
    rc, out, err = _run(argv)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "error:" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["estimate", "--model", "llama-3.1-8b", "--cache", "static", "--max-cache-len", "10", "--context", "100"],
     "must be at least context"),
    (["estimate", "--model", "llama-3.1-8b", "--max-cache-len", "200"], "static cache only"),
    (["fit", "--model", "llama-3.1-8b", "--gpu", "apple-m4-max-128gb", "--engine", "vllm"],
     "vLLM does not run on Apple GPUs"),
    (["estimate", "--model", "llama-3.1-8b", "--engine", "vllm"], "give the GPU"),
    (["fit", "--model", "llama-3.1-8b", "--gpu", "nope-gpu"], "is not in the catalog."),
])
def test_invalid_plans_are_one_clear_line(argv, message):
    rc, out, err = _run(argv)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_static_cache_cannot_be_shorter_than_the_context():
    with pytest.raises(InputError, match="at least context"):
        Plan(cache="static", max_cache_len=10, context=100)
    assert Plan(cache="static", max_cache_len=100, context=100).max_cache_len == 100


def test_estimate_with_gpu_count_is_tensor_parallel_per_gpu():
    rc, out, _ = _run(["estimate", "--model", "llama-3.1-70b", "--gpu", "h100-sxm-80gb", "--gpus", "2", "--json"])
    import json

    got = json.loads(out)
    want = estimate(catalog_spec("llama-3.1-70b"), Plan(tp=2)).to_json()
    assert rc == 0 and got == want and got["tp"] == 2


def test_approximate_models_are_never_labelled_exact():
    cfg = {"model_type": "not-a-real-arch", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 128, "vocab_size": 100}
    b = estimate(parse_config(cfg, approximate=True), Plan(context=16))
    assert b.components and all(c.source != "exact" for c in b.components)
    assert {c.source for c in b.components if c.group == "weights"} == {"approximate"}
