"""``headroom profile`` / ``headroom runs``: bad input is one clear line (exit 2) before any model loads;
Ctrl-C cancels a run and keeps it in the database."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from app.cli import main
from planner.errors import InputError
from profiler.db import Store
from profiler.request import Point, ProfileRequest, grid, parse_int_list

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256}


def _cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("args, message", [
    (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--model", "smollm2-135m", "--batch", "0"], "--batch values must be at least 1"),
    (["--model", "smollm2-135m", "--context", "1,x"], "--context must be a comma-separated list"),
    (["--model", "smollm2-135m", "--weights", "gptq-4bit-g128"], "cannot build weight format 'gptq-4bit-g128'"),
    (["--model", "smollm2-135m", "--device", "tpu"], "device must be cpu, mps, cuda or cuda:N"),
    (["--model", "smollm2-135m", "--new-tokens", "-1"], "--new-tokens must be 0 or more"),
    (["--model", "smollm2-135m", "--timeout", "0"], "timeout must be a number of seconds"),
    (["--checkpoint", "/nonexistent/dir"], "--checkpoint must be a local directory"),
    (["--config", "/nonexistent/config.json"], "cannot read /nonexistent/config.json"),
])
def test_profile_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    rc, out, err = _cli(["profile", *args, "--db", str(tmp_path / "r.db")])
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert err.count("\n") == 1


def test_profile_config_the_planner_rejects_is_reported_before_a_run(tmp_path):
    bad = dict(TINY, num_key_value_heads=3)
    (tmp_path / "config.json").write_text(json.dumps(bad))
    rc, _, err = _cli(["profile", "--config", str(tmp_path / "config.json"), "--db", str(tmp_path / "r.db")])
    assert rc == 2 and "num_key_value_heads" in err
    with Store(tmp_path / "r.db") as s:
        assert s.list_runs() == []


def test_runs_needs_an_id_for_show(tmp_path):
    rc, _, err = _cli(["runs", "show", "--db", str(tmp_path / "r.db")])
    assert rc == 2 and "needs a run id" in err


def test_runs_list_on_an_empty_database_says_how_to_start(tmp_path):
    rc, out, _ = _cli(["runs", "--db", str(tmp_path / "r.db")])
    assert rc == 0 and "no runs yet" in out


def test_points_are_sorted_ascending_and_deduplicated():
    req = ProfileRequest(source="x", points=(Point(4, 128), Point(1, 512), Point(1, 128), Point(1, 128)))
    # by tokens held (batch x context), then prompt length: 4 x 128 holds as many tokens as 1 x 512
    assert req.points == (Point(1, 128), Point(4, 128), Point(1, 512))
    assert grid([4, 1], [512, 128], 8)[0] == Point(1, 128, 8)


def test_request_round_trips_through_json():
    req = ProfileRequest(source="x", weights="bnb-nf4", points=grid([1, 2], [16], 3), debug_hang_at=1)
    assert ProfileRequest.from_json(json.loads(json.dumps(req.to_json()))) == req


@pytest.mark.parametrize("text", ["", "0", "a", "1,,-2"])
def test_parse_int_list_rejects_junk(text):
    with pytest.raises(InputError):
        parse_int_list(text, "--batch")


def test_ctrl_c_cancels_and_keeps_the_run(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    db = tmp_path / "r.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "profile", "--config", str(tmp_path / "config.json"), "--weights", "fp32",
         "--db", str(db)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    runs = []
    while time.time() < deadline and not runs:
        time.sleep(0.2)
        if db.exists():
            with Store(db) as s:
                runs = s.list_runs()
    assert runs, "the run was never created"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    with Store(db) as s:
        assert s.get_run(runs[0]["id"])["status"] == "cancelled"


def test_profile_on_a_missing_gpu_is_refused_before_a_run(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    rc, _, err = _cli(["profile", "--model", "smollm2-135m", "--device", "cuda:0", "--db", str(tmp_path / "r.db")])
    assert rc == 2 and "device cuda:0 is not available here" in err and "available: cpu" in err
    with Store(tmp_path / "r.db") as s:
        assert s.list_runs() == []
