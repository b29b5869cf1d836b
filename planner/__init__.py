"""Headroom's analytic memory model. Pure Python: never imports torch, transformers, streamlit or the network."""

from planner.breakdown import Component, MemoryBreakdown
from planner.errors import ConfigError, HeadroomError, InputError, SourceError
from planner.estimate import Plan, estimate
from planner.spec import ModelSpec, parse_config

__all__ = [
    "Component", "ConfigError", "HeadroomError", "InputError", "MemoryBreakdown", "ModelSpec", "Plan",
    "SourceError", "estimate", "parse_config",
]
