"""Imports point one way: planner never imports torch, transformers, streamlit or the network."""

import subprocess
import sys

FORBIDDEN = ("torch", "transformers", "streamlit", "bitsandbytes", "pynvml", "huggingface_hub",
             "requests", "httpx", "urllib.request", "app", "profiler")


def test_planner_imports_nothing_heavy():
    code = (
        "import sys, pkgutil, importlib, planner\n"
        "for m in pkgutil.walk_packages(planner.__path__, 'planner.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"planner imported: {out.stdout.strip()}"
