# syntax=docker/dockerfile:1
# make-us-rich images, one per role, from one multi-stage file:
#   docker build --target data    -t ghcr.io/make-us-rich/make-us-rich-data:0.1.0 .
#   docker build --target trainer -t ghcr.io/make-us-rich/make-us-rich-trainer:0.1.0 .
#   docker build --target server  -t ghcr.io/make-us-rich/make-us-rich-server:0.1.0 .
# (`make images` does all three.) Each role has its own build stage with only its extras,
# pinned by constraints.txt:
# data = pipeline code without TensorFlow; trainer = TensorFlow + tf2onnx; server = kserve +
# onnxruntime without TensorFlow. Images run as a non-root user and hold no secrets.

# ---------------------------------------------------------------- build: one venv per role
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
COPY serving ./serving
COPY components ./components
COPY pipelines ./pipelines

FROM build AS build-data
RUN /opt/venv/bin/pip install --constraint constraints.txt ".[pipeline]" \
    && find /opt/venv -name "__pycache__" -type d -prune -exec rm -rf {} +

FROM build AS build-trainer
RUN /opt/venv/bin/pip install --constraint constraints.txt ".[train,pipeline]" \
    && find /opt/venv -name "__pycache__" -type d -prune -exec rm -rf {} +

FROM build AS build-server
RUN /opt/venv/bin/pip install --constraint constraints.txt ".[serve]" \
    && find /opt/venv -name "__pycache__" -type d -prune -exec rm -rf {} +

# ---------------------------------------------------------------- runtime base
FROM python:3.11.7-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
RUN groupadd --system --gid 10001 mkrich \
    && useradd --system --uid 10001 --gid mkrich --home-dir /tmp --shell /usr/sbin/nologin mkrich
WORKDIR /tmp

# ---------------------------------------------------------------- data / pipeline role
FROM runtime AS data
# checkov:skip=CKV_DOCKER_2: a batch image for KFP steps and Jobs; Kubernetes tracks the process, there is no service to probe
COPY --from=build-data --chown=root:root /opt/venv /opt/venv
USER 10001:10001
ENTRYPOINT ["mkrich"]
CMD ["--help"]

# ---------------------------------------------------------------- trainer role
FROM runtime AS trainer
# checkov:skip=CKV_DOCKER_2: a batch image for KFP training steps; there is no service to probe
COPY --from=build-trainer --chown=root:root /opt/venv /opt/venv
USER 10001:10001
ENTRYPOINT ["mkrich"]
CMD ["--help"]

# ---------------------------------------------------------------- server role
FROM runtime AS server
COPY --from=build-server --chown=root:root /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["python", "-m", "make_us_rich.serving", "--host", "0.0.0.0"]
CMD ["--port", "8080"]
