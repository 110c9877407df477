"""Experiments that combine training and inspection: ``refine`` (refine kernels on their top images and
measure whether it costs generalisation)."""

from .refine import refine
from .result import BN_MODES, DESCRIPTIONS, VARIANTS, RefineConfig, RefineResult, VariantRun

__all__ = ["BN_MODES", "DESCRIPTIONS", "VARIANTS", "RefineConfig", "RefineResult", "VariantRun", "refine"]
