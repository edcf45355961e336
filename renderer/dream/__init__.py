"""DeepDream core: objectives, the octave/step/tiling engine, and feature visualisation (images made
from nothing: Fourier/colour parameterisation, random views). Pure tensor code, no I/O."""

from .engine import DEFAULTS, DreamSettings, Precision, dream, dream_step, objective_gradient
from .featurevis import VIS_DEFAULTS, VisSettings, visualise
from .objectives import Objective, parse_objective

__all__ = ["DEFAULTS", "DreamSettings", "Precision", "dream", "dream_step", "objective_gradient", "Objective",
           "parse_objective", "VIS_DEFAULTS", "VisSettings", "visualise"]
