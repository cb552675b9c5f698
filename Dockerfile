# newsstream worker image: slim, non-root, the default model inside, a HEALTHCHECK on /healthz.
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streamer ./streamer
COPY training ./training
COPY newsstream ./newsstream
COPY models ./models
# A bundle is refused under another scikit-learn minor version than it was built with (streamer/artifact.py):
# install the minor the newest bundled card names, not whatever is newest on PyPI today.
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip \
 && SKLEARN=$(python -c "import glob, json; print(max((json.load(open(c))['libraries']['scikit-learn'].rsplit('.', 1)[0] for c in glob.glob('models/*/card.json')), key=lambda v: tuple(map(int, v.split('.')))))") \
 && /opt/venv/bin/pip install . "scikit-learn==${SKLEARN}.*"

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
