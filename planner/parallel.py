"""Tensor parallelism: what ONE GPU holds when a model is sharded over ``tp`` GPUs.

* Weights: column-parallel linears (q/k/v, gate/up) split their output dimension, row-parallel linears
  (o, down) their input dimension, embeddings and lm_head are vocab-parallel, MoE experts are split,
  norms and other 1-D tensors are replicated (``TensorInfo.split``). When a model has fewer KV heads
  than GPUs, each GPU keeps one KV head (vLLM's ``QKVParallelLinear`` replicates them). The sharding
  arithmetic is :func:`planner.engines.weight_components_per_gpu`, shared by every engine.
* KV cache: max(ceil(KV / TP), 1) heads per GPU (:func:`planner.kv_cache.kv_heads_per_gpu`); MLA's
  latent is not split.
* Activations: attention heads and MLP widths divide by TP; the residual stream and the gathered logits
  do not (:mod:`planner.activations`).
* Communication: NCCL buffers per GPU (``overhead/nccl`` in :mod:`planner.overhead`).
"""

from __future__ import annotations

from planner.breakdown import Component
from planner.engines import weight_components_per_gpu
from planner.errors import InputError
from planner.formats import WeightFormat
from planner.kv_cache import kv_heads_per_gpu
from planner.spec import ModelSpec

__all__ = ["kv_heads_per_gpu", "weight_components_per_gpu", "weights_per_gpu", "check_tp", "tp_notes"]


def check_tp(spec: ModelSpec, tp: int) -> None:
    """Engines need the attention heads to divide evenly over the GPUs."""
    if tp > 1 and spec.num_heads % tp:
        raise InputError(
            f"tensor parallelism {tp} does not divide the model's {spec.num_heads} attention heads; "
            f"choose a TP size that divides {spec.num_heads}"
        )


def weights_per_gpu(spec: ModelSpec, fmt: WeightFormat, tp: int) -> tuple[Component, ...]:
    """``weights/...`` components one GPU holds (the whole model when tp == 1)."""
    check_tp(spec, tp)
    return weight_components_per_gpu(spec, fmt, tp)


def tp_notes(spec: ModelSpec, tp: int) -> list[str]:
    if tp <= 1:
        return []
    out = [f"tensor parallel over {tp} GPUs: every number is per GPU (column/row-parallel linears and "
           "vocab-parallel embeddings split, norms replicated)"]
    if spec.num_kv_heads < tp and spec.mla is None:
        out.append(f"{spec.num_kv_heads} KV heads over {tp} GPUs: each GPU keeps one KV head (replicated)")
    return out
