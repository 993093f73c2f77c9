"""summary: read metrics/training.json and models/registration.json, print what they say."""

from __future__ import annotations

import json

from mlops_lab.commands.summary.transform import summary_lines
from mlops_lab.common.errors import UserError
from mlops_lab.config import LabConfig


def run(config: LabConfig) -> list[str]:
    """The summary's lines; UserError when the pipeline has not run to its end."""
    paths = (config.training.metrics_path, config.promotion.registration_path)
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise UserError(f"{', '.join(missing)} missing: run the pipeline first (dvc repro)")
    training, registration = (json.loads(path.read_text()) for path in paths)
    return summary_lines(training, registration)
