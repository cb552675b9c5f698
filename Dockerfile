# newsstream worker image: slim, non-root, the default model inside, a HEALTHCHECK on /healthz.
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streamer ./streamer
COPY training ./training
COPY newsstream ./newsstream
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip && /opt/venv/bin/pip install .

FROM python:3.11.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NEWSSTREAM_MODEL_PATH=/app/models \
    NEWSSTREAM_METRICS_HOST=0.0.0.0 \
    NEWSSTREAM_METRICS_PORT=9464 \
    NEWSSTREAM_LOG_FORMAT=json
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin newsstream
COPY --from=build /opt/venv /opt/venv
COPY --chown=newsstream:newsstream models /app/models
COPY --chown=newsstream:newsstream examples /app/examples
WORKDIR /app
USER newsstream
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('NEWSSTREAM_METRICS_PORT', '9464'), timeout=2).status == 200 else 1)"]
ENTRYPOINT ["newsstream"]
CMD ["worker"]
