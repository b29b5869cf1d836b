"""SQLite storage of profile runs: runs, points, samples (standard library ``sqlite3``, WAL).

Path: ``HEADROOM_DB`` if set, else ``<user data dir>/headroom/headroom.db`` (platformdirs when installed,
else ``~/.local/share/headroom/headroom.db``). The schema is versioned with ``PRAGMA user_version`` and
upgraded in place by :data:`MIGRATIONS` (index ``i`` upgrades version ``i`` to ``i + 1``), each in one
transaction. Every point is committed the moment it is measured; WAL lets the app read while a run writes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from planner.errors import SourceError

#: v1: runs, points, samples.
_V1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL DEFAULT 'running',
    model TEXT NOT NULL,
    device TEXT NOT NULL,
    weights TEXT NOT NULL,
    request_json TEXT NOT NULL,
    config_json TEXT NOT NULL,
    facts_json TEXT,
    load_json TEXT,
    error TEXT
);
CREATE TABLE points (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    new_tokens INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    measured_json TEXT,
    created_at REAL NOT NULL,
    UNIQUE (run_id, idx)
);
CREATE TABLE samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    t REAL NOT NULL,
    point_idx INTEGER,
    phase TEXT,
    data_json TEXT NOT NULL
);
"""

#: v2: the peak of each point as a column (listing runs without parsing JSON, backfilled from v1 rows),
#: the run's reconcile summary cached on the run, a label, and an index for sample reads while writing.
_V2 = """
ALTER TABLE points ADD COLUMN peak_bytes INTEGER;
UPDATE points SET peak_bytes = CAST(json_extract(measured_json, '$.peak_bytes') AS INTEGER)
    WHERE measured_json IS NOT NULL;
ALTER TABLE runs ADD COLUMN label TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN summary_json TEXT;
CREATE INDEX samples_run ON samples(run_id, id);
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2)
SCHEMA_VERSION = len(MIGRATIONS)


def default_db_path() -> Path:
    env = os.environ.get("HEADROOM_DB")
    if env:
        return Path(env).expanduser()
    try:
        from platformdirs import user_data_dir

        base = Path(user_data_dir("headroom", appauthor=False))
    except ImportError:
        base = Path.home() / ".local" / "share" / "headroom"
    return base / "headroom.db"


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Upgrade ``conn``'s schema to ``target``; returns the version found before."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise SourceError(f"the database was written by a newer Headroom (schema v{found}; this one "
                          f"knows v{SCHEMA_VERSION}); upgrade Headroom or set HEADROOM_DB to another file")
    for version in range(found, target):
        conn.execute("BEGIN IMMEDIATE")
        # another process may have migrated while we waited for the write lock: read the version again
        if conn.execute("PRAGMA user_version").fetchone()[0] > version:
            conn.execute("COMMIT")
            continue
        try:
            # executescript would COMMIT first; run the statements one by one inside the transaction
            for stmt in MIGRATIONS[version].split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found


def _row(r: sqlite3.Row | None) -> dict | None:
    if r is None:
        return None
    d = dict(r)
    for k in list(d):
        if k.endswith("_json"):
            v = d.pop(k)
            d[k[:-5]] = json.loads(v) if v else None
    return d


class Store:
    """One connection to the run database (thread-safe through a lock; open one per process)."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None,
                                        check_same_thread=False)
        except (OSError, sqlite3.Error) as e:
            raise SourceError(f"cannot open the run database {self.path}: {e}; set HEADROOM_DB "
                              "to a writable file") from None
        self.conn.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        with self.lock:
            try:
                self.conn.execute("PRAGMA busy_timeout=30000")
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self.conn.execute("PRAGMA foreign_keys=ON")
                migrate(self.conn)
            except sqlite3.DatabaseError as e:
                self.conn.close()
                raise SourceError(f"{self.path} is not a Headroom run database ({e})") from None

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        with self.lock:
            return self.conn.execute(sql, args)  # autocommit: committed when this returns

    # --- writing ---------------------------------------------------------------------------------
    def create_run(self, *, model: str, device: str, weights: str, request: dict, config: dict,
                   label: str = "") -> int:
        cur = self._write(
            "INSERT INTO runs (created_at, model, device, weights, request_json, config_json, label) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.time(), model, device, weights, json.dumps(request), json.dumps(config), label))
        return int(cur.lastrowid)

    def set_facts(self, run_id: int, facts: dict) -> None:
        self._write("UPDATE runs SET facts_json = ? WHERE id = ?", (json.dumps(facts), run_id))

    def set_load(self, run_id: int, load: dict) -> None:
        self._write("UPDATE runs SET load_json = ? WHERE id = ?", (json.dumps(load), run_id))

    def add_point(self, run_id: int, idx: int, point, status: str, measured: dict | None,
                  error: str | None) -> None:
        peak = measured.get("peak_bytes") if measured else None
        self._write(
            "INSERT OR REPLACE INTO points (run_id, idx, batch, prompt_tokens, new_tokens, status, error, "
            "measured_json, created_at, peak_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, idx, point.batch, point.prompt_tokens, point.new_tokens, status, error,
             json.dumps(measured) if measured is not None else None, time.time(), peak))

    def add_samples(self, run_id: int, samples: list[dict]) -> None:
        if not samples:
            return
        rows = [(run_id, float(s.get("t", 0.0)), s.get("point"), s.get("phase"),
                 json.dumps({k: v for k, v in s.items() if k not in ("type", "t", "point", "phase")}))
                for s in samples]
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany(
                    "INSERT INTO samples (run_id, t, point_idx, phase, data_json) VALUES (?, ?, ?, ?, ?)", rows)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def finish_run(self, run_id: int, status: str, error: str | None = None,
                   summary: dict | None = None) -> None:
        self._write("UPDATE runs SET status = ?, error = ?, finished_at = ?, summary_json = ? WHERE id = ?",
                    (status, error, time.time(), json.dumps(summary) if summary is not None else None, run_id))

    def set_summary(self, run_id: int, summary: dict) -> None:
        self._write("UPDATE runs SET summary_json = ? WHERE id = ?", (json.dumps(summary), run_id))

    def delete_run(self, run_id: int) -> None:
        self._write("DELETE FROM runs WHERE id = ?", (run_id,))

    # --- reading ---------------------------------------------------------------------------------
    def list_runs(self, limit: int = 200) -> list[dict]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT r.id, r.created_at, r.finished_at, r.status, r.model, r.device, r.weights, r.label, "
                "r.error, COUNT(p.id) AS points, SUM(p.status = 'ok') AS ok_points, MAX(p.peak_bytes) AS peak_bytes "
                "FROM runs r LEFT JOIN points p ON p.run_id = r.id GROUP BY r.id ORDER BY r.id DESC LIMIT ?",
                (limit,)).fetchall()
        return [dict(r) for r in rows]

    def get_run(self, run_id: int) -> dict | None:
        with self.lock:
            r = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _row(r)

    def points(self, run_id: int) -> list[dict]:
        with self.lock:
            rows = self.conn.execute("SELECT * FROM points WHERE run_id = ? ORDER BY idx", (run_id,)).fetchall()
        return [_row(r) for r in rows]

    def samples(self, run_id: int, after_id: int = 0) -> list[dict]:
        """Samples of a run with ``id > after_id`` (poll incrementally while a run writes)."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT id, t, point_idx, phase, data_json FROM samples WHERE run_id = ? AND id > ? ORDER BY id",
                (run_id, after_id)).fetchall()
        out = []
        for r in rows:
            d = json.loads(r["data_json"])
            d.update({"id": r["id"], "t": r["t"], "point": r["point_idx"], "phase": r["phase"]})
            out.append(d)
        return out
