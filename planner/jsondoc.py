"""Bounded reading of a JSON document a user hands us (a config.json, a scenario file).

One reader for every such input boundary: the size is checked before decoding and parsing, so an upload or
a link can never make us parse more than ``limit`` bytes; every failure is one error naming the source.
"""

from __future__ import annotations

import json
from typing import Any

from planner.errors import HeadroomError


def parse_json_document(text: str | bytes, *, source: str, kind: str, limit: int,
                        error: type[HeadroomError]) -> Any:
    """``text`` parsed as JSON, or ``error`` with one sentence naming ``source``.

    ``kind`` names what the document should be, for messages ("a model config"); ``limit`` is its largest
    size in bytes (and in characters for ``str`` input).
    """
    if isinstance(text, bytes):
        if len(text) > limit:
            raise error(f"{source} is {len(text):,} bytes; {kind} is at most {limit:,} bytes")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise error(f"{source} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if len(text) > limit:
        raise error(f"{source} is {len(text):,} characters; {kind} is at most {limit:,}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{source} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise error(f"{source} is nested too deeply to be {kind}") from None
