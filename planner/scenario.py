"""Scenario files: a plan as versioned JSON that reproduces it exactly.

A scenario is the model source (a catalog name, or an embedded ``config.json`` optionally labelled with
its Hugging Face id), every :class:`planner.estimate.Plan` field, and the GPU choice and count.
``loads(dumps(s)) == s`` for every scenario, and ``dumps`` writes canonical JSON (sorted keys, two-space
indent), so ``dumps(loads(text)) == text`` for any file Headroom wrote.

A scenario file is untrusted input: every field is type-checked, unknown fields are refused, and each
problem is one :class:`InputError` naming the field (``plan.batch: must be ...``). A file written by a
newer Headroom (``schema_version`` above :data:`SCHEMA_VERSION`) is refused with a message saying so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any

from planner.errors import HeadroomError, InputError, SourceError
from planner.estimate import Plan
from planner.jsondoc import parse_json_document
from planner.spec import MAX_CONFIG_BYTES, ModelSpec, parse_config

SCHEMA_VERSION = 1
KIND = "headroom-scenario"
#: a scenario file is a small JSON document; the embedded config is bounded like an upload
MAX_SCENARIO_BYTES = MAX_CONFIG_BYTES + (64 << 10)
MAX_GPUS = 64


def _err(path: str, message: str) -> InputError:
    return InputError(f"scenario field {path}: {message}")


def canonical_config_json(config: dict) -> str:
    """The one text form an embedded config takes (sorted keys, compact), so equal configs compare equal."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from: ``catalog`` (a bundled name) or ``config_json`` (an embedded config,
    canonical JSON text so the dataclass stays hashable), optionally labelled with its ``hub_id``."""

    catalog: str | None = None
    hub_id: str | None = None
    config_json: str | None = None
    approximate: bool = False

    def __post_init__(self) -> None:
        if (self.catalog is None) == (self.config_json is None):
            if self.catalog is None and self.hub_id:
                return  # a hub id alone is allowed; spec() says what is missing
            raise InputError("a model source is either a catalog name or an embedded config, exactly one")

    @classmethod
    def from_config(cls, config: dict, hub_id: str | None = None, approximate: bool = False) -> ModelSource:
        return cls(hub_id=hub_id, config_json=canonical_config_json(config), approximate=approximate)

    @property
    def display_name(self) -> str:
        if self.catalog:
            return self.catalog
        if self.hub_id:
            return self.hub_id
        cfg = self.config() or {}
        return str(cfg.get("_name_or_path") or cfg.get("model_type") or "uploaded config")

    @property
    def repo_id(self) -> str | None:
        """The Hugging Face id engines load weights from (catalog entries carry theirs)."""
        if self.hub_id:
            return self.hub_id
        if self.catalog:
            from planner.catalog import find

            return find(self.catalog).hub_id
        return None

    def config(self) -> dict | None:
        return json.loads(self.config_json) if self.config_json is not None else None

    def spec(self) -> ModelSpec:
        """The parsed model. A hub id without an embedded config cannot be resolved offline."""
        if self.catalog:
            from planner.catalog import catalog_spec

            return catalog_spec(self.catalog)
        if self.config_json is not None:
            return parse_config(self.config(), approximate=self.approximate, name=self.hub_id or "")
        raise SourceError(f"the scenario names hub model {self.hub_id!r} without its config; "
                          "open it with --hub, or save the scenario from the app, which embeds the config")

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        if self.catalog is not None:
            out["catalog"] = self.catalog
        if self.hub_id is not None:
            out["hub_id"] = self.hub_id
        if self.config_json is not None:
            out["config"] = self.config()
        if self.approximate:
            out["approximate"] = True
        return out

    @classmethod
    def from_dict(cls, d: Any) -> ModelSource:
        if not isinstance(d, dict):
            raise _err("model", "must be an object with 'catalog' or 'config'")
        _no_unknown(d, ("catalog", "hub_id", "config", "approximate"), "model")
        catalog = _opt_str(d, "catalog", "model.catalog")
        hub_id = _opt_str(d, "hub_id", "model.hub_id")
        approximate = d.get("approximate", False)
        if not isinstance(approximate, bool):
            raise _err("model.approximate", f"must be true or false, got {approximate!r}")
        config = d.get("config")
        if config is not None and not isinstance(config, dict):
            raise _err("model.config", "must be a config.json object")
        if catalog is not None and config is not None:
            raise _err("model", "give either 'catalog' or 'config', not both")
        if catalog is None and config is None and hub_id is None:
            raise _err("model", "needs 'catalog' (a bundled model name) or 'config' (an embedded config.json)")
        if catalog is not None:
            from planner.catalog import find

            find(catalog)  # unknown names fail here, with close matches
        cj = canonical_config_json(config) if config is not None else None
        if cj is not None and len(cj.encode()) > MAX_CONFIG_BYTES:
            raise _err("model.config", f"is larger than {MAX_CONFIG_BYTES:,} bytes")
        return cls(catalog=catalog, hub_id=hub_id, config_json=cj, approximate=approximate)


@dataclass(frozen=True)
class Scenario:
    """A reproducible plan: model source + Plan + GPU (catalog name, or ``None`` for a custom size given by
    ``plan.gpu_memory_bytes``) and GPU count. ``title``: free text shown on reports."""

    model: ModelSource
    plan: Plan = Plan()
    gpu: str | None = None
    gpu_count: int = 1
    title: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.gpu_count, int) or isinstance(self.gpu_count, bool) or not 1 <= self.gpu_count <= MAX_GPUS:
            raise _err("gpu_count", f"must be a whole number from 1 to {MAX_GPUS}, got {self.gpu_count!r}")

    def spec(self) -> ModelSpec:
        return self.model.spec()

    def gpu_memory_bytes(self) -> int | None:
        """Memory of one GPU: the plan's explicit value, else the catalog GPU's."""
        if self.plan.gpu_memory_bytes is not None:
            return self.plan.gpu_memory_bytes
        if self.gpu:
            from planner.gpus import find_gpu

            return find_gpu(self.gpu).memory_bytes
        return None

    def to_dict(self) -> dict:
        plan = {}
        for f in fields(Plan):
            v = getattr(self.plan, f.name)
            plan[f.name] = [list(p) for p in v] if f.name == "overrides" else v
        return {
            "kind": KIND,
            "schema_version": SCHEMA_VERSION,
            "title": self.title,
            "model": self.model.to_dict(),
            "plan": plan,
            "gpu": {"name": self.gpu, "count": self.gpu_count},
        }

    @classmethod
    def from_dict(cls, d: Any) -> Scenario:
        if not isinstance(d, dict):
            raise InputError("a scenario file must be a JSON object")
        version = d.get("schema_version")
        if version is None:
            raise _err("schema_version", "is missing; this does not look like a Headroom scenario file")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise _err("schema_version", f"must be a positive whole number, got {version!r}")
        if version > SCHEMA_VERSION:
            raise _err("schema_version", f"is {version}, written by a newer Headroom; this version reads "
                       f"schema_version {SCHEMA_VERSION} and older. Upgrade Headroom to open it.")
        kind = d.get("kind", KIND)
        if kind != KIND:
            raise _err("kind", f"must be {KIND!r}, got {kind!r}")
        _no_unknown(d, ("kind", "schema_version", "title", "model", "plan", "gpu"), "(top level)")
        title = d.get("title", "")
        if not isinstance(title, str) or len(title) > 500:
            raise _err("title", "must be text of at most 500 characters")
        model = ModelSource.from_dict(d.get("model"))
        plan = _plan_from_dict(d.get("plan", {}))
        gpu = d.get("gpu", {})
        if not isinstance(gpu, dict):
            raise _err("gpu", "must be an object with 'name' and 'count'")
        _no_unknown(gpu, ("name", "count"), "gpu")
        name = _opt_str(gpu, "name", "gpu.name")
        if name is not None:
            from planner.gpus import find_gpu

            try:
                name = find_gpu(name).name
            except HeadroomError as e:
                raise _err("gpu.name", str(e)) from None
        count = gpu.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool):
            raise _err("gpu.count", f"must be a whole number, got {count!r}")
        return cls(model=model, plan=plan, gpu=name, gpu_count=count, title=title)


def _no_unknown(d: dict, allowed: tuple[str, ...], where: str) -> None:
    extra = sorted(set(d) - set(allowed))
    if extra:
        raise _err(f"{where}", f"unknown field(s) {', '.join(map(repr, extra))}; expected {', '.join(allowed)}")


def _opt_str(d: dict, key: str, path: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip() or len(v) > 200:
        raise _err(path, f"must be a non-empty name of at most 200 characters, got {v!r}")
    return v


def _plan_from_dict(d: Any) -> Plan:
    if not isinstance(d, dict):
        raise _err("plan", "must be an object of plan fields")
    names = [f.name for f in fields(Plan)]
    _no_unknown(d, tuple(names), "plan")
    default = Plan()
    kw: dict[str, Any] = {}
    for name in names:
        if name not in d:
            continue
        v = d[name]
        path = f"plan.{name}"
        dv = getattr(default, name)
        if name == "overrides":
            if not isinstance(v, list):
                raise _err(path, "must be a list of [name, bytes] pairs")
            pairs = []
            for item in v:
                if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                        and isinstance(item[1], int) and not isinstance(item[1], bool)):
                    raise _err(path, f"entry {item!r} must be a [name, bytes] pair")
                pairs.append((item[0], item[1]))
            v = tuple(pairs)
        elif isinstance(dv, str):
            if not isinstance(v, str):
                raise _err(path, f"must be text, got {v!r}")
        elif isinstance(dv, float):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise _err(path, f"must be a number, got {v!r}")
            v = float(v)
        elif isinstance(dv, int) or dv is None:  # every optional Plan field is an int or None
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise _err(path, f"must be a whole number{' or null' if dv is None else ''}, got {v!r}")
            if v is None and dv is not None:
                raise _err(path, "must be a whole number, got null")
        kw[name] = v
    try:
        return Plan(**kw)
    except InputError as e:
        raise _err("plan", str(e)) from None


def dumps(s: Scenario) -> str:
    """Canonical JSON text of a scenario (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(s.to_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def loads(text: str | bytes) -> Scenario:
    """Parse scenario JSON text; every problem is one InputError naming the field."""
    data = parse_json_document(text, source="the scenario file", kind="a Headroom scenario",
                               limit=MAX_SCENARIO_BYTES, error=InputError)
    return Scenario.from_dict(data)


def from_option(model: ModelSource, option, title: str = "") -> Scenario:
    """A scenario for one recommended configuration (:class:`planner.recommend.Option`)."""
    gpu = option.gpu.name
    try:
        from planner.gpus import find_gpu

        find_gpu(gpu)
    except (HeadroomError, ImportError):
        gpu = None  # a custom GPU: its memory travels in plan.gpu_memory_bytes
    return Scenario(model=model, plan=option.plan, gpu=gpu, gpu_count=option.count, title=title)
