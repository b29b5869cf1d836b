"""Headroom in the browser: ``streamlit run app/streamlit_app.py``.

The entry script sets up navigation (pages in ``app/app_pages/``), renders the plan inputs in the
sidebar (shared by every page, kept in the link), then runs the chosen page. Hosted mode
(``HEADROOM_MODE=hosted``) drops the Profile page and local paths and shows a banner.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `streamlit run app/streamlit_app.py` puts app/ on sys.path, not the repo root
    sys.path.insert(0, ROOT)

import streamlit as st  # noqa: E402

from app import hosted  # noqa: E402
from app.app_pages import common  # noqa: E402

PAGES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "app_pages")

# (file, title, url path, icon, local-only). Pages owned by other work are listed when their file exists.
PAGES = (
    ("plan.py", "Plan", "plan", ":material/calculate:", False),
    ("explore.py", "Explore", "explore", ":material/monitoring:", False),
    ("compare.py", "Compare GPUs", "compare", ":material/compare_arrows:", False),
    ("recommend.py", "Recommend", "recommend", ":material/recommend:", False),
    ("profile.py", "Profile", "profile", ":material/speed:", True),
    ("export.py", "Export", "export", ":material/ios_share:", False),
    ("assumptions.py", "Assumptions", "assumptions", ":material/menu_book:", False),
)


def pages(policy: hosted.Policy) -> list:
    out = []
    for file, title, url, icon, local_only in PAGES:
        if local_only and not policy.allow_profile:
            continue
        if not os.path.exists(os.path.join(PAGES_DIR, file)):
            continue
        out.append(st.Page(os.path.join("app_pages", file), title=title, url_path=url, icon=icon,
                           default=(file == "plan.py")))
    return out


st.set_page_config(page_title="Headroom: LLM memory planner", page_icon=":material/memory:", layout="wide")
policy = hosted.policy()
nav = st.navigation(pages(policy))
if policy.hosted:
    st.info(hosted.BANNER, icon=":material/public:")
common.sidebar(policy)
nav.run()
