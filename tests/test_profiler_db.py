"""The run database: schema creation, migration from v1, reads concurrent with writes, clear errors."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from planner.errors import SourceError
from profiler.db import _V1, MIGRATIONS, SCHEMA_VERSION, Store, default_db_path
from profiler.request import Point


def _run(store: Store) -> int:
    return store.create_run(model="tiny", device="cpu", weights="fp32", request={"weights": "fp32"},
                            config={"model_type": "llama"})


def test_new_database_gets_current_schema_in_wal_mode(tmp_path):
    store = Store(tmp_path / "sub" / "h.db")
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "points", "samples"} <= tables


def test_headroom_db_environment_variable_overrides_default_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADROOM_DB", str(tmp_path / "x.db"))
    assert default_db_path() == tmp_path / "x.db"


def test_migration_from_v1_backfills_peak_and_keeps_rows(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(_V1)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO runs (created_at, model, device, weights, request_json, config_json) "
                 "VALUES (1.0, 'tiny', 'cpu', 'fp32', '{}', '{}')")
    conn.execute("INSERT INTO points (run_id, idx, batch, prompt_tokens, new_tokens, status, measured_json, "
                 "created_at) VALUES (1, 0, 2, 16, 4, 'ok', ?, 2.0)", (json.dumps({"peak_bytes": 12345}),))
    conn.execute("INSERT INTO points (run_id, idx, batch, prompt_tokens, new_tokens, status, error, created_at) "
                 "VALUES (1, 1, 4, 16, 4, 'oom', 'boom', 3.0)")
    conn.commit()
    conn.close()

    store = Store(path)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == 2
    pts = store.points(1)
    assert [p["peak_bytes"] for p in pts] == [12345, None]
    assert pts[1]["error"] == "boom"
    assert store.get_run(1)["label"] == ""
    assert store.list_runs()[0]["peak_bytes"] == 12345


def test_database_from_a_newer_headroom_is_refused_with_a_message(tmp_path):
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SourceError, match="newer Headroom"):
        Store(path)


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SourceError, match="not a Headroom run database"):
        Store(path)


def test_reader_sees_each_point_while_a_writer_is_still_writing(tmp_path):
    path = tmp_path / "h.db"
    writer = Store(path)
    run_id = _run(writer)
    reader = Store(path)
    written = threading.Event()
    may_continue = threading.Event()
    seen: list[int] = []

    def write():
        for i in range(3):
            writer.add_point(run_id, i, Point(1, 8 * (i + 1)), "ok", {"peak_bytes": i}, None)
            writer.add_samples(run_id, [{"t": float(i), "point": i, "phase": "prefill", "rss_bytes": 1}])
            written.set()
            may_continue.wait(5)
            may_continue.clear()

    t = threading.Thread(target=write)
    t.start()
    for i in range(3):
        assert written.wait(5)
        written.clear()
        seen.append(len(reader.points(run_id)))
        assert len(reader.samples(run_id)) == i + 1
        may_continue.set()
    t.join(5)
    assert seen == [1, 2, 3]
    assert reader.samples(run_id, after_id=reader.samples(run_id)[0]["id"])[0]["point"] == 1


def test_validation_table_compares_planner_total_with_measured_peak(tmp_path):
    from planner.estimate import Plan, estimate
    from planner.spec import parse_config
    from profiler.request import ProfileRequest
    from profiler.validate import markdown_table

    tiny = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256}
    req = ProfileRequest(source="tiny", source_kind="config", weights="fp32", points=(Point(2, 16, 4),))
    with Store(tmp_path / "h.db") as s:
        rid = s.create_run(model="tiny", device="cpu", weights="fp32", request=req.to_json(), config=tiny)
        s.set_facts(rid, {"cpu_name": "x86_64", "torch": "T", "transformers": "X", "date": "2026-01-02T00:00"})
        s.set_load(rid, {"parameters_bytes": 427264, "quant_state_bytes": 0})
        s.add_point(rid, 0, req.points[0], "ok", {"kv_cache_bytes": 1, "activation_peak_bytes": 1,
                                                  "peak_bytes": 2**30}, None)
        table = markdown_table(s, [rid])
    predicted = estimate(parse_config(tiny), Plan(weights="fp32", batch=2, context=20, prompt_tokens=16,
                                                  device="cpu")).total_bytes
    assert "torch T" in table and "2026-01-02" in table
    err = (predicted - 2**30) / 2**30
    assert f"| tiny | fp32 | 2 | 16 + 4 | {predicted / 2**30:.3f} | 1.000 | {err:+.1%} ⚠ |" in table


def test_two_processes_opening_a_new_database_at_once_both_succeed(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "race.db"
    code = "import sys; from profiler.db import Store; Store(sys.argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    with Store(path) as s:
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
