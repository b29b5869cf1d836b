"""``headroom runs``: list, show and export stored profile runs."""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime, timezone

from planner.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("runs", help="list, show and export stored profile runs")
    p.add_argument("action", nargs="?", default="list", choices=("list", "show", "export"))
    p.add_argument("run_id", nargs="?", type=int, help="run id (show, export)")
    p.add_argument("--csv", action="store_true", help="export: one CSV row per point (the default)")
    p.add_argument("--output", "-o", help="export: write to this file instead of stdout")
    p.add_argument("--db", help="run database (default: $HEADROOM_DB or the user data directory)")
    p.add_argument("--json", action="store_true", help="list/show: JSON output")
    p.set_defaults(func=run)


def _gib(n) -> str:
    return "-" if n is None else f"{n / 2**30:.3f}"


def print_run(store, run_id: int, stream=None) -> None:
    from profiler.reconcile import COMPONENTS, point_table

    stream = stream or sys.stdout
    run = store.get_run(run_id)
    facts = run.get("facts") or {}
    print(f"run {run_id}: {run['model']} {run['weights']} on {run['device']} "
          f"({facts.get('gpu_name') or facts.get('cpu_name') or ''}) {run['status']}", file=stream)
    print(f"torch {facts.get('torch')}, transformers {facts.get('transformers')}, bitsandbytes "
          f"{facts.get('bitsandbytes')}, {facts.get('nvml', '')}, {facts.get('date', '')}", file=stream)
    rows = point_table(store, run_id)
    biggest = max([r[f"{k}_weights_bytes"] or 0 for r in rows for k in ("measured", "predicted")] or [0])
    unit, div = ("GiB", 2**30) if biggest >= 2**30 // 4 else ("MiB", 2**20)  # small models in MiB

    def _gib(n) -> str:
        return "-" if n is None else f"{n / div:.3f}"

    header = f"{'pt':>3} {'batch':>5} {'prompt':>7} {'new':>5} {'status':<8} {'':<9}"
    header += "".join(f" {c[:11]:>11}" for c in COMPONENTS)
    print(header + f"   ({unit})", file=stream)
    for row in rows:
        lead = f"{row['idx']:>3} {row['batch']:>5} {row['prompt_tokens']:>7} {row['new_tokens']:>5} {row['status']:<8}"
        if row["status"] == "ok":
            print(lead + f" {'measured':<9}" + "".join(f" {_gib(row[f'measured_{c}_bytes']):>11}"
                                                     for c in COMPONENTS), file=stream)
            lead = " " * len(lead)
        print(lead + f" {'predicted':<9}" + "".join(f" {_gib(row[f'predicted_{c}_bytes']):>11}"
                                                  for c in COMPONENTS), file=stream)
        if row["error"]:
            print(" " * 4 + row["error"][:150], file=stream)


def run(args) -> int:
    from profiler.db import Store

    store = Store(args.db)
    try:
        if args.action == "list":
            runs = store.list_runs()
            if args.json:
                print(json.dumps(runs, indent=2))
                return 0
            print(f"{'id':>4}  {'date (UTC)':<16}  {'model':<18} {'weights':<10} {'device':<7} {'status':<9} "
                  f"{'points':>6}  {'peak GiB':>8}")
            for r in runs:
                when = datetime.fromtimestamp(r["created_at"], timezone.utc).strftime("%Y-%m-%d %H:%M")
                print(f"{r['id']:>4}  {when:<16}  {r['model'][:18]:<18} {r['weights']:<10} {r['device']:<7} "
                      f"{r['status']:<9} {r['ok_points'] or 0:>2}/{r['points']:<3}  {_gib(r['peak_bytes']):>8}")
            if not runs:
                print(f"(no runs yet in {store.path}; try 'headroom profile --model smollm2-135m --synthetic')")
            return 0
        if args.run_id is None:
            raise InputError(f"'headroom runs {args.action}' needs a run id; 'headroom runs list' shows them")
        if store.get_run(args.run_id) is None:
            raise InputError(f"no run {args.run_id} in {store.path}; 'headroom runs list' shows the runs")
        if args.action == "show":
            if args.json:
                from app.commands.profile import run_json

                print(json.dumps(run_json(store, args.run_id), indent=2))
            else:
                print_run(store, args.run_id)
            return 0
        from profiler.reconcile import point_table

        rows = point_table(store, args.run_id)
        out = open(args.output, "w", newline="") if args.output else sys.stdout
        try:
            w = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["run_id"])
            w.writeheader()
            w.writerows(rows)
        finally:
            if args.output:
                out.close()
        return 0
    finally:
        store.close()
