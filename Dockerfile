# CallWarden container image.
# Stage 1 builds wheels for the package and its dependencies (with the `speed` extra:
# uvloop and the compiled sqlglot); stage 2 installs them into a clean slim image that runs
# as a numeric non-root user and never writes outside /tmp, so it works with a read-only
# root filesystem. Pin the base by digest in your registry mirror for reproducible builds.

FROM python:3.12.8-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
RUN python -m pip wheel --wheel-dir /wheels ".[speed]"

FROM python:3.12.8-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="callwarden" \
      org.opencontainers.image.description="Tool-call policy proxy (sidecar)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp \
    CALLWARDEN_RULES=/etc/callwarden/rules \
    CALLWARDEN_LISTEN=0.0.0.0:15001 \
    CALLWARDEN_ADMIN=0.0.0.0:15090
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links=/wheels "callwarden[speed]" \
    && groupadd --system --gid 10001 callwarden \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin callwarden \
    && mkdir -p /etc/callwarden/rules
USER 10001:10001
WORKDIR /tmp
EXPOSE 15001 15090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; port = os.environ.get('CALLWARDEN_ADMIN', ':15090').rpartition(':')[2]; u.urlopen('http://127.0.0.1:' + port + '/healthz', timeout=2)"]
ENTRYPOINT ["callwarden", "run"]
