"""Robust runs: oom, crashed and timeout points are recorded, the run goes on, nothing measured is lost.

One run of a tiny llama covers the three failure kinds (each worker start costs seconds):

====  =================  ==========================================================================
idx   (batch, prompt)    what happens
====  =================  ==========================================================================
0     (1, 16) + 2 new    ok
1     (1, 2048)          eager attention materializes 1*4*2048*2048 fp32 scores = 64 MiB, over the
                         48 MiB RLIMIT_AS headroom the worker sets before each point -> ``oom``
2     (64, 64)           more tokens, but 4 MiB of scores -> ``ok`` (the run went on after the oom)
3     (72, 64)           the worker SIGKILLs itself -> ``crashed``; a fresh worker resumes
4     (80, 64)           the worker sleeps -> killed after the point time limit -> ``timeout``
5     (96, 64)           ``ok`` in a third worker
====  =================  ==========================================================================
"""

from __future__ import annotations

import json
import threading

import pytest

from profiler.db import Store
from profiler.request import Point, ProfileRequest
from profiler.runner import run_profile

TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
        "max_position_embeddings": 4096, "tie_word_embeddings": False}

POINT_TIME_LIMIT_S = 8  # far above what a (96, 64) point of this model needs, far below a hang
LOAD_TIME_LIMIT_S = 240  # worker start + torch import on a busy 2-core machine


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("statuses")
    (d / "config.json").write_text(json.dumps(TINY))
    db = d / "runs.db"
    req = ProfileRequest(
        source=str(d / "config.json"), source_kind="config", weights="fp32", attention="eager",
        points=(Point(1, 16, 2), Point(1, 2048, 0), Point(64, 64, 0), Point(72, 64, 0), Point(80, 64, 0),
                Point(96, 64, 0)),
        timeout_s=POINT_TIME_LIMIT_S, load_timeout_s=LOAD_TIME_LIMIT_S, cpu_memory_limit_bytes=48 << 20,
        debug_crash_at=3, debug_hang_at=4, sample_interval_s=1.0)
    reader = Store(db)  # a second connection, as the app would have
    seen_before: dict[int, list[tuple[int, str]]] = {}
    results = []

    def on_point(p):
        # when point i is reported, every earlier point must already be readable from another connection
        rid = results[0]
        seen_before[p.index] = [(r["idx"], r["status"]) for r in reader.points(rid)]

    def on_event(e):
        if e.get("type") == "run":
            results.append(e["run_id"])

    res = run_profile(req, db_path=db, on_point=on_point, on_event=on_event, cancel=threading.Event())
    return {"result": res, "db": db, "seen": seen_before, "reader": reader}


def _statuses(run) -> list[str]:
    return [p.status for p in run["result"].points]


def test_statuses_in_order(failing_run):
    assert _statuses(failing_run) == ["ok", "oom", "ok", "crashed", "timeout", "ok"]


def test_oom_point_says_what_failed_and_the_next_point_ran(failing_run):
    pts = failing_run["result"].points
    assert "allocate" in pts[1].error.lower()
    assert pts[2].status == "ok" and pts[2].measured["kv_cache_bytes"] > 0


def test_crashed_point_carries_exit_signal_and_stderr_tail(failing_run):
    err = failing_run["result"].points[3].error
    assert "SIGKILL" in err and "stderr tail" in err


def test_timeout_point_names_the_limit(failing_run):
    assert f"longer than {POINT_TIME_LIMIT_S} s" in failing_run["result"].points[4].error


def test_every_point_was_in_the_database_when_the_next_was_reported(failing_run):
    seen = failing_run["seen"]
    for i in range(6):
        assert [idx for idx, _ in seen[i]] == list(range(i + 1)), (i, seen[i])
    assert seen[4][3] == (3, "crashed")  # recorded before the timeout that followed


def test_run_is_stored_done_with_a_summary(failing_run):
    reader = failing_run["reader"]
    run = reader.get_run(failing_run["result"].run_id)
    assert run["status"] == "done" and run["finished_at"]
    assert [p["status"] for p in reader.points(run["id"])] == _statuses(failing_run)
    assert run["summary"]["points"] == 3  # the ok points


def test_cancel_before_start_records_a_cancelled_run(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    cancel = threading.Event()
    cancel.set()
    req = ProfileRequest(source=str(tmp_path / "config.json"), source_kind="config", weights="fp32")
    res = run_profile(req, db_path=tmp_path / "r.db", cancel=cancel)
    assert res.status == "cancelled" and res.points == []
    with Store(tmp_path / "r.db") as s:
        assert s.get_run(res.run_id)["status"] == "cancelled"
