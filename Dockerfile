# syntax=docker/dockerfile:1
# footpath-cds: build the wheel-installed virtualenv in one stage, run it as non-root in another.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cds ./cds
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CDS_HOST=0.0.0.0 \
    CDS_PORT=8080 \
    CDS_RULES_DIR=/app/rules \
    CDS_CARDS_DIR=/app/cards \
    CDS_DEMO_DIR=/app/demo/patients \
    CDS_DATABASE_URL=sqlite+aiosqlite:////app/data/footpath-cds.db
RUN groupadd --system --gid 10001 cds \
    && useradd --system --uid 10001 --gid cds --home-dir /app --shell /usr/sbin/nologin cds \
    && mkdir -p /app/data \
    && chown cds:cds /app/data
COPY --from=build /opt/venv /opt/venv
COPY rules /app/rules
COPY cards /app/cards
COPY demo /app/demo
COPY deploy/healthcheck.py /app/healthcheck.py
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# No curl in the slim image: the probe is a few lines of the standard library.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/app/healthcheck.py"]
ENTRYPOINT ["cds"]
CMD ["serve"]
