"""The app's inputs as one frozen value, and its round trip through a link's query parameters.

A share link is untrusted input. :func:`from_query` validates every value like a form field: an unknown
name, a malformed number or a choice that does not exist becomes one clear message, and that field keeps
its default. A small uploaded ``config.json`` travels inside the link, compressed (zlib + base64url);
:func:`decode_config` inflates it with a hard bound (never more than ``MAX_CONFIG_BYTES``), so no link
can make the server inflate more than the upload limit. A config too large for a link is replaced by the
file's name (``upload=``) so the link says which model to upload.

Pure Python: no streamlit import, so links can be tested and built anywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace

from planner.errors import InputError
from planner.spec import MAX_CONFIG_BYTES

#: Longest compressed config (base64url characters) we put in a link. Browsers and proxies handle URLs
#: of ~8 KB reliably; a typical config.json compresses to well under 1 KB.
MAX_LINK_CONFIG_CHARS = 6000

#: Model sources. ``path`` (a local file or directory) exists only outside hosted mode.
SOURCES = ("catalog", "hub", "upload", "path")
UNITS = ("GiB", "GB")
CUSTOM_GPU = "custom"

#: Upper bounds for link values; the planner enforces its own bounds again.
_MAX_BATCH = 1 << 20
_MAX_CONTEXT = 1 << 24
_MAX_GPUS = 64
_MAX_GPU_GIB = 1 << 20
_MAX_TEXT = 200
OVERRIDE_PREFIX = "ov."


@dataclass(frozen=True)
class Inputs:
    """Everything the user chose in the app. Defaults are the app's defaults (Llama-3.1-8B, bf16...)."""

    source: str = "catalog"
    model: str = "llama-3.1-8b"  # catalog name
    hub: str = ""  # Hugging Face repo id, optionally @revision
    path: str = ""  # local config.json or model directory (local mode only)
    config: str = ""  # an uploaded/pasted config, compressed for the link (see encode_config)
    upload: str = ""  # name of an uploaded config too large to travel in a link
    approximate: bool = False
    weights: str = "auto"  # "auto": the checkpoint's own format (planner.formats.resolve_format)
    kv_dtype: str = "auto"
    batch: int = 1
    context: int = 8192
    prompt_tokens: int = 0  # 0: the whole context is prefilled at once
    engine: str = "transformers"
    attention: str = "sdpa"
    cache: str = "dynamic"
    mode: str = "generate"
    gpu: str = "h100-sxm-80gb"  # GPU catalog name (default: an 80 GB GPU), or "custom"
    gpus: int = 1  # GPUs, tensor parallel
    gpu_gib: float = 80.0  # memory of one custom GPU, GiB
    gpu_memory_utilization: float = 0.9
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 0  # 0: vLLM's default
    n_gpu_layers: int = -1  # -1: all layers
    unit: str = "GiB"
    overrides: tuple[tuple[str, int], ...] = field(default=())


DEFAULTS = Inputs()


@dataclass(frozen=True)
class Choices:
    """Valid values for the fields whose options come from the planner (catalogs, formats...)."""

    models: tuple[str, ...] = ()
    weights: tuple[str, ...] = ()
    kv_dtypes: tuple[str, ...] = ("auto",)
    engines: tuple[str, ...] = ("transformers",)
    attentions: tuple[str, ...] = ("sdpa",)
    caches: tuple[str, ...] = ("dynamic",)
    modes: tuple[str, ...] = ("generate",)
    gpus: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()  # assumption names that may be overridden
    sources: tuple[str, ...] = SOURCES


# Link key -> Inputs field. Keys are short but readable, so a link can be read and edited by hand.
_KEYS = {
    "src": "source", "model": "model", "hub": "hub", "path": "path", "config": "config",
    "upload": "upload", "approx": "approximate", "weights": "weights", "kv": "kv_dtype",
    "batch": "batch", "context": "context", "prompt": "prompt_tokens", "engine": "engine",
    "attn": "attention", "cache": "cache", "mode": "mode", "gpu": "gpu", "gpus": "gpus",
    "gpu_gib": "gpu_gib", "util": "gpu_memory_utilization", "seqs": "max_num_seqs",
    "batched": "max_num_batched_tokens", "ngl": "n_gpu_layers", "unit": "unit",
}
_FIELD_KEY = {v: k for k, v in _KEYS.items()}
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?"
                      r"(@[A-Za-z0-9][A-Za-z0-9._/-]{0,199})?$")  # optional @revision (branch, tag or commit)
_B64_RE = re.compile(r"^[A-Za-z0-9_-]*$")


# ---------------------------------------------------------------------------------------------------
# config in a link


def encode_config(config: Mapping) -> str | None:
    """Compact JSON -> zlib -> base64url (no padding); ``None`` when the result is too long for a link."""
    raw = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
    token = base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")
    return token if len(token) <= MAX_LINK_CONFIG_CHARS else None


def decode_config(token: str, limit: int = MAX_CONFIG_BYTES) -> bytes:
    """Inflate a link's config, never producing more than ``limit`` bytes. InputError when invalid."""
    if len(token) > MAX_LINK_CONFIG_CHARS or not _B64_RE.match(token):
        raise InputError(
            f"the link's config is not a valid compressed config (at most {MAX_LINK_CONFIG_CHARS:,} "
            "base64url characters); upload the config.json instead"
        )
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InputError("the link's config is not valid base64url; upload the config.json instead") from None
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, limit)
    except zlib.error:
        raise InputError("the link's config is damaged (not zlib data); upload the config.json instead") from None
    if d.unconsumed_tail:
        raise InputError(f"the link's config inflates to more than {limit:,} bytes; upload the config.json instead")
    if not d.eof:
        raise InputError("the link's config is truncated; copy the whole link or upload the config.json")
    return out


# ---------------------------------------------------------------------------------------------------
# Inputs <-> query parameters


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v).removesuffix(".0") if v == int(v) else repr(v)
    return str(v)


def to_query(inputs: Inputs) -> dict[str, str]:
    """The link's query parameters: every field that differs from the default, plus the model source and
    the weight format (always written, so a link means the same plan whatever the app's default becomes).

    Fields of another source are dropped (a catalog plan's link does not carry a stale hub id).
    """
    q: dict[str, str] = {}
    source_fields = {"catalog": ("model",), "hub": ("hub",), "upload": ("config", "upload"), "path": ("path",)}
    dropped = {f for s, fs in source_fields.items() if s != inputs.source for f in fs}
    q["src"] = inputs.source
    for f in fields(Inputs):
        name = f.name
        if name in ("source", "overrides") or name in dropped:
            continue
        v = getattr(inputs, name)
        if (name in source_fields.get(inputs.source, ()) and v) or name == "weights":
            q[_FIELD_KEY[name]] = _fmt(v)
        elif v != getattr(DEFAULTS, name):
            q[_FIELD_KEY[name]] = _fmt(v)
    for name, n in inputs.overrides:
        q[OVERRIDE_PREFIX + name] = str(n)
    return q


def _one(value) -> str:
    """st.query_params yields the last value of a repeated key; plain dicts may hold lists."""
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else ""
    return str(value)


def _parse_int(label: str, text: str, lo: int, hi: int) -> int:
    t = text.strip().replace("_", "").replace(",", "")
    try:
        v = int(t)
    except ValueError:
        raise InputError(f"{label} must be a whole number, got {text[:40]!r}") from None
    if not lo <= v <= hi:
        raise InputError(f"{label} must be from {lo:,} to {hi:,}, got {v:,}")
    return v


def _parse_float(label: str, text: str, lo: float, hi: float, lo_open: bool = False) -> float:
    try:
        v = float(text.strip())
    except ValueError:
        raise InputError(f"{label} must be a number, got {text[:40]!r}") from None
    if not math.isfinite(v) or v > hi or v < lo or (lo_open and v == lo):
        raise InputError(f"{label} must be {'above' if lo_open else 'at least'} {lo:g} and at most {hi:g}, got {text[:40]!r}")
    return v


def _parse_choice(label: str, text: str, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if text not in choices:
        shown = ", ".join(choices[:12]) + (" ..." if len(choices) > 12 else "")
        raise InputError(f"unknown {label} {text[:60]!r}; expected one of: {shown}")
    return text


def _parse_field(name: str, text: str, c: Choices):
    if name == "source":
        return _parse_choice("model source", text, c.sources)
    if name == "model":
        key = text.strip().lower()
        return _parse_choice("catalog model", key, c.models) if c.models else key
    if name == "hub":
        if not _REPO_RE.match(text.strip()):
            raise InputError(f"hub id {text[:60]!r} is not a repo id such as 'meta-llama/Llama-3.1-8B' "
                             "(optionally @revision)")
        return text.strip()
    if name == "path":
        if len(text) > 4096 or "\x00" in text:
            raise InputError("path is not a usable file path")
        return text
    if name == "config":
        decode_config(text)  # validated (bounded) now; parsed as a model config later
        return text
    if name == "upload":
        if len(text) > _MAX_TEXT or any(ch in text for ch in "/\\\x00"):
            raise InputError("upload must be a file name")
        return text
    if name == "approximate":
        if text not in ("0", "1", "true", "false"):
            raise InputError(f"approx must be 0 or 1, got {text[:20]!r}")
        return text in ("1", "true")
    if name == "weights":
        return _parse_choice("weight format", text, c.weights) if c.weights else text
    if name == "kv_dtype":
        return _parse_choice("KV-cache dtype", text, c.kv_dtypes)
    if name == "engine":
        return _parse_choice("engine", text, c.engines)
    if name == "attention":
        return _parse_choice("attention", text, c.attentions)
    if name == "cache":
        return _parse_choice("cache", text, c.caches)
    if name == "mode":
        return _parse_choice("mode", text, c.modes)
    if name == "gpu":
        return _parse_choice("GPU", text, (*c.gpus, CUSTOM_GPU))
    if name == "unit":
        return _parse_choice("unit", text, UNITS)
    if name == "batch":
        return _parse_int("batch", text, 1, _MAX_BATCH)
    if name == "context":
        return _parse_int("context", text, 1, _MAX_CONTEXT)
    if name == "prompt_tokens":
        return _parse_int("prompt", text, 0, _MAX_CONTEXT)
    if name == "gpus":
        return _parse_int("gpus", text, 1, _MAX_GPUS)
    if name == "max_num_seqs":
        return _parse_int("seqs", text, 1, _MAX_BATCH)
    if name == "max_num_batched_tokens":
        return _parse_int("batched", text, 0, _MAX_CONTEXT)
    if name == "n_gpu_layers":
        return _parse_int("ngl", text, -1, 100_000)
    if name == "gpu_gib":
        return _parse_float("gpu_gib", text, 0.0, _MAX_GPU_GIB, lo_open=True)
    if name == "gpu_memory_utilization":
        return _parse_float("util", text, 0.0, 1.0, lo_open=True)
    raise AssertionError(name)  # every _KEYS field is handled above


def from_query(params: Mapping, choices: Choices = Choices()) -> tuple[Inputs, list[str]]:
    """Inputs from a link's query parameters, and one message per rejected parameter.

    Rejected values keep their default; nothing raises.
    """
    values: dict = {}
    errors: list[str] = []
    overrides: dict[str, int] = {}
    for key in params:
        text = _one(params[key])
        if len(text) > MAX_LINK_CONFIG_CHARS + 100:
            errors.append(f"link parameter {key[:40]!r} is too long; ignored")
            continue
        if key.startswith(OVERRIDE_PREFIX):
            name = key[len(OVERRIDE_PREFIX):]
            if name not in choices.overrides:
                shown = ", ".join(choices.overrides) or "none"
                errors.append(f"unknown assumption {name[:60]!r} in the link; overridable: {shown}")
                continue
            try:
                overrides[name] = _parse_int(f"override {name}", text, 0, 1 << 50)
            except InputError as e:
                errors.append(f"{e}; the default is kept")
            continue
        name = _KEYS.get(key)
        if name is None:
            errors.append(f"unknown link parameter {key[:40]!r}; ignored")
            continue
        try:
            values[name] = _parse_field(name, text, choices)
        except InputError as e:
            errors.append(f"{e}; the default is kept")
    inputs = replace(DEFAULTS, **values, overrides=tuple(sorted(overrides.items())))
    return inputs, errors
