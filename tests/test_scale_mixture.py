"""The Gaussian scale mixture's exact denoiser: one scale is the Gaussian denoiser; the fit recovers a known mixture's
amplitudes, one per field or one per octave band; and on its own data the posterior over the class is certain, so the
denoiser is the Wiener filter of each field's true amplitudes."""

import math
from dataclasses import replace

import pytest
import torch

from hilbert_diffusion.bases import NeumannBasis, PeriodicBasis
from hilbert_diffusion.datasets import gaussian_random_fields
from hilbert_diffusion.models.cross_spectrum import ChannelCovariance, ChannelGaussianDenoiser
from hilbert_diffusion.models.scale_mixture import ScaleMixture, ScaleMixtureDenoiser, band_index, octave_edges
from hilbert_diffusion.sde import default_sde

N = 16
BASES = [NeumannBasis(2), PeriodicBasis(2)]


def _mixture_data(basis, num: int = 400):
    """Fields ``ḡ + s (g − ḡ)``, ``g`` a GRF and ``ḡ`` its mean (the constant mode, which the mixture leaves unscaled),
    ``s`` 0.5 or 2 with probability ½ each; and the amplitudes."""
    g = gaussian_random_fields(num, N, basis=basis, seed=1).data.double()
    s = torch.where(torch.rand(num, generator=torch.Generator().manual_seed(2)) < 0.5, 0.5, 2.0)
    mean = g.mean((-2, -1), keepdim=True)
    return mean + (g - mean) * s[:, None, None, None], s


@pytest.mark.parametrize("basis", BASES, ids=lambda b: type(b).__name__)
def test_one_scale_is_the_gaussian_denoiser_for_correlated_channels(basis) -> None:
    g = gaussian_random_fields(200, N, basis=basis, seed=3).data.double()
    h = gaussian_random_fields(200, N, basis=basis, seed=4).data.double()
    pairs = torch.cat([g, 0.8 * g + 0.6 * h], dim=1)  # correlation 0.8 between the channels
    covariance = ChannelCovariance.estimate(pairs, basis)
    sde = default_sde(basis, (N, N), kappa_nyquist=5.0)
    t = torch.full((4,), 0.2)
    x_t, _ = sde.marginal_sample(pairs[:4], t.double(), generator=torch.Generator().manual_seed(0))
    one = ScaleMixtureDenoiser(sde, covariance, ScaleMixture((1.0,), (1.0,)))(x_t, t)
    assert torch.allclose(one, ChannelGaussianDenoiser(sde, covariance)(x_t, t), atol=1e-12, rtol=0)
    one_class = ScaleMixture.fit(pairs, covariance, basis, bins=1)  # its scale²: the mean whitened energy
    assert one_class.scales[0] ** 2 == pytest.approx(1.0, abs=0.05)  # E ŝ² = 1 for the Gaussian C was estimated from


@pytest.mark.parametrize("basis", BASES, ids=lambda b: type(b).__name__)
def test_fit_recovers_the_amplitudes_and_the_denoiser_is_the_true_amplitudes_wiener_filter(basis) -> None:
    """C estimated from the mixture is E[s²] C_g = 2.125 C_g, so the amplitudes relative to it are 0.5 / √2.125 and
    2 / √2.125 (each field's estimate has relative error sqrt(2/256) ≈ 9 %, averaged over 200 fields per bin)."""
    x, s = _mixture_data(basis)
    covariance = ChannelCovariance.estimate(x, basis)
    mixture = ScaleMixture.fit(x, covariance, basis, bins=2)
    assert mixture.weights == pytest.approx((0.5, 0.5), abs=0.06)
    assert mixture.scales == pytest.approx((0.5 / math.sqrt(2.125), 2 / math.sqrt(2.125)), rel=0.04)
    sde = default_sde(basis, (N, N))
    t = torch.full((8,), 0.05)  # low noise: hundreds of modes tell the amplitude (at t = 0.3 only the first few do)
    x_t, _ = sde.marginal_sample(x[:8], t.double(), generator=torch.Generator().manual_seed(0))
    denoised = ScaleMixtureDenoiser(sde, covariance, mixture)(x_t, t)
    for i in range(8):  # the field's own amplitude's Wiener filter, up to the posterior's (tiny) doubt
        j = int(s[i] > 1)
        oracle = ScaleMixtureDenoiser(sde, covariance, ScaleMixture((mixture.scales[j],), (1.0,)))(x_t[i : i + 1], t[:1])
        assert torch.allclose(denoised[i : i + 1], oracle, atol=1e-6 * float(oracle.abs().max()), rtol=0)
    t = torch.full((100,), 0.2)  # more noise: the amplitude is uncertain, and knowing it is worth most
    x_t, _ = sde.marginal_sample(x[:100], t.double(), generator=torch.Generator().manual_seed(1))
    residuals = [model(x_t, t) - x[:100] for model in
                 (ScaleMixtureDenoiser(sde, covariance, mixture), ChannelGaussianDenoiser(sde, covariance))]
    assert torch.allclose(*(r.mean((-2, -1)) for r in residuals), atol=1e-12)  # the same constant mode: unscaled
    errors = [(r - r.mean((-2, -1), keepdim=True)).square().mean() for r in residuals]  # on the scaled modes
    assert errors[0] < 0.9 * errors[1]


def test_a_mixture_needs_positive_scales_and_probabilities() -> None:
    with pytest.raises(ValueError, match="as many weights"):
        ScaleMixture((1.0, 2.0), (1.0,))
    with pytest.raises(ValueError, match="probability vector"):
        ScaleMixture((1.0, 2.0), (0.7, 0.7))


def test_octave_bands_are_the_same_on_every_grid_and_leave_the_constant_mode_unscaled() -> None:
    basis = NeumannBasis(2)  # √λ = π |k|: κ₁ = π
    assert octave_edges(basis, (16, 16), 3) == octave_edges(basis, (32, 48), 3) == pytest.approx((2 * math.pi, 4 * math.pi))
    coarse, fine = (band_index(basis, grid, octave_edges(basis, grid, 3)) for grid in ((16, 16), (32, 32)))
    assert torch.equal(fine[:16, :16], coarse)  # a mode's band does not depend on the grid
    assert coarse[0, 0] == -1 and coarse[1, 0] == coarse[1, 1] == 0 and coarse[2, 0] == coarse[3, 0] == 1
    assert coarse[4, 0] == 2 and int(fine.max()) == 2


def _shaped_data(basis, num: int = 400):
    """Two spectral shapes: class 0 has amplitude 2 on the coarse octave band and ½ on the rest, class 1 the reverse
    (the same mean energy, so one amplitude per field cannot tell them apart); the constant mode unscaled."""
    g = gaussian_random_fields(num, N, basis=basis, seed=5).data.double()
    labels = (torch.rand(num, generator=torch.Generator().manual_seed(6)) < 0.5).long()
    per_band = torch.tensor([[2.0, 0.5, 1.0], [0.5, 2.0, 1.0]], dtype=torch.float64)  # bands 0, 1, constant (−1)
    bands = band_index(basis, (N, N), octave_edges(basis, (N, N), 2))
    factor = per_band[labels][:, bands].unsqueeze(1)  # (num, 1, *modes)
    return basis.inverse(basis.forward(g) * factor, (N, N)), labels


@pytest.mark.parametrize("basis", BASES, ids=lambda b: type(b).__name__)
def test_band_classes_recover_spectral_shapes_and_denoise_each_with_its_own(basis) -> None:
    """C estimated from the data is 2.125 C_g on either band (E s² = (4 + ¼) / 2), so class 0's scales are
    (2, ½) / √2.125 and class 1's the reverse; the per-band denoiser is each field's true-shape Wiener filter at low
    noise, and beats one amplitude per field, which sees the same energy in both classes."""
    x, labels = _shaped_data(basis)
    covariance = ChannelCovariance.estimate(x, basis)
    mixture = ScaleMixture.fit(x, covariance, basis, bins=2, bands=2)
    order = sorted(range(2), key=lambda j: -mixture.scales[j][0])  # class 0: the large coarse amplitude
    assert [mixture.weights[j] for j in order] == pytest.approx((0.5, 0.5), abs=0.06)
    assert [mixture.scales[j] for j in order] == [pytest.approx(v, rel=0.15) for v in
                                                  ((2 / math.sqrt(2.125), 0.5 / math.sqrt(2.125)),
                                                   (0.5 / math.sqrt(2.125), 2 / math.sqrt(2.125)))]
    sde = default_sde(basis, (N, N))
    t = torch.full((8,), 0.05)
    x_t, _ = sde.marginal_sample(x[:8], t.double(), generator=torch.Generator().manual_seed(0))
    denoised = ScaleMixtureDenoiser(sde, covariance, mixture)(x_t, t)
    for i in range(8):
        j = order[int(labels[i])]
        own = ScaleMixture((mixture.scales[j],), (1.0,), mixture.edges)
        oracle = ScaleMixtureDenoiser(sde, covariance, own)(x_t[i : i + 1], t[:1])
        assert torch.allclose(denoised[i : i + 1], oracle, atol=1e-6 * float(oracle.abs().max()), rtol=0)
    t = torch.full((100,), 0.1)
    x_t, _ = sde.marginal_sample(x[:100], t.double(), generator=torch.Generator().manual_seed(1))
    one_band = ScaleMixture.fit(x, covariance, basis, bins=2)
    residuals = [ScaleMixtureDenoiser(sde, covariance, m)(x_t, t) - x[:100] for m in (mixture, one_band)]
    errors = [(r - r.mean((-2, -1), keepdim=True)).square().mean() for r in residuals]  # on the scaled modes
    assert errors[0] < 0.75 * errors[1]


def test_band_scales_must_match_the_edges() -> None:
    with pytest.raises(ValueError, match="one scale per band"):
        ScaleMixture(((1.0, 2.0), (2.0, 1.0)), (0.5, 0.5))
    with pytest.raises(ValueError, match="increasing"):
        ScaleMixture(((1.0, 2.0, 1.0),), (1.0,), (2.0, 1.0))


@pytest.mark.parametrize("bands", [1, 3])
def test_the_score_operators_amplitude_skip_is_the_mixtures_exact_denoiser_per_field_time(bands: int) -> None:
    """An untrained ScoreFNO (its network's last layer is zero) with ``amplitude_classes`` is the scale mixture's
    exact denoiser, field by field at different ``t``; with the classes fitted by ``fit_amplitudes`` they are
    :meth:`ScaleMixture.fit`'s for the same spectrum."""
    from hilbert_diffusion.models.fno import ScoreFNOConfig

    basis = NeumannBasis(2)
    x, _ = _mixture_data(basis, num=200)
    covariance = ChannelCovariance.estimate(x, basis)
    sde = default_sde(basis, (N, N), kappa_nyquist=25.0)
    net = ScoreFNOConfig(hidden_channels=4, n_modes=4, n_layers=1, amplitude_classes=4, amplitude_bands=bands).build(
        sde, channels=1, data_spectrum=covariance.spectra)
    fitted = net.fit_amplitudes(x.split(64))
    assert fitted == net.amplitude_mixture
    direct = ScaleMixture.fit(x, covariance, basis, bins=4, bands=bands)
    assert torch.allclose(fitted.table(), direct.table(), rtol=1e-9) and fitted.edges == direct.edges
    exact = ScaleMixtureDenoiser(sde, covariance, fitted)
    t = torch.tensor([0.02, 0.1, 0.3, 0.6], dtype=torch.float64)
    x_t, _ = sde.marginal_sample(x[:4], t, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(x_t.float(), t)  # the model runs in float32
    for i in range(4):
        expected = exact(x_t[i : i + 1], t[i : i + 1])
        assert torch.allclose(out[i : i + 1].double(), expected, atol=1e-5 * float(expected.abs().max()), rtol=0)


def test_amplitude_classes_are_fitted_once_saved_and_resumed(tmp_path) -> None:
    from hilbert_diffusion.checkpoint import load
    from hilbert_diffusion.models.fno import ScoreFNOConfig
    from hilbert_diffusion.training import TrainConfig, train

    basis = NeumannBasis(2)
    x, _ = _mixture_data(basis, num=64)
    sde = default_sde(basis, (N, N))
    model = ScoreFNOConfig(hidden_channels=4, n_modes=4, n_layers=1, amplitude_classes=2)
    config = TrainConfig(steps=3, batch_size=8, checkpoint_every=0, figure_samples=0, optimised_steps=0)
    run = train(x.float(), sde=sde, model=model, config=config, out_dir=tmp_path, progress=False)
    mixture = run.model.amplitude_mixture
    assert mixture.scales[1] > 2 * mixture.scales[0]  # the amplitudes 0.5 and 2 (ratio 4), some fields held out
    assert load(tmp_path).model.amplitude_mixture == mixture
    resumed = train(x.float(), sde=sde, model=model, config=replace(config, steps=5), out_dir=tmp_path,
                    progress=False, resume=True)
    assert resumed.model.amplitude_mixture == mixture and resumed.step == 5
    with pytest.raises(ValueError, match="amplitude_classes"):
        ScoreFNOConfig(amplitude_classes=2, wiener_skip=False)


def test_a_checkpoint_saved_before_amplitude_bands_loads_as_one_band() -> None:
    from hilbert_diffusion.models.fno import ScoreFNOConfig, clean_state_dict

    basis = NeumannBasis(2)
    x, _ = _mixture_data(basis, num=64)
    sde = default_sde(basis, (N, N))
    config = ScoreFNOConfig(hidden_channels=4, n_modes=4, n_layers=1, amplitude_classes=2)
    net = config.build(sde, channels=1, data_spectrum=ChannelCovariance.estimate(x, basis).spectra)
    mixture = net.fit_amplitudes([x])
    state = clean_state_dict(net)
    state["amplitude_scales"] = state["amplitude_scales"][:, 0]  # the layout before bands: (classes,), no edges
    del state["amplitude_edges"]
    fresh = config.build(sde, channels=1, data_spectrum=net.data_spectrum)
    fresh.load_state_dict(state)
    assert fresh.amplitude_mixture == mixture


def _grid_covariance(basis, grid, variance):
    """``Φ diag(v) Φᵀ`` for a real basis, ``Φ``'s columns its functions at the grid points (inverse transforms of unit
    coefficients): the covariance of the grid values of a field with coefficient variances ``v``, built independently
    of the library's ``apply_diagonal`` route."""
    count = math.prod(grid)
    unit = torch.eye(count, dtype=torch.float64).reshape(count, 1, *grid)
    phi = basis.inverse(unit * variance.sqrt(), grid).reshape(count, -1)
    return phi.T @ phi


def test_the_mixture_posterior_mean_is_the_evidence_weighted_gaussian_posteriors() -> None:
    """(S5) against an independent computation: class evidences from ``MultivariateNormal`` on ``A Φ diag(s² c) Φᵀ
    Aᵀ + σ² I`` and each class's posterior mean by a linear solve; one class is :func:`exact_gaussian_posterior`.
    (On the cosine basis, whose coefficients are real, so ``Φ`` is a plain matrix; the function itself is basis-free.)"""
    from hilbert_diffusion.models.gaussian import exact_gaussian_posterior
    from hilbert_diffusion.models.oracle import GaussianOracle
    from hilbert_diffusion.models.scale_mixture import mixture_posterior_mean
    from hilbert_diffusion.noise import Matern
    from hilbert_diffusion.restoration import random_mask
    from hilbert_diffusion.restoration.vectors import _to_vector, observation_matrix

    basis, n, grid = NeumannBasis(2), 8, (8, 8)
    x, _ = _mixture_data(basis, num=200)
    x = basis.resample(x, n)
    covariance = ChannelCovariance.estimate(x, basis)
    mixture = ScaleMixture.fit(x, covariance, basis, bins=2, bands=2)
    sigma = 0.3  # noisy and few (6) points: the class stays uncertain for some fields
    operator = random_mask(basis, n, observed_fraction=0.1, generator=torch.Generator().manual_seed(0), noise_std=sigma)
    y = operator.forward(x[:6]) + sigma * torch.randn(6, 1, *operator.observation_grid(grid),
                                                      generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mean, posterior = mixture_posterior_mean(covariance, mixture, operator, y, grid)
    a, v = observation_matrix(operator, grid), _to_vector(operator, y, grid).reshape(6, -1)
    bands = band_index(basis, grid, mixture.edges)
    c = covariance.matrix(basis, grid)[0, 0]
    log_evidence, means = [], []
    for row in mixture.table():
        prior = _grid_covariance(basis, grid, torch.cat([row, torch.ones(1, dtype=torch.float64)])[bands] ** 2 * c)
        k = a @ prior @ a.T + sigma**2 * torch.eye(len(a), dtype=torch.float64)
        log_evidence.append(torch.distributions.MultivariateNormal(torch.zeros(len(a), dtype=torch.float64), k).log_prob(v))
        means.append((prior @ a.T @ torch.linalg.solve(k, v.T)).T)
    expected = torch.softmax(torch.stack(log_evidence, 1) + torch.tensor(mixture.weights).log(), 1)
    assert torch.allclose(posterior, expected, atol=1e-6)
    assert posterior.max(1).values.min() < 0.99  # a test of the weighting: some observations leave the class open
    combined = torch.einsum("bj,jbn->bn", expected, torch.stack(means)).reshape(mean.shape)
    assert torch.allclose(mean, combined, atol=1e-6 * float(combined.abs().max()))
    gaussian, _ = mixture_posterior_mean(covariance, ScaleMixture((1.0,), (1.0,)), operator, y, grid)
    oracle = GaussianOracle(default_sde(basis, grid), Matern(alpha=2.0, tau=3.0))  # its spectrum replaced by C's
    exact = exact_gaussian_posterior(oracle, operator, y, grid, prior_variance=c)
    assert torch.allclose(gaussian, exact.mean, atol=1e-6 * float(exact.mean.abs().max()))


def test_on_its_own_data_the_mixture_posterior_mean_restores_better_than_the_gaussians() -> None:
    """Bayes: on fields drawn from the mixture, its exact posterior mean has a lower error than the exact posterior mean
    of the Gaussian with the same covariance, for noisy points outside a box. (Without noise one amplitude would
    cancel from ``s² C Aᵀ (s² A C Aᵀ)⁻¹ y``, and only the unscaled mean level would tell the two apart.)"""
    from hilbert_diffusion.models.scale_mixture import mixture_posterior_mean
    from hilbert_diffusion.restoration import box_mask

    basis = NeumannBasis(2)
    x, _ = _mixture_data(basis, num=400)
    covariance = ChannelCovariance.estimate(x[:300], basis)
    mixture = ScaleMixture.fit(x[:300], covariance, basis, bins=2)
    operator = box_mask(basis, N, low=0.3, high=0.7, noise_std=0.5)
    truth = x[300:]
    y = operator.forward(truth) + 0.5 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(0),
                                                    dtype=torch.float64)
    errors = [(mixture_posterior_mean(covariance, prior, operator, y, (N, N))[0] - truth).square().mean()
              for prior in (mixture, ScaleMixture((1.0,), (1.0,)))]
    assert errors[0] < 0.9 * errors[1]


def test_from_coarse_modes_the_mixture_posterior_mean_is_zero_padding() -> None:
    """Observing a field's coarse modes exactly leaves each class's fine modes at their prior mean, 0, whatever the
    class: the exact posterior mean of any scale mixture (bands included) is the band-limited interpolant."""
    from hilbert_diffusion.models.scale_mixture import mixture_posterior_mean
    from hilbert_diffusion.restoration import SpectralDownsample
    from hilbert_diffusion.restoration.classical import zero_padding

    basis = NeumannBasis(2)
    x, _ = _mixture_data(basis, num=200)
    covariance = ChannelCovariance.estimate(x, basis)
    operator = SpectralDownsample(basis=basis, resolution=N // 2)
    y = operator.observe(x[:4])
    for mixture in (ScaleMixture.fit(x, covariance, basis, bins=4), ScaleMixture.fit(x, covariance, basis, bins=4, bands=3)):
        mean, _ = mixture_posterior_mean(covariance, mixture, operator, y, (N, N))
        assert torch.allclose(mean, zero_padding(y, N, basis).double(), atol=1e-7 * float(x.abs().max()))
