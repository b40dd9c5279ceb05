"""Score operators: anything callable as ``model(x_t, t) -> E[x_0 | x_t]`` with ``x_t`` shaped
``(batch, channels, *grid)`` and ``t`` shaped ``(batch,)``; and the data statistics and exact Gaussian references
beside them (:mod:`.gaussian`, :mod:`.linear_pde`, :mod:`.cross_spectrum`)."""

from .oracle import GaussianOracle

__all__ = ["GaussianOracle"]
