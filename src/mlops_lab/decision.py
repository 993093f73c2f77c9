"""Where models saved before the kernel package existed say their `MacroF1Decision` is.

skops saves a class by its module path, so a registered champion from an earlier version of
the lab names `mlops_lab.decision`. This name keeps such models loading (and comparable, and
servable) after an upgrade; new models name `mlops_lab.kernel.decision`."""

from mlops_lab.kernel.decision import MacroF1Decision

__all__ = ["MacroF1Decision"]
