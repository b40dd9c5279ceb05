"""Classical restoration baselines, no model: what a learned prior's posterior mean must beat on images.

* :func:`bicubic` — bicubic upsampling (Keys, ``a = −0.75``), 2-D images;
* :func:`zero_padding` — band-limited upsampling: the low grid's coefficients zero-padded in the data's basis;
* :func:`biharmonic` — scikit-image's biharmonic inpainting (the ``images`` extra);
* :func:`total_variation` — TV inpainting, ``Σ sqrt(|∇x|² + ε²)`` minimised over the hidden values.

Fields are ``(num, channels, *grid)``; the image baselines (:func:`bicubic`, :func:`total_variation`) clip to
``[0, 1]``, the range of the built-in image sets.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..bases import SpectralBasis

__all__ = ["bicubic", "zero_padding", "biharmonic", "total_variation"]


def bicubic(y: Tensor, size: int) -> Tensor:
    """Bicubic interpolation of 2-D images ``y`` to ``size²``: both grids cell-centred (``align_corners=False``),
    clipped to ``[0, 1]``."""
    if y.dim() != 4:
        raise ValueError(f"bicubic upsamples 2-D images (num, channels, h, w), got {tuple(y.shape)}; for other grids "
                         f"use zero_padding.")
    return F.interpolate(y.float(), size=(size, size), mode="bicubic", align_corners=False).clamp(0.0, 1.0)


def zero_padding(y: Tensor, size: int, basis: SpectralBasis) -> Tensor:
    """The low grid's coefficients in ``basis``, zero-padded to ``size`` points per axis (band-limited upsampling)."""
    return basis.resample(y.to(torch.float64), (size,) * (y.dim() - 2)).float()


def biharmonic(y: Tensor, observed: Tensor) -> Tensor:
    """scikit-image's biharmonic inpainting of the hidden points (``observed`` False, shaped like the grid) of each
    single-channel field of ``y``."""
    from skimage.restoration import inpaint_biharmonic

    hidden = (~observed.bool()).reshape(y.shape[2:]).numpy()
    out = [inpaint_biharmonic(field[0].numpy().astype(np.float64), hidden) for field in y]
    return torch.from_numpy(np.stack(out)[:, None]).float()


def total_variation(y: Tensor, observed: Tensor, *, iterations: int = 400, eps: float = 1e-3) -> Tensor:
    """TV inpainting: the hidden values minimising ``Σ sqrt(|∇x|² + ε²)`` (forward differences along every grid axis,
    reflecting walls) with the observed values fixed, by Adam from the mean of the observed ones; clipped to
    ``[0, 1]``."""
    observed = observed.bool().expand_as(y)
    fill = (y * observed).flatten(1).sum(1) / observed.flatten(1).sum(1)
    free = torch.where(observed, y, fill.reshape(-1, *[1] * (y.dim() - 1))).double().clone().requires_grad_(True)
    known = y.double()
    optimizer = torch.optim.Adam([free], lr=0.02)
    for _ in range(iterations):
        x = torch.where(observed, known, free)
        squared = sum(torch.diff(x, dim=axis, append=x.narrow(axis, x.shape[axis] - 1, 1)).square()
                      for axis in range(2, x.dim()))  # the last difference 0: a reflecting wall
        optimizer.zero_grad()
        (squared + eps**2).sqrt().sum().backward()
        optimizer.step()
    return torch.where(observed, known, free.detach()).float().clamp(0.0, 1.0)
