"""``headroom profile``: run the real model at chosen points, measure, compare with the prediction.

The model runs in a child process (``python -m profiler``); every point is stored in the run database
(``HEADROOM_DB`` or ``--db``) the moment it is measured. Progress goes to stderr; ``--json`` prints the
run on stdout. Ctrl-C cancels: the worker is killed and the points measured so far are kept.
"""

from __future__ import annotations

import json
import sys
import threading

from planner.errors import InputError

DEVICES_HELP = "cpu, cuda, cuda:N or mps (default cpu)"


def register(sub) -> None:
    p = sub.add_parser("profile", help="measure a model on this machine and compare with the prediction")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="catalog name (see 'headroom models')")
    src.add_argument("--config", help="path to a config.json (or a directory holding one)")
    src.add_argument("--hub", metavar="REPO_ID", help="Hugging Face repo id (config only; never remote code)")
    src.add_argument("--checkpoint", metavar="DIR", help="local directory with config.json and *.safetensors")
    p.add_argument("--synthetic", action="store_true",
                   help="random weights built from the config (implied except with --checkpoint)")
    p.add_argument("--device", default="cpu", help=DEVICES_HELP)
    p.add_argument("--weights", default="auto",
                   help="fp32, bf16, fp16, bnb-int8, bnb-nf4, bnb-nf4-dq, bnb-fp4, bnb-fp4-dq (default auto: "
                        "bf16 on a GPU, fp32 on the CPU, where bf16 matmuls are slow without AVX512-BF16/AMX)")
    p.add_argument("--batch", default="1", help="comma-separated batch sizes (default 1)")
    p.add_argument("--context", default="128",
                   help="comma-separated prompt lengths in tokens; each point then decodes --new-tokens more, "
                        "so it holds context + new tokens (default 128)")
    p.add_argument("--new-tokens", type=int, default=8, help="tokens decoded after the prompt (default 8)")
    p.add_argument("--attention", default="sdpa", choices=("sdpa", "eager"))
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds allowed for the model load and for each point (default 600)")
    p.add_argument("--db", help="run database (default: $HEADROOM_DB or the user data directory)")
    p.add_argument("--label", default="", help="a note stored with the run")
    p.add_argument("--json", action="store_true", help="print the run as JSON (see README)")
    p.set_defaults(func=run)


def request_from_args(args):
    from profiler.request import ProfileRequest, grid, parse_int_list

    if args.new_tokens < 0:
        raise InputError(f"--new-tokens must be 0 or more, got {args.new_tokens}")
    kind, source = next((k, getattr(args, k)) for k in ("model", "config", "hub", "checkpoint")
                        if getattr(args, k, None))
    kind = {"model": "catalog"}.get(kind, kind)
    synthetic = args.synthetic or kind != "checkpoint"
    points = grid(parse_int_list(args.batch, "--batch"), parse_int_list(args.context, "--context"),
                  args.new_tokens)
    weights = args.weights
    if weights == "auto":
        weights = "fp32" if args.device == "cpu" else "bf16"
    return ProfileRequest(source=source, source_kind=kind, synthetic=synthetic, weights=weights,
                          device=args.device, attention=args.attention, points=points,
                          timeout_s=args.timeout, label=args.label)


def _gib(n) -> str:
    return "-" if n is None else f"{n / 2**30:.3f} GiB"


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, one line per point otherwise)."""

    def __init__(self, total: int, stream=None) -> None:
        stream = sys.stderr if stream is None else stream  # looked up now: stderr may be redirected
        self.total, self.done, self.stream = total, 0, stream
        self.tty = stream.isatty()
        self.state = "starting worker"
        self.rss = None

    def draw(self) -> None:
        if not self.tty:
            return
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        line = (f"\r[{'#' * filled}{'-' * (width - filled)}] {self.done}/{self.total} points  {self.state}"
                f"  mem {_gib(self.rss)}")
        self.stream.write(line[:150].ljust(100))
        self.stream.flush()

    def on_sample(self, s: dict) -> None:
        self.rss = s.get("nvml_process_used_bytes") or s.get("gpu_reserved_bytes") or s.get("rss_bytes")
        self.draw()

    def on_event(self, e: dict) -> None:
        kind = e.get("type")
        if kind == "run":
            self.state = f"run {e['run_id']}: loading model"
        elif kind == "loaded":
            self.state = f"loaded in {e['load'].get('load_seconds', 0):.1f} s"
        elif kind == "point_start":
            self.state = f"point {e['index']}"
        self.draw()

    def on_point(self, p) -> None:
        self.done += 1
        peak = (p.measured or {}).get("peak_bytes")
        text = (f"point {p.index}: batch {p.batch}, prompt {p.prompt_tokens} + {p.new_tokens} new: {p.status}"
                + (f", peak {_gib(peak)}" if peak else "")
                + (f" ({p.error.splitlines()[0][:120]})" if p.error else ""))
        if self.tty:
            self.stream.write("\r" + text.ljust(100) + "\n")
        else:
            self.stream.write(text + "\n")
        self.state = "next point"
        self.draw()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 150 + "\r")
            self.stream.flush()


def run_json(store, result) -> dict:
    """The stable JSON of ``headroom profile --json`` / ``headroom runs show --json``."""
    from profiler.reconcile import point_table, reconcile_run

    run = store.get_run(result) if isinstance(result, int) else store.get_run(result.run_id)
    rec = reconcile_run(store, run["id"])
    table = point_table(store, run["id"])
    points = []
    for row, p in zip(table, store.points(run["id"]), strict=True):
        points.append({
            "index": row["idx"], "batch": row["batch"], "prompt_tokens": row["prompt_tokens"],
            "new_tokens": row["new_tokens"], "context": row["context"], "status": row["status"],
            "error": p.get("error"),
            "peak_bytes": (p.get("measured") or {}).get("peak_bytes"),
            "measured": {c: row[f"measured_{c}_bytes"] for c in ("weights", "quant_state", "kv_cache",
                                                                    "activations", "overhead", "total")}
            if row["status"] == "ok" else None,
            "predicted": {c: row[f"predicted_{c}_bytes"] for c in ("weights", "quant_state", "kv_cache",
                                                                      "activations", "overhead", "total")},
            "rel_error": {c: row[f"rel_error_{c}"] for c in ("weights", "quant_state", "kv_cache",
                                                               "activations", "overhead", "total")}
            if row["status"] == "ok" else None,
            "raw": p.get("measured"),
        })
    return {"run_id": run["id"], "status": run["status"], "model": run["model"], "device": run["device"],
            "weights": run["weights"], "db": str(store.path), "facts": run.get("facts"), "load": run.get("load"),
            "points": points, "summary": rec["summary"]}


def run(args) -> int:
    from profiler.db import Store
    from profiler.runner import run_profile

    request = request_from_args(args)
    config = name = None
    if request.source_kind == "hub":
        # the app's bounded, validated hub client (size and time limits, HF_TOKEN, never remote code)
        from app.hub import fetch_hub_model

        hub = fetch_hub_model(request.source)
        config, name = hub.config(), request.source
    store = Store(args.db)
    progress = Progress(len(request.points))
    cancel = threading.Event()
    try:
        result = run_profile(request, store=store, on_sample=progress.on_sample, on_point=progress.on_point,
                             on_event=progress.on_event, cancel=cancel, config=config, model_name=name)
    finally:
        progress.close()
    summary = (store.get_run(result.run_id) or {}).get("summary") or {}
    if args.json:
        print(json.dumps(run_json(store, result), indent=2))
    else:
        from app.commands.runs import print_run

        print_run(store, result.run_id)
    worst = summary.get("worst_total_rel_error")
    print(f"run {result.run_id} {result.status}: {sum(p.status == 'ok' for p in result.points)}/"
          f"{len(request.points)} points ok"
          + (f", worst total error {worst:+.1%}" if worst is not None else "")
          + f" (stored in {store.path})", file=sys.stderr)
    store.close()
    if result.status == "cancelled":
        return 130
    return 0 if result.status == "done" else 1
