"""hilbert_diffusion: score-based generative modelling in function space.

Forward process: the stochastic heat equation driven by trace-class noise, diagonal in a spectral
basis of the domain; score operators learn ``E[x_0 | x_t]``; samplers run at any resolution.
"""

from .bases import DirichletBasis, NeumannBasis, PeriodicBasis, SpectralBasis, SphereBasis
from .checkpoint import CheckpointError, TrainedRun, load
from .config import from_config, to_config
from .datasets import FieldDataset
from .losses import LogUniformTime, StratifiedTime, UniformTime, denoising_loss
from .models import GaussianOracle
from .models.cross_spectrum import ChannelCovariance, ChannelGaussianDenoiser
from .models.fno import ScoreFNO, ScoreFNOConfig
from .models.linear_pde import LinearGaussianPair
from .models.local_fno import ScoreLocalConfig, ScoreLocalFNO
from .models.multiscale import ScoreMultiScale, ScoreMultiScaleConfig
from .models.scale_mixture import ScaleMixture, ScaleMixtureDenoiser
from .models.sphere import SphericalScoreConfig, SphericalScoreOperator
from .models.uno import ScoreUNO, ScoreUNOConfig
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
    default_sde,
)
from .restoration import (
    BlockAverage,
    ConstrainedMask,
    SolverMask,
    HeatBlur,
    Mask,
    ObservationOperator,
    SpectralDownsample,
    PointObservation,
    box_mask,
    covariance_guidance,
    ddnm,
    default_method,
    diffusionpde_points,
    dps,
    hard_consistency,
    filtering_smc,
    twisted_smc,
    missing_mask,
    random_mask,
    repaint,
    SolutionMap,
    PDEResidual,
    DirichletResidual,
    DarcyResidual,
)
from .models.gaussian import exact_gaussian_posterior, gaussian_sampler_law
from .engine import Method, Run, Sampler
from .sampling import (
    euler_maruyama,
    exponential_ancestral,
    default_times,
    exponential_corrected,
    exponential_deterministic,
    exponential_multistep,
    heun_ode,
    power_times,
    predictor_corrector,
    rk3_ode,
    sample,
    uniform_times,
)
from .optimal_times import GaussianTarget, optimise_times, spectrum_times
from .training import TrainConfig, train

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
    "default_sde",
    "GaussianOracle",
    "ChannelCovariance",
    "ChannelGaussianDenoiser",
    "ScaleMixture",
    "ScaleMixtureDenoiser",
    "LinearGaussianPair",
    "ScoreFNO",
    "ScoreFNOConfig",
    "ScoreUNO",
    "ScoreUNOConfig",
    "ScoreLocalFNO",
    "ScoreLocalConfig",
    "ScoreMultiScale",
    "ScoreMultiScaleConfig",
    "SphericalScoreOperator",
    "SphericalScoreConfig",
    "denoising_loss",
    "UniformTime",
    "StratifiedTime",
    "LogUniformTime",
    "TrainConfig",
    "train",
    "load",
    "TrainedRun",
    "CheckpointError",
    "FieldDataset",
    "uniform_times",
    "power_times",
    "default_times",
    "GaussianTarget",
    "optimise_times",
    "spectrum_times",
    "euler_maruyama",
    "exponential_ancestral",
    "exponential_deterministic",
    "heun_ode",
    "rk3_ode",
    "exponential_multistep",
    "exponential_corrected",
    "predictor_corrector",
    "sample",
    "ObservationOperator",
    "Mask",
    "PointObservation",
    "diffusionpde_points",
    "SolutionMap",
    "ConstrainedMask",
    "SolverMask",
    "PDEResidual",
    "DirichletResidual",
    "DarcyResidual",
    "box_mask",
    "random_mask",
    "SpectralDownsample",
    "BlockAverage",
    "HeatBlur",
    "repaint",
    "ddnm",
    "covariance_guidance",
    "dps",
    "hard_consistency",
    "filtering_smc",
    "twisted_smc",
    "missing_mask",
    "default_method",
    "exact_gaussian_posterior",
    "gaussian_sampler_law",
    "Sampler",
    "Method",
    "Run",
    "to_config",
    "from_config",
]
