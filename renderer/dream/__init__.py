"""DeepDream core: objectives and the octave/step/tiling engine. Pure tensor code, no I/O."""

from .engine import DEFAULTS, DreamSettings, Precision, dream, dream_step, objective_gradient
from .objectives import Objective, parse_objective

__all__ = ["DEFAULTS", "DreamSettings", "Precision", "dream", "dream_step", "objective_gradient", "Objective", "parse_objective"]
