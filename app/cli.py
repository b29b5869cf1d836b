"""The ``headroom`` command line.

Each subcommand lives in ``app/commands/<name>.py`` and exposes ``register(subparsers)``, which adds its
parser and sets ``func``. Errors a user can cause (``HeadroomError``) print one line on stderr and exit 2;
no traceback ever reaches a user.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from planner.errors import HeadroomError

#: Subcommand modules, in the order ``headroom --help`` lists them.
COMMANDS = (
    "app.commands.estimate",
    "app.commands.models",
    "app.commands.gpus",
    "app.commands.fit",
    "app.commands.sweep",
    "app.commands.profile",
    "app.commands.runs",
    "app.commands.recommend",
    "app.commands.export",
    "app.commands.report",
)


def _one_line_errors(p: argparse.ArgumentParser) -> None:
    """Usage errors: one line on stderr naming the problem, exit 2 (no usage dump, no traceback)."""

    def error(message: str):
        print(f"{p.prog}: error: {message} (see '{p.prog} --help')", file=sys.stderr)
        sys.exit(2)

    p.error = error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headroom", description="Plan, measure and share the memory budget of large language models."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    for p in (parser, *sub.choices.values()):
        _one_line_errors(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HeadroomError as e:
        print(f"headroom: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("headroom: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
