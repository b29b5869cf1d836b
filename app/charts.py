"""Charts as pure functions: a breakdown or a DataFrame in, a plotly Figure out.

No streamlit here, so every chart can be built and checked in a test (or exported to an image) without a
running app. Byte values stay integers in the data; only axis values are scaled to the chosen unit.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from planner.breakdown import GROUPS, MemoryBreakdown

UNIT_BYTES = {"GiB": 2**30, "GB": 10**9}

#: One colour family per top-level group, so every chart reads the same way.
GROUP_COLORS = {
    "weights": "#3b5bdb",
    "kv_cache": "#f08c00",
    "activations": "#2f9e44",
    "overhead": "#868e96",
}
_SHADES = {
    "weights": ["#3b5bdb", "#5c7cfa", "#748ffc", "#91a7ff", "#364fc7", "#4263eb", "#bac8ff"],
    "kv_cache": ["#f08c00", "#ffa94d", "#e67700", "#ffc078"],
    "activations": ["#2f9e44", "#51cf66", "#2b8a3e", "#8ce99a", "#37b24d"],
    "overhead": ["#868e96", "#adb5bd", "#495057", "#ced4da", "#6c757d", "#343a40"],
}
_PALETTE = ["#3b5bdb", "#f08c00", "#2f9e44", "#ae3ec9", "#1098ad", "#e03131", "#5c940d", "#862e9c"]
_DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]


def scale(n_bytes, unit: str):
    """Bytes -> the display unit (GiB = 2**30 bytes, GB = 10**9 bytes)."""
    return n_bytes / UNIT_BYTES[unit]


def fmt_bytes(n_bytes: int | float, unit: str, digits: int = 2) -> str:
    return f"{scale(n_bytes, unit):,.{digits}f} {unit}"


def breakdown_frame(b: MemoryBreakdown) -> pd.DataFrame:
    """One row per component: path, group, bytes (int), share of the total, formula, source."""
    total = b.total_bytes or 1
    rows = [
        {"component": c.path, "group": c.group, "bytes": c.bytes, "share": c.bytes / total,
         "formula": c.formula, "source": c.source}
        for c in b.components
    ]
    return pd.DataFrame(rows, columns=["component", "group", "bytes", "share", "formula", "source"])


def _component_colors(paths: list[str]) -> list[str]:
    used: dict[str, int] = {}
    out = []
    for p in paths:
        g = p.split("/", 1)[0]
        i = used.get(g, 0)
        used[g] = i + 1
        shades = _SHADES.get(g, ["#999999"])
        out.append(shades[i % len(shades)])
    return out


def stacked_bar(b: MemoryBreakdown, unit: str = "GiB", capacity_bytes: int | None = None,
                title: str = "") -> go.Figure:
    """One horizontal bar, stacked by component; a dashed line at the GPU capacity.

    Built from plain dicts in one go (no add_bar / add_vline calls): plotly validates each call, and
    this chart is redrawn on every rerun of the Plan page.
    """
    merged = b.as_dict()
    colors = _component_colors(list(merged))
    data = [
        {"type": "bar", "y": ["total"], "x": [scale(n, unit)], "name": path, "orientation": "h",
         "marker": {"color": color}, "legendgroup": path.split("/", 1)[0],
         "hovertemplate": f"{path}: %{{x:,.3f}} {unit}<extra></extra>"}
        for (path, n), color in zip(merged.items(), colors, strict=True)
    ]
    layout = {
        "barmode": "stack", "height": max(260, 22 * len(merged) + 60), "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "xaxis": {"title": {"text": unit}}, "yaxis": {"visible": False}, "legend": {"traceorder": "normal"},
    }
    if title:
        layout["title"] = {"text": title}
    if capacity_bytes:
        x = scale(capacity_bytes, unit)
        layout["shapes"] = [{"type": "line", "x0": x, "x1": x, "xref": "x", "y0": 0, "y1": 1, "yref": "paper",
                             "line": {"dash": "dash", "color": "#c92a2a"}}]
        layout["annotations"] = [{"x": x, "xref": "x", "y": 1, "yref": "paper", "yanchor": "bottom",
                                  "showarrow": False, "text": f"GPU memory {fmt_bytes(capacity_bytes, unit)}"}]
    return go.Figure({"data": data, "layout": layout})


def treemap(b: MemoryBreakdown, unit: str = "GiB") -> go.Figure:
    """Treemap of the slash-path components: groups contain their components (sizes add up)."""
    leaves = {p: n for p, n in b.as_dict().items() if n > 0}
    nodes: dict[str, int] = {}
    for path, n in leaves.items():
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            node = "/".join(parts[:i])
            nodes[node] = nodes.get(node, 0) + n
    ids = list(nodes)
    trace = {
        "type": "treemap", "ids": ids, "parents": ["/".join(i.split("/")[:-1]) for i in ids],
        "labels": [i.split("/")[-1] for i in ids], "values": [scale(nodes[i], unit) for i in ids],
        "branchvalues": "total", "marker": {"colors": [GROUP_COLORS.get(i.split("/")[0], "#999999") for i in ids]},
        "texttemplate": "%{label}<br>%{value:,.2f} " + unit,
        "hovertemplate": "%{id}: %{value:,.3f} " + unit + "<extra></extra>",
    }
    return go.Figure({"data": [trace], "layout": {"height": 360, "margin": {"l": 5, "r": 5, "t": 5, "b": 5}}})


def fit_gauge(total_bytes: int, capacity_bytes: int, unit: str = "GiB") -> go.Figure:
    """Gauge of the plan's memory against the memory available (all GPUs together)."""
    cap = scale(capacity_bytes, unit)
    val = scale(total_bytes, unit)
    fits = total_bytes <= capacity_bytes
    trace = {
        "type": "indicator", "mode": "gauge+number", "value": val,
        "number": {"suffix": f" {unit}", "valueformat": ",.2f"},
        "title": {"text": "fits" if fits else "does not fit"},
        "gauge": {"axis": {"range": [0, max(cap, val) * 1.05]}, "bar": {"color": "#2f9e44" if fits else "#c92a2a"},
                  "threshold": {"line": {"color": "#c92a2a", "width": 3}, "value": cap}},
    }
    return go.Figure({"data": [trace], "layout": {"height": 230, "margin": {"l": 20, "r": 20, "t": 50, "b": 10}}})


def context_curves(df: pd.DataFrame, unit: str = "GiB", capacities: dict[str, int] | None = None) -> go.Figure:
    """Memory against context: ``df`` has columns context, total_bytes and a ``series`` label per line.

    ``capacities``: label -> bytes, drawn as horizontal lines (GPU memory).
    """
    fig = go.Figure()
    # one colour per format, one dash style per batch size, so a family of lines reads at a glance
    formats = list(dict.fromkeys(df["format"])) if "format" in df.columns else []
    batches = list(dict.fromkeys(df["batch"])) if "batch" in df.columns else []
    for label, part in df.groupby("series", sort=False):
        style = {}
        if formats and batches:
            style = dict(line=dict(color=_PALETTE[formats.index(part["format"].iloc[0]) % len(_PALETTE)],
                                   dash=_DASHES[batches.index(part["batch"].iloc[0]) % len(_DASHES)]))
        fig.add_scatter(x=part["context"], y=scale(part["total_bytes"], unit), mode="lines+markers", name=str(label),
                        hovertemplate="context %{x:,}<br>%{y:,.2f} " + unit + "<extra>" + str(label) + "</extra>",
                        **style)
    for label, n in (capacities or {}).items():
        fig.add_hline(y=scale(n, unit), line_dash="dash", line_color="#c92a2a",
                      annotation_text=label, annotation_position="top left")
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="context (tokens per sequence)",
                      yaxis_title=f"memory ({unit})", xaxis_type="log", legend_title="batch / format")
    return fig


def fit_heatmap(df: pd.DataFrame, capacity_bytes: int, unit: str = "GiB") -> go.Figure:
    """Free memory over batch x context; negative = does not fit.

    ``df``: batch, context and either ``free_bytes`` (the planner's, engine-aware: for vLLM the KV pool
    left over) or ``total_bytes`` (then free = capacity - total).
    """
    if "free_bytes" in df.columns:
        free = df.pivot(index="batch", columns="context", values="free_bytes") / UNIT_BYTES[unit]
    else:
        free = (capacity_bytes - df.pivot(index="batch", columns="context", values="total_bytes")) / UNIT_BYTES[unit]
    lim = float(max(abs(free.values.min()), abs(free.values.max()), 1e-9))
    fig = go.Figure(go.Heatmap(
        z=free.values, x=[str(c) for c in free.columns], y=[str(b) for b in free.index],
        zmin=-lim, zmax=lim, colorscale="RdYlGn", colorbar=dict(title=f"free {unit}"),
        hovertemplate="batch %{y}, context %{x}<br>free %{z:,.2f} " + unit + "<extra></extra>",
        text=[["fits" if v >= 0 else "no" for v in row] for row in free.values], texttemplate="%{text}",
    ))
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="context (tokens)",
                      yaxis_title="batch")
    return fig


def max_context_bar(df: pd.DataFrame) -> go.Figure:
    """Largest context that fits per weight format (``df``: format, max_context; 0 = weights alone too big)."""
    fig = go.Figure(go.Bar(x=df["format"], y=df["max_context"], marker_color=GROUP_COLORS["weights"],
                           text=[f"{v:,}" if v else "no fit" for v in df["max_context"]], textposition="outside",
                           hovertemplate="%{x}: %{y:,} tokens<extra></extra>"))
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), yaxis_title="largest context (tokens)",
                      xaxis_title="weight format")
    return fig


def gpu_free_bar(df: pd.DataFrame, unit: str = "GiB") -> go.Figure:
    """Free memory per GPU option (``df``: option, free_bytes, fits)."""
    fig = go.Figure(go.Bar(
        x=df["option"], y=scale(df["free_bytes"], unit),
        marker_color=["#2f9e44" if f else "#c92a2a" for f in df["fits"]],
        hovertemplate="%{x}: %{y:,.2f} " + unit + " free<extra></extra>",
    ))
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10), yaxis_title=f"free memory ({unit})")
    return fig


__all__ = [
    "GROUPS", "UNIT_BYTES", "breakdown_frame", "context_curves", "fit_gauge", "fit_heatmap", "fmt_bytes",
    "gpu_free_bar", "max_context_bar", "scale", "stacked_bar", "treemap",
]
