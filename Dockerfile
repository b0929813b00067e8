# sheetstream: one image for every role. The command picks the role:
#   sheetstream serve | monitor | gateway | api   (see docs/deploy.md and docker-compose.yml)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app sheetstream \
    && mkdir -p /data && chown sheetstream /data

USER sheetstream
# Listen on every interface inside the container; each role serves /healthz and /readyz on this port.
ENV SHEETSTREAM_HOST=0.0.0.0 \
    SHEETSTREAM_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('SHEETSTREAM_PORT', '8000'), timeout=2)"]

ENTRYPOINT ["sheetstream"]
CMD ["serve"]
