"""Hosted mode: what a planner exposed to strangers may and may not do.

Turned on by ``HEADROOM_MODE=hosted`` in the environment or ``HEADROOM_MODE = "hosted"`` in Streamlit
secrets (``.streamlit/secrets.toml``, or the secrets box of Streamlit Community Cloud). Hosted mode:

- has no Profile page (nothing runs a model on the server);
- reads no local paths or checkpoints (models come from the bundled catalog, an upload, or the hub);
- reaches the hub only for ``config.json`` and safetensors headers, within the size and time limits below,
  and never runs remote code;
- shows a banner saying so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from planner.spec import MAX_CONFIG_BYTES
from planner.stored import MAX_HEADER_BYTES

ENV_KEY = "HEADROOM_MODE"

BANNER = (
    "Hosted planner (read-only): plans are computed from configs only. Profiling, local files and "
    "checkpoints are disabled; the hub is read for config.json and safetensors headers only "
    "(size- and time-limited), and no remote code ever runs."
)


@dataclass(frozen=True)
class Policy:
    hosted: bool
    allow_profile: bool
    allow_local_paths: bool
    trust_remote_code: bool = False  # never, in either mode: the planner only reads JSON
    hub_max_config_bytes: int = MAX_CONFIG_BYTES
    hub_max_header_bytes: int = MAX_HEADER_BYTES  # per safetensors header (JSON); a 671 B model's are far smaller
    hub_timeout_s: float = 20.0


LOCAL = Policy(hosted=False, allow_profile=True, allow_local_paths=True)
HOSTED = Policy(hosted=True, allow_profile=False, allow_local_paths=False, hub_timeout_s=10.0)


def _secret_mode() -> str:
    """HEADROOM_MODE from Streamlit secrets, or "" when there are no secrets (never raises)."""
    try:
        import streamlit as st

        if not st.secrets.load_if_toml_exists():
            return ""
        return str(st.secrets.get(ENV_KEY, "") or "")
    except Exception:  # no streamlit runtime, malformed secrets.toml: treat as not set
        return ""


def mode(environ=None) -> str:
    """``"hosted"`` or ``"local"``. The environment wins over secrets."""
    env = os.environ if environ is None else environ
    value = (env.get(ENV_KEY) or _secret_mode() or "local").strip().lower()
    return "hosted" if value == "hosted" else "local"


def policy(environ=None) -> Policy:
    return HOSTED if mode(environ) == "hosted" else LOCAL
