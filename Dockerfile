# minimo, the S3 gateway, as a container image. Used by compose.yaml; see docs/deploy.md.
#
#   docker build -t minimo .
#
# The base is pinned to an exact Python release. To pin its digest as well (recommended for
# production), resolve it where a registry is reachable and append it:
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm   # prints "Digest: sha256:..."
#   FROM python:3.11.14-slim-bookworm@sha256:<that digest>
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user with fixed ids, so volumes and secrets can be given to it by number.
RUN groupadd --system --gid 10001 minimo \
    && useradd --system --uid 10001 --gid minimo --home-dir /home/minimo --create-home \
       --shell /usr/sbin/nologin minimo

# Only what the package needs: the runtime dependencies pinned in pyproject.toml, no test or
# bench extras, no sources left behind.
WORKDIR /build
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY policy ./policy
COPY ui ./ui
RUN pip install . \
    && cd / && rm -rf /build \
    && minimo --help >/dev/null

COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/minimo-entrypoint
COPY --chmod=0644 deploy/healthcheck.py /usr/local/lib/minimo/healthcheck.py
COPY --chmod=0644 deploy/init_secrets.py /usr/local/lib/minimo/init_secrets.py

# /data: DATA_DIR (initial-admin.txt; objects and SQLite only when run without S3/MongoDB).
# /certs: the generated (or your own) TLS certificate. Both are volumes owned by minimo.
RUN mkdir -p /data /certs && chown minimo:minimo /data /certs && chmod 0700 /data /certs

# Every `minimo serve` option also reads a MINIMO_* variable; these are the bundle's defaults.
# HTTPS on all interfaces; the S3 endpoint, MongoDB URI and credentials have no defaults:
# the entrypoint refuses to start without them.
ENV MINIMO_DATA_DIR=/data \
    MINIMO_CERTS_DIR=/certs \
    MINIMO_LISTEN=0.0.0.0:9000 \
    MINIMO_TLS=true \
    MINIMO_SECRET_KEY_FILE=/run/secrets/minimo_secret_key

USER minimo:minimo
WORKDIR /home/minimo
VOLUME ["/data", "/certs"]
EXPOSE 9000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/lib/minimo/healthcheck.py"]

ENTRYPOINT ["/usr/local/bin/minimo-entrypoint"]
CMD ["minimo", "serve"]
