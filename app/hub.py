"""Hugging Face hub access: a repo's ``config.json`` and its safetensors headers, never its weights.

The only module in Headroom that talks to the network. It fetches ``config.json`` with
``huggingface_hub.hf_hub_download`` (so it lands in, and is served from, the usual huggingface_hub cache),
and reads the header of each safetensors file with HTTP range requests (the first bytes of the file only;
never the tensor data), so :mod:`planner.stored` can give exact stored bytes. Headers are cached on disk
next to the huggingface_hub cache, keyed by commit sha, and results are kept in process for a while.

- ``HF_TOKEN`` (or a token saved by ``hf auth login``) is sent for gated and private repos.
- ``HF_ENDPOINT`` and ``HF_HUB_CACHE`` are read at call time (huggingface_hub reads them at import).
- ``trust_remote_code`` does not exist here: nothing from the repo is executed, only JSON is parsed.
- Every failure is a :class:`planner.errors.SourceError` with one sentence saying what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from planner.errors import HeadroomError, SourceError
from planner.spec import MAX_CONFIG_BYTES, ModelSpec, load_config_text, parse_config
from planner.stored import (
    INDEX_FILE,
    MAX_HEADER_BYTES,
    MAX_INDEX_BYTES,
    SINGLE_FILE,
    StoredWeights,
    header_length,
    parse_header,
    shard_files,
)

DEFAULT_TIMEOUT_S = 10.0
#: First request for a header asks for this many bytes (huggingface_hub does the same: most headers fit).
FIRST_RANGE_BYTES = 100_000
#: How long a result for a branch name (``main``) is reused in process; a commit sha is reused forever.
BRANCH_TTL_S = 600.0
HEADER_CACHE_DIR = "headroom-safetensors-headers"

# Hub naming rules: letters, digits, '-', '_', '.'; no '--' or '..'; at most 96 characters per part.
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"^(?:{_NAME}/)?{_NAME}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_SHA = re.compile(r"^[0-9a-f]{40}$")


class HubUnavailable(SourceError):
    """The hub (or the network, or the cache) could not provide a file; the message says what to do."""


@dataclass(frozen=True)
class HubModel:
    """What Headroom knows about one hub repo at one commit.

    ``config_text`` is the repo's config.json (:meth:`config` gives a fresh dict, :meth:`spec` parses it).
    ``stored`` is None when the repo has no safetensors files (or their headers could not be fetched;
    ``notes`` then says why). ``sha`` is the resolved commit (None only when served from an old cache).
    """

    repo_id: str
    revision: str | None
    sha: str | None
    config_text: str
    stored: StoredWeights | None
    notes: tuple[str, ...] = field(default=())

    def config(self) -> dict[str, Any]:
        """The config.json as a fresh dict (callers may change it freely)."""
        return json.loads(self.config_text)

    def spec(self, approximate: bool = False) -> ModelSpec:
        return parse_config(self.config(), approximate=approximate, name=self.repo_id)


def validate_repo_id(repo_id: object) -> str:
    """The repo id, stripped, or SourceError saying what a repo id looks like."""
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id.strip()) or ".." in repo_id or "--" in repo_id:
        raise SourceError(
            f"{repo_id!r} is not a Hugging Face repo id; expected 'org/name' such as "
            "'meta-llama/Llama-3.1-8B' (letters, digits, '-', '_', '.')"
        )
    return repo_id.strip()


def _validate_revision(revision: object) -> str | None:
    if revision is None:
        return None
    if not isinstance(revision, str) or not _REVISION.match(revision) or ".." in revision:
        raise SourceError(f"{revision!r} is not a valid revision; expected a branch, tag or commit sha")
    return revision


# -------------------------------------------------------------------------------------------------------
# in-process cache
# -------------------------------------------------------------------------------------------------------

_cache: dict[tuple, tuple[float, HubModel]] = {}
_cache_lock = threading.Lock()
_CACHE_MAX = 128


def clear_cache() -> None:
    """Forget in-process results (the on-disk huggingface_hub cache is kept)."""
    with _cache_lock:
        _cache.clear()


def fetch_hub_model(
    repo_id: str,
    revision: str | None = None,
    *,
    max_config_bytes: int = MAX_CONFIG_BYTES,
    max_header_bytes: int = MAX_HEADER_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    token: str | None = None,
) -> HubModel:
    """config.json and safetensors headers of ``repo_id`` at ``revision`` (default: main).

    ``token``: defaults to ``HF_TOKEN`` from the environment, else a token saved by ``hf auth login``.
    Raises :class:`SourceError` (bad repo id, missing repo or file, gated without access, offline with
    nothing cached, network error, oversized config or header).
    """
    repo_id = validate_repo_id(repo_id)
    revision = _validate_revision(revision)
    if token is None:
        token = os.environ.get("HF_TOKEN") or None
    endpoint = _endpoint()
    token_key = hashlib.sha256(token.encode()).hexdigest() if token else None
    key = (endpoint, repo_id, revision, max_config_bytes, max_header_bytes, token_key)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit and (now - hit[0] < BRANCH_TTL_S or (revision and _SHA.match(revision))):
            return hit[1]
    model = _Fetch(repo_id, revision, endpoint, token, max_config_bytes, max_header_bytes, timeout_s).run()
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.pop(next(iter(_cache)))
        _cache[key] = (now, model)
    return model


def _endpoint() -> str:
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _cache_dir() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


class _Fetch:
    """One fetch of one repo; methods map every huggingface_hub/httpx error to a SourceError."""

    def __init__(self, repo_id, revision, endpoint, token, max_config_bytes, max_header_bytes, timeout_s):
        self.repo_id, self.revision, self.endpoint, self.token = repo_id, revision, endpoint, token
        self.max_config_bytes, self.max_header_bytes, self.timeout_s = max_config_bytes, max_header_bytes, timeout_s
        self.cache_dir = _cache_dir()
        self.offline = _offline()
        self.notes: list[str] = []

    # -- errors
    def _explain(self, e: BaseException, what: str) -> HubUnavailable:
        from huggingface_hub import errors as hf

        rid, rev = self.repo_id, self.revision or "main"
        local = "or use --config with a local copy of the model directory"
        if isinstance(e, hf.GatedRepoError):
            if self.token:
                return HubUnavailable(
                    f"{rid} is gated and your HF_TOKEN has no access: accept its license at "
                    f"https://huggingface.co/{rid} with the token's account, {local}"
                )
            return HubUnavailable(f"{rid} is a gated repo: set HF_TOKEN to a token of an account that has "
                               f"accepted its license, {local}")
        if isinstance(e, hf.RepositoryNotFoundError):
            return HubUnavailable(f"no model repo {rid!r} on the hub (or it is private): check the repo id, set "
                               f"HF_TOKEN for a private repo, {local}")
        if isinstance(e, hf.RevisionNotFoundError):
            return HubUnavailable(f"{rid} has no revision {rev!r}: check --revision (a branch, tag or commit sha)")
        if isinstance(e, hf.RemoteEntryNotFoundError):
            return HubUnavailable(f"{rid} at {rev} has no {what}: is it a transformers model repo? "
                               f"Otherwise {local}")
        if isinstance(e, (hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled)):
            return HubUnavailable(f"cannot reach the hub ({self.endpoint}) and {rid}'s {what} is not in the local "
                               f"cache ({self.cache_dir}): check the network and HF_HUB_OFFLINE, {local}")
        if isinstance(e, hf.HfHubHTTPError):
            status = getattr(getattr(e, "response", None), "status_code", None)
            return HubUnavailable(f"the hub answered HTTP {status} for {rid}'s {what}: try again later, {local}")
        return HubUnavailable(f"cannot reach the hub ({self.endpoint}) for {rid}'s {what} "
                           f"({type(e).__name__}): check the network, {local}")

    def _call(self, what: str, fn, *args, **kwargs):
        import httpx2
        from huggingface_hub import errors as hf

        try:
            return fn(*args, **kwargs)
        except HeadroomError:
            raise
        except (hf.HfHubHTTPError, hf.EntryNotFoundError, hf.OfflineModeIsEnabled, httpx2.HTTPError,
                OSError, ValueError) as e:
            raise self._explain(e, what) from None

    # -- steps
    def run(self) -> HubModel:
        from huggingface_hub.constants import DEFAULT_REVISION

        rev = self.revision or DEFAULT_REVISION
        sha, text = self._config(rev)
        stored = self._stored(sha or rev)
        return HubModel(self.repo_id, self.revision, sha, text, stored, tuple(self.notes))

    def _metadata(self, filename: str, rev: str):
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        url = hf_hub_url(self.repo_id, filename, revision=rev, endpoint=self.endpoint)
        return get_hf_file_metadata(url, token=self.token, timeout=self.timeout_s)

    def _download(self, filename: str, rev: str, max_bytes: int) -> tuple[str | None, bytes]:
        """(commit sha, content) of a small file, via the huggingface_hub cache; size checked first online."""
        import httpx2
        from huggingface_hub import errors as hf
        from huggingface_hub import hf_hub_download

        sha = None
        local_only = self.offline
        if not self.offline:
            try:
                meta = self._metadata(filename, rev)
                sha = meta.commit_hash
                if meta.size is not None and meta.size > max_bytes:
                    raise SourceError(f"{self.repo_id}'s {filename} is {meta.size:,} bytes; at most "
                                      f"{max_bytes:,} bytes are accepted")
            except (httpx2.TransportError, hf.OfflineModeIsEnabled):
                # unreachable: serve the cached copy, if any (without huggingface_hub's ~25 s of retries)
                local_only = True
            except HeadroomError:
                raise
            except (hf.HfHubHTTPError, OSError) as e:
                raise self._explain(e, filename) from None
        path = self._call(filename, hf_hub_download, self.repo_id, filename, revision=rev,
                          cache_dir=self.cache_dir, token=self.token, endpoint=self.endpoint,
                          etag_timeout=self.timeout_s, local_files_only=local_only)
        # the cache layout is .../snapshots/<sha>/<filename>: the commit actually served (also offline)
        parent = os.path.basename(os.path.dirname(path))
        sha = parent if _SHA.match(parent) else sha
        size = os.path.getsize(path)
        if size > max_bytes:
            raise SourceError(f"{self.repo_id}'s {filename} is {size:,} bytes; at most {max_bytes:,} are accepted")
        with open(path, "rb") as f:
            return sha, f.read()

    def _config(self, rev: str) -> tuple[str | None, str]:
        sha, data = self._download("config.json", rev, self.max_config_bytes)
        cfg = load_config_text(data, source=f"{self.repo_id}/config.json")
        return sha, json.dumps(cfg)

    def _stored(self, rev: str) -> StoredWeights | None:
        """Safetensors headers of the repo (single file or sharded index), or None when it has none."""
        try:
            cached = self._cached_files(rev)
            if cached is not None:
                files = cached
            elif self.offline:
                self.notes.append("offline: safetensors headers not in the local cache; weights computed")
                return None
            elif self._exists_quiet(SINGLE_FILE, rev):
                files = (SINGLE_FILE,)
            elif self._exists_quiet(INDEX_FILE, rev):
                _, text = self._download(INDEX_FILE, rev, MAX_INDEX_BYTES)
                files = shard_files(text, f"{self.repo_id}/{INDEX_FILE}")
            else:
                return None
            workers = min(8, len(files))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                headers = list(pool.map(lambda f: self._header(f, rev), files))
        except HubUnavailable as e:  # malformed or oversized headers are errors, not notes
            self.notes.append(f"safetensors headers unavailable ({e}); weights computed from the config")
            return None
        self._remember_files(rev, files)
        tensors = tuple(t for h in headers for t in h)
        return StoredWeights(tensors, f"hub:{self.repo_id}@{rev[:12]}", tuple(files))

    def _exists_quiet(self, filename: str, rev: str) -> bool:
        from huggingface_hub import errors as hf

        try:
            self._metadata(filename, rev)
            return True
        except hf.RemoteEntryNotFoundError:
            return False
        except Exception as e:  # noqa: BLE001 - mapped to one clear message
            raise self._explain(e, filename) from None

    # -- on-disk header cache (immutable per commit sha)
    def _disk(self, rev: str, name: str) -> str | None:
        if not _SHA.match(rev):
            return None
        return os.path.join(self.cache_dir, HEADER_CACHE_DIR, self.repo_id.replace("/", "--"), rev, name)

    def _cached_files(self, rev: str) -> tuple[str, ...] | None:
        p = self._disk(rev, "files.json")
        try:
            with open(p) as f:  # type: ignore[arg-type]
                files = json.load(f)
            return tuple(str(x) for x in files)
        except (TypeError, OSError, ValueError):
            return None

    def _remember_files(self, rev: str, files) -> None:
        p = self._disk(rev, "files.json")
        if p:
            _write_atomic(p, json.dumps(list(files)).encode())

    def _header(self, filename: str, rev: str):
        source = f"{self.repo_id}/{filename}"
        p = self._disk(rev, filename + ".header")
        if p and os.path.isfile(p):
            with open(p, "rb") as f:
                raw = f.read(self.max_header_bytes + 1)
            if len(raw) <= self.max_header_bytes:
                return parse_header(raw, source)
        if self.offline:
            raise HubUnavailable(f"offline and {source}'s header is not cached")
        raw = self._call(filename, self._range_header, filename, rev, source)
        tensors = parse_header(raw, source)
        if p:
            _write_atomic(p, raw)
        return tensors

    def _range_header(self, filename: str, rev: str, source: str) -> bytes:
        """The JSON header of a remote safetensors file: at most two bounded range requests."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        url = hf_hub_url(self.repo_id, filename, revision=rev, endpoint=self.endpoint)
        headers = build_hf_headers(token=self.token)
        first = self._read(get_session(), url, headers, 0, FIRST_RANGE_BYTES - 1, hf_raise_for_status)
        n = header_length(first[:8], source, self.max_header_bytes)
        if 8 + n <= len(first):
            return first[8:8 + n]
        rest = self._read(get_session(), url, headers, len(first), 8 + n - 1, hf_raise_for_status)
        raw = first[8:] + rest
        if len(raw) < n:
            raise SourceError(f"{source}: truncated safetensors header ({len(raw):,} of {n:,} bytes)")
        return raw[:n]

    def _read(self, session, url, headers, start: int, end: int, raise_for_status) -> bytes:
        """Bytes start..end (inclusive) of ``url``; reads at most that many even if Range is ignored."""
        want = end - start + 1
        with session.stream("GET", url, headers={**headers, "Range": f"bytes={start}-{end}"},
                            timeout=self.timeout_s) as r:
            if r.status_code >= 400:
                r.read()
                raise_for_status(r)
            skip = start if r.status_code == 200 else 0  # server ignored Range: skip to start ourselves
            buf = bytearray()
            for chunk in r.iter_bytes():
                if skip:
                    drop = min(skip, len(chunk))
                    chunk, skip = chunk[drop:], skip - drop
                buf += chunk
                if len(buf) >= want:
                    break
        return bytes(buf[:want])


def _write_atomic(path: str, data: bytes) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written is only slower
