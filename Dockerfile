# One image for the API and the workers: the command picks the role (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

RUN useradd --system --uid 10001 --home /app taskq

COPY pyproject.toml README.md ./
COPY taskq ./taskq
COPY worker ./worker
COPY api ./api
RUN pip install .

# The tasks to serve. Replace examples/ with your own package and set TASKQ_APP to it.
COPY examples ./examples

USER taskq
EXPOSE 8000
CMD ["python", "-m", "api"]
