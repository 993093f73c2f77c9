# The lab's one image: `ds_environment` runs the pipeline in it, `prediction_app` serves with it.
# Everything comes from requirements.lock, as on a plain machine (make setup).

FROM python:3.11-slim AS environment
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --requirement /tmp/requirements.lock

FROM python:3.11-slim
# git: DVC and the runs' commit tags read the repository. The lab runs as whoever owns the
# checkout mounted at /app (lab_docker/as-checkout-owner); `lab` (uid 1000) is the user of a
# container without a checkout: the prediction service.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --user-group --create-home lab \
    && mkdir /app /dvc-remote \
    && chown lab:lab /app \
    && chmod 1777 /dvc-remote
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

# The commands that write to the checkout, each a link to as-checkout-owner ahead of the real
# one on PATH: `docker compose exec` skips the entrypoint, so `dvc repro` drops to the
# checkout's owner itself.
COPY lab_docker/as-checkout-owner /usr/local/bin/as-checkout-owner
RUN mkdir /usr/local/lab-bin \
    && for command in dvc mlops-lab python python3 pytest mlflow git; do \
         ln -s /usr/local/bin/as-checkout-owner "/usr/local/lab-bin/$command"; \
       done
ENV PATH=/usr/local/lab-bin:$PATH
EXPOSE 8000
ENTRYPOINT ["as-checkout-owner"]
CMD ["sleep", "infinity"]
