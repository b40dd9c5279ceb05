"""Metrics of what is not Gaussian in samples (edges, flat regions, shapes), against held-out data.

* :func:`difference_kurtosis` — excess kurtosis of neighbour differences along one grid axis. Gaussian fields have
  0; images with edges and flat regions have heavy-tailed differences (photographs 10–40, faces about 4–6).
* :func:`marginal_distance` — the Wasserstein-1 distance between the one-point laws (pooled values) of samples and
  data, in units of the data's standard deviation: a Gaussian field's values are Gaussian, a two-valued field's
  (Darcy's coefficient) are not, whatever their spectra.
* :func:`spectrum_distance` — the relative log radial-spectrum error (:func:`~.metrics.spectrum_error`) of samples
  against data on the band both resolve.
* :func:`denoising_gain` — a trained model's held-out denoising error over a reference's (the per-mode Gaussian fit),
  noise level by noise level: where in ``t`` the network has learned more than second-order statistics.
* :func:`classifier_two_sample_test` — a small CNN trained to tell samples from data (Lopez-Paz & Oquab, ICLR
  2017): its accuracy on held-out halves is 0.5 when the laws agree, up to 1 when they are told apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .bases import SpectralBasis
from .losses import denoising_loss
from .metrics import radial_spectrum, spectrum_error

if TYPE_CHECKING:
    from . import trained

__all__ = ["difference_kurtosis", "marginal_distance", "spectrum_distance", "denoising_gain", "C2STResult",
           "classifier_two_sample_test"]


def difference_kurtosis(x: Tensor, *, axis: int = -1) -> Tensor:
    """Excess kurtosis ``m₄ / m₂² − 3`` of the differences ``x[..., j + 1] − x[..., j]`` along grid ``axis``
    (default the last: horizontal in images), pooled over fields and points, one value per channel.

    ``x``: ``(num, channels, *grid)``. Returns ``(channels,)`` float64.
    """
    if x.dim() < 3:
        raise ValueError(f"x has shape {tuple(x.shape)}; give fields (num, channels, *grid).")
    dim = x.dim() + axis if axis < 0 else axis + 2
    if not 2 <= dim < x.dim():
        raise ValueError(f"axis={axis} is not a grid axis of fields {tuple(x.shape)}.")
    d = torch.diff(x.to(torch.float64), dim=dim).transpose(0, 1).reshape(x.shape[1], -1)
    d = d - d.mean(1, keepdim=True)
    m2, m4 = d.pow(2).mean(1), d.pow(4).mean(1)
    return m4 / m2.clamp_min(1e-300) ** 2 - 3.0


def marginal_distance(samples: Tensor, data: Tensor, *, levels: int = 1000) -> Tensor:
    """Wasserstein-1 distance between the pooled values of ``samples`` and of ``data`` (each ``(num, channels,
    *grid)``; grids and counts may differ), per channel, divided by the data's standard deviation.

    ``W₁ = ∫₀¹ |F⁻¹(p) − G⁻¹(p)| dp`` (the 1-D quantile form), by the midpoint rule on ``levels`` probabilities.
    0 for the same law; between ``N(0, 1)`` and ``N(μ, σ²)`` it is ``E|μ + (σ − 1) Z|``. Returns ``(channels,)``
    float64.
    """
    if samples.dim() < 3 or samples.shape[1] != data.shape[1] or data.dim() < 3:
        raise ValueError(f"samples {tuple(samples.shape)} and data {tuple(data.shape)} need the layout (num, channels, "
                         f"*grid) and the same channels.")
    p = (torch.arange(levels, dtype=torch.float64) + 0.5) / levels

    def quantiles(x: Tensor) -> Tensor:  # (channels, levels), from the sorted values (torch.quantile caps sizes)
        values = x.to(torch.float64).transpose(0, 1).reshape(x.shape[1], -1).sort(dim=1).values
        return values[:, (p * values.shape[1]).long().clamp_max(values.shape[1] - 1)]

    a, b = quantiles(samples), quantiles(data)
    scale = data.to(torch.float64).transpose(0, 1).reshape(data.shape[1], -1).std(dim=1).clamp_min(1e-300)
    return (a - b).abs().mean(dim=1) / scale


def spectrum_distance(samples: Tensor, data: Tensor, basis: SpectralBasis) -> float:
    """Relative log radial-spectrum error of ``samples`` against ``data`` (each ``(num, channels, *grid)``, grids
    may differ) over every shell ``k > 0`` both resolve (:func:`~.metrics.spectrum_error`)."""
    a, b = radial_spectrum(samples, basis), radial_spectrum(data, basis)
    kmax = min(float(a[0].max()), float(b[0].max()))
    return spectrum_error(a, b, kmax=kmax)


def denoising_gain(run: trained.TrainedRun, reference: trained.TrainedRun, data: Tensor, *,
                   times: Sequence[float] = (0.01, 0.03, 0.1, 0.3, 0.7), seed: int = 0) -> list[float]:
    """Per noise level ``t`` in ``times``: the denoising error ``E‖D(x_t, t) − x_0‖²`` (L1 of :mod:`.losses`) of
    ``run``'s model on ``data`` (fields in data units, each run encoding them with its own normalisation) over
    ``reference``'s, both on the same noise (one ``seed``). Against the per-mode Gaussian fit it is below 1 where a
    network has learned more than second-order statistics, and 1 where its Wiener skip does all the work."""

    def error(r: trained.TrainedRun, t: float) -> Tensor:
        x0 = r.normalization.encode(data.to(torch.float64)).float()
        level = torch.full((len(x0),), t, dtype=torch.float64)
        return denoising_loss(r.model, x0, r.sde, t=level, generator=torch.Generator().manual_seed(seed)).mean()

    with torch.no_grad():
        return [float(error(run, t) / error(reference, t)) for t in times]


@dataclass(frozen=True)
class C2STResult:
    """Outcome of :func:`classifier_two_sample_test`: held-out ``accuracy`` of the classifier (0.5: the laws
    cannot be told apart), its binomial standard error, and the number of held-out fields."""

    accuracy: float
    stderr: float
    tested: int


def _classifier(channels: int, ndim: int, width: int) -> nn.Module:
    """Three convolutions (two strided), global mean pooling and a linear read-out: any grid of ``ndim`` axes."""
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[ndim]
    pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[ndim]
    return nn.Sequential(
        conv(channels, width, 3, padding=1), nn.GELU(),
        conv(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
        conv(2 * width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
        pool(1), nn.Flatten(), nn.Linear(2 * width, 1),
    )


def classifier_two_sample_test(samples: Tensor, data: Tensor, *, epochs: int = 30, width: int = 16,
                               batch_size: int = 64, lr: float = 2e-3, seed: int = 0) -> C2STResult:
    """Train a small CNN to tell ``samples`` from ``data`` (both ``(num, channels, *grid)`` on one grid) and
    report its accuracy on fields it did not see.

    The larger set is cut to the size ``n`` of the smaller; each is split in halves (seeded), the classifier
    (:func:`_classifier`) trains on the first halves with Adam and binary cross-entropy, and is scored on the
    second halves (``n`` fields, balanced). Fields are standardised by the training halves' joint mean and std.
    """
    if samples.shape[1:] != data.shape[1:]:
        raise ValueError(f"samples {tuple(samples.shape)} and data {tuple(data.shape)} need the same channels and "
                         f"grid; resample one of them first.")
    n = min(len(samples), len(data))
    if n < 4:
        raise ValueError(f"the two-sample test needs at least 4 fields of each, got {len(samples)} and {len(data)}.")
    generator = torch.Generator().manual_seed(seed)
    a = samples[torch.randperm(len(samples), generator=generator)[:n]].float()
    b = data[torch.randperm(len(data), generator=generator)[:n]].float()
    half = n // 2
    train = torch.cat([a[:half], b[:half]])
    test = torch.cat([a[half:], b[half:]])
    train_labels = torch.cat([torch.ones(half), torch.zeros(half)])
    test_labels = torch.cat([torch.ones(n - half), torch.zeros(n - half)])
    mean, std = train.mean(), train.std().clamp_min(1e-12)
    train, test = (train - mean) / std, (test - mean) / std
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _classifier(samples.shape[1], samples.dim() - 2, width)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        order = torch.randperm(len(train), generator=generator)
        for start in range(0, len(train), batch_size):
            rows = order[start : start + batch_size]
            optimizer.zero_grad()
            loss_fn(net(train[rows])[:, 0], train_labels[rows]).backward()
            optimizer.step()
    with torch.no_grad():
        predicted = torch.cat([net(test[s : s + 256])[:, 0] for s in range(0, len(test), 256)]) > 0
    accuracy = float((predicted.float() == test_labels).float().mean())
    return C2STResult(accuracy=accuracy, stderr=math.sqrt(accuracy * (1 - accuracy) / len(test)), tested=len(test))
