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


def pages(policy: hosted.Policy) -> list:
    return [st.Page(os.path.join("app_pages", p.file), title=p.title, url_path=p.url_path,
                    default=p.default) for p in common.nav_pages(policy)]


st.set_page_config(page_title="Headroom: LLM memory planner", layout="wide")  # no page_icon: it would be fetched from a CDN
policy = hosted.policy()
nav = st.navigation(pages(policy))
if policy.hosted:
    st.info(hosted.BANNER, icon=":material/public:")
if nav.url_path == common.PROFILE_URL_PATH:  # profiling has its own inputs; the plan's would do nothing there
    common.keep_plan_state()
else:
    common.sidebar(policy)
nav.run()
