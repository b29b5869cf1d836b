"""Live profiler: run the real model in a child process, measure every component, keep every run.

Parent side (no torch imported here): :func:`run_profile` (profiler.runner), :class:`ProfileRequest` and
:class:`Point` (profiler.request), :class:`Store` (profiler.db, SQLite), :func:`reconcile_run`
(profiler.reconcile). The worker (``python -m profiler``, profiler.worker) imports torch and transformers.

Covered: transformers causal LMs built from config.json with synthetic (random) weights, or a local
safetensors checkpoint; fp32/bf16/fp16 and bitsandbytes int8/nf4/fp4 (+ double quant) weights; one device
(cpu, cuda:N, mps); sdpa or eager attention; DynamicCache prefill + greedy decode. Not covered: vLLM and
llama.cpp engines, multi-GPU / tensor parallelism, training, StaticCache.
"""

from __future__ import annotations

from profiler.db import Store, default_db_path
from profiler.request import Point, ProfileRequest, grid, parse_int_list
from profiler.runner import PointResult, RunResult, run_profile

__all__ = ["Point", "PointResult", "ProfileRequest", "RunResult", "Store", "default_db_path", "grid",
           "parse_int_list", "run_profile"]
