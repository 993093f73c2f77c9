"""Where models saved before the kernel package existed say their `ListingFeatures` is.

skops saves a class by its module path, so a registered champion from an earlier version of
the lab names `mlops_lab.features`. This name keeps such models loading (and comparable, and
servable) after an upgrade; new models name `mlops_lab.kernel.features`."""

from mlops_lab.kernel.features import ListingFeatures

__all__ = ["ListingFeatures"]
