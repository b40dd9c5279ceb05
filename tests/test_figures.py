"""Figures: every image has a colour bar, data sit beside samples on the same scale, every observation of a
restoration is drawn, hidden points are NaN (grey), and the `data` command writes a PNG."""

import numpy as np
import pytest
from matplotlib.colors import to_rgba
import torch

from hilbert_diffusion.cli import main
from hilbert_diffusion.figures import (
    MAX_ROWS,
    restoration_figure,
    sample_figure,
    save_restoration_figure,
    save_sample_figure,
)


def _fields(num, *grid, channels=1, seed=0):
    return torch.randn(num, channels, *grid, generator=torch.Generator().manual_seed(seed))


def _panels(fig):
    """Field panels (colour-bar axes excluded) by title."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _titled(fig, prefix):
    return [ax for ax in _panels(fig) if ax.get_title().startswith(prefix)]


def _image_axes(fig):
    return [ax for ax in _panels(fig) if ax.images]


def test_every_image_has_its_colour_bar():
    fig = restoration_figure(_fields(2, 16, 16, channels=2), _fields(6, 16, 16, channels=2, seed=1))
    images = _image_axes(fig)
    assert len(images) == 2 * 2 * 6  # observations × channels × (obs, 3 samples, mean, std)
    assert all(ax.images[0].colorbar is not None for ax in images)
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == len(images)
    fig = sample_figure(_fields(3, 8, 8), data=_fields(2, 8, 8, seed=1))
    assert len(_image_axes(fig)) == 5 and all(ax.images[0].colorbar is not None for ax in _image_axes(fig))


def test_signed_fields_share_a_symmetric_scale_and_std_has_its_own():
    samples = _fields(4, 8, 8, seed=2)
    fig = restoration_figure(samples[0], samples)
    (std,) = _titled(fig, "std")
    lo, hi = std.images[0].get_clim()
    assert lo == 0 and hi == pytest.approx(float(samples.std(0).max()), rel=1e-6)
    assert std.images[0].get_cmap().name.startswith("viridis")
    limits = {ax.images[0].get_clim() for ax in _image_axes(fig) if ax is not std}
    (clim,) = limits  # observation, samples and mean on one scale
    assert -clim[0] == clim[1] == pytest.approx(float(samples.abs().max()))


def test_data_are_drawn_beside_samples_on_the_same_scale():
    samples, data = _fields(3, 8, 8), 5 * _fields(2, 8, 8, seed=1)  # the data set the scale
    fig = sample_figure(samples, data=data)
    assert len(_titled(fig, "data")) == 2 and len(_titled(fig, "sample")) == 3
    (clim,) = {ax.images[0].get_clim() for ax in _image_axes(fig)}
    assert clim[1] == pytest.approx(float(data.abs().max()))
    curves = sample_figure(_fields(4, 32), data=_fields(6, 32, seed=1))
    (data_panel,) = _titled(curves, "data")
    (sample_panel,) = _titled(curves, "samples")
    assert len(data_panel.lines) == 6 and len(sample_panel.lines) == 4
    assert data_panel.get_ylim() == sample_panel.get_ylim()


def test_old_sample_call_still_works(tmp_path):
    path = save_sample_figure(_fields(2, 8, 8), tmp_path / "sub" / "s.png", title="step 3")
    assert path.read_bytes().startswith(b"\x89PNG") and not list(path.parent.glob(".*tmp*"))
    assert len(_image_axes(sample_figure(_fields(2, 8, 8)))) == 2


def test_every_observation_gets_a_row_up_to_the_cap():
    num = 3
    fig = restoration_figure(_fields(5, 16), _fields(5 * num, 16, seed=1))
    rows = _titled(fig, "observation")
    assert [ax.get_title() for ax in rows] == [f"observation {i + 1}" for i in range(5)]
    many = MAX_ROWS + 3
    fig = restoration_figure(_fields(many, 8, 8), _fields(many * 2, 8, 8, seed=1), title="superres")
    assert len(_titled(fig, "observation")) == MAX_ROWS
    assert f"first {MAX_ROWS} of {many} observations" in fig.get_suptitle()


def test_each_row_shows_its_own_observations_samples():
    """Observation-major: observation i owns samples[i*num:(i+1)*num]; its mean panel shows their mean."""
    num, observations = 4, _fields(3, 8, 8)
    samples = torch.cat([observations[i : i + 1] + 0.1 * _fields(num, 8, 8, seed=i) for i in range(3)])
    fig = restoration_figure(observations, samples)
    means = _titled(fig, "mean")
    assert len(means) == 3
    for i, ax in enumerate(means):
        np.testing.assert_allclose(ax.images[0].get_array(), samples[i * num : (i + 1) * num, 0].mean(0), rtol=1e-5)


def test_masked_points_are_hidden_in_the_observation_panel():
    observations, samples = _fields(2, 12, 12), _fields(4, 12, 12, seed=1)
    mask = torch.ones(12, 12, dtype=torch.bool)
    mask[3:9, 2:7] = False
    fig = restoration_figure(observations, samples, mask=mask)
    for i, ax in enumerate(_titled(fig, "observation")):
        drawn = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
        assert np.isnan(drawn[~mask.numpy()]).all()
        np.testing.assert_array_equal(drawn[mask.numpy()], observations[i, 0][mask].numpy())
        cmap = ax.images[0].get_cmap()
        assert tuple(cmap.get_bad()) == to_rgba("0.8")  # hidden points in a neutral grey
    with pytest.raises(ValueError, match="observation grid"):
        restoration_figure(observations, samples, mask=torch.ones(5, 5, dtype=torch.bool))


def test_a_masked_curve_shows_observed_points_as_markers_only():
    observation, samples = _fields(1, 40), _fields(3, 40, seed=1)
    mask = torch.arange(40) % 3 == 0
    fig = restoration_figure(observation[0], samples, mask=mask)  # one observation, (channels, *grid)
    (ax,) = _titled(fig, "observation")
    (line,) = ax.lines
    assert line.get_linestyle() == "None" and line.get_marker() == "."
    y = line.get_ydata()
    assert np.isnan(y[~mask.numpy()]).all() and np.isfinite(y[mask.numpy()]).all()


def test_a_coarse_curve_lines_up_with_fine_samples():
    """Super-resolution: an observation on 8 points and samples on 32 are drawn on the same x positions."""
    fig = restoration_figure(_fields(1, 8), _fields(2, 32, seed=1))
    (obs,) = _titled(fig, "observation")
    (sample, _) = _titled(fig, "sample")
    np.testing.assert_allclose(obs.lines[0].get_xdata(), np.arange(8) / 8)
    np.testing.assert_allclose(sample.lines[-1].get_xdata(), np.arange(32) / 32)


def test_restoration_figure_is_written(tmp_path):
    path = save_restoration_figure(_fields(2, 8, 8), _fields(4, 8, 8, seed=1), tmp_path / "r.png",
                                   mask=torch.ones(8, 8, dtype=torch.bool), title="inpaint")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_shapes_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="observation-major"):
        restoration_figure(_fields(3, 8, 8), _fields(4, 8, 8))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        sample_figure(_fields(2, 4, 4, 4))


@pytest.mark.parametrize(("spec", "extra", "grid"), [("grf", ["--dim", "1"], (16,)), ("grf", [], (16, 16)),
                                                     ("grf", ["--dim", "3"], (8, 8, 8))])
def test_data_command_writes_a_figure_beside_the_array(tmp_path, capsys, spec, extra, grid):
    out = tmp_path / "d.npy"
    assert main(["data", spec, "--num", "5", "--resolution", str(grid[0]), "--out", str(out), *extra]) == 0
    assert np.load(out).shape == (5, 1, *grid)
    png = out.with_suffix(".png")
    assert png.read_bytes().startswith(b"\x89PNG")
    assert str(png) in capsys.readouterr().out


def test_images_are_grey_upright_with_their_range():
    """Pictures (values in [0, 1], 1 channel) are drawn grey with row 0 at the top, a colour bar from 0 to 1 and
    the panel's value range in its title; signed fields are not pictures."""
    data = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    fig = sample_figure(data[:1], data=data)
    images = _image_axes(fig)
    assert len(images) == 3 and all(ax.images[0].colorbar is not None for ax in images)
    assert all(ax.images[0].origin == "upper" and ax.images[0].get_cmap().name.startswith("gray") for ax in images)
    assert {ax.images[0].get_clim() for ax in images} == {(0.0, 1.0)}
    (first,) = _titled(fig, "data 1")
    assert first.get_title().endswith(f"[{float(data[0].min()):.2f}, {float(data[0].max()):.2f}]")
    signed = _image_axes(sample_figure(_fields(2, 8, 8)))
    assert all(ax.images[0].origin == "lower" for ax in signed)
    forced = _image_axes(sample_figure(_fields(2, 8, 8), images=True))  # beyond [0, 1]: the range widens
    assert all(ax.images[0].origin == "upper" for ax in forced)
    assert forced[0].images[0].get_clim()[0] < 0


def test_three_channel_images_are_one_colour_picture_each():
    rgb = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    images = _image_axes(sample_figure(rgb[:2], data=rgb[2:]))
    assert len(images) == 3  # data 1, sample 1, sample 2: one picture per field, not per channel
    assert all(ax.images[0].get_array().shape == (8, 8, 3) and ax.images[0].origin == "upper" for ax in images)


def test_image_restoration_rows_are_upright_with_hidden_points_marked():
    truth = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    mask = torch.rand(8, 8, generator=torch.Generator().manual_seed(3)) > 0.5
    fig = restoration_figure(truth, truth.repeat(4, 1, 1, 1), mask=mask)
    assert all(ax.images[0].origin == "upper" for ax in _image_axes(fig))
    (observation,) = _titled(fig, "observation")
    hidden = observation.images[0].get_cmap().get_bad()
    assert np.allclose(hidden, to_rgba("#4c72b0"))


def test_written_files_and_run_folders_are_readable_by_the_group(tmp_path):
    import os
    import stat

    from hilbert_diffusion.checkpoint import write_checkpoint
    from hilbert_diffusion.cli_files import save_array
    from hilbert_diffusion.filemodes import process_umask

    old = os.umask(0o022)
    try:
        assert process_umask() == 0o022
        array = save_array(tmp_path / "a.npy", np.zeros((1, 1, 4), np.float32))
        figure = save_sample_figure(_fields(1, 4, 4), tmp_path / "f.png")
        folder = write_checkpoint(tmp_path / "run", step=1, config={}, tensors={"w": torch.zeros(2)},
                                  training_state={})
    finally:
        os.umask(old)
    for path in (array, figure, *folder.iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    for path in (folder, folder.parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o755, path
