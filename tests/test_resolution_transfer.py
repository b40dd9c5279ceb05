"""The resolution-transfer benchmark's measurements are right where the answer is known.

* the exact GRF reference spectrum is grid independent on the shared shells and is what draws average to;
* the log-log slope recovers a power law's exponent;
* with the exact Gaussian denoiser in place of a trained model, the benchmark's own evaluation finds what
  must be true: the spectrum error at every grid is at the Monte-Carlo level of the training grid
  (ratio near 1), and beyond the training Nyquist the samples follow the data's decay with the right
  energy — so a pipeline that drew the prior on the wrong grid, or left the fine modes empty or white,
  would fail here.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import replace
from pathlib import Path

import torch

from hilbert_diffusion import GaussianOracle
from hilbert_diffusion.checkpoint import TrainedRun
from hilbert_diffusion.cli import default_sde
from hilbert_diffusion.datasets import gaussian_random_fields
from hilbert_diffusion.metrics import radial_spectrum, spectrum_error
from hilbert_diffusion.training import Normalization

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "resolution_transfer.py"
_spec = importlib.util.spec_from_file_location("resolution_transfer_benchmark", _PATH)
rt = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = rt  # dataclasses look their module up there
_spec.loader.exec_module(rt)


def test_exact_reference_is_grid_independent_and_is_the_mean_of_draws() -> None:
    k16, e16 = rt.exact_grf_spectrum(16)
    k32, e32 = rt.exact_grf_spectrum(32)
    assert torch.allclose(k32[: len(k16)], k16)
    assert torch.allclose(e32[: len(e16)], e16, rtol=1e-10, atol=0)
    draws = gaussian_random_fields(2000, 16, spectrum=rt.GRF_SPECTRUM, basis=rt.BASIS, seed=3).data.double()
    # each shell k ≥ 1 pools ≥ 4 modes × 2000 draws: relative MC error ≲ 2 %; a wrong factor (e.g. the
    # multiplicity of the real-FFT half plane) would be ≥ log 2
    assert spectrum_error(radial_spectrum(draws, rt.BASIS), (k16, e16), kmax=7) < 0.05


def test_slope_of_a_power_law() -> None:
    k = torch.arange(0, 40, dtype=torch.float64)
    e = 5.0 * k.clamp_min(1) ** -3.0
    assert math.isclose(rt.slope((k, e), 8, 39), -3.0, abs_tol=1e-12)
    assert math.isclose(rt.band_energy((k, e), 8, 10), float(e[9:11].sum()), rel_tol=1e-12)


def test_exact_denoiser_transfers_across_resolutions() -> None:
    train_resolution = 8
    sde = default_sde(rt.BASIS, (train_resolution,) * 2)
    run = TrainedRun(model=GaussianOracle(sde, rt.GRF_SPECTRUM), sde=sde,
                     normalization=Normalization((0.0,), (1.0,)), step=0)
    setting = replace(rt.QUICK, train_resolution=train_resolution, resolutions=(8, 16, 32), samples=(128, 128, 64),
                      baseline_resolutions=(), band_top=15)

    def floor_fields(num: int, resolution: int) -> torch.Tensor:
        return gaussian_random_fields(num, resolution, spectrum=rt.GRF_SPECTRUM, basis=rt.BASIS, seed=7).data

    torch.manual_seed(0)
    result = rt.evaluate("grf", run, rt.exact_grf_spectrum, floor_fields, setting, k_cap=math.inf)
    rows = {row["resolution"]: row for row in result["rows"]}
    for row in rows.values():
        # the default sampler's bias plus Monte-Carlo noise: a few times the draws' own level
        assert row["spectrum_error"] < 3 * row["noise_floor"] + 0.05, row
    for resolution in (16, 32):
        band = rows[resolution]["beyond_nyquist"]
        assert abs(band["slope_samples"] - band["slope_reference"]) < 0.3, band
        assert 0.85 < band["energy_ratio"] < 1.15, band
    assert rows[32]["beyond_nyquist"]["band"] == [4, 15.0]
