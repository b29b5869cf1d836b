"""Parent side of a profile run: spawn the worker, enforce the time limit, record everything.

:func:`run_profile` starts ``python -m profiler`` with the request on stdin and reads its JSON lines. It
writes the run, every point (committed the moment it arrives) and the samples to the database, calls the
callbacks, and turns failures into results:

- a point that raises an out-of-memory error in the worker is ``oom`` and the worker goes on;
- no message for ``timeout_s`` seconds (load, or one point) -> the worker is killed, the point is
  ``timeout`` with the tail of stderr, and a fresh worker resumes at the next point;
- a worker that dies -> the point is ``crashed`` with its exit status and stderr tail, and a fresh worker
  resumes at the next point (a worker that dies while loading fails all remaining points the same way);
- ``cancel`` set (Ctrl-C in the CLI, the Cancel button in the app) -> the worker is killed and the run
  is recorded ``cancelled`` with the points measured so far.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from profiler.db import Store
from profiler.request import ProfileRequest
from profiler.source import resolve_config, spec_for

STDERR_TAIL_LINES = 40
SAMPLE_FLUSH_S = 0.5


@dataclass(frozen=True)
class PointResult:
    index: int
    batch: int
    prompt_tokens: int
    new_tokens: int
    status: str  # ok, oom, timeout, crashed
    measured: dict | None = None
    error: str | None = None


@dataclass
class RunResult:
    run_id: int
    status: str  # done, cancelled, failed
    points: list[PointResult] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    load: dict = field(default_factory=dict)
    error: str | None = None


def _worker_env() -> dict:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTHONUNBUFFERED", "1")
    # glibc: serve every allocation over 64 KiB with its own mmap (no dynamic threshold), so freed tensor
    # memory leaves the process and peak RSS around a phase measures that phase, not reuse of old heap
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")
    return env


class _Worker:
    """One child process and the threads draining its stdout (into a queue) and stderr (into a tail)."""

    def __init__(self, message: dict) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "profiler"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=_worker_env(), start_new_session=True, text=True, bufsize=1)
        self.lines: queue.Queue = queue.Queue()
        self.tail: collections.deque = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.t_out = threading.Thread(target=self._read_out, daemon=True)
        self.t_err = threading.Thread(target=self._read_err, daemon=True)
        self.t_out.start()
        self.t_err.start()
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.close()
        except OSError:
            pass

    def _read_out(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                self.lines.put(json.loads(line))
            except json.JSONDecodeError:
                self.tail.append("stdout: " + line[:500])
        self.lines.put(None)  # EOF

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.tail.append(line.rstrip()[:500])

    def stderr_tail(self) -> str:
        self.t_err.join(timeout=2)
        return "\n".join(self.tail)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the worker leads its own session
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def exit_text(self) -> str:
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return "worker did not exit"
        if rc is None:
            return "worker still running"
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = str(-rc)
            return f"worker killed by signal {name}" + (" (the kernel's OOM killer sends SIGKILL)"
                                                         if name == "SIGKILL" else "")
        return f"worker exited with status {rc}"


def _check_device(device: str) -> None:
    """A GPU the request names must exist here; else one clear message before any run is recorded."""
    from planner.errors import InputError
    from profiler.devices import detect

    found = detect()
    names = [d.device for d in found.devices]
    wanted = "cuda:0" if device == "cuda" else device
    if wanted not in names:
        why = "; ".join(found.notes) or "torch does not see it"
        raise InputError(f"device {device} is not available here ({why}); available: {', '.join(names) or 'none'}")


def run_profile(request: ProfileRequest, *, store: Store | None = None, db_path=None,
                on_sample: Callable[[dict], None] | None = None,
                on_point: Callable[[PointResult], None] | None = None,
                on_event: Callable[[dict], None] | None = None,
                cancel: threading.Event | None = None,
                config: dict | None = None, model_name: str | None = None) -> RunResult:
    """Profile ``request`` in child processes; see the module docstring. Raises only for bad input
    (:class:`planner.errors.HeadroomError`, before anything runs)."""
    if config is None:
        config, model_name = resolve_config(request.source_kind, request.source)
    model_name = model_name or request.source
    spec_for(config, model_name)  # a config the planner rejects fails here, with its message
    if request.device != "cpu":
        _check_device(request.device)
    own_store = store is None
    store = store or Store(db_path)
    cancel = cancel or threading.Event()
    run_id = store.create_run(model=model_name, device=request.device, weights=request.weights,
                              request=request.to_json(), config=config, label=request.label)
    result = RunResult(run_id=run_id, status="done")
    if on_event:
        on_event({"type": "run", "run_id": run_id, "points": len(request.points)})
    pending: list[dict] = []
    last_flush = time.monotonic()

    def record(index: int, status: str, measured: dict | None, error: str | None) -> None:
        p = request.points[index]
        store.add_point(run_id, index, p, status, measured, error)
        pr = PointResult(index, p.batch, p.prompt_tokens, p.new_tokens, status, measured, error)
        result.points.append(pr)
        if on_point:
            on_point(pr)

    def flush() -> None:
        nonlocal pending, last_flush
        if pending:
            store.add_samples(run_id, pending)
            pending = []
        last_flush = time.monotonic()

    next_index = 0
    n = len(request.points)
    try:
        while next_index < n and not cancel.is_set():
            worker = _Worker({"request": request.to_json(), "config": config, "start": next_index})
            loaded = False
            deadline = time.monotonic() + request.load_timeout
            failure: tuple[str, str] | None = None  # (status, error) that ends this worker
            try:
                while True:
                    if cancel.is_set():
                        worker.kill()
                        break
                    if time.monotonic() > deadline:
                        worker.kill()
                        what = f"point {next_index}" if loaded else "model load"
                        limit = request.timeout_s if loaded else request.load_timeout
                        failure = ("timeout", f"{what} took longer than {limit:g} s; "
                                              f"worker killed. stderr tail:\n{worker.stderr_tail()}")
                        break
                    try:
                        msg = worker.lines.get(timeout=0.1)
                    except queue.Empty:
                        if time.monotonic() - last_flush > SAMPLE_FLUSH_S:
                            flush()
                        continue
                    if msg is None:  # EOF: the worker ended
                        exit_text = worker.exit_text()
                        if next_index < n and not cancel.is_set():
                            failure = ("crashed", f"{exit_text}. stderr tail:\n{worker.stderr_tail()}")
                        break
                    kind = msg.get("type")
                    if kind == "sample":
                        pending.append(msg)
                        if on_sample:
                            on_sample(msg)
                        if time.monotonic() - last_flush > SAMPLE_FLUSH_S:
                            flush()
                        continue
                    deadline = time.monotonic() + (request.timeout_s if loaded or kind == "loaded"
                                                   else request.load_timeout)
                    if on_event:
                        on_event(msg)
                    if kind == "hello":
                        result.facts = msg["facts"]
                        store.set_facts(run_id, result.facts)
                    elif kind == "loaded":
                        loaded = True
                        if not result.load:
                            result.load = msg["load"]
                            store.set_load(run_id, result.load)
                    elif kind == "point":
                        flush()
                        record(msg["index"], msg["status"], msg.get("measured"), msg.get("error"))
                        next_index = msg["index"] + 1
                    elif kind == "load_failed":
                        worker.kill()
                        for i in range(next_index, n):
                            record(i, msg["status"], None, msg["error"])
                        next_index = n
                        result.status, result.error = "failed", msg["error"]
                        break
                    elif kind == "done":
                        break
            finally:
                worker.kill()
                flush()
            if failure is not None:
                status, error = failure
                if loaded:
                    record(next_index, status, None, error)
                    next_index += 1
                else:  # the model itself cannot be loaded: every remaining point fails the same way
                    for i in range(next_index, n):
                        record(i, status, None, error)
                    next_index = n
                    result.status, result.error = "failed", error.splitlines()[0]
    except KeyboardInterrupt:
        cancel.set()
    finally:
        flush()
        if cancel.is_set():
            result.status = "cancelled"
        summary = None
        try:
            from profiler.reconcile import reconcile_run

            summary = reconcile_run(store, run_id)["summary"]
        except Exception:
            summary = None
        store.finish_run(run_id, result.status, result.error, summary)
        if own_store:
            store.close()
    return result
