# syntax=docker/dockerfile:1
# make-us-rich images, one per role, from one multi-stage file:
#   docker build --target data    -t ghcr.io/make-us-rich/make-us-rich-data:0.1.0 .
#   docker build --target trainer -t ghcr.io/make-us-rich/make-us-rich-trainer:0.1.0 .
#   docker build --target server  -t ghcr.io/make-us-rich/make-us-rich-server:0.1.0 .
#   docker build --target console -t ghcr.io/make-us-rich/make-us-rich-console:0.1.0 .
# (`make images` builds them all with docker or podman; `make test-images` also runs them.)
# data = pipeline code without TensorFlow; trainer = TensorFlow + tf2onnx; server = kserve +
# onnxruntime without TensorFlow; console = the web console (FastAPI, SQLAlchemy, Alembic),
# neither TensorFlow nor kserve (it calls the predictor over HTTP); versions pinned by
# constraints.txt. Each role's
# dependencies are installed from pyproject.toml alone, before the source is copied, so a code
# edit rebuilds only the small project layer. Images run as a non-root user, hold no secrets and
# no compilers (the runtime stages copy a finished virtualenv, without the libraries' own test
# suites, ~100 MB an image; the bytecode stays: it spares every step compiling on a read-only root).

# ---------------------------------------------------------------- build: one venv per role
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt docker/requirements.py ./

FROM build AS build-data
RUN --mount=type=cache,target=/root/.cache/pip \
    python requirements.py pyproject.toml pipeline > requirements.txt \
    && /opt/venv/bin/pip install --constraint constraints.txt --requirement requirements.txt \
    && find /opt/venv/lib -type d -name tests -prune -exec rm -rf {} +

FROM build AS build-trainer
RUN --mount=type=cache,target=/root/.cache/pip \
    python requirements.py pyproject.toml train,pipeline > requirements.txt \
    && /opt/venv/bin/pip install --constraint constraints.txt --requirement requirements.txt \
    && find /opt/venv/lib -type d -name tests -prune -exec rm -rf {} +

FROM build AS build-server
RUN --mount=type=cache,target=/root/.cache/pip \
    python requirements.py pyproject.toml serve > requirements.txt \
    && /opt/venv/bin/pip install --constraint constraints.txt --requirement requirements.txt \
    && find /opt/venv/lib -type d -name tests -prune -exec rm -rf {} +

FROM build AS build-console
RUN --mount=type=cache,target=/root/.cache/pip \
    python requirements.py pyproject.toml console > requirements.txt \
    && /opt/venv/bin/pip install --constraint constraints.txt --requirement requirements.txt \
    && find /opt/venv/lib -type d -name tests -prune -exec rm -rf {} +

# ---------------------------------------------------------------- the project itself, as a wheel
FROM build AS wheel
COPY README.md ./
COPY src ./src
COPY serving ./serving
COPY components ./components
COPY pipelines ./pipelines
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip wheel --no-deps --constraint constraints.txt --wheel-dir /wheels .

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
COPY --from=build-data /opt/venv /opt/venv
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir --no-deps --no-index --find-links /wheels make-us-rich
USER 10001:10001
ENTRYPOINT ["mkrich"]
CMD ["--help"]

# ---------------------------------------------------------------- trainer role
FROM runtime AS trainer
# checkov:skip=CKV_DOCKER_2: a batch image for KFP training steps; there is no service to probe
COPY --from=build-trainer /opt/venv /opt/venv
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir --no-deps --no-index --find-links /wheels make-us-rich
USER 10001:10001
ENTRYPOINT ["mkrich"]
CMD ["--help"]

# ---------------------------------------------------------------- server role
FROM runtime AS server
COPY --from=build-server /opt/venv /opt/venv
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir --no-deps --no-index --find-links /wheels make-us-rich
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["python", "-m", "make_us_rich.serving", "--host", "0.0.0.0"]
CMD ["--port", "8080"]

# ---------------------------------------------------------------- console role
# `mkrich console` migrates the database to head, then serves; `migrate` as the first argument
# only migrates (the Kubernetes init container). MKRICH_CONSOLE_DB and MKRICH_CONSOLE_SECRET come
# from the environment (Kubernetes Secrets); a SQLite file needs a writable volume.
FROM runtime AS console
# no generated session key in a container: MKRICH_CONSOLE_SECRET must be given (this variable is
# a flag that says so, not a secret: hence the DL3064 exception)
# hadolint ignore=DL3064
ENV MKRICH_CONSOLE_REQUIRE_SECRET=1
COPY --from=build-console /opt/venv /opt/venv
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir --no-deps --no-index --find-links /wheels make-us-rich
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["mkrich", "console"]
CMD ["--host", "0.0.0.0", "--port", "8000"]
