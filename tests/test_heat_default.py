"""The heat-default benchmark's own statistics are exact where the answer is known: the excess kurtosis of a
two-point law (−2) and of a three-point law in closed form, the band error of a spectrum scaled by ``r`` (``|log r|``,
on that band only), and the image statistics of images whose differences follow a Bernoulli law. (Its ``--quick`` mode runs in
``test_benchmarks`` through the runner.)"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the benchmarks are a folder of scripts at the repository root, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import heat_default as hd


def test_excess_kurtosis_of_point_laws() -> None:
    two_point = torch.tensor([[-1.0, 1.0] * 50])
    assert torch.allclose(hd.excess_kurtosis(two_point), torch.tensor([-2.0], dtype=torch.float64))
    # P(±a) = p/2, P(0) = 1 - p: E d⁴ / (E d²)² = 1/p, so the excess is 1/p - 3 (p = 0.2: 2)
    three_point = torch.tensor([[3.0, -3.0] + [0.0] * 8])
    assert math.isclose(float(hd.excess_kurtosis(three_point)[0]), 1 / 0.2 - 3, rel_tol=1e-12)
    shifted_scaled = 7.0 * three_point + 2.0  # location and scale free
    assert math.isclose(float(hd.excess_kurtosis(shifted_scaled)[0]), 2.0, rel_tol=1e-12)


def test_band_error_is_the_log_ratio_on_the_band_only() -> None:
    k = torch.arange(0, 40, dtype=torch.float64)
    energy = (1 + k) ** -3.0
    scaled = energy.clone()
    scaled[k > 10] *= 2.5  # the band above 10 scaled by 2.5; below it the spectra differ by another factor
    scaled[k <= 10] *= 9.0
    assert math.isclose(hd._band_error((k, scaled), (k, energy), low=10, high=30), math.log(2.5), rel_tol=1e-12)


def test_image_statistics_of_a_ramp_and_a_step() -> None:
    ramp = torch.arange(5.0).expand(2, 1, 4, 5)  # horizontal differences all 1: no spread
    assert hd.image_statistics(ramp)["difference_std"] == 0.0
    step = torch.zeros(3, 1, 4, 11)
    step[..., 6:] = 1.0  # per row ten differences, one of them 1: a Bernoulli law with p = 0.1
    p, q = 0.1, 0.9
    stats = hd.image_statistics(step)
    assert math.isclose(stats["kurtosis"], (1 - 6 * p * q) / (p * q), rel_tol=1e-12)  # Bernoulli's excess kurtosis
    assert math.isclose(stats["difference_std"], math.sqrt(p * q * 40 / 39), rel_tol=1e-12)  # unbiased, 40 values
