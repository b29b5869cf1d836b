"""Charts of the Profile page: pure functions, DataFrame in, plotly Figure out.

Byte columns are ints; ``unit`` is ``GiB`` or ``GB`` (see :func:`app.charts.scale`).
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from app.charts import scale

COMPONENTS = ("weights", "quant_state", "kv_cache", "activations", "overhead", "total")
PREDICTED_COLOR = "#8c8c8c"
MEASURED_COLOR = "#1f77b4"

#: sample columns drawn on the live chart, with their labels
LIVE_SERIES = (
    ("rss_bytes", "process RSS"),
    ("rss_anon_bytes", "anonymous RSS"),
    ("rss_file_bytes", "file-backed RSS"),
    ("gpu_allocated_bytes", "torch allocated"),
    ("gpu_reserved_bytes", "torch reserved"),
    ("nvml_process_used_bytes", "NVML process"),
)


def live_memory(samples: pd.DataFrame, unit: str = "GiB") -> go.Figure:
    """Memory over time while a run goes; one line per available series, point changes as markers."""
    fig = go.Figure()
    if not samples.empty:
        for col, label in LIVE_SERIES:
            if col in samples and samples[col].notna().any():
                fig.add_trace(go.Scatter(x=samples["t"], y=scale(samples[col].astype(float), unit),
                                         mode="lines", name=label))
    fig.update_layout(xaxis_title="seconds since the worker started", yaxis_title=unit, height=320,
                      margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h"))
    return fig


def component_bars(rows: pd.DataFrame, unit: str = "GiB") -> go.Figure:
    """Predicted beside measured, one pair of bars per component, for one point's reconcile rows."""
    rows = rows[rows["component"].isin(COMPONENTS)]
    fig = go.Figure([
        go.Bar(x=rows["component"], y=scale(rows["predicted_bytes"].astype(float), unit), name="predicted",
               marker_color=PREDICTED_COLOR),
        go.Bar(x=rows["component"], y=scale(rows["measured_bytes"].astype(float), unit), name="measured",
               marker_color=MEASURED_COLOR),
    ])
    fig.update_layout(barmode="group", yaxis_title=unit, height=340, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def memory_vs_context(curve: pd.DataFrame, measured: pd.DataFrame, unit: str = "GiB") -> go.Figure:
    """Predicted total over context (one line per batch) with the measured peaks as markers on it.

    ``curve``: columns batch, context, total (bytes). ``measured``: batch, context, measured_total_bytes.
    """
    fig = go.Figure()
    for b, g in curve.groupby("batch"):
        fig.add_trace(go.Scatter(x=g["context"], y=scale(g["total"].astype(float), unit), mode="lines",
                                 name=f"predicted, batch {b}"))
    for b, g in measured.groupby("batch"):
        fig.add_trace(go.Scatter(x=g["context"], y=scale(g["measured_total_bytes"].astype(float), unit),
                                 mode="markers", marker=dict(size=10, symbol="diamond"),
                                 name=f"measured, batch {b}"))
    fig.update_layout(xaxis_title="context (prompt + new tokens)", yaxis_title=unit, height=360,
                      margin=dict(l=10, r=10, t=30, b=10))
    return fig


def error_by_component(rows: pd.DataFrame) -> go.Figure:
    """Relative error (predicted - measured) / measured per component, one bar group per point."""
    rows = rows.dropna(subset=["rel_error"])
    fig = go.Figure()
    for idx, g in rows.groupby("idx"):
        label = f"pt {idx}: b{int(g['batch'].iloc[0])} × {int(g['context'].iloc[0])}"
        fig.add_trace(go.Bar(x=g["component"], y=g["rel_error"] * 100, name=label))
    fig.update_layout(barmode="group", yaxis_title="% error (+ over-predicts)", height=340,
                      margin=dict(l=10, r=10, t=30, b=10))
    return fig
