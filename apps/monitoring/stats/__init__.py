"""Drift and data-quality statistics (numpy/scipy only, no Django): reference profiles, drift reports, quality checks."""

from apps.monitoring.stats.drift import DEFAULT_THRESHOLDS, drift_compare
from apps.monitoring.stats.profile import profile_build
from apps.monitoring.stats.quality import QUALITY_LIMITS, quality_check

__all__ = ["DEFAULT_THRESHOLDS", "QUALITY_LIMITS", "drift_compare", "profile_build", "quality_check"]
