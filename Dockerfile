# Two images, one per role, each from its own lock (requirements/, `make lock`):
#   --target serve   the prediction service: the model's runtime and nothing else
#   (default) lab    ds_environment and tune_worker: the pipeline and its tools
# Environments are built with the pinned uv, `uv pip sync`: exactly the lock, nothing more.

FROM python:3.11-slim AS uv
COPY requirements/uv.txt /tmp/uv.txt
RUN pip install --no-cache-dir --requirement /tmp/uv.txt
# The cache is a BuildKit cache mount (another file system): uv copies out of it.
ENV UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    VIRTUAL_ENV=/opt/venv

FROM uv AS serve-environment
COPY requirements/serve.lock /tmp/serve.lock
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv --python /usr/local/bin/python /opt/venv \
    && uv pip sync /tmp/serve.lock
COPY pyproject.toml README.md /src/
COPY src /src/src
# The packages' own test suites are never imported: 50 MB the service does without. Then the
# service's imports are compiled once here, as the server will import them: the service's user
# cannot write bytecode into /opt/venv, and compiling at every start costs about 6 s.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --no-deps /src \
    && find /opt/venv -depth -type d -name tests -exec rm -rf {} + \
    && env -u PYTHONDONTWRITEBYTECODE /opt/venv/bin/python -c "import mlops_lab.cli, \
mlops_lab.service.app, mlops_lab.service.server, mlflow.sklearn, mlflow.pyfunc, skops.io, \
granian.server.mp, granian.wsgi"

FROM python:3.11-slim AS serve
RUN useradd --uid 1000 --user-group --create-home lab
COPY --from=serve-environment /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
WORKDIR /app
# What the service reads: which registered model, its categories and its documented example.
COPY config.yaml /app/config.yaml
USER 1000:1000
EXPOSE 8000
CMD ["mlops-lab", "serve"]

FROM uv AS lab-environment
COPY requirements/runtime.lock /tmp/runtime.lock
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv --python /usr/local/bin/python /opt/venv \
    && uv pip sync --compile-bytecode /tmp/runtime.lock

FROM python:3.11-slim AS lab
# git: DVC and the runs' commit tags read the repository. The lab runs as whoever owns the
# checkout mounted at /app (lab_docker/as-checkout-owner); `lab` (uid 1000) is the user of a
# container without a checkout.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --user-group --create-home lab \
    && mkdir /app /dvc-remote \
    && chown lab:lab /app \
    && chmod 1777 /dvc-remote
COPY --from=lab-environment /opt/venv /opt/venv
COPY --from=uv /usr/local/bin/uv /usr/local/bin/uv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    UV_PYTHON_DOWNLOADS=never
# The lab's DVC remote: the stack's dvc_remote volume. A system-level setting, so it applies
# inside the lab only and the repository's own .dvc/config stays machine-neutral.
RUN dvc config --system core.remote lab \
    && dvc config --system remote.lab.url /dvc-remote

WORKDIR /app
COPY --chown=lab:lab . /app
# Editable, so the package is the checkout that ds_environment mounts over /app: edits are live.
RUN --mount=type=cache,target=/root/.cache/uv \
    UV_LINK_MODE=copy uv pip install --no-deps --editable /app

# The commands that write to the checkout, each a link to as-checkout-owner ahead of the real
# one on PATH: `docker compose exec` skips the entrypoint, so `dvc repro` drops to the
# checkout's owner itself.
COPY lab_docker/as-checkout-owner /usr/local/bin/as-checkout-owner
RUN mkdir /usr/local/lab-bin \
    && for command in dvc mlops-lab python python3 mlflow git; do \
         ln -s /usr/local/bin/as-checkout-owner "/usr/local/lab-bin/$command"; \
       done
ENV PATH=/usr/local/lab-bin:$PATH
EXPOSE 8000
ENTRYPOINT ["as-checkout-owner"]
CMD ["sleep", "infinity"]
