# syntax=docker/dockerfile:1
ARG ROLE=data
# make-us-rich images, one per role, from one multi-stage file; the build argument ROLE picks it:
#   docker build --build-arg ROLE=data    -t ghcr.io/make-us-rich/make-us-rich-data:0.1.0 .
#   docker build --build-arg ROLE=trainer -t ghcr.io/make-us-rich/make-us-rich-trainer:0.1.0 .
#   docker build --build-arg ROLE=server  -t ghcr.io/make-us-rich/make-us-rich-server:0.1.0 .
#   docker build --build-arg ROLE=console -t ghcr.io/make-us-rich/make-us-rich-console:0.1.0 .
# (`make images` builds them all with docker or podman; `make test-images` also runs them.)
# data = pipeline code without TensorFlow; trainer = TensorFlow + tf2onnx; server = kserve +
# onnxruntime without TensorFlow; console = the web console (FastAPI, SQLAlchemy, Alembic),
# neither TensorFlow nor kserve (it calls the predictor over HTTP); versions pinned by
# constraints.txt. Each role's
# dependencies are installed from pyproject.toml alone, before the source is copied, so a code
# edit rebuilds only the small project layer. Images run as a non-root user, hold no secrets and
# no compilers (the runtime stages copy a finished virtualenv, without the libraries' own test
# suites, ~100 MB an image; the bytecode stays: it spares every step compiling on a read-only root).

# ---------------------------------------------------------------- build: the role's venv
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml constraints.txt docker/requirements.py ./

FROM build AS deps
ARG ROLE
# the extras of each role (make_us_rich.images.ROLES)
RUN --mount=type=cache,target=/root/.cache/pip \
    case "$ROLE" in \
      data) extras=pipeline ;; \
      trainer) extras=train,pipeline ;; \
      server) extras=serve ;; \
      console) extras=console ;; \
      *) echo "unknown ROLE '$ROLE': build with --build-arg ROLE=data|trainer|server|console" >&2; exit 2 ;; \
    esac \
    && python requirements.py pyproject.toml "$extras" > requirements.txt \
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

# ---------------------------------------------------------------- what differs by role
FROM runtime AS role-data
# checkov:skip=CKV_DOCKER_2: a batch image for KFP steps and Jobs; Kubernetes tracks the process, there is no service to probe
ENTRYPOINT ["mkrich"]
CMD ["--help"]

FROM runtime AS role-trainer
# checkov:skip=CKV_DOCKER_2: a batch image for KFP training steps; there is no service to probe
ENTRYPOINT ["mkrich"]
CMD ["--help"]

FROM runtime AS role-server
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["python", "-m", "make_us_rich.serving", "--host", "0.0.0.0"]
CMD ["--port", "8080"]

# `mkrich console` migrates the database to head, then serves; `migrate` as the first argument
# only migrates (the Kubernetes init container). MKRICH_CONSOLE_DB and MKRICH_CONSOLE_SECRET come
# from the environment (Kubernetes Secrets); a SQLite file needs a writable volume.
FROM runtime AS role-console
# no generated session key in a container: MKRICH_CONSOLE_SECRET must be given (this variable is
# a flag that says so, not a secret: hence the DL3064 exception)
# hadolint ignore=DL3064
ENV MKRICH_CONSOLE_REQUIRE_SECRET=1
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["mkrich", "console"]
CMD ["--host", "0.0.0.0", "--port", "8000"]

# ---------------------------------------------------------------- the image: ROLE's stage + its venv
# (podman/buildah resolve the stage only from an explicit --build-arg ROLE, not the default)
# hadolint ignore=DL3006
FROM role-${ROLE}
# checkov:skip=CKV_DOCKER_7: role-${ROLE} is a stage of this file (role-data, -trainer, -server, -console), not an image to tag
COPY --from=deps /opt/venv /opt/venv
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir --no-deps --no-index --find-links /wheels make-us-rich
USER 10001:10001
