"""hilbert_diffusion: score-based generative modelling in function space.

Forward process: the stochastic heat equation driven by trace-class noise, diagonal in a spectral
basis of the domain; score operators learn ``E[x_0 | x_t]``; samplers run at any resolution.
"""

from .bases import DirichletBasis, NeumannBasis, PeriodicBasis, SpectralBasis, SphereBasis
from .config import from_config, to_config
from .models import GaussianOracle
from .noise import GaussianRandomField, Matern, PowerLaw, Spectrum, SquaredExponential, WhiteNoise
from .sde import (
    ConstantSchedule,
    CosineSchedule,
    DiagonalSDE,
    GeometricSchedule,
    LinearSchedule,
    ScaledSchedule,
    Schedule,
    StochasticHeatSDE,
)

__version__ = "0.1.0"

__all__ = [
    "SpectralBasis",
    "PeriodicBasis",
    "NeumannBasis",
    "DirichletBasis",
    "SphereBasis",
    "Spectrum",
    "Matern",
    "PowerLaw",
    "SquaredExponential",
    "WhiteNoise",
    "GaussianRandomField",
    "Schedule",
    "LinearSchedule",
    "CosineSchedule",
    "ConstantSchedule",
    "GeometricSchedule",
    "ScaledSchedule",
    "DiagonalSDE",
    "StochasticHeatSDE",
    "GaussianOracle",
    "to_config",
    "from_config",
]
