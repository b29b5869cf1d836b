"""``headroom report``: the plan as a self-contained HTML page, Markdown or CSV."""

from __future__ import annotations

import sys

from app.commands.export import add_scenario_args, scenario_from_args
from planner.errors import InputError, SourceError


def register(sub) -> None:
    p = sub.add_parser("report", help="write a report of the plan (.html, .md or .csv)",
                       description="Write the plan, its breakdown, a GPU comparison and every assumption to a "
                                   "file that opens offline (HTML embeds plotly.js).")
    p.add_argument("--out", metavar="FILE", required=True, help="output file: .html, .md or .csv")
    add_scenario_args(p)
    p.add_argument("--price", nargs="+", action="extend", metavar="NAME=USD_PER_HOUR", default=[],
                   help="GPU prices for the comparison, e.g. --price h100=2.49")
    p.set_defaults(func=run)


def run(args) -> int:
    from app.report import FORMATS, render_report
    from planner.recommend import parse_prices

    fmt = args.out.rsplit(".", 1)[-1].lower() if "." in args.out else ""
    if fmt not in FORMATS:
        raise InputError(f"--out must end in one of {', '.join('.' + f for f in FORMATS)}, got {args.out!r}")
    s = scenario_from_args(args)
    data = render_report(s, fmt, prices=parse_prices(args.price))
    try:
        with open(args.out, "w", encoding="utf-8", newline="") as f:
            f.write(data)
    except OSError as e:
        raise SourceError(f"cannot write {args.out}: {e.strerror or e}") from None
    print(f"wrote {args.out} ({len(data.encode()):,} bytes)", file=sys.stderr)
    return 0
