# syntax=docker/dockerfile:1
# The PumpTwin image: one image for `pumptwin serve` (the twin), `pumptwin sim` (the simulator) and
# `pumptwin broker` (broker accounts; the compose init). Python 3.11 on Debian 12, like the dev machines.
#
# Every Python package is installed from a lock with hashes (--require-hashes): the build stage uses
# requirements.lock (it needs the build backend, a dev dependency) to build the pumptwin wheel; the
# final image installs requirements-runtime.lock (no test tools, no browsers) and that wheel.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# mosquitto_passwd makes the password-file hashes for `pumptwin broker`. It needs only libc and
# libcrypto 3, which the Python image has, so the binary alone is copied, not the broker.
FROM debian:bookworm-slim AS mosquitto-passwd
RUN apt-get update \
 && apt-get install -y --no-install-recommends mosquitto \
 && rm -rf /var/lib/apt/lists/*

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements.lock ./
RUN python -m pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY twin ./twin
COPY scenarios ./scenarios
RUN python -m pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/pumptwin/bin:$PATH \
    PUMPTWIN_DATA_DIR=/var/lib/pumptwin \
    PUMPTWIN_HTTP__HOST=0.0.0.0 \
    PUMPTWIN_HTTP__PORT=8080
COPY --from=mosquitto-passwd /usr/bin/mosquitto_passwd /usr/local/bin/mosquitto_passwd
COPY requirements-runtime.lock /tmp/
RUN python -m venv /opt/pumptwin \
 && /opt/pumptwin/bin/pip install --require-hashes --no-deps -r /tmp/requirements-runtime.lock \
 && rm /tmp/requirements-runtime.lock
COPY --from=build /wheels/ /tmp/wheels/
RUN /opt/pumptwin/bin/pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels \
 && mosquitto_passwd 2>&1 | grep -q mosquitto_passwd
# A fixed uid, so volume ownership is the same on every host.
RUN groupadd --system --gid 10001 pumptwin \
 && useradd --system --uid 10001 --gid pumptwin --home-dir /var/lib/pumptwin --create-home pumptwin
USER pumptwin
WORKDIR /var/lib/pumptwin
EXPOSE 8080

# The twin's /healthz on its own HTTP port. The simulator serves no HTTP: compose.yaml gives it its own check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PUMPTWIN_HTTP__PORT', '8080'), timeout=4)"]

CMD ["pumptwin", "serve"]
