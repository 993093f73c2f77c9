"""What every stage is handed by the entry point: the config and where to track."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlops_lab.config import LabConfig
from mlops_lab.tracking.runs import Lineage, Tracking


@dataclass(frozen=True)
class StageContext:
    config: LabConfig
    tracking: Tracking
    lineage: Lineage
    project_root: Path
