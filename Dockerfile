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
RUN pip install --prefix=/install .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY --from=build /install /usr/local
# Unprivileged: the gateway needs no root and binds 8080 (> 1024).
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin voicegw
USER voicegw
WORKDIR /tmp
EXPOSE 8080
# Liveness only (/healthz); readiness (/readyz) turns 503 while draining, which must not restart us.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# Binding 0.0.0.0 makes the gateway require client tokens (VG_CLIENT_TOKENS or VG_CLIENT_TOKEN_SECRET).
CMD ["voice-gateway", "serve", "--host", "0.0.0.0", "--port", "8080"]
