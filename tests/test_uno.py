"""The U-shaped score operator: resolution-free like the FNO, chosen by --arch, recorded in the checkpoint."""

import json

import numpy as np
import pytest
import torch

from hilbert_diffusion.bases import NeumannBasis
from hilbert_diffusion.cli import main
from hilbert_diffusion.datasets import gaussian_random_fields
from hilbert_diffusion.models.fno import EmpiricalSpectrum
from hilbert_diffusion.models.uno import ScoreUNOConfig
from hilbert_diffusion.noise import Matern
from hilbert_diffusion.sde import default_sde


def test_uno_agrees_across_resolutions():
    """A smooth field on 64² and on 32² gives the same output (the 64² one resampled) to 1 %: the blocks resample
    by factors of the input grid, so the operator does not depend on the grid (random weights, no Wiener skip,
    so the network itself is compared)."""
    basis = NeumannBasis(2)
    fields = gaussian_random_fields(2, 64, basis=basis, spectrum=Matern(alpha=4.0, tau=3.0), seed=0).data
    sde = default_sde(basis, (32, 32))
    config = ScoreUNOConfig(hidden_channels=8, n_modes=8, positional_embedding=True, wiener_skip=False)
    torch.manual_seed(0)
    model = config.build(sde, channels=1, data_spectrum=EmpiricalSpectrum.estimate(fields, basis))
    for p in model.parameters():
        p.data += 0.1 * torch.randn_like(p)
    with torch.no_grad():
        fine, coarse = model(fields, 0.5), model(basis.resample(fields, (32, 32)), 0.5)
    assert float(coarse.norm()) > 1.0  # the network is not silent
    assert float((basis.resample(fine, (32, 32)) - coarse).norm() / coarse.norm()) < 0.01
    with pytest.raises(ValueError, match="too coarse"):
        model(fields[..., :2, :2], 0.5)


def test_arch_uno_trains_records_itself_and_samples_at_another_resolution(tmp_path, capsys):
    out, config = tmp_path / "uno", tmp_path / "config.json"
    config.write_text(json.dumps({"train": {"figure_samples": 2, "sample_steps": 4, "optimised_steps": 0}}))
    assert main(["train", "--data", "shapes", "--num", "8", "--resolution", "16", "--out", str(out), "--arch", "uno",
                 "--steps", "2", "--batch-size", "4", "--width", "4", "--modes", "4", "--config", str(config),
                 "--quiet"]) == 0
    stored = json.loads(sorted(out.glob("checkpoint-*"))[-1].joinpath("checkpoint.json").read_text())
    assert stored["model"]["config"]["type"] == "hilbert_diffusion.models.uno.ScoreUNOConfig"
    samples = tmp_path / "s.npy"
    assert main(["sample", str(out), "--resolution", "32", "--num", "3", "--steps", "4", "--out", str(samples),
                 "--quiet"]) == 0
    array = np.load(samples)
    assert array.shape == (3, 1, 32, 32) and np.isfinite(array).all()
    assert main(["train", "--data", "shapes", "--num", "16", "--resolution", "16", "--out", str(tmp_path / "x"),
                 "--arch", "uno", "--layers", "3", "--quiet"]) == 2
    assert "--layers sets the FNO's depth" in capsys.readouterr().err
