# The LTS engine image: `python -m lts.engine` (the API on 0.0.0.0:8000 inside the container).
# Dependencies come from the hash-checked lock; the project is installed editable next to
# alembic.ini and alembic/ (lts finds its migrations in the parent directory of lts/).
# Settings: LTS_* environment variables; secrets: files in $LTS_SECRETS_DIR (compose secrets).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LTS_API__HOST=0.0.0.0 \
    LTS_API__PORT=8000

RUN groupadd --system --gid 10001 lts \
    && useradd --system --uid 10001 --gid lts --no-create-home --home-dir /app \
       --shell /usr/sbin/nologin lts

WORKDIR /app

# The lock alone first, so a code change does not reinstall the dependencies.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY lts ./lts
# compiled here: at run time the (non-root) user cannot write __pycache__ under /app
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e . \
    && python -m compileall -q lts alembic \
    && mkdir -p /app/data && chown lts:lts /app/data

USER 10001:10001

EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

ENTRYPOINT ["python", "-m", "lts.engine"]
CMD ["run"]
