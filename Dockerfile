# A hosted, read-only Headroom planner: core install only (no torch, transformers or bitsandbytes).
#   docker build -t headroom-planner .
#   docker run --rm -p 8501:8501 headroom-planner      # then open http://localhost:8501
# HEADROOM_MODE=hosted removes the Profile page and local paths, limits hub access to config.json and
# safetensors headers (size- and time-limited) and shows a banner. Set HF_TOKEN to plan gated repos.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HEADROOM_MODE=hosted \
    HF_HUB_DISABLE_TELEMETRY=1

WORKDIR /srv/headroom
COPY pyproject.toml README.md ./
COPY planner ./planner
COPY profiler ./profiler
COPY app ./app
COPY assets ./assets
COPY .streamlit ./.streamlit
# The core install only: `pip install .` (no [profile] extra).
RUN pip install . && useradd --create-home --uid 10001 headroom
USER headroom

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"
CMD ["streamlit", "run", "app/streamlit_app.py", "--server.address", "0.0.0.0", "--server.port", "8501", \
     "--server.headless", "true", "--browser.gatherUsageStats", "false"]
