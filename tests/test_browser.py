"""The app in a real browser: headless Chromium drives `streamlit run`.

Loads Plan, changes the context, sees the total follow the planner, opens the share link in a new page
and sees the same total, visits every page without a console error, and saves the README screenshots
to docs/images/.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import parse_qs, urlparse

import pytest

from app import charts, hosted
from app.app_pages import common
from planner.catalog import catalog_spec
from planner.estimate import Plan, estimate
from planner.gpus import find_gpu

pytestmark = pytest.mark.browser

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = os.path.join(REPO, "docs", "images")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
#: Console messages that are the browser's, not the app's (none of them is an app error).
#: Generous waits: on a loaded 2-core machine the first render of a page can take tens of seconds.
WAIT_MS = 120_000
BENIGN = re.compile(r"Permissions-Policy|ResizeObserver", re.I)
#: Opening a page's own URL (/explore) makes Streamlit's frontend probe /explore/_stcore/health and
#: host-config before falling back to the root (its base-path detection); those two 404s are expected.
BASE_PATH_PROBE = re.compile(r"/[a-z_]+/_stcore/(health|host-config)$")


def _is_problem(msg) -> bool:
    if msg.type != "error" or BENIGN.search(msg.text):
        return False
    return not BASE_PATH_PROBE.search((msg.location or {}).get("url", ""))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "HEADROOM_MODE"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
                pytest.fail(f"streamlit did not start: {out[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _metric(page, label: str) -> str:
    m = page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text(label, exact=True))
    return m.locator('[data-testid="stMetricValue"]').first.inner_text(timeout=WAIT_MS).strip()


def _settle(page, timeout_ms: int = WAIT_MS) -> None:
    """Wait until the script run is over (the running indicator gone) and charts have drawn."""
    page.wait_for_selector('[data-testid="stSidebar"]', timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)
    page.wait_for_function(  # every plotly chart has drawn its SVG
        "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')]"
        ".every(e => e.querySelector('.main-svg'))", timeout=timeout_ms)
    page.wait_for_timeout(500)


def test_plan_share_link_and_every_page(server):
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "chromium is missing: run `make chromium`"
    os.makedirs(IMAGES, exist_ok=True)
    spec = catalog_spec("llama-3.1-8b")
    h100 = find_gpu("h100-sxm-80gb").memory_bytes

    def total(context: int) -> str:
        return charts.fmt_bytes(estimate(spec, Plan(weights="bf16", context=context, gpu_memory_bytes=h100)).total_bytes,
                                "GiB")

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
            ctx.set_default_timeout(WAIT_MS)

            def watch(p):
                p.on("console", lambda m: _is_problem(m)
                     and problems.append(f"{p.url}: {m.text} ({(m.location or {}).get('url', '')})"))
                p.on("pageerror", lambda e: problems.append(f"{p.url}: {e}"))
                return p

            page = watch(ctx.new_page())
            page.goto(server + "/", wait_until="domcontentloaded")
            _settle(page)
            assert _metric(page, "Total") == total(8192)

            before = _metric(page, "Total")
            box = page.get_by_role("spinbutton", name="Context (tokens)")
            box.fill("65536")
            box.press("Enter")
            page.wait_for_url(re.compile(r"context=65536"), timeout=WAIT_MS)
            _settle(page)
            page.wait_for_function(
                "(t) => [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
                ".some(e => e.innerText.trim() === t)", arg=total(65536), timeout=WAIT_MS)
            after = _metric(page, "Total")
            assert after == total(65536)
            assert (after != before) == (total(65536) != total(8192))
            page.screenshot(path=os.path.join(IMAGES, "plan.png"))

            # the widest numbers (DeepSeek-V3 in bf16: "1,249.88 GiB") show whole at 1440 px, not "1,249.8..."
            wide = watch(ctx.new_page())
            wide.goto(server + "/?src=catalog&model=deepseek-v3&weights=bf16", wait_until="domcontentloaded")
            _settle(wide)
            assert _metric(wide, "Weights").startswith("1,2")
            cut = wide.evaluate(
                "() => [...document.querySelectorAll('[data-testid=\"stMetricValue\"], "
                "[data-testid=\"stMetricValue\"] *')].filter(e => e.scrollWidth > e.clientWidth + 1)"
                ".map(e => e.innerText)")
            assert cut == [], cut
            wide.screenshot(path=os.path.join(os.environ.get("TMPDIR", "/tmp"), "headroom_wide_metrics.png"))
            wide.close()

            link = page.locator('[data-testid="stSidebar"] [data-testid="stCode"]').first.inner_text().strip()
            assert parse_qs(urlparse(link).query)["context"] == ["65536"]
            shared = watch(ctx.new_page())
            shared.goto(server + "/?" + urlparse(link).query, wait_until="domcontentloaded")
            _settle(shared)
            assert _metric(shared, "Total") == after
            shared.close()

            for p in common.nav_pages(hosted.LOCAL):
                if p.file == "plan.py":
                    continue
                page.goto(f"{server}/{p.url_path}?{urlparse(link).query}", wait_until="domcontentloaded")
                _settle(page)
                if p.url_path == "compare":  # with prices, the table gains cost columns (README screenshot)
                    prices = page.locator('[data-testid="stMain"] textarea').first
                    prices.fill("h100-sxm-80gb = 2.49\nl40s-48gb = 0.99\na100-40gb = 1.29")
                    prices.press("Control+Enter")
                    page.get_by_text("$ / hour").first.wait_for(state="attached")  # the grid is a canvas
                    _settle(page)
                assert not page.locator('[data-testid="stException"]').count(), p.title
                page.screenshot(path=os.path.join(IMAGES, f"{p.url_path}.png"))
        finally:
            browser.close()
    assert problems == []
