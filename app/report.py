"""Reports a procurement team can file: one plan as self-contained HTML, Markdown or CSV.

Each report holds the plan (every input), the per-GPU breakdown by slash-path component, whether it fits
the chosen GPU, a comparison over the GPU catalog (the fewest GPUs of each model that fit, free memory,
concurrency, cost when prices are given), every assumption the planner made, the launch command, the
scenario JSON that reproduces it, and a link back to the hosted planner.

The HTML page embeds plotly.js inline (``fig.to_html(include_plotlyjs=True)``) and loads nothing from the
network: it opens offline, from a file or an e-mail attachment. The link's base URL comes from the
``HEADROOM_PUBLIC_URL`` environment variable (default :data:`DEFAULT_PUBLIC_URL`).
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from urllib.parse import urlencode

from planner.breakdown import MemoryBreakdown
from planner.errors import HeadroomError, InputError
from planner.export import snippet
from planner.recommend import Option, Workload, catalog_gpu_options, recommend
from planner.scenario import ModelSource, Scenario, dumps

FORMATS = ("html", "md", "csv")
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8501"
GIB = 1 << 30


def public_url() -> str:
    return (os.environ.get("HEADROOM_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")


def planner_link(s: Scenario, base: str | None = None) -> str:
    """A link that opens this plan in the hosted planner (the app's query parameters, see app.state)."""
    base = (base or public_url()).rstrip("/")
    p = s.plan
    values = {
        "model": s.model.catalog or "", "hub": s.model.hub_id or "", "approximate": s.model.approximate,
        "weights": p.weights, "kv_dtype": p.kv_dtype, "batch": p.batch, "context": p.context,
        "prompt_tokens": p.prompt_tokens or 0, "engine": p.engine, "attention": p.attention, "cache": p.cache,
        "mode": p.mode, "gpu": s.gpu or "", "gpus": s.gpu_count,
        "gpu_memory_utilization": p.gpu_memory_utilization, "max_num_seqs": p.max_num_seqs,
        "max_num_batched_tokens": p.max_num_batched_tokens or 0,
        "n_gpu_layers": -1 if p.n_gpu_layers is None else p.n_gpu_layers,
        "overrides": tuple(p.overrides),  # to_query writes them as ov.<name>=<bytes>
    }
    if s.model.catalog:
        values["source"] = "catalog"
    elif s.model.hub_id:
        values["source"] = "hub"  # the planner fetches the config again from the hub
    else:
        values["source"] = "upload"
    if s.gpu is None and s.plan.gpu_memory_bytes:
        values["gpu"] = "custom"
        values["gpu_gib"] = round(s.plan.gpu_memory_bytes / GIB, 3)
    try:
        from app.state import Inputs, encode_config, to_query

        if values["source"] == "upload":
            token = encode_config(s.model.config() or {})
            if token:
                values["config"] = token
            else:
                values["upload"] = "config.json"
        names = {f.name for f in fields(Inputs)}
        query = to_query(Inputs(**{k: v for k, v in values.items() if k in names}))
    except (ImportError, HeadroomError, TypeError, ValueError):
        query = {k: str(v) for k, v in values.items() if v not in ("", None) and k != "overrides"}
        query.update({f"ov.{name}": str(n) for name, n in p.overrides})
    return f"{base}/?{urlencode(query)}" if query else f"{base}/"


@dataclass(frozen=True)
class ReportData:
    scenario: Scenario
    model_name: str
    parameters: int
    breakdown: MemoryBreakdown
    gpu_title: str
    gpu_memory_bytes: int | None
    fits: bool | None
    fit: object | None  # planner.fit.FitResult on the chosen GPU(s)
    comparison: tuple[Option, ...]  # best (fewest) count of each GPU that fits, sorted by count then cost
    misfits: tuple[Option, ...]
    launch: str
    launch_language: str
    link: str
    created: str


def _comparison(s: Scenario, spec, prices: dict[str, float]) -> tuple[tuple[Option, ...], tuple[Option, ...]]:
    p = s.plan
    gpus = catalog_gpu_options(prices)  # a bad price name is the user's error: let it through
    try:
        w = Workload(context=p.context, concurrency=p.batch, weights=(p.weights,), kv_dtypes=(p.kv_dtype,),
                     engine=p.engine, max_gpus=8, gpu_memory_utilization=p.gpu_memory_utilization,
                     attention=p.attention, overrides=p.overrides)
        r = recommend(spec, w, gpus, "gpus")
    except HeadroomError:
        return (), ()
    best: dict[str, Option] = {}
    for o in r.feasible:
        if o.gpu.name not in best or o.count < best[o.gpu.name].count:
            best[o.gpu.name] = o
    inf = float("inf")
    rows = sorted(best.values(), key=lambda o: (o.count, o.cost_per_hour if o.cost_per_hour is not None else inf,
                                                -o.free_bytes))
    misfits = tuple(o for o in r.rejected_summary() if o.gpu.name not in best)
    return tuple(rows), misfits


def build_report(s: Scenario, prices: dict[str, float] | None = None) -> ReportData:
    from dataclasses import replace

    from planner.export import _breakdown

    spec = s.spec()
    mem = s.gpu_memory_bytes()
    # a scenario naming its GPU but not the plan's GPU size: vLLM's memory plan needs the size
    plan = replace(s.plan, gpu_memory_bytes=mem) if mem and s.plan.gpu_memory_bytes is None else s.plan
    b = _breakdown(spec, plan)
    title = s.gpu or ("custom GPU" if mem else "no GPU chosen")
    if s.gpu:
        from planner.gpus import find_gpu

        title = find_gpu(s.gpu).title
    fit_result = None
    if mem:
        from planner.fit import fit

        gpus = s.gpu_count if s.plan.engine == "llamacpp" else s.plan.tp
        try:
            fit_result = fit(spec, s.plan, mem, gpus)
        except HeadroomError:
            fit_result = None
    fits = fit_result.fits if fit_result is not None else None
    comp, misfits = _comparison(s, spec, prices or {})
    target = {"vllm": "vllm", "llamacpp": "llamacpp"}.get(s.plan.engine, "transformers")
    try:
        launch = snippet(target, s, spec)
    except InputError as e:
        launch = f"# not available: {e}\n"
    return ReportData(
        scenario=s, model_name=s.model.display_name, parameters=b.parameters, breakdown=b, gpu_title=title,
        gpu_memory_bytes=mem, fits=fits, fit=fit_result, comparison=comp, misfits=misfits, launch=launch,
        launch_language="python" if target == "transformers" else "bash",
        link=planner_link(s), created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _resolved(chosen: str, resolved: str) -> str:
    """``auto (bf16)`` when the planner resolved the choice to another name; else the name."""
    return f"{chosen} ({resolved})" if resolved and resolved != chosen else chosen


def _plan_items(d: ReportData) -> list[tuple[str, object, str]]:
    """(input, value, unit) of the plan; numbers stay numbers (CSV writes them plain)."""
    from planner.export import resolved_names

    s, p = d.scenario, d.scenario.plan
    try:
        weights, kv = resolved_names(s.spec(), p)
    except HeadroomError:
        weights, kv = p.weights, p.kv_dtype
    rows: list[tuple[str, object, str]] = [
        ("model", d.model_name, ""), ("parameters", d.parameters, ""), ("weights", _resolved(p.weights, weights), ""),
        ("KV cache dtype", _resolved(p.kv_dtype, kv), ""), ("engine", p.engine, ""),
        ("batch (concurrent sequences)", p.batch, ""), ("context (tokens per sequence)", p.context, "tokens"),
        ("attention", p.attention, ""), ("tensor parallel", p.tp, ""), ("GPU", d.gpu_title, ""),
        ("GPU count", s.gpu_count, "")]
    if d.gpu_memory_bytes:
        rows.append(("GPU memory (each)", d.gpu_memory_bytes, "bytes"))
    if p.engine == "vllm":
        rows += [("gpu_memory_utilization", p.gpu_memory_utilization, ""), ("max_num_seqs", p.max_num_seqs, "")]
    if p.prompt_tokens:
        rows.append(("prompt tokens", p.prompt_tokens, "tokens"))
    for name, v in p.overrides:
        rows.append((f"override {name}", v, "bytes"))
    return rows


def _plan_rows(d: ReportData) -> list[tuple[str, str]]:
    """The plan for people: thousands separators, GPU memory in GiB and GB."""
    rows = []
    for k, v, unit in _plan_items(d):
        if k == "GPU memory (each)":
            text = f"{v / GIB:,.2f} GiB ({v / 1e9:,.2f} GB)"
        elif isinstance(v, float):
            text = f"{v:g}"
        elif isinstance(v, int):
            text = f"{v:,}" + (" bytes" if unit == "bytes" else "")
        else:
            text = str(v)
        rows.append((k, text))
    return rows


def _total_text(d: ReportData) -> str:
    t = d.breakdown.total_bytes
    return f"{t / GIB:,.2f} GiB"


def _verdict(d: ReportData) -> str:
    """One line from planner.fit: fits or not, free memory, largest batch and context that fit."""
    if d.fit is None:
        return "no GPU chosen" if d.gpu_memory_bytes is None else "fit not available for this plan"
    f = d.fit
    n = d.scenario.gpu_count
    where = f"{n} x {d.gpu_title}" if n > 1 else d.gpu_title
    word = "fits" if f.fits else "does not fit"
    out = (f"{word} on {where}: {f.free_bytes / GIB:,.2f} GiB free per GPU; largest batch at this context "
           f"{f.max_batch:,}, largest context at this batch {f.max_context:,} tokens")
    if f.kv_cache_tokens is not None:
        out += f"; vLLM KV cache {f.kv_cache_tokens:,} tokens, {f.max_concurrency:.2f}x concurrency"
    return out


# ---------------------------------------------------------------------------------------------------
# Figures (pure: data in, plotly figure out)


def breakdown_figure(b: MemoryBreakdown):
    import plotly.graph_objects as go

    fig = go.Figure()
    for path, n in b.as_dict().items():
        fig.add_trace(go.Bar(name=path, x=[n / GIB], y=["per GPU"], orientation="h",
                             hovertemplate=f"{path}: %{{x:.2f}} GiB<extra></extra>"))
    fig.update_layout(barmode="stack", height=260, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title="GiB", title="Memory by component", legend=dict(orientation="h", y=-0.4))
    return fig


def comparison_figure(rows: tuple[Option, ...]):
    import plotly.graph_objects as go

    labels = [f"{o.count} x {o.gpu.name}" for o in rows]
    fig = go.Figure(go.Bar(x=labels, y=[o.free_bytes / GIB for o in rows], name="free per GPU",
                           hovertemplate="%{x}: %{y:.1f} GiB free per GPU<extra></extra>"))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), yaxis_title="GiB free per GPU",
                      title="Fewest GPUs of each model that fit")
    return fig


# ---------------------------------------------------------------------------------------------------
# Renderers


def _comparison_rows(d: ReportData) -> list[list[str]]:
    rows = []
    for o in d.comparison:
        rows.append([o.gpu.title, str(o.count), f"{o.needed_bytes / GIB:,.2f}", f"{o.free_bytes / GIB:,.2f}",
                     "-" if o.max_concurrency is None else str(o.max_concurrency),
                     "-" if o.cost_per_hour is None else f"{o.cost_per_hour:,.2f}"])
    return rows


COMPARISON_HEAD = ["GPU", "count", "need per GPU (GiB)", "free per GPU (GiB)", "max concurrency", "USD per hour"]


def render_markdown(d: ReportData) -> str:
    b = d.breakdown
    out = [f"# Headroom report: {d.scenario.title or d.model_name}", "",
           f"Created {d.created}. Open this plan in the planner: <{d.link}>", "",
           f"**Total: {_total_text(d)}** per GPU ({b.total_bytes:,} bytes); {_verdict(d)}.", "",
           "## Plan", "", "| input | value |", "| --- | --- |"]
    out += [f"| {k} | {v} |" for k, v in _plan_rows(d)]
    out += ["", "## Breakdown (per GPU)", "", "| component | GiB | GB | bytes |", "| --- | ---: | ---: | ---: |"]
    for path, n in b.as_dict().items():
        out.append(f"| {path} | {n / GIB:,.3f} | {n / 1e9:,.3f} | {n:,} |")
    out.append(f"| **total** | **{b.total_bytes / GIB:,.3f}** | **{b.total_bytes / 1e9:,.3f}** | **{b.total_bytes:,}** |")
    out += ["", "## GPU comparison", ""]
    if d.comparison:
        out += ["| " + " | ".join(COMPARISON_HEAD) + " |", "|" + " --- |" * len(COMPARISON_HEAD)]
        out += ["| " + " | ".join(r) + " |" for r in _comparison_rows(d)]
    else:
        out.append("No catalog GPU (1 to 8 of a kind) fits this plan.")
    if d.misfits:
        out += ["", "Does not fit:", ""]
        out += [f"- {o.gpu.title}: {o.reason}" for o in d.misfits]
    out += ["", "## Assumptions", ""]
    out += [f"- {a}" for a in b.assumptions] or ["- none recorded"]
    out += ["", "## Launch", "", f"```{d.launch_language}", d.launch.rstrip(), "```",
            "", "## Scenario (reproduces this plan: `headroom report --scenario FILE`)", "", "```json",
            dumps(d.scenario).rstrip(), "```", ""]
    return "\n".join(out)


def render_csv(d: ReportData) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "name", "value", "unit"])
    w.writerow(["report", "created", d.created, ""])
    w.writerow(["report", "link", d.link, ""])
    for k, v, unit in _plan_items(d):
        w.writerow(["plan", k, v if not isinstance(v, float) else f"{v:g}", unit])  # plain numbers, no separators
    for path, n in d.breakdown.as_dict().items():
        w.writerow(["breakdown", path, n, "bytes"])
    w.writerow(["breakdown", "total", d.breakdown.total_bytes, "bytes"])
    w.writerow(["fit", "verdict", _verdict(d), ""])
    for o in d.comparison:
        w.writerow(["gpu_comparison", f"{o.count} x {o.gpu.name}", o.free_bytes, "bytes free per GPU"])
        if o.max_concurrency is not None:
            w.writerow(["gpu_comparison", f"{o.count} x {o.gpu.name} max_concurrency", o.max_concurrency, "requests"])
        if o.cost_per_hour is not None:
            w.writerow(["gpu_comparison", f"{o.count} x {o.gpu.name} cost", f"{o.cost_per_hour:.4f}", "USD per hour"])
    for o in d.misfits:
        w.writerow(["gpu_rejected", o.gpu.name, o.reason, ""])
    for a in d.breakdown.assumptions:
        w.writerow(["assumption", "", a, ""])
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1b1f24}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #d0d7de;padding:.3em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}pre{background:#f6f8fa;padding:1em;overflow:auto}
.total{font-size:1.6em;font-weight:600}.fits{color:#1a7f37}.nofit{color:#cf222e}
"""


def render_html(d: ReportData) -> str:
    esc = html.escape
    b = d.breakdown
    figs = [breakdown_figure(b).to_html(full_html=False, include_plotlyjs=True, config={"displaylogo": False})]
    if d.comparison:
        figs.append(comparison_figure(d.comparison).to_html(full_html=False, include_plotlyjs=False,
                                                            config={"displaylogo": False}))
    verdict_cls = "fits" if d.fits else "nofit" if d.fits is False else ""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Headroom report: {esc(d.scenario.title or d.model_name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Headroom report: {esc(d.scenario.title or d.model_name)}</h1>",
        f"<p>Created {esc(d.created)}. <a id='planner-link' href='{esc(d.link, quote=True)}'>Open this plan in the "
        "planner</a>.</p>",
        f"<p class='total'>Total per GPU: <span id='total'>{esc(_total_text(d))}</span> "
        f"<small>({b.total_bytes:,} bytes, {b.total_bytes / 1e9:,.2f} GB)</small></p>",
        f"<p id='verdict' class='{verdict_cls}'>{esc(_verdict(d))}</p>",
        "<h2>Plan</h2><table>",
    ]
    parts += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _plan_rows(d)]
    parts.append("</table><h2>Breakdown (per GPU)</h2>")
    parts.append(figs[0])
    parts.append("<table id='breakdown'><tr><th>component</th><th>GiB</th><th>GB</th><th>bytes</th></tr>")
    for path, n in b.as_dict().items():
        parts.append(f"<tr><td>{esc(path)}</td><td class='n'>{n / GIB:,.3f}</td><td class='n'>{n / 1e9:,.3f}</td>"
                     f"<td class='n'>{n:,}</td></tr>")
    parts.append(f"<tr><th>total</th><th class='n'>{b.total_bytes / GIB:,.3f}</th>"
                 f"<th class='n'>{b.total_bytes / 1e9:,.3f}</th><th class='n'>{b.total_bytes:,}</th></tr></table>")
    parts.append("<h2>GPU comparison</h2>")
    if d.comparison:
        parts.append(figs[1])
        parts.append("<table id='comparison'><tr>" + "".join(f"<th>{esc(h)}</th>" for h in COMPARISON_HEAD) + "</tr>")
        for r in _comparison_rows(d):
            parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>")
        parts.append("</table>")
    else:
        parts.append("<p>No catalog GPU (1 to 8 of a kind) fits this plan.</p>")
    if d.misfits:
        parts.append("<details><summary>GPUs that do not fit, and why</summary><ul>")
        parts += [f"<li>{esc(o.gpu.title)}: {esc(o.reason)}</li>" for o in d.misfits]
        parts.append("</ul></details>")
    parts.append("<h2>Assumptions</h2><ul id='assumptions'>")
    parts += [f"<li>{esc(a)}</li>" for a in b.assumptions] or ["<li>none recorded</li>"]
    parts.append("</ul><h2>Launch</h2>")
    parts.append(f"<pre id='launch'>{esc(d.launch)}</pre>")
    parts.append("<h2>Scenario</h2><p>Save as a .json file and run <code>headroom report --scenario FILE</code> "
                 "or <code>headroom export --scenario FILE --target vllm</code> to reproduce this plan.</p>")
    scenario_json = dumps(d.scenario)
    parts.append(f"<pre id='scenario'>{esc(scenario_json)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_report(s: Scenario, fmt: str, prices: dict[str, float] | None = None) -> str:
    """The report of ``s`` as ``html``, ``md`` or ``csv`` text."""
    if fmt not in FORMATS:
        raise InputError(f"unknown report format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    d = build_report(s, prices)
    return {"html": render_html, "md": render_markdown, "csv": render_csv}[fmt](d)


def report_json(s: Scenario) -> str:
    """Small machine-readable summary (used by tests and the app)."""
    d = build_report(s)
    return json.dumps({"total_bytes": d.breakdown.total_bytes, "fits": d.fits, "link": d.link,
                       "comparison": [o.label for o in d.comparison]})


# ---------------------------------------------------------------------------------------------------
# From the app's resolved plan (app/app_pages/common.Resolved) to a scenario


def model_source_for(r, session=None) -> ModelSource:
    """The scenario model source of the app's current plan: a catalog name, or the config embedded.

    ``session``: the Streamlit session state (for an uploaded or pasted config). Raises HeadroomError
    when the config text is not available (a config too large to travel in the link and not re-uploaded).
    """
    from planner.spec import load_config_text

    inputs = r.inputs
    approximate = bool(getattr(inputs, "approximate", False))
    if inputs.source == "catalog":
        return ModelSource(catalog=inputs.model)
    if inputs.source == "hub":
        from app.hub import fetch_hub_model

        policy = getattr(r, "policy", None)
        limits = {} if policy is None else dict(  # hosted mode: the same limits the sidebar used
            max_config_bytes=policy.hub_max_config_bytes, max_header_bytes=policy.hub_max_header_bytes,
            timeout_s=policy.hub_timeout_s)
        m = fetch_hub_model(inputs.hub, **limits)
        return ModelSource.from_config(m.config(), hub_id=inputs.hub, approximate=approximate)
    text = None
    if inputs.source == "path":
        policy = getattr(r, "policy", None)
        if policy is not None and not policy.allow_local_paths:
            raise InputError("local paths are disabled in hosted mode; upload the config.json instead")
        path = inputs.path
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        with open(path, "rb") as f:
            text = f.read()
    else:
        session = session or {}
        up = session.get("hr_upload_file")
        if up is not None:
            text = up.getvalue()
        elif (session.get("hr_paste") or "").strip():
            text = session.get("hr_paste")
        elif getattr(inputs, "config", ""):
            from app.state import decode_config

            text = decode_config(inputs.config)
    if text is None:
        raise InputError("the uploaded config.json is not available any more: upload it again to export")
    return ModelSource.from_config(load_config_text(text), approximate=approximate)


def scenario_for(r, session=None, title: str = "") -> Scenario:
    """The app's current plan (sidebar) as a scenario."""
    gpu = None
    if r.inputs.gpu != "custom":
        from planner.gpus import find_gpu

        for name in (r.inputs.gpu, r.gpu_label):
            try:
                gpu = find_gpu(name).name if name else None
            except HeadroomError:
                gpu = None
            if gpu:
                break
    return Scenario(model=model_source_for(r, session), plan=r.plan, gpu=gpu, gpu_count=r.gpus, title=title)
