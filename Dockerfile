# The lab's one image: `ds_environment` runs the pipeline in it, `prediction_app` serves with it.
# Everything comes from requirements.lock, as on a plain machine (make setup).

FROM python:3.11-slim AS environment
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --requirement /tmp/requirements.lock

FROM python:3.11-slim
# The lab user's ids: on Linux, set LAB_UID/LAB_GID in .env to your own (`id -u`, `id -g`)
# so the lab can write to the checkout that compose mounts into it.
ARG LAB_UID=1000
ARG LAB_GID=1000
# git: DVC and the runs' commit tags read the repository.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid "${LAB_GID}" lab \
    && useradd --uid "${LAB_UID}" --gid lab --create-home lab \
    && mkdir /app /dvc-remote \
    && chown lab:lab /app /dvc-remote
COPY --from=environment /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The lab's DVC remote: the stack's dvc_remote volume. A system-level setting, so it applies
# inside the lab only and the repository's own .dvc/config stays machine-neutral.
RUN dvc config --system core.remote lab \
    && dvc config --system remote.lab.url /dvc-remote

WORKDIR /app
COPY --chown=lab:lab . /app
# Editable, so the package is the checkout that ds_environment mounts over /app: edits are live.
RUN pip install --no-cache-dir --no-deps --editable /app
USER ${LAB_UID}:${LAB_GID}
EXPOSE 8000
CMD ["sleep", "infinity"]
