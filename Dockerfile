# voice-gateway image: `docker build -t voice-gateway .` (docker-compose.yml builds it as `gateway`).
# Build stage installs the package and its dependencies into /install; the runtime stage copies
# only that, so no compiler, pip cache or source tree ships in the image.
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY providers ./providers
COPY audio ./audio
# `[opus]`: PyAV decodes the browser's compressed upload (audio.input.encoding opus|webm); without it
# the container refuses such calls with unsupported_encoding.
RUN pip install --prefix=/install ".[opus]"

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# The container's bind defaults, as settings (docs/deployment.md): `docker run -e VG_PORT=9000` or the
# compose file's environment overrides them; the command line below passes no --host/--port, which
# would win over both.
ENV VG_HOST=0.0.0.0 VG_PORT=8080
# glibc malloc: two arenas, and blocks >= 128 KiB (each call's resampler buffers) always mmapped, so
# the memory of ended calls goes back to the system instead of staying in the heap as RSS that only
# grows (docs/soak.md measured it: same live memory, RSS flat instead of climbing).
ENV MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072
COPY --from=build /install /usr/local
# Unprivileged: the gateway needs no root and binds 8080 by default (> 1024; a VG_PORT below 1024
# would need CAP_NET_BIND_SERVICE).
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin voicegw
USER voicegw
WORKDIR /tmp
EXPOSE 8080
# Liveness only (/healthz); readiness (/readyz) turns 503 while draining, which must not restart us.
# It follows VG_PORT, so a container moved to another port stays healthy.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('VG_PORT', '8080'), timeout=2)"]
# Binding 0.0.0.0 makes the gateway require client tokens (VG_CLIENT_TOKENS or VG_CLIENT_TOKEN_SECRET).
# Host and port come from VG_HOST/VG_PORT (above): no --host/--port here.
CMD ["voice-gateway", "serve"]
