# One image for the API and the workers: the command picks the role (see docker-compose.yml).
# Your own tasks: put this repository's files next to your package (or build from a checkout
# holding it) and set TASKQ_APP=yourpkg.tasks:tq; the whole build context (less .dockerignore)
# is copied, so no edit here is needed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

RUN useradd --system --uid 10001 --home /app taskq

# Dependencies in their own layer: rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write(chr(10).join(deps))" \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt

# taskq itself (no dependency resolution: they are installed above).
COPY taskq ./taskq
RUN pip install --no-deps .

# The entry points (worker/, api/) and the tasks to serve (examples/, or your package).
COPY . ./

USER taskq
EXPOSE 8000
CMD ["python", "-m", "api"]
