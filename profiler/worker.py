"""The profiling worker: runs in a child process (``python -m profiler``), speaks JSON lines.

stdin: one line ``{"request": <ProfileRequest.to_json()>, "config": <config.json dict>, "start": k}``.
stdout (protocol only; everything libraries print goes to stderr): one JSON object per line,

- ``{"type": "hello", "facts": {...}}``: device facts and library versions;
- ``{"type": "loaded", "load": {...}}``: tensor accounting and memory after the model is built;
- ``{"type": "point_start", "index": i}`` then ``{"type": "point", "index": i, "status": "ok"|"oom",
  "measured": {...}, "error": str|None}`` for every point from ``start`` on, ascending;
- ``{"type": "sample", ...}``: memory every ``sample_interval_s`` and at each phase boundary;
- ``{"type": "load_failed", "status": "oom"|"crashed", "error": str}`` and ``{"type": "done"}``.

The parent (:mod:`profiler.runner`) turns a hang into ``timeout`` and a dead worker into ``crashed``.

Per point: random prompt ids ``(batch, prompt_tokens)``; one prefill forward with a fresh
``DynamicCache`` and ``logits_to_keep=1`` (as ``generate()`` does); then ``new_tokens`` single-token
decode steps (greedy), so the cache ends holding ``prompt_tokens + new_tokens`` tokens. Measured:
exact bytes of parameters, quant state, buffers and cache tensors; on CUDA the allocator's peak
allocated / reserved per phase (reset between phases) and NVML totals; on every device RSS, anonymous and
file-backed RSS, and the peak RSS per phase (VmHWM, reset between phases through /proc/self/clear_refs).

``activation_peak_bytes``: the transient memory above what persists, at the worst phase: on CUDA
``max_memory_allocated`` during the phase minus memory allocated before the point minus the cache
bytes held at the end of the phase; on CPU the same with peak RSS (VmHWM) and RSS. The CPU figure is a
process-level measure: it includes allocator slack and anything the runtime maps during the phase, and
misses memory the allocator reused from earlier points without growing RSS (the parent starts the worker
with ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc returns freed tensor memory and this stays small).

``peak_bytes``: on CUDA the process total from NVML (sampled after each phase) or, without NVML, torch's
peak reserved, whichever is larger; on CPU the peak RSS (VmHWM). ``overhead_bytes``: the residual, peak
minus parameters, quant state, final cache and activation peak (CUDA context, allocator slack, buffers;
on CPU the Python/torch runtime and libraries), so the measured parts add up to the peak.

On CUDA two overhead terms are also measured apart: ``load.cuda_context_bytes`` (NVML process memory
minus torch reserved, after load: the context and library workspaces) and per point
``allocator_slack_bytes`` (peak reserved minus peak allocated), the planner's ``overhead/cuda_context`` and
``overhead/allocator_slack``.

Not covered: multi-GPU (one device per run), tensor parallelism, engines other than transformers,
training, MPS peak counters (torch has none; current allocation is sampled).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import signal
import socket
import sys
import threading
import time
from datetime import datetime, timezone

from profiler.request import ProfileRequest

OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
               "failed to allocate", "defaultcpuallocator")


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    if name in ("OutOfMemoryError",):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(m in msg for m in OOM_MARKERS)


class Emitter:
    """Thread-safe JSON-lines writer on the protocol stream."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def __call__(self, obj: dict) -> None:
        line = json.dumps(obj, separators=(",", ":"), default=str)
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class Sampler(threading.Thread):
    """Background sampler: process memory, torch allocator and NVML every ``interval`` seconds."""

    def __init__(self, emit, device, nvml, interval: float) -> None:
        super().__init__(daemon=True, name="headroom-sampler")
        self.emit, self.device, self.nvml, self.interval = emit, device, nvml, interval
        self.point: int | None = None
        self.phase = "load"
        self.t0 = time.monotonic()
        self.stop = threading.Event()

    def snapshot(self) -> dict:
        from profiler.samplers import proc_status, torch_device_memory

        s = {"type": "sample", "t": round(time.monotonic() - self.t0, 4), "point": self.point,
             "phase": self.phase}
        st = proc_status()
        for k in ("rss_bytes", "rss_anon_bytes", "rss_file_bytes"):
            if k in st:
                s[k] = st[k]
        tm = torch_device_memory(self.device)
        if "allocated_bytes" in tm:
            s["gpu_allocated_bytes"] = tm["allocated_bytes"]
            s["gpu_reserved_bytes"] = tm.get("reserved_bytes")
        s.update(self.nvml.sample())
        return s

    def mark(self, phase: str, point: int | None = None) -> None:
        self.phase, self.point = phase, point
        try:
            self.emit(self.snapshot())
        except Exception:
            pass

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.emit(self.snapshot())
            except Exception:
                pass


def device_facts(device, nvml) -> dict:
    import torch
    import transformers

    facts = {
        "device": str(device),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "hip": getattr(torch.version, "hip", None),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "pid": os.getpid(),
    }
    try:
        import bitsandbytes

        facts["bitsandbytes"] = bitsandbytes.__version__
    except Exception:
        facts["bitsandbytes"] = None
    try:
        import psutil

        facts["host_memory_bytes"] = int(psutil.virtual_memory().total)
    except Exception:
        pass
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        facts["gpu_name"] = p.name
        facts["gpu_memory_bytes"] = int(p.total_memory)
    elif device.type == "mps":
        facts["gpu_name"] = "Apple MPS"
    else:
        facts["gpu_name"] = None
        facts["cpu_name"] = platform.processor() or platform.machine()
    facts.update(nvml.facts())
    return facts


def _free(device) -> None:
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
    elif device.type == "mps":
        try:
            torch.mps.empty_cache()
        except Exception:
            pass


def _phase_peak(device, before: dict) -> dict:
    """Peak figures of the phase that just ended (see the module docstring)."""
    from profiler.samplers import proc_status, torch_device_memory

    st = proc_status()
    out = {"rss_bytes": st.get("rss_bytes"), "peak_rss_bytes": st.get("peak_rss_bytes"),
           "rss_anon_bytes": st.get("rss_anon_bytes"), "rss_file_bytes": st.get("rss_file_bytes")}
    tm = torch_device_memory(device)
    out.update({f"gpu_{k}": v for k, v in tm.items()})
    return out


def measure_point(model, device, point, sampler, nvml, index: int, seed: int) -> dict:
    """Run one point; returns the measured dict. Raises on failure (the caller classifies OOM)."""
    import torch
    from transformers import DynamicCache

    from profiler.accounting import cache_bytes, cache_tokens
    from profiler.samplers import proc_status, reset_peak_rss, reset_torch_peak, torch_device_memory

    g = torch.Generator().manual_seed(seed + index)
    vocab = int(model.config.get_text_config().vocab_size)
    ids = torch.randint(0, vocab, (point.batch, point.prompt_tokens), generator=g).to(device)
    cuda = device.type == "cuda"

    _free(device)
    before = proc_status()
    before_gpu = torch_device_memory(device)
    base_alloc = before_gpu.get("allocated_bytes", 0)
    sampler.mark("prefill", index)
    reset_peak_rss()
    reset_torch_peak(device)
    t0 = time.perf_counter()
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        nxt = out.logits[:, -1:].argmax(-1)
    if cuda:
        torch.cuda.synchronize(device)
    prefill_s = time.perf_counter() - t0
    kv_prefill = cache_bytes(cache)
    pre = _phase_peak(device, before)
    pre_nvml = nvml.sample()
    logits_bytes = int(out.logits.numel() * out.logits.element_size())
    del out
    sampler.mark("decode", index)

    reset_peak_rss()
    reset_torch_peak(device)
    after_prefill = proc_status()
    alloc_after_prefill = torch_device_memory(device).get("allocated_bytes", 0)
    t1 = time.perf_counter()
    with torch.inference_mode():
        for _ in range(point.new_tokens):
            out = model(input_ids=nxt, past_key_values=cache, use_cache=True, logits_to_keep=1)
            nxt = out.logits[:, -1:].argmax(-1)
            del out
    if cuda:
        torch.cuda.synchronize(device)
    decode_s = time.perf_counter() - t1
    kv_final = cache_bytes(cache)
    dec = _phase_peak(device, after_prefill)
    dec_nvml = nvml.sample()
    tokens = cache_tokens(cache)

    if cuda:
        act_prefill = pre["gpu_peak_allocated_bytes"] - base_alloc - kv_prefill
        act_decode = dec["gpu_peak_allocated_bytes"] - alloc_after_prefill - (kv_final - kv_prefill)
        peak_alloc = max(pre["gpu_peak_allocated_bytes"], dec["gpu_peak_allocated_bytes"])
        peak_reserved = max(pre["gpu_peak_reserved_bytes"], dec["gpu_peak_reserved_bytes"])
        nv = [x.get("nvml_process_used_bytes") for x in (pre_nvml, dec_nvml) if x.get("nvml_process_used_bytes")]
        # NVML's process total is sampled after each phase; the reserved peak bounds it from below
        peak = max(nv + [peak_reserved])
        slack = peak_reserved - peak_alloc  # the planner's overhead/allocator_slack, measured
    else:
        act_prefill = (pre["peak_rss_bytes"] or 0) - before.get("rss_bytes", 0) - kv_prefill
        act_decode = (dec["peak_rss_bytes"] or 0) - after_prefill.get("rss_bytes", 0) - (kv_final - kv_prefill)
        peak = max(pre["peak_rss_bytes"] or 0, dec["peak_rss_bytes"] or 0)
    measured = {
        "kv_cache_bytes": kv_final,
        "kv_cache_prefill_bytes": kv_prefill,
        "cache_tokens": tokens,
        "activation_peak_bytes": max(act_prefill, act_decode, 0),
        "activation_prefill_bytes": max(act_prefill, 0),
        "activation_decode_bytes": max(act_decode, 0),
        "logits_bytes": logits_bytes,
        "peak_bytes": int(peak),
        "peak_allocated_bytes": peak_alloc if cuda else None,
        "allocator_slack_bytes": slack if cuda else None,
        "prefill_seconds": round(prefill_s, 4),
        "decode_seconds": round(decode_s, 4),
        "decode_tokens_per_second": round(point.batch * point.new_tokens / decode_s, 2) if decode_s > 0 and point.new_tokens else None,
        "prefill": pre | pre_nvml,
        "decode": dec | dec_nvml,
        "before": {k: before.get(k) for k in ("rss_bytes", "rss_anon_bytes", "rss_file_bytes")}
        | {"gpu_allocated_bytes": base_alloc},
    }
    del cache, nxt, ids
    return measured


def _warm_up(model, device) -> None:
    """One 4-token forward after the load figures are taken, so lazy initialization (thread pools, kernel
    selection, allocator arenas, bitsandbytes' CPU repacking) is not charged to the first point."""
    import torch
    from transformers import DynamicCache

    with torch.inference_mode():
        ids = torch.zeros((1, 4), dtype=torch.long, device=device)
        model(input_ids=ids, past_key_values=DynamicCache(config=model.config), use_cache=True, logits_to_keep=1)
    _free(device)


def _set_memory_limit(limit: int) -> None:
    """RLIMIT_AS = current VmSize + ``limit``, set before each point: a point that needs more new address
    space than ``limit`` fails with ENOMEM, recorded ``oom`` (test and safety knob, Linux)."""
    import resource

    from profiler.samplers import proc_status

    vm = proc_status().get("vm_bytes", 0)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = vm + limit
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run(message: dict, emit) -> None:
    """Do the work of one request message, emitting protocol lines."""
    import torch

    from profiler.samplers import Nvml

    req = ProfileRequest.from_json(message["request"])
    config = message["config"]
    start = int(message.get("start", 0))
    device = torch.device(req.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        emit({"type": "load_failed", "status": "crashed",
              "error": "no CUDA device is visible to torch here; profile with --device cpu"})
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    nvml = Nvml(device)
    emit({"type": "hello", "facts": device_facts(device, nvml)})
    sampler = Sampler(emit, device, nvml, req.sample_interval_s)
    sampler.start()
    try:
        _run_points(req, config, start, device, nvml, sampler, emit)
    finally:
        sampler.stop.set()


def _run_points(req, config, start, device, nvml, sampler, emit) -> None:
    from profiler.accounting import model_bytes
    from profiler.models import build_model
    from profiler.samplers import proc_status, torch_device_memory

    sampler.mark("load")
    before_load = proc_status()
    t0 = time.perf_counter()
    try:
        model = build_model(config, weights=req.weights, device=device, attention=req.attention,
                            synthetic=req.synthetic, checkpoint=None if req.synthetic else req.source,
                            seed=req.seed)
    except BaseException as e:  # noqa: BLE001 - every failure becomes a result
        status = "oom" if is_oom(e) else "crashed"
        emit({"type": "load_failed", "status": status, "error": f"{type(e).__name__}: {e}"[:2000]})
        return
    _free(device)
    after = proc_status()
    acct = model_bytes(model)
    gpu = torch_device_memory(device)
    load = dict(acct)
    load.update({
        "load_seconds": round(time.perf_counter() - t0, 3),
        "rss_before_load_bytes": before_load.get("rss_bytes"),
        "rss_bytes": after.get("rss_bytes"),
        "rss_anon_bytes": after.get("rss_anon_bytes"),
        "rss_file_bytes": after.get("rss_file_bytes"),
        "peak_rss_bytes": after.get("peak_rss_bytes"),
        "gpu_allocated_bytes": gpu.get("allocated_bytes"),
        "gpu_reserved_bytes": gpu.get("reserved_bytes"),
        "gpu_peak_allocated_bytes": gpu.get("peak_allocated_bytes"),
    })
    load.update(nvml.sample())
    if load.get("nvml_process_used_bytes") and load.get("gpu_reserved_bytes") is not None:
        # the planner's overhead/cuda_context (+ workspaces), measured: nvidia-smi's process memory minus
        # what torch's allocator holds
        load["cuda_context_bytes"] = load["nvml_process_used_bytes"] - load["gpu_reserved_bytes"]
    weight_tensors = acct["parameters_bytes"] + acct["quant_state_bytes"] + acct["buffers_bytes"]
    if device.type == "cpu":
        load["runtime_overhead_bytes"] = max((after.get("rss_bytes") or 0) - weight_tensors, 0)
    try:
        _warm_up(model, device)
    except BaseException as e:  # noqa: BLE001
        emit({"type": "load_failed", "status": "oom" if is_oom(e) else "crashed",
              "error": f"warm-up forward failed: {type(e).__name__}: {e}"[:2000]})
        return
    warm = proc_status()
    # after the warm-up forward the weights a checkpoint maps from disk are paged in (file-backed RSS)
    load["warm_rss_bytes"] = warm.get("rss_bytes")
    load["warm_rss_anon_bytes"] = warm.get("rss_anon_bytes")
    load["warm_rss_file_bytes"] = warm.get("rss_file_bytes")
    emit({"type": "loaded", "load": load})

    for index in range(start, len(req.points)):
        point = req.points[index]
        emit({"type": "point_start", "index": index})
        if req.debug_hang_at == index:
            time.sleep(10**6)
        if req.debug_crash_at == index:
            os.kill(os.getpid(), signal.SIGKILL)
        if req.cpu_memory_limit_bytes is not None:
            _set_memory_limit(req.cpu_memory_limit_bytes)
        failure = None
        try:
            measured = measure_point(model, device, point, sampler, nvml, index, req.seed)
            # the residual, so the measured parts add up to the peak (see profiler.reconcile)
            measured["overhead_bytes"] = max(measured["peak_bytes"] - weight_tensors + acct["buffers_bytes"]
                                             - measured["kv_cache_bytes"] - measured["activation_peak_bytes"], 0)
            # after the first forward bitsandbytes may repack 4-bit weights for the CPU kernel
            measured["weights_after_bytes"] = model_bytes(model)["parameters_bytes"]
            emit({"type": "point", "index": index, "status": "ok", "measured": measured, "error": None})
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            failure = ("oom" if is_oom(e) else "crashed", f"{type(e).__name__}: {e}"[:2000])
        if failure is not None:  # outside the except block, so the traceback's frames (and tensors) are gone
            _free(device)
            emit({"type": "point", "index": index, "status": failure[0], "measured": None, "error": failure[1]})
        sampler.mark("idle", index)
        _free(device)


def main() -> int:
    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    emit = Emitter(proto)
    line = sys.stdin.readline()
    try:
        message = json.loads(line)
    except json.JSONDecodeError as e:
        emit({"type": "load_failed", "status": "crashed", "error": f"bad request line: {e}"})
        return 2
    run(message, emit)
    emit({"type": "done"})
    return 0
