"""What every page shares: the plan inputs (sidebar), the link they live in, and the resolved plan.

The entry script calls :func:`sidebar` on every rerun, before the page runs; it renders the inputs, keeps
``st.query_params`` equal to them (so the address bar is always a share link), resolves the model and the
plan, and stores a :class:`Resolved` in session state. Pages call :func:`resolved` (or
:func:`require_plan`) and never parse inputs themselves. Other pages (Profile, Recommend, Export) use the
same two functions to read the current plan.

Optional planner pieces (fit, overhead assumptions) are imported when present; until they exist the app
says what is missing instead of failing.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from urllib.parse import urlencode

import streamlit as st

from app import hosted, state
from app.charts import fmt_bytes
from app.state import CUSTOM_GPU, Inputs
from planner.breakdown import MemoryBreakdown
from planner.catalog import catalog, catalog_spec
from planner.errors import HeadroomError, SourceError
from planner.estimate import ATTENTIONS, CACHES, ENGINES, MODES, Plan, estimate
from planner.spec import MAX_CONFIG_BYTES, ModelSpec, load_config_text, parse_config

_LOG = logging.getLogger("headroom.app")
DEFAULT_GPU = state.DEFAULTS.gpu  # "an 80 GB GPU"
RESOLVED_KEY = "hr__resolved"

#: Inputs field -> widget key. Every widget has a key, so tests set them by key and links restore them.
KEYS = {
    "source": "hr_source", "model": "hr_model", "hub": "hr_hub", "path": "hr_path",
    "approximate": "hr_approx", "weights": "hr_weights", "kv_dtype": "hr_kv", "batch": "hr_batch",
    "context": "hr_context", "prompt_tokens": "hr_prompt", "engine": "hr_engine", "attention": "hr_attention",
    "cache": "hr_cache", "mode": "hr_mode", "gpu": "hr_gpu", "gpus": "hr_gpus", "gpu_gib": "hr_gpu_gib",
    "gpu_memory_utilization": "hr_util", "max_num_seqs": "hr_seqs",
    "max_num_batched_tokens": "hr_batched", "n_gpu_layers": "hr_ngl", "unit": "hr_unit",
}
PASTE_KEY = "hr_paste"
UPLOAD_KEY = "hr_upload_file"
OVERRIDE_KEY = "hr_ov_"  # + assumption name; value in MiB

SOURCE_LABELS = {"catalog": "Catalog", "hub": "Hugging Face hub", "upload": "Upload / paste config.json",
                 "path": "Local path"}


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


# ---------------------------------------------------------------------------------------------------
# Navigation

PAGES_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class NavPage:
    file: str
    title: str
    url_path: str
    local_only: bool = False  # hidden in hosted mode
    default: bool = False


#: Every page, in menu order. No icons: a material icon becomes the favicon, fetched from a CDN.
#: Pages built by other work (Recommend, Profile, Export) appear when present.
PAGES = (
    NavPage("plan.py", "Plan", "plan", default=True),
    NavPage("explore.py", "Explore", "explore"),
    NavPage("compare.py", "Compare GPUs", "compare"),
    NavPage("recommend.py", "Recommend", "recommend"),
    NavPage("profile.py", "Profile", "profile", local_only=True),
    NavPage("export.py", "Export", "export"),
    NavPage("assumptions.py", "Assumptions", "assumptions"),
)


def nav_pages(policy: hosted.Policy, pages_dir: str = PAGES_DIR) -> list[NavPage]:
    """The pages this installation shows: present on disk, and allowed by the policy."""
    return [p for p in PAGES if os.path.exists(os.path.join(pages_dir, p.file))
            and not (p.local_only and not policy.allow_profile)]


# ---------------------------------------------------------------------------------------------------
# Choices offered (from the planner, with fallbacks for pieces not built yet)


@dataclass(frozen=True)
class Assumption:
    """One overridable assumption as the app shows it. ``default_bytes`` None: depends on the plan."""

    name: str
    default_bytes: int | None
    description: str = ""
    source: str = ""
    default_text: str = ""  # how the default is computed, when it is not a fixed size


def _as_assumption(a) -> Assumption | None:
    name, default = getattr(a, "name", None), getattr(a, "default_bytes", None)
    if not isinstance(name, str):
        return None
    fraction = getattr(a, "fraction", None)
    text = f"{fraction:.0%} of torch-allocated bytes" if fraction is not None else ""
    return Assumption(name, None if fraction is not None else default, str(getattr(a, "description", "")),
                      str(getattr(a, "source", "")), text)


def overhead_assumptions(engine: str | None = "transformers") -> tuple[Assumption, ...]:
    """The assumptions an engine's plan may override (Plan.overrides), from the planner.

    transformers: planner.overhead.ASSUMPTIONS. vLLM: the terms planner.engines documents as overridable.
    llama.cpp: its CUDA context. ``None``: all of them (what a link may carry).
    """
    out: list[Assumption] = []
    if engine in (None, "transformers"):
        for a in getattr(_optional("planner.overhead"), "ASSUMPTIONS", ()) or ():
            x = _as_assumption(a)
            if x is not None:
                out.append(x)
    eng = _optional("planner.engines")
    if eng is not None and engine in (None, "vllm"):
        out += [
            Assumption("activations/profile_peak", None, "vLLM's activation peak in its profiling run",
                       "planner.engines.vllm_activation_bytes (calibrated on vLLM logs)", "model-dependent"),
            Assumption("overhead/non_torch", getattr(eng, "VLLM_NON_TORCH_BYTES", None),
                       "non-torch memory vLLM counts inside its budget", "planner.engines.VLLM_NON_TORCH_BYTES"),
            Assumption("overhead/cuda_graphs", getattr(eng, "VLLM_CUDA_GRAPH_BYTES", None),
                       "CUDA-graph memory vLLM takes from its budget", "planner.engines.VLLM_CUDA_GRAPH_BYTES"),
        ]
    if eng is not None and engine in (None, "llamacpp") and hasattr(eng, "LLAMACPP_CUDA_CONTEXT_BYTES"):
        out.append(Assumption("overhead/cuda_context", eng.LLAMACPP_CUDA_CONTEXT_BYTES,
                              "CUDA context + cuBLAS handles of a llama.cpp process",
                              "planner.engines.LLAMACPP_CUDA_CONTEXT_BYTES"))
    return tuple({a.name: a for a in out}.values()) if engine is not None else tuple(out)


def gpu_catalog() -> dict:
    """name -> planner.gpus.GPU ({} when the GPU catalog is not available)."""
    mod = _optional("planner.gpus")
    if mod is None:
        return {}
    try:
        return {g.name: g for g in mod.gpus()}
    except Exception:  # a broken catalog file must not take the app down
        return {}


def auto_format(spec: ModelSpec | None) -> str | None:
    """The format "auto" means for this model (the checkpoint's own: its quantization, else its dtype)."""
    if spec is None:
        return None
    try:
        from planner.formats import resolve_format

        return resolve_format(spec, "auto").name
    except (HeadroomError, ImportError):
        return None


def weights_label(name: str, spec: ModelSpec | None) -> str:
    """How a weight format is named in captions: "auto (fp8-block)" for auto."""
    own = auto_format(spec) if name == "auto" else None
    return f"auto ({own})" if own else name


def weight_formats(spec: ModelSpec | None = None) -> dict[str, str]:
    """format name -> label, "auto" first (naming the checkpoint's own format when ``spec`` is given)."""
    from planner import formats

    own = auto_format(spec)
    out = {"auto": f"auto ({own}, the checkpoint's own)" if own else "auto (the checkpoint's own)"}
    lf = getattr(formats, "list_formats", None)
    out.update(dict(lf()) if lf else {n: f.label for n, f in formats.FORMATS.items()})
    return out


def kv_dtypes(engine: str | None = None) -> tuple[str, ...]:
    """KV-cache dtypes an engine accepts (llama.cpp has its own cache types); all of them for ``None``."""
    general = tuple(getattr(_optional("planner.kv_cache"), "KV_DTYPES", ("auto",)))
    llama = ("auto", *getattr(_optional("planner.engines"), "LLAMACPP_KV_TYPES", {}))
    if engine == "llamacpp":
        return llama
    if engine is not None:
        return general
    return tuple(dict.fromkeys(general + llama))


def choices(policy: hosted.Policy) -> state.Choices:
    sources = tuple(s for s in state.SOURCES if s != "path" or policy.allow_local_paths)
    return state.Choices(
        models=tuple(catalog()), weights=tuple(weight_formats()), kv_dtypes=kv_dtypes(), engines=ENGINES,
        attentions=ATTENTIONS, caches=CACHES, modes=MODES, gpus=tuple(gpu_catalog()),
        overrides=tuple(dict.fromkeys(a.name for a in overhead_assumptions(None))), sources=sources,
    )


# ---------------------------------------------------------------------------------------------------
# The resolved plan


@dataclass(frozen=True)
class Resolved:
    """The current plan as every page sees it. ``error`` set: the model or plan could not be built."""

    inputs: Inputs
    policy: hosted.Policy
    model_label: str = ""
    spec: ModelSpec | None = None
    plan: Plan | None = None
    breakdown: MemoryBreakdown | None = None
    stored: object | None = None  # planner.stored.StoredWeights (hub or local safetensors headers)
    stored_key: str = ""  # cache key of ``stored`` (hashing 100k tensors on every call would be slow)
    gpu_label: str = ""
    gpu_bytes: int = 0  # memory of ONE GPU
    gpus: int = 1
    error: str | None = None
    notes: tuple[str, ...] = field(default=())
    fit: FitView | None = None  # planner.fit of the plan on the chosen GPUs

    @property
    def ok(self) -> bool:
        return self.error is None and self.breakdown is not None

    @property
    def unit(self) -> str:
        return self.inputs.unit


def resolved() -> Resolved | None:
    return st.session_state.get(RESOLVED_KEY)


def require_plan() -> Resolved:
    """The resolved plan; shows the error and stops the page when there is none."""
    r = resolved()
    if r is None:
        st.error("No plan yet: choose a model in the sidebar.")
        st.stop()
    if not r.ok:
        st.error(r.error)
        st.info("Fix the model or plan in the sidebar; the other settings are kept.")
        st.stop()
    return r


@st.cache_data(max_entries=64, show_spinner=False)
def _parse_text(text: str | bytes, approximate: bool, name: str) -> ModelSpec:
    return parse_config(load_config_text(text, source=name or "config.json"), approximate=approximate, name=name)


# Estimates and fits are cached with functools.lru_cache, not st.cache_data: ModelSpec and Plan are frozen
# and hashable, so a key costs microseconds, where st.cache_data's hasher spends ~20 ms per call on a spec
# (which would make a 200-point sweep take seconds). Sweeps and tables built from them use st.cache_data.
_STORED: dict[str, object] = {}  # stored_key -> StoredWeights (hashing 100k tensors per call would be slow)


def _remember_stored(stored, stored_key: str) -> None:
    if stored_key and stored_key not in _STORED:
        if len(_STORED) >= 16:
            _STORED.clear()
        _STORED[stored_key] = stored


@lru_cache(maxsize=8192)
def _estimate_cached(spec: ModelSpec, plan: Plan, stored_key: str) -> MemoryBreakdown:
    stored = _STORED.get(stored_key) if stored_key else None
    return estimate(spec, plan, stored) if stored is not None else estimate(spec, plan)


def cached_estimate(spec: ModelSpec, plan: Plan, _stored=None, stored_key: str = "") -> MemoryBreakdown:
    """planner.estimate.estimate, cached per (spec, plan, stored headers)."""
    if _stored is not None and not stored_key:
        return estimate(spec, plan, _stored)
    _remember_stored(_stored, stored_key)
    return _estimate_cached(spec, plan, stored_key)


def estimate_for(r: Resolved, plan: Plan) -> MemoryBreakdown:
    """Estimate another plan for the current model (sweeps, GPU comparisons)."""
    return cached_estimate(r.spec, plan, r.stored, r.stored_key)


def _stored_key(stored) -> str:
    if stored is None:
        return ""
    try:
        return f"{hash(stored):x}:{stored.total_bytes}"
    except TypeError:
        return f"id{id(stored)}"


def _read_local(path: str) -> tuple[bytes, str]:
    p = os.path.expanduser(path.strip())
    if os.path.isdir(p):
        p = os.path.join(p, "config.json")
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)  # one byte more, so an oversized file is reported as such
    except OSError as e:
        raise SourceError(f"cannot read {p}: {e.strerror}; give a config.json or a model directory") from None
    return data, os.path.basename(os.path.dirname(os.path.abspath(p))) or p


def _model(inputs: Inputs, policy: hosted.Policy, config_text: str | None, config_name: str):
    """(label, spec, stored, notes) for the chosen source. Raises HeadroomError with a clear message."""
    if inputs.source == "catalog":
        e = catalog()[inputs.model] if inputs.model in catalog() else None
        if e is None:
            raise SourceError(f"unknown catalog model {inputs.model!r}")
        return e.title, catalog_spec(e.name), None, ()
    if inputs.source == "hub":
        if not inputs.hub:
            raise SourceError("enter a Hugging Face repo id, for example 'Qwen/Qwen2.5-7B-Instruct'")
        hub = _optional("app.hub")
        if hub is None or not hasattr(hub, "fetch_hub_model"):
            raise SourceError("hub loading is not available in this installation; upload the config.json instead")
        repo_id, _, revision = inputs.hub.strip().partition("@")
        with st.spinner(f"Reading {inputs.hub}'s config.json and safetensors headers from the hub..."):
            m = hub.fetch_hub_model(repo_id, revision or None, max_config_bytes=policy.hub_max_config_bytes,
                                    max_header_bytes=policy.hub_max_header_bytes, timeout_s=policy.hub_timeout_s)
        spec = _parse_text(m.config_text, inputs.approximate, inputs.hub)
        return inputs.hub, spec, getattr(m, "stored", None), tuple(getattr(m, "notes", ()) or ())
    if inputs.source == "path":
        if not policy.allow_local_paths:
            raise SourceError("local paths are disabled in hosted mode; upload the config.json instead")
        if not inputs.path.strip():
            raise SourceError("enter the path of a config.json or a model directory")
        text, name = _read_local(inputs.path)
        spec = _parse_text(text, inputs.approximate, name)
        stored, notes = None, ()
        root = os.path.expanduser(inputs.path.strip())
        if os.path.isdir(root):  # a local checkpoint: its safetensors headers give the exact stored bytes
            read_model_dir = getattr(_optional("planner.stored"), "read_model_dir", None)
            try:
                stored = read_model_dir(root) if read_model_dir else None
            except HeadroomError as e:
                notes = (f"safetensors headers not used: {e}",)
        return name, spec, stored, notes
    # upload / paste
    if not config_text:
        if inputs.upload:
            raise SourceError(f"this plan used the uploaded config {inputs.upload!r}, too large to travel in a "
                              "link: upload that file to reproduce it")
        raise SourceError("upload a config.json or paste its text")
    return config_name or "uploaded config", _parse_text(config_text, inputs.approximate, config_name), None, ()


def _gpu(inputs: Inputs) -> tuple[str, int]:
    cat = gpu_catalog()
    if inputs.gpu != CUSTOM_GPU and cat:
        g = cat.get(inputs.gpu or DEFAULT_GPU) or next(iter(cat.values()))
        return g.title, g.memory_bytes
    return f"custom {inputs.gpu_gib:g} GiB GPU", int(inputs.gpu_gib * 2**30)


def make_plan(inputs: Inputs, gpu_bytes: int) -> Plan:
    return Plan(
        weights=inputs.weights, kv_dtype=inputs.kv_dtype, batch=inputs.batch, context=inputs.context,
        prompt_tokens=inputs.prompt_tokens or None, engine=inputs.engine, attention=inputs.attention,
        cache=inputs.cache, mode=inputs.mode, tp=inputs.gpus, gpu_memory_bytes=gpu_bytes,
        gpu_memory_utilization=inputs.gpu_memory_utilization, max_num_seqs=inputs.max_num_seqs,
        max_num_batched_tokens=inputs.max_num_batched_tokens or None,
        n_gpu_layers=None if inputs.n_gpu_layers < 0 else inputs.n_gpu_layers, overrides=inputs.overrides,
    )


APPROXIMATE_LABEL = "Plan unsupported model types as llama-like (approximate)"


def _app_hint(message: str) -> str:
    """Planner messages name CLI flags; in the app the same switch is a checkbox."""
    return message.replace("(--approximate)", f"(tick \"{APPROXIMATE_LABEL}\" in the sidebar)")


def read_model(inputs: Inputs, policy: hosted.Policy, config_text: str | None = None, config_name: str = ""):
    """((label, spec, stored, notes), None) for the chosen source, or (None, the error message)."""
    try:
        return _model(inputs, policy, config_text, config_name), None
    except HeadroomError as e:
        return None, _app_hint(f"Model: {e}")
    except Exception as e:  # a bug or an unexpected network failure: a message, never a traceback
        _LOG.exception("reading the model failed")
        return None, f"Model: could not be read ({type(e).__name__}: {e}). Please report this."


def apple_vllm_error(inputs: Inputs) -> str | None:
    """vLLM has no Apple-GPU (Metal) backend: say so instead of a fit verdict."""
    g = gpu_catalog().get(inputs.gpu) if inputs.gpu != CUSTOM_GPU else None
    if inputs.engine == "vllm" and g is not None and g.vendor == "apple":
        return (f"vLLM does not run on Apple GPUs ({g.title}): it has no Metal backend. "
                "Choose the transformers or llama.cpp engine for this Mac, or an NVIDIA/AMD GPU for vLLM.")
    return None


def resolve(inputs: Inputs, policy: hosted.Policy, config_text: str | None = None, config_name: str = "",
            model=None) -> Resolved:
    """Build the model, plan and breakdown; every user-caused problem becomes ``error`` (never raises).

    ``model``: a :func:`read_model` answer already computed for these inputs (the sidebar reads the model
    before the workload widgets, to label the weight format "auto").
    """
    gpu_label, gpu_bytes = _gpu(inputs)
    base = Resolved(inputs=inputs, policy=policy, gpu_label=gpu_label, gpu_bytes=gpu_bytes, gpus=inputs.gpus)
    got, error = model if model is not None else read_model(inputs, policy, config_text, config_name)
    if error is not None:
        return replace(base, error=error)
    label, spec, stored, notes = got
    apple = apple_vllm_error(inputs)
    if apple:
        return replace(base, model_label=label, spec=spec, error=f"Plan: {apple}")
    try:
        plan = make_plan(inputs, gpu_bytes)
        key = _stored_key(stored)
        b = cached_estimate(spec, plan, stored, key)
        r = replace(base, model_label=label, spec=spec, plan=plan, breakdown=b, stored=stored, stored_key=key,
                    notes=notes)
        return replace(r, fit=fit_view(r, breakdown=b))
    except HeadroomError as e:
        return replace(base, model_label=label, spec=spec, error=_app_hint(f"Plan: {e}"))
    except Exception as e:  # a planner bug must not take the app down; the server log keeps the traceback
        _LOG.exception("planning failed")
        return replace(base, model_label=label, spec=spec,
                       error=f"Plan: the planner failed ({type(e).__name__}: {e}). Please report this.")


# ---------------------------------------------------------------------------------------------------
# Fit (planner.fit when present)


@dataclass(frozen=True)
class FitView:
    fits: bool
    free_bytes: int
    max_batch: int | None = None
    max_context: int | None = None
    kv_cache_tokens: int | None = None
    max_concurrency: float | None = None
    reason: str = ""
    used_bytes: int | None = None
    context_limit: int | None = None
    host_bytes: int | None = None  # llama.cpp: what stays in host RAM
    available: bool = True  # False: planner.fit is missing and only fits/free are known

    @property
    def capacity_bytes(self) -> int | None:
        """What the plan is measured against: one GPU (transformers), all GPUs (llama.cpp layer split),
        or vLLM's budget (gpu_memory_utilization x memory). None when unknown."""
        return None if self.used_bytes is None else self.used_bytes + self.free_bytes


def fits_quick(r: Resolved, plan: Plan, gpu_bytes: int, gpus: int) -> bool:
    """Whether exactly ``plan`` fits (planner.fit.fits_at; no search for the largest batch/context)."""
    fit_mod = _optional("planner.fit")
    if fit_mod is not None and hasattr(fit_mod, "fits_at"):
        return bool(_cached_fits_at(r.spec, plan, gpu_bytes, gpus))
    return estimate_for(r, replace(plan, tp=gpus)).total_bytes <= gpu_bytes


@lru_cache(maxsize=8192)
def _cached_fits_at(spec: ModelSpec, plan: Plan, gpu_bytes: int, gpus: int) -> bool:
    from planner.fit import fits_at

    return fits_at(spec, plan, gpu_bytes, gpus)


def free_and_reason(r: Resolved, plan: Plan, gpu_bytes: int, gpus: int, b: MemoryBreakdown) -> tuple[int, str]:
    """Free bytes and a one-line reason, without searching for the largest batch/context (Compare GPUs).

    Same meaning as planner.fit: transformers compares the per-GPU peak with one GPU, llama.cpp its GPU
    side with all GPUs together (layer split); vLLM asks planner.fit (its KV-pool answer is cheap).
    """
    if plan.engine == "vllm":
        fv = fit_view(r, plan, gpu_bytes, gpus, breakdown=b)
        return fv.free_bytes, fv.reason
    capacity = gpu_bytes * (gpus if plan.engine == "llamacpp" else 1)
    free = capacity - b.total_bytes
    where = f"{gpus} x {fmt_bytes(gpu_bytes, r.unit)}" if gpus > 1 else fmt_bytes(gpu_bytes, r.unit)
    per = " per GPU" if gpus > 1 and plan.engine != "llamacpp" else ""
    if free >= 0:
        return free, f"needs {fmt_bytes(b.total_bytes, r.unit)}{per} of {where}; {fmt_bytes(free, r.unit)} free"
    return free, f"needs {fmt_bytes(b.total_bytes, r.unit)}{per} but {where} has {fmt_bytes(capacity, r.unit)}"


def fit_view(r: Resolved, plan: Plan | None = None, gpu_bytes: int | None = None, gpus: int | None = None,
             breakdown: MemoryBreakdown | None = None) -> FitView:
    """planner.fit.fit of ``plan`` on ``gpus`` GPUs of ``gpu_bytes`` each (fits, free, largest batch/context)."""
    plan = plan or r.plan
    gpu_bytes = gpu_bytes or r.gpu_bytes
    gpus = gpus or r.gpus
    fit_mod = _optional("planner.fit")
    if fit_mod is not None and hasattr(fit_mod, "fit"):
        res = _cached_fit(r.spec, plan, gpu_bytes, gpus)
        return FitView(
            fits=bool(res.fits), free_bytes=int(res.free_bytes), max_batch=getattr(res, "max_batch", None),
            max_context=getattr(res, "max_context", None), kv_cache_tokens=getattr(res, "kv_cache_tokens", None),
            max_concurrency=getattr(res, "max_concurrency", None), reason=str(getattr(res, "reason", "")),
            used_bytes=getattr(res, "used_bytes", None), context_limit=getattr(res, "context_limit", None),
            host_bytes=getattr(res, "host_bytes", None),
        )
    b = breakdown or estimate_for(r, plan)
    return FitView(fits=b.total_bytes <= gpu_bytes, free_bytes=gpu_bytes - b.total_bytes, available=False)


@lru_cache(maxsize=2048)
def _cached_fit(spec: ModelSpec, plan: Plan, gpu_bytes: int, gpus: int):
    from planner.fit import fit

    return fit(spec, plan, gpu_bytes, gpus)


# ---------------------------------------------------------------------------------------------------
# Sidebar


def _ensure(key: str, default) -> None:
    """Give a widget its value before it is created (link value, else default); never both value= and state."""
    if key not in st.session_state:
        st.session_state[key] = default


def _init_from_link(policy: hosted.Policy, ch: state.Choices) -> None:
    if st.session_state.get("hr__init"):
        return
    st.session_state["hr__init"] = True
    params = {k: st.query_params.get_all(k) for k in st.query_params}
    inputs, errors = state.from_query(params, replace(ch, sources=state.SOURCES))
    if inputs.engine == "llamacpp" and "weights" not in params and not inputs.weights.startswith("gguf-"):
        inputs = replace(inputs, weights=LLAMACPP_WEIGHTS)  # llama.cpp runs GGUF files (see _engine_changed)
    if inputs.path and not policy.allow_local_paths:
        errors.append("local paths are disabled in hosted mode; the catalog model is shown instead")
        inputs = replace(inputs, source="catalog", path="")
    if inputs.config:
        try:
            st.session_state[PASTE_KEY] = state.decode_config(inputs.config).decode("utf-8", errors="replace")
        except HeadroomError as e:  # already validated; kept for safety
            errors.append(str(e))
    for name, key in KEYS.items():
        st.session_state[key] = getattr(inputs, name)
    for name, n in inputs.overrides:
        st.session_state[OVERRIDE_KEY + name] = n / 2**20
    st.session_state["hr__link_errors"] = errors
    st.session_state["hr__link_upload"] = inputs.upload


def _config_input() -> tuple[str | bytes | None, str, str]:
    """(config text, its name, link token) from the uploader, else the paste box."""
    up = st.sidebar.file_uploader("config.json", type=["json"], key=UPLOAD_KEY,
                                  help=f"A model's config.json (at most {MAX_CONFIG_BYTES // 2**20} MiB).")
    _ensure(PASTE_KEY, "")
    st.sidebar.text_area("or paste config.json", key=PASTE_KEY, height=100)
    if up is not None:
        return up.getvalue(), up.name, ""  # bytes: load_config_text checks size and encoding
    text = st.session_state.get(PASTE_KEY) or ""
    return (text if text.strip() else None), "pasted config.json", ""


LLAMACPP_WEIGHTS = "gguf-Q4_K_M"  # llama.cpp runs GGUF files; the most common file type


def _engine_changed() -> None:
    """llama.cpp runs GGUF files only: switching to it picks a GGUF format (and back, bf16)."""
    w = st.session_state.get(KEYS["weights"], "")
    if st.session_state.get(KEYS["engine"]) == "llamacpp" and not str(w).startswith("gguf-"):
        st.session_state[KEYS["weights"]] = LLAMACPP_WEIGHTS
        st.session_state["hr__note"] = f"llama.cpp runs GGUF files: weights set to {LLAMACPP_WEIGHTS}."
    elif st.session_state.get(KEYS["engine"]) != "llamacpp" and str(w).startswith("gguf-"):
        st.session_state[KEYS["weights"]] = state.DEFAULTS.weights
        st.session_state["hr__note"] = f"GGUF files are llama.cpp's: weights set to {state.DEFAULTS.weights}."


def formats_for_engine(engine: str) -> list[str]:
    """Weight formats worth offering for an engine (llama.cpp: GGUF only)."""
    names = [n for n in weight_formats() if n != "auto"]
    if engine == "llamacpp":
        return [n for n in names if n.startswith("gguf-")]
    return [n for n in names if not n.startswith("gguf-")]


#: Page widgets whose values should survive a visit to another page (Streamlit drops the state of
#: widgets that are not rendered; re-assigning the key keeps it).
PERSISTENT_PREFIXES = ("hr_ex_", "hr_cmp_")


def _keep_page_widgets() -> None:
    for key in list(st.session_state):
        if isinstance(key, str) and key.startswith(PERSISTENT_PREFIXES):
            st.session_state[key] = st.session_state[key]


PROFILE_URL_PATH = "profile"  # the page with its own inputs: the plan sidebar is not drawn there


def keep_plan_state() -> None:
    """On a page without the plan sidebar: keep its widget values (Streamlit drops the state of widgets not
    drawn in a run) and the link, so coming back shows the same plan."""
    keys = [*KEYS.values(), PASTE_KEY]
    keys += [k for k in st.session_state if isinstance(k, str) and k.startswith(OVERRIDE_KEY)]
    for key in keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    _keep_page_widgets()


def sidebar(policy: hosted.Policy) -> Resolved:
    """Render the plan inputs, sync the link, resolve the plan and store it for the page."""
    _keep_page_widgets()
    ch = choices(policy)
    _init_from_link(policy, ch)
    sb = st.sidebar
    for msg in st.session_state.get("hr__link_errors", []):
        sb.error(f"Link: {msg}")

    d = state.DEFAULTS
    _ensure(KEYS["unit"], d.unit)
    sb.radio("Units", state.UNITS, key=KEYS["unit"], horizontal=True,
             help="GiB = 2^30 bytes (what nvidia-smi and PyTorch show); GB = 10^9 bytes (what vendors market).")

    sb.header("Model")
    _ensure(KEYS["source"], d.source)
    if st.session_state[KEYS["source"]] not in ch.sources:
        st.session_state[KEYS["source"]] = d.source
    source = sb.radio("Source", ch.sources, key=KEYS["source"], format_func=SOURCE_LABELS.get)
    config_text, config_name = None, ""
    if source == "catalog":
        _ensure(KEYS["model"], d.model)
        if st.session_state[KEYS["model"]] not in ch.models:
            st.session_state[KEYS["model"]] = d.model
        cat = catalog()
        sb.selectbox("Catalog model (type to search)", ch.models, key=KEYS["model"],
                     format_func=lambda n: f"{cat[n].title} ({n})")
    elif source == "hub":
        _ensure(KEYS["hub"], d.hub)
        sb.text_input("Hub repo id", key=KEYS["hub"], placeholder="Qwen/Qwen2.5-7B-Instruct",
                      help="org/name, optionally @revision (branch, tag or commit). Only config.json and "
                           "safetensors headers are read; no weights, no remote code.")
    elif source == "upload":
        link_upload = st.session_state.get("hr__link_upload")
        config_text, config_name, _ = _config_input()
        if link_upload and not config_text:
            sb.warning(f"This link's plan used the uploaded config **{link_upload}**, which is too large to "
                       "travel in a link: upload it to reproduce the plan.")
    elif source == "path":
        _ensure(KEYS["path"], d.path)
        sb.text_input("config.json or model directory", key=KEYS["path"])
    _ensure(KEYS["approximate"], d.approximate)
    sb.checkbox(APPROXIMATE_LABEL, key=KEYS["approximate"])
    model_inputs = replace(d, **{n: st.session_state.get(KEYS[n], getattr(d, n))
                                 for n in ("source", "model", "hub", "path", "approximate")},
                           upload=st.session_state.get("hr__link_upload") or "")
    model = read_model(model_inputs, policy, config_text, config_name)
    spec = model[0][1] if model[0] is not None else None

    sb.header("Workload")
    fmts = weight_formats(spec)
    _ensure(KEYS["weights"], d.weights)
    if st.session_state[KEYS["weights"]] not in fmts:
        st.session_state[KEYS["weights"]] = d.weights
    sb.selectbox("Weight format", list(fmts), key=KEYS["weights"], format_func=lambda n: f"{n}: {fmts[n]}"
                 if n != "auto" else fmts[n],
                 help="auto = the checkpoint's own format (its quantization_config, else its torch_dtype), "
                      "as the command line plans it; pick another format to plan a conversion.")
    c1, c2 = sb.columns(2)
    _ensure(KEYS["batch"], d.batch)
    c1.number_input("Batch", step=1, key=KEYS["batch"])
    _ensure(KEYS["context"], d.context)
    c2.number_input("Context (tokens)", step=1024, key=KEYS["context"],
                    help="Tokens held per sequence: prompt + generated.")
    _ensure(KEYS["prompt_tokens"], d.prompt_tokens)
    sb.number_input("Prompt tokens prefilled at once (0 = whole context)", step=512, key=KEYS["prompt_tokens"])
    number_errors = invalid_numbers()
    for msg in number_errors:
        sb.error(msg)

    sb.header("Engine")
    _ensure(KEYS["engine"], d.engine)
    engine = sb.selectbox("Engine", ENGINES, key=KEYS["engine"], on_change=_engine_changed)
    if st.session_state.get("hr__note"):
        sb.info(st.session_state.pop("hr__note"))
    kv_options = kv_dtypes(engine)
    _ensure(KEYS["kv_dtype"], d.kv_dtype)
    if st.session_state[KEYS["kv_dtype"]] not in kv_options:
        st.session_state[KEYS["kv_dtype"]] = d.kv_dtype
    sb.selectbox("KV-cache dtype", kv_options, key=KEYS["kv_dtype"],
                 help="auto = the weights' compute dtype (llama.cpp: f16)")
    _ensure(KEYS["attention"], d.attention)
    attention = sb.selectbox("Attention", ATTENTIONS, key=KEYS["attention"])
    used = effective_attention(spec, attention)
    if used and used != attention:
        sb.caption(f"This model runs **{used}** attention in transformers, whatever is chosen here "
                   f"({spec.family} has no {attention} path); the plan uses {used}.")
    if engine == "transformers":
        _ensure(KEYS["cache"], d.cache)
        sb.selectbox("Cache", CACHES, key=KEYS["cache"], help="DynamicCache (default) or StaticCache")
        _ensure(KEYS["mode"], d.mode)
        sb.selectbox("Mode", MODES, key=KEYS["mode"],
                     help="generate() computes last-position logits only; a plain forward computes all")
    elif engine == "vllm":
        _ensure(KEYS["gpu_memory_utilization"], d.gpu_memory_utilization)
        sb.slider("gpu_memory_utilization", 0.05, 1.0, step=0.01, key=KEYS["gpu_memory_utilization"])
        _ensure(KEYS["max_num_seqs"], d.max_num_seqs)
        sb.number_input("max_num_seqs", min_value=1, max_value=1 << 20, key=KEYS["max_num_seqs"])
        _ensure(KEYS["max_num_batched_tokens"], d.max_num_batched_tokens)
        sb.number_input("max_num_batched_tokens (0 = default)", min_value=0, max_value=1 << 24,
                        key=KEYS["max_num_batched_tokens"])
    elif engine == "llamacpp":
        _ensure(KEYS["n_gpu_layers"], d.n_gpu_layers)
        sb.number_input("n_gpu_layers (-1 = all)", min_value=-1, max_value=100_000, key=KEYS["n_gpu_layers"])

    sb.header("Hardware")
    gcat = gpu_catalog()
    gpu_options = [*gcat, CUSTOM_GPU]
    _ensure(KEYS["gpu"], DEFAULT_GPU if DEFAULT_GPU in gcat else CUSTOM_GPU)
    if st.session_state[KEYS["gpu"]] in ("", None) or st.session_state[KEYS["gpu"]] not in gpu_options:
        st.session_state[KEYS["gpu"]] = DEFAULT_GPU if DEFAULT_GPU in gcat else CUSTOM_GPU
    unit = st.session_state[KEYS["unit"]]
    gpu = sb.selectbox("GPU", gpu_options, key=KEYS["gpu"],
                       format_func=lambda n: "custom memory" if n == CUSTOM_GPU
                       else f"{gcat[n].title} ({fmt_bytes(gcat[n].memory_bytes, unit, 1)})")
    if gpu == CUSTOM_GPU:
        _ensure(KEYS["gpu_gib"], d.gpu_gib)
        sb.number_input("Memory per GPU (GiB)", min_value=0.5, max_value=float(1 << 20), step=1.0,
                        key=KEYS["gpu_gib"])
        if not gcat:
            sb.caption("The GPU catalog is not available; enter the memory of one GPU.")
    _ensure(KEYS["gpus"], d.gpus)
    sb.number_input("GPUs", min_value=1, max_value=64, step=1, key=KEYS["gpus"],
                    help="transformers and vLLM: tensor parallel (each GPU holds its shard); "
                         "llama.cpp: layers split across the GPUs")

    overrides = _overrides_widgets(sb, engine)

    values = {name: st.session_state.get(key, getattr(d, name)) for name, key in KEYS.items()}
    if values["gpu"] in ("", None):
        values["gpu"] = DEFAULT_GPU
    values["gpu_gib"] = float(values["gpu_gib"])
    values["gpu_memory_utilization"] = float(values["gpu_memory_utilization"])
    for k in ("batch", "context", "prompt_tokens", "gpus", "max_num_seqs", "max_num_batched_tokens", "n_gpu_layers"):
        values[k] = int(values[k] if values[k] is not None else getattr(d, k))
    inputs = Inputs(**values, overrides=overrides)
    apple = apple_vllm_error(inputs)
    if apple:
        sb.error(apple)

    # An uploaded/pasted config travels in the link when small enough; else the link names the file.
    if source == "upload" and config_text:
        token = None
        try:
            token = state.encode_config(load_config_text(config_text, source=config_name))
        except HeadroomError:
            pass  # the parse error is reported by resolve()
        inputs = replace(inputs, config=token or "", upload="" if token else config_name)
    elif source == "upload" and st.session_state.get("hr__link_upload"):
        inputs = replace(inputs, upload=st.session_state["hr__link_upload"])

    if number_errors:  # no plan from a value the user did not mean; the link keeps the last good plan
        gpu_label, gpu_bytes = _gpu(inputs)
        r = Resolved(inputs=inputs, policy=policy, gpu_label=gpu_label, gpu_bytes=gpu_bytes, gpus=inputs.gpus,
                     error="Plan: " + " ".join(number_errors))
        st.session_state[RESOLVED_KEY] = r
        return r
    r = resolve(inputs, policy, config_text, config_name, model=model)
    st.session_state[RESOLVED_KEY] = r
    _sync_link(inputs)
    _share_control(sb, inputs)
    return r


#: Number fields a user types: (lowest, highest, label, what is expected). The widgets carry no min/max:
#: with one, a browser keeps showing a typed 0 while silently planning the previous value; without, the
#: typed value arrives and is reported here, next to the field, and no plan is made from it.
NUMBER_LIMITS = {
    "batch": (1, 1 << 20, "Batch", "a whole number of sequences"),
    "context": (1, 1 << 24, "Context", "a whole number of tokens per sequence"),
    "prompt_tokens": (0, 1 << 24, "Prompt tokens", "a whole number of tokens (0 = the whole context)"),
}


def invalid_numbers() -> list[str]:
    """One message per typed number outside its range (naming the field and what is expected)."""
    out = []
    for name, (lo, hi, label, what) in NUMBER_LIMITS.items():
        v = st.session_state.get(KEYS[name])
        if v is None or not lo <= v <= hi:
            shown = "nothing" if v is None else f"{v:,}"
            out.append(f"{label} must be {what} from {lo:,} to {hi:,}; got {shown}.")
    return out


def effective_attention(spec: ModelSpec | None, attention: str) -> str | None:
    """The attention transformers really uses for this model (planner.activations), None when unknown."""
    fn = getattr(_optional("planner.activations"), "effective_attention", None)
    if spec is None or fn is None:
        return None
    try:
        return fn(spec, attention)
    except Exception:  # a display hint must never break the sidebar
        return None


def _overrides_widgets(sb, engine: str) -> tuple[tuple[str, int], ...]:
    """One number box per assumption of this engine (MiB); empty = the planner's default."""
    assumptions = overhead_assumptions(engine)
    with sb.expander("Overhead assumptions", expanded=False):
        if not assumptions:
            st.caption(f"The planner lists no overridable assumptions for {engine} in this build.")
            return ()
        st.caption("Leave a box empty for the planner's default; enter your measured value (MiB) to replace it.")
        out = []
        for a in assumptions:
            key = OVERRIDE_KEY + a.name
            _ensure(key, None)
            default = a.default_text or (f"{a.default_bytes / 2**20:,.1f} MiB" if a.default_bytes is not None else "")
            st.number_input(a.name, value=None, min_value=0.0, max_value=float(1 << 30), step=16.0, key=key,
                            placeholder=f"default: {default}" if default else "default",
                            help=(a.description + (f". Source: {a.source}" if a.source else "")).strip() or None)
            value = st.session_state.get(key)
            if value is not None:
                out.append((a.name, int(round(float(value) * 2**20))))
        return tuple(sorted(out))


def _sync_link(inputs: Inputs) -> None:
    q = state.to_query(inputs)
    current = {k: st.query_params.get(k) for k in st.query_params}
    if current != q:
        st.query_params.from_dict(q)


def share_link(inputs: Inputs) -> str:
    """The absolute link of the current page with every input in its query string."""
    base = ""
    try:
        base = st.context.url or ""
    except Exception:
        base = ""
    base = base.split("?", 1)[0] or "http://localhost:8501/"
    return f"{base}?{urlencode(state.to_query(inputs))}"


def _share_control(sb, inputs: Inputs) -> None:
    sb.header("Share")
    link = share_link(inputs)
    sb.code(link, language=None, wrap_lines=True)
    sb.link_button("Open this plan in a new tab", link, key="hr_share_open")
    sb.caption("This link reproduces the plan exactly (the address bar always holds it too)."
               + (" The uploaded config is too large to travel in a link; the link names it instead."
                  if inputs.upload else ""))


# ---------------------------------------------------------------------------------------------------
# Sweeps for Explore and Compare (cached; the current model and plan vary only along the swept axes)

EXPLORE_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
EXPLORE_CONTEXTS = tuple(2**k for k in range(9, 21))  # 512 .. 1,048,576 tokens


@st.cache_data(max_entries=64, show_spinner=False)
def _sweep(spec: ModelSpec, plan: Plan, batches: tuple[int, ...], contexts: tuple[int, ...], weights: str,
           gpu_bytes: int, gpus: int, _stored=None, stored_key: str = ""):
    """planner.sweep.sweep for one weight format (vectorized over batch x context), per GPU."""
    from planner.sweep import sweep

    return sweep(spec, plan, batch=list(batches), context=list(contexts), weights=[weights],
                 kv_dtype=[plan.kv_dtype], device_bytes=gpu_bytes, gpus=gpus, stored=_stored)


def _estimate_grid(r: Resolved, formats, batches, contexts):
    """Rows (weights, batch, context, total_bytes, free_bytes, fits) from estimate() at every point, so the
    numbers are exactly the Plan page's. Capacity: one GPU (per-GPU totals), all GPUs for llama.cpp."""
    import pandas as pd

    capacity = r.gpu_bytes * (r.gpus if r.plan.engine == "llamacpp" else 1)
    rows, errors = [], []
    for f in formats:
        try:
            for bsz in batches:
                for c in contexts:
                    b = estimate_for(r, replace(r.plan, weights=f, batch=bsz, context=c, prompt_tokens=None,
                                                max_cache_len=None))
                    rows.append({"weights": f, "batch": bsz, "context": c, "total_bytes": b.total_bytes,
                                 "free_bytes": capacity - b.total_bytes, "fits": b.total_bytes <= capacity})
        except HeadroomError as e:
            errors.append(f"{f}: {e}")
            rows = [row for row in rows if row["weights"] != f]
    cols = ["weights", "batch", "context", "total_bytes", "free_bytes", "fits"]
    return pd.DataFrame(rows, columns=cols), errors


def sweep_frame(r: Resolved, formats, batches, contexts):
    """Rows (weights, batch, context, total_bytes, fits, free_bytes ...) per GPU, and one message per
    format that cannot be planned (the others are still shown).

    vLLM reserves its whole budget whatever the context; there ``fits``/``free_bytes`` are about the KV
    pool (planner.sweep, the same meaning as planner.fit). Other engines: estimate() at every point.
    """
    import pandas as pd

    if r.plan.engine != "vllm" or _optional("planner.sweep") is None:
        return _estimate_grid(r, formats, batches, contexts)
    frames, errors = [], []
    for f in formats:
        try:
            frames.append(_sweep(r.spec, r.plan, tuple(batches), tuple(contexts), f, r.gpu_bytes, r.gpus,
                                 r.stored, r.stored_key))
        except HeadroomError as e:
            errors.append(f"{f}: {e}")
    if not frames:
        return pd.DataFrame(columns=["weights", "batch", "context", "total_bytes", "fits", "free_bytes"]), errors
    return pd.concat(frames, ignore_index=True), errors


def context_sweep(r: Resolved, formats: tuple[str, ...], batches: tuple[int, ...], contexts: tuple[int, ...]):
    """DataFrame (series, format, batch, context, total_bytes) and messages for formats that failed."""
    df, errors = _estimate_grid(r, formats, batches, contexts)
    df = df.rename(columns={"weights": "format"})
    df.insert(0, "series", [f"{f} · batch {b}" for f, b in zip(df["format"], df["batch"], strict=True)])
    return df, errors


def grid_sweep(r: Resolved, batches: tuple[int, ...], contexts: tuple[int, ...]):
    """DataFrame (batch, context, total_bytes, fits, free_bytes) of the current plan over batch x context."""
    return sweep_frame(r, (r.plan.weights,), batches, contexts)


def largest_context(r: Resolved, plan: Plan) -> int:
    """Largest context (tokens) at ``plan.batch`` that fits; 0 when nothing fits."""
    fv = fit_view(r, plan)
    if fv.available:
        return int(fv.max_context or 0)
    return _largest_context_search(r, plan)


def _largest_context_search(r: Resolved, plan: Plan) -> int:
    """Binary search over context with estimate() (used only while planner.fit is missing)."""
    from planner.estimate import MAX_CONTEXT

    def fits(c: int) -> bool:
        return estimate_for(r, replace(plan, context=c, prompt_tokens=None)).total_bytes <= r.gpu_bytes

    if not fits(1):
        return 0
    lo, hi = 1, MAX_CONTEXT
    if fits(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def max_context_per_format(r: Resolved, formats: tuple[str, ...]):
    """DataFrame (format, max_context, note) at the current batch on the current GPUs."""
    import pandas as pd

    rows = []
    for f in formats:
        try:
            rows.append({"format": f, "max_context": largest_context(r, replace(r.plan, weights=f)), "note": ""})
        except HeadroomError as e:
            rows.append({"format": f, "max_context": 0, "note": str(e)})
    return pd.DataFrame(rows, columns=["format", "max_context", "note"])


HOURS_PER_MONTH = 730  # 365 * 24 / 12


def parse_prices(text: str, gpu_names) -> tuple[dict[str, float], list[str]]:
    """Lines of ``gpu-name = dollars per GPU-hour`` -> {name: price}, and one message per bad line."""
    prices, errors = {}, []
    known = set(gpu_names)
    for i, line in enumerate(text.splitlines()[:200], 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or name not in known:
            errors.append(f"line {i}: expected 'gpu-name = price' with a catalog GPU name, got {line[:60]!r}")
            continue
        try:
            price = float(value.strip().lstrip("$"))
        except ValueError:
            errors.append(f"line {i}: price {value.strip()[:30]!r} is not a number")
            continue
        if not (price >= 0 and price < 1e6):
            errors.append(f"line {i}: price must be from 0 to 1,000,000 per GPU-hour")
            continue
        prices[name] = price
    return prices, errors


def compare_gpus(r: Resolved, max_gpus: int, prices: dict[str, float], all_counts: bool):
    """One row per catalog GPU (its smallest fitting count, or why none fits), or per (GPU, count).

    Fitting uses planner.fit (per engine: per-GPU peak for transformers, KV pool for vLLM, layer split
    for llama.cpp); ``plan_per_gpu_bytes`` is the estimate's per-GPU total at that count.
    """
    import pandas as pd

    rows = []
    for g in gpu_catalog().values():
        found = False
        valid: list[int] = []  # counts the planner accepts (tensor parallelism must divide the heads)
        first_error = apple_vllm_error(replace(r.inputs, gpu=g.name)) or ""
        # an Apple GPU is one device with unified memory: there is no tensor parallelism over several
        counts = () if first_error else range(1, (1 if g.vendor == "apple" else max_gpus) + 1)
        for n in counts:
            plan = replace(r.plan, tp=n, gpu_memory_bytes=g.memory_bytes)
            try:
                if not fits_quick(r, plan, g.memory_bytes, n):
                    valid.append(n)
                    continue
                b = estimate_for(r, plan)
                free, why = free_and_reason(r, plan, g.memory_bytes, n, b)
            except HeadroomError as e:
                first_error = first_error or str(e)
                continue
            valid.append(n)
            price = prices.get(g.name)
            rows.append({
                "gpu": g.name, "title": g.title, "gpus": n, "memory_per_gpu_bytes": g.memory_bytes,
                "plan_per_gpu_bytes": b.total_bytes, "free_bytes": free, "fits": True,
                "cost_per_hour": price * n if price is not None else None,
                "cost_per_month": price * n * HOURS_PER_MONTH if price is not None else None,
                "reason": why,
            })
            found = True
            if not all_counts:
                break
        if not found:
            reason = first_error or f"does not fit on 1 to {max_gpus} GPUs"
            if valid:  # say why at the largest count the planner accepts
                n = valid[-1]
                try:
                    plan = replace(r.plan, tp=n, gpu_memory_bytes=g.memory_bytes)
                    _, why = free_and_reason(r, plan, g.memory_bytes, n, estimate_for(r, plan))
                    reason = f"at {n} GPU{'s' * (n > 1)}: {why}"
                except HeadroomError as e:
                    reason = str(e)
            rows.append({
                "gpu": g.name, "title": g.title, "gpus": None, "memory_per_gpu_bytes": g.memory_bytes,
                "plan_per_gpu_bytes": None, "free_bytes": None, "fits": False, "cost_per_hour": None,
                "cost_per_month": None, "reason": reason,
            })
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["_total_mem"] = df["memory_per_gpu_bytes"] * df["gpus"].fillna(0)
    df["_cost"] = df["cost_per_hour"].fillna(float("inf"))
    df = df.sort_values(["fits", "_cost", "_total_mem", "gpus"], ascending=[False, True, True, True])
    return df.drop(columns=["_total_mem", "_cost"]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------
# The planner's documented constants (Assumptions page)

PLANNER_MODULES = ("planner.overhead", "planner.engines", "planner.kv_cache", "planner.activations",
                   "planner.estimate", "planner.fit", "planner.formats", "planner.spec")


@st.cache_data(show_spinner=False)
def planner_constants() -> list[dict]:
    """Every module-level UPPER_CASE number in the planner, with the ``#:`` comment that documents it."""
    import re

    rows = []
    pattern = re.compile(r"^([A-Z][A-Z0-9_]*)\s*(?::[^=]*)?=\s*(.+?)\s*(?:#\s*(.*))?$")
    for name in PLANNER_MODULES:
        mod = _optional(name)
        if mod is None or not getattr(mod, "__file__", None):
            continue
        try:
            with open(mod.__file__, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        doc: list[str] = []
        for line in lines:
            if line.startswith("#:"):
                doc.append(line[2:].strip())
                continue
            m = pattern.match(line)
            if m:
                value = getattr(mod, m.group(1), None)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    note = " ".join(doc) or (m.group(3) or "")
                    rows.append({"module": name, "constant": m.group(1), "value": value, "expression": m.group(2),
                                 "what and where from": note})
            doc = [] if not line.startswith("#:") else doc
        rows.sort(key=lambda r: (PLANNER_MODULES.index(r["module"]), r["constant"]))
    return rows
