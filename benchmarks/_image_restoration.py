"""Zero-shot restoration of held-out images, a helper of :mod:`benchmarks.images` (issue 15): the six tasks, their
classical baselines (:mod:`hilbert_diffusion.restoration.classical`), and the posterior mean scored three ways — the
mean of the draws, the infinite-draw estimate (:func:`~hilbert_diffusion.metrics.posterior_mean_psnr`, eq. M1) and,
for the untrained priors, the exact posterior mean
(:func:`~hilbert_diffusion.models.scale_mixture.mixture_posterior_mean`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hilbert_diffusion.bases import SpectralBasis
from hilbert_diffusion.engine import Sampler
from hilbert_diffusion.metrics import posterior_mean_psnr, psnr, ssim
from hilbert_diffusion.models.cross_spectrum import ChannelGaussianDenoiser
from hilbert_diffusion.models.scale_mixture import ScaleMixture, ScaleMixtureDenoiser, mixture_posterior_mean
from hilbert_diffusion.restoration import BlockAverage, SpectralDownsample, box_mask, covariance_guidance, ddnm, random_mask
from hilbert_diffusion.restoration.classical import biharmonic, bicubic, total_variation, zero_padding
from hilbert_diffusion.trained import TrainedRun

__all__ = ["TASK_KEYS", "tasks", "baseline", "exact_posterior_mean", "restoration", "psnr_gap", "gap_text"]


# the command line's short name of each task (``--tasks``), in the order of :func:`tasks`
TASK_KEYS = {"sr2-block": "SR×2 block", "sr4-block": "SR×4 block", "sr2-spectral": "SR×2 spectral",
             "sr4-spectral": "SR×4 spectral", "box": "box 25%", "random": "random 70%"}


def tasks(n: int, basis: SpectralBasis, only: tuple[str, ...] = ()) -> dict:
    """Operator and classical baselines of each restoration task on the ``n²`` grid (those labelled ``only``, if
    given)."""
    every = {"SR×2 block": (BlockAverage(basis=basis, resolution=n // 2), ("bicubic", "zero-pad")),
            "SR×4 block": (BlockAverage(basis=basis, resolution=n // 4), ("bicubic", "zero-pad")),
            "SR×2 spectral": (SpectralDownsample(basis=basis, resolution=n // 2), ("bicubic", "zero-pad")),
            "SR×4 spectral": (SpectralDownsample(basis=basis, resolution=n // 4), ("bicubic", "zero-pad")),
            "box 25%": (box_mask(basis, n, low=0.25, high=0.75), ("biharmonic", "TV")),
            "random 70%": (random_mask(basis, n, observed_fraction=0.3, generator=torch.Generator().manual_seed(5)),
                           ("biharmonic", "TV"))}
    return {label: task for label, task in every.items() if not only or label in only}


def baseline(name: str, operator, y: Tensor, truth: Tensor, basis: SpectralBasis) -> Tensor:
    n = truth.shape[-1]
    if name == "bicubic":
        return bicubic(y, n)
    if name == "zero-pad":
        return zero_padding(y, n, basis)
    observed = operator.observed
    shown = truth * observed  # the baselines see the observed pixels only
    return biharmonic(shown, observed) if name == "biharmonic" else total_variation(shown, observed)


def exact_posterior_mean(run: TrainedRun, operator, y: Tensor, grid: tuple[int, ...]) -> Tensor | None:
    """The exact posterior mean (S5 of :mod:`~hilbert_diffusion.models.scale_mixture`) of an untrained run's prior,
    the Gaussian fit (one class) or its scale mixture, in data units: the Bayes limit of that prior with no sampler
    and no draws; ``None`` for a network."""
    model = run.model
    if isinstance(model, ScaleMixtureDenoiser):
        mixture = model.mixture
    elif isinstance(model, ChannelGaussianDenoiser):
        mixture = ScaleMixture((1.0,), (1.0,))
    else:
        return None
    moments = run.normalization.mean, run.normalization.std
    mean, std = (torch.tensor(v, dtype=torch.float64).reshape(1, -1, *[1] * len(grid)) for v in moments)
    encoded = operator.encode(y.to(torch.float64), mean, std, grid)
    posterior = mixture_posterior_mean(model.data_spectrum, mixture, operator.normalised(*moments), encoded, grid)[0]
    return run.normalization.decode(posterior)


def restoration(run: TrainedRun, truth: Tensor, basis: SpectralBasis, *, draws: int, steps: int, device: str,
                method: Sampler = covariance_guidance, only: tuple[str, ...] = ()) -> dict:
    """PSNR / SSIM (data range 1) of the posterior mean (``draws`` draws averaged: DDNM for the tasks diagonal in the
    basis, ``method`` for the others; for an untrained prior also the exact one, :func:`exact_posterior_mean`) and of
    each baseline, per task (those labelled ``only``, if given), mean over the images."""
    rows, n = {}, truth.shape[-1]
    for label, (operator, baselines) in tasks(n, basis, only).items():
        y = operator.observe(truth.to(torch.float64)).float()
        drawn = run.restore(operator, y, resolution=n, num=draws, method=ddnm if operator.diagonal else method,
                            steps=steps, generator=torch.Generator().manual_seed(11), device=device).cpu().float()
        drawn = drawn.reshape(len(truth), draws, *truth.shape[1:])
        mean = drawn.mean(1)
        exact = exact_posterior_mean(run, operator, y, tuple(truth.shape[2:]))
        estimates = ({"posterior mean": mean} | ({} if exact is None else {"exact posterior mean": exact.float()})
                     | {b: baseline(b, operator, y, truth, basis) for b in baselines})
        per_image = {k: psnr(v, truth, data_range=1.0) for k, v in estimates.items()}
        rows[label] = {k: {"psnr": float(per_image[k].mean()), "ssim": float(ssim(v, truth, data_range=1.0).mean())}
                       for k, v in estimates.items()}
        rows[label]["posterior mean"]["psnr_infinite_draws"] = float(  # (M1): what the mean of all draws would score
            posterior_mean_psnr(drawn, truth, data_range=1.0).mean())
        best_baseline = max(baselines, key=lambda b: rows[label][b]["psnr"])
        best = rows[label][best_baseline]["psnr"]
        paired = per_image["posterior mean"] - per_image[best_baseline]
        rows[label]["psnr_gap_stderr"] = float(paired.std() / len(truth) ** 0.5) if len(truth) > 1 else math.nan
        rows[label]["beats_every_baseline"] = rows[label]["posterior mean"]["psnr"] > best and all(
            rows[label]["posterior mean"]["ssim"] > rows[label][b]["ssim"] for b in baselines)
    return rows


def psnr_gap(task: dict, estimate: str = "posterior mean", key: str = "psnr") -> float:
    """PSNR (``key``) of ``estimate`` (the posterior mean of the draws, or the exact one) minus the best baseline's
    (dB) in a task's row of :func:`restoration`."""
    baselines = [v["psnr"] for k, v in task.items() if isinstance(v, dict) and not k.endswith("posterior mean")]
    return task[estimate][key] - max(baselines)


def gap_text(task: dict) -> str:
    """The gaps of the draws' mean, of infinitely many draws' (M1) and of the exact posterior mean, where measured,
    and the draws' gap's paired standard error over the images."""
    gaps = [psnr_gap(task)] + [psnr_gap(task, estimate, key) for estimate, key in
                               (("posterior mean", "psnr_infinite_draws"), ("exact posterior mean", "psnr"))
                               if key in task.get(estimate, {})]
    text = "/".join(f"{g:+.1f}" for g in gaps)
    return text + (f" (±{task['psnr_gap_stderr']:.1f})" if math.isfinite(task.get("psnr_gap_stderr", math.nan)) else "")
