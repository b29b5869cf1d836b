"""Charts are pure functions: the figures carry exactly the planner's numbers."""

from __future__ import annotations

import pandas as pd
import pytest

from app import charts
from planner.breakdown import Component, MemoryBreakdown

B = MemoryBreakdown(parameters=10, components=(
    Component("weights/embeddings", 3 * 2**30),
    Component("weights/attention/qkv", 2 * 2**30),
    Component("weights/attention/o", 2**30),
    Component("kv_cache/full", 2**29),
    Component("overhead/cuda_context", 2**28, "assumed", "assumption"),
))


def test_units_are_binary_and_decimal():
    assert charts.fmt_bytes(2**30, "GiB") == "1.00 GiB"
    assert charts.fmt_bytes(10**9, "GB") == "1.00 GB"
    assert charts.fmt_bytes(2**30, "GB") == "1.07 GB"


@pytest.mark.parametrize("unit", ["GiB", "GB"])
def test_stacked_bar_segments_add_up_to_the_total(unit):
    fig = charts.stacked_bar(B, unit, capacity_bytes=80 * 2**30)
    assert sum(t.x[0] for t in fig.data) == pytest.approx(B.total_bytes / charts.UNIT_BYTES[unit])
    assert [t.name for t in fig.data] == list(B.as_dict())
    assert fig.layout.shapes[0].x0 == pytest.approx(80 * 2**30 / charts.UNIT_BYTES[unit])


def test_treemap_nodes_are_sums_of_their_children():
    t = charts.treemap(B, "GiB").data[0]
    value = dict(zip(t.ids, t.values, strict=True))
    parent = dict(zip(t.ids, t.parents, strict=True))
    assert value["weights"] == pytest.approx(6.0)
    assert value["weights/attention"] == pytest.approx(3.0)
    assert parent["weights/attention/qkv"] == "weights/attention"
    assert sum(v for i, v in value.items() if parent[i] == "") == pytest.approx(B.total_bytes / 2**30)


def test_breakdown_frame_keeps_exact_bytes_and_provenance():
    df = charts.breakdown_frame(B)
    assert df["bytes"].sum() == B.total_bytes
    assert df.set_index("component").loc["overhead/cuda_context", "source"] == "assumption"


def test_fit_gauge_says_whether_it_fits():
    assert charts.fit_gauge(10, 20).data[0].title.text == "fits"
    assert charts.fit_gauge(30, 20).data[0].title.text == "does not fit"


def test_heatmap_shows_free_memory_per_cell():
    df = pd.DataFrame({"batch": [1, 1, 2, 2], "context": [10, 20, 10, 20],
                       "total_bytes": [2**30, 2 * 2**30, 3 * 2**30, 5 * 2**30]})
    h = charts.fit_heatmap(df, 4 * 2**30, "GiB").data[0]
    assert [list(r) for r in h.z] == [[3.0, 2.0], [1.0, -1.0]]
    assert [list(r) for r in h.text] == [["fits", "fits"], ["fits", "no"]]


def test_context_curves_draw_one_line_per_series_and_each_capacity():
    df = pd.DataFrame({"series": ["a", "a", "b", "b"], "context": [1, 2, 1, 2], "total_bytes": [1, 2, 3, 4]})
    fig = charts.context_curves(df, "GB", {"GPU": 10**9, "other": 2 * 10**9})
    assert [t.name for t in fig.data] == ["a", "b"]
    assert len(fig.layout.shapes) == 2


def test_heatmap_prefers_the_planners_free_memory():
    df = pd.DataFrame({"batch": [1, 2], "context": [10, 10], "total_bytes": [0, 0], "free_bytes": [2**30, -(2**30)]})
    h = charts.fit_heatmap(df, 123, "GiB").data[0]
    assert [list(r) for r in h.z] == [[1.0], [-1.0]]


def test_context_curves_colour_by_format_and_dash_by_batch():
    df = pd.DataFrame({"series": ["a1", "a2", "b1", "b2"], "format": ["a", "a", "b", "b"], "batch": [1, 2, 1, 2],
                       "context": [1, 1, 1, 1], "total_bytes": [1, 2, 3, 4]})
    t = {x.name: x.line for x in charts.context_curves(df).data}
    assert t["a1"].color == t["a2"].color != t["b1"].color
    assert t["a1"].dash == t["b1"].dash != t["a2"].dash
