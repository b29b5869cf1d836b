"""Resolve a request's model source to its config.json dict and the planner's ModelSpec (parent side).

Every failure is a :class:`planner.errors.HeadroomError` with one clear sentence, raised before a worker
is started, so a typo never costs a model load.
"""

from __future__ import annotations

import json
import os

from planner.errors import SourceError
from planner.spec import ModelSpec, load_config_text, parse_config

#: config.json keys that describe files or code rather than the architecture; dropped before building.
_NOT_ARCHITECTURE = ("quantization_config", "torch_dtype", "dtype", "auto_map", "_name_or_path",
                     "transformers_version", "architectures", "use_cache")


def hf_config_dict(config: dict) -> dict:
    """The config dict without file/code keys, ready for ``AutoConfig.for_model``."""
    return {k: v for k, v in config.items() if k not in _NOT_ARCHITECTURE}


def _read_json(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            text = f.read(1 << 21)
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror}") from None
    return load_config_text(text, source=path)


def resolve_config(source_kind: str, source: str) -> tuple[dict, str]:
    """``(config dict, display name)`` for a catalog name, config path, hub id or checkpoint directory."""
    if source_kind == "catalog":
        from planner.catalog import catalog_config, find

        entry = find(source)
        return catalog_config(entry.name), entry.name
    if source_kind == "config":
        path = os.path.join(source, "config.json") if os.path.isdir(source) else source
        return _read_json(path), os.path.basename(os.path.dirname(os.path.abspath(path))) or path
    if source_kind == "checkpoint":
        path = os.path.join(source, "config.json")
        if not os.path.isdir(source):
            raise SourceError(f"--checkpoint must be a local directory with config.json and *.safetensors, "
                              f"got {source!r}")
        if not any(n.endswith(".safetensors") for n in os.listdir(source)):
            raise SourceError(f"{source} holds no *.safetensors files; profile it with --synthetic "
                              "or point --checkpoint at a safetensors checkpoint")
        return _read_json(path), os.path.basename(os.path.abspath(source))
    if source_kind == "hub":
        try:
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(source, trust_remote_code=False)
        except ImportError:
            raise SourceError("--hub needs transformers (pip install 'headroom[profile]')") from None
        except Exception as e:  # offline, gated, missing repo, remote code
            raise SourceError(f"cannot fetch the config of {source!r} from the Hugging Face hub: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        return cfg.to_dict(), source
    raise SourceError(f"unknown model source kind {source_kind!r}")


def spec_for(config: dict, name: str) -> ModelSpec:
    return parse_config(json.loads(json.dumps(config)), name=name)
