"""Exact tensor accounting: bytes of parameters, buffers, bitsandbytes quantization state and cache tensors.

These are sums of ``tensor.nbytes`` over what the model and the cache actually hold, each storage counted
once (tied embeddings share one). They are exact and noise-free, unlike process-level figures, and they
are what the planner's ``weights/``, ``weights/quant_state`` and ``kv_cache/`` components predict.
"""

from __future__ import annotations


def _nbytes(t) -> int:
    return int(t.numel() * t.element_size())


def _key(t) -> tuple:
    try:
        return (t.device.type, t.device.index, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
    except Exception:
        return ("id", id(t))


def quant_state_tensors(param) -> dict[str, object]:
    """The tensors a bitsandbytes parameter carries besides its data.

    ``Params4bit.quant_state``: ``absmax`` (fp32, or uint8 with double quant), ``code`` (16-entry 4-bit
    map), and with double quant ``offset``, ``state2.absmax`` and ``state2.code``. ``Int8Params``: ``SCB``
    (one fp32 scale per output row); its ``CB`` is the data itself and is not counted twice.
    """
    out: dict[str, object] = {}
    qs = getattr(param, "quant_state", None)
    if qs is not None:
        for name in ("absmax", "code", "offset"):
            t = getattr(qs, name, None)
            if t is not None and hasattr(t, "element_size"):
                out[name] = t
        s2 = getattr(qs, "state2", None)
        if s2 is not None:
            for name in ("absmax", "code"):
                t = getattr(s2, name, None)
                if t is not None and hasattr(t, "element_size"):
                    out["nested_" + name] = t
    scb = getattr(param, "SCB", None)
    if scb is not None and hasattr(scb, "element_size"):
        out["SCB"] = scb
    return out


def model_bytes(model) -> dict[str, int]:
    """``parameters_bytes`` (data of every parameter, quantized ones at their packed size),
    ``quant_state_bytes`` (with a per-kind split ``quant_state/<kind>_bytes``), ``buffers_bytes``
    (rotary tables and other buffers), ``parameters`` (element count of unquantized tensors as stored)."""
    seen: set = set()

    def first_time(t) -> bool:
        """True the first time a storage is met: shared (tied) tensors are counted once."""
        k = _key(t)
        if k in seen:
            return False
        seen.add(k)
        return True

    params = qstate = buffers = count = 0
    per_kind: dict[str, int] = {}
    for p in filter(first_time, model.parameters()):
        params += _nbytes(p)
        count += p.numel()
        for kind, t in quant_state_tensors(p).items():
            if first_time(t):
                b = _nbytes(t)
                qstate += b
                per_kind[kind] = per_kind.get(kind, 0) + b
    for b in filter(first_time, model.buffers()):
        buffers += _nbytes(b)
    out = {"parameters_bytes": params, "quant_state_bytes": qstate, "buffers_bytes": buffers,
           "stored_elements": count}
    for kind, b in sorted(per_kind.items()):
        out[f"quant_state_{kind}_bytes"] = b
    return out


def cache_bytes(cache) -> int:
    """Bytes held by a transformers cache: ``sum(nbytes)`` of ``cache.layers[*].keys`` and ``.values``
    (transformers >= 4.56 layer API), falling back to the legacy ``key_cache`` / ``value_cache`` lists."""
    if cache is None:
        return 0
    total = 0
    seen: set = set()
    layers = getattr(cache, "layers", None)
    tensors = []
    if layers is not None:
        for layer in layers:
            for name in ("keys", "values"):
                t = getattr(layer, name, None)
                if t is not None and hasattr(t, "element_size"):
                    tensors.append(t)
    else:
        for name in ("key_cache", "value_cache"):
            for t in getattr(cache, name, None) or ():
                if t is not None and hasattr(t, "element_size"):
                    tensors.append(t)
    for t in tensors:
        k = _key(t)
        if k not in seen:
            seen.add(k)
            total += _nbytes(t)
    return total


def cache_tokens(cache) -> int:
    """Tokens held per sequence by the first layer of the cache (0 when empty)."""
    try:
        return int(cache.get_seq_length())
    except Exception:
        return 0
