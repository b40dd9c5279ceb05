"""The built-in image sets: range, shape, seeds, edges, disjoint splits, and the resolution-free shapes."""

import pytest
import torch

from hilbert_diffusion.datasets import digits, faces, from_spec, photo_patches, shapes
from hilbert_diffusion.datasets.spec import dataset_from_spec


def _rows(dataset) -> set[bytes]:
    return {row.numpy().tobytes() for row in dataset.data}


def _edge_share(data: torch.Tensor, jump: float) -> float:
    """Share of horizontal neighbour pairs whose values differ by more than ``jump``."""
    return float(((data[..., 1:] - data[..., :-1]).abs() > jump).float().mean())


def test_shapes_range_shape_seed_and_edges():
    a = shapes(24, 16, seed=3)
    assert a.data.shape == (24, 1, 16, 16) and a.data.dtype == torch.float32
    assert float(a.data.min()) >= 0.0 and float(a.data.max()) <= 1.0
    assert torch.equal(a.data, shapes(24, 16, seed=3).data)
    assert not torch.equal(a.data, shapes(24, 16, seed=4).data)
    # sharp edges: jumps ≥ 0.1 between neighbours occur, and most neighbours are equal (flat regions)
    assert 0.01 < _edge_share(a.data, 0.1) < 0.3
    assert float(((a.data[..., 1:] - a.data[..., :-1]).abs() < 1e-6).float().mean()) > 0.5
    assert torch.equal(from_spec(a.spec).data, a.data)


def test_shapes_are_resolution_free():
    """16 pixels with 8 sub-points and 32 with 4 sample the same points: 2×2 block means agree exactly; at the
    default sub-sampling they agree up to the edge quadrature."""
    coarse = shapes(6, 16, seed=1, supersample=8).data.double()
    fine = shapes(6, 32, seed=1, supersample=4).data.double()
    blocks = fine.reshape(6, 1, 16, 2, 16, 2).mean(dim=(3, 5))
    assert torch.allclose(blocks, coarse, atol=1e-6)
    default = shapes(6, 16, seed=1).data.double()
    assert float((default - coarse).abs().mean()) < 0.01


def test_shapes_splits_are_disjoint():
    train, test = shapes(50, 8, split="train"), shapes(50, 8, split="test")
    assert not _rows(train) & _rows(test)
    with pytest.raises(ValueError, match="split"):
        shapes(4, 8, split="validation")


def test_faces_and_patches():
    pytest.importorskip("skimage")
    train, test = faces(resolution=16), faces(resolution=16, split="test")
    assert train.data.shape == (80, 1, 16, 16) and test.data.shape == (20, 1, 16, 16)
    assert not _rows(train) & _rows(test)
    assert float(train.data.min()) >= 0.0 and float(train.data.max()) <= 1.0
    assert float(train.data.std()) > 0.1
    assert torch.equal(faces(resolution=16, seed=1).data, faces(resolution=16, seed=1).data)
    assert not _rows(faces(resolution=16, seed=1)) == _rows(train)  # another seed, another split
    patches = photo_patches(40, 16, seed=2)
    assert patches.data.shape == (40, 1, 16, 16)
    assert torch.equal(patches.data, photo_patches(40, 16, seed=2).data)
    assert float(patches.data.min()) >= 0.0 and float(patches.data.max()) <= 1.0
    held_out = photo_patches(40, 16, seed=2, split="test")  # another photograph
    assert not _rows(patches) & _rows(held_out)
    # photographs have edges: heavy-tailed differences (excess kurtosis well above a Gaussian's 0)
    diff = (patches.data[..., 1:] - patches.data[..., :-1]).flatten().double()
    assert float(((diff - diff.mean()) ** 4).mean() / diff.var() ** 2) - 3 > 2.0


def test_digits_when_scikit_learn_is_installed():
    pytest.importorskip("sklearn")
    train, test = digits(), digits(split="test")
    assert train.data.shape == (1438, 1, 16, 16) and test.data.shape == (359, 1, 16, 16)
    assert not _rows(train) & _rows(test)
    assert float(train.data.min()) >= 0.0 and float(train.data.max()) <= 1.0
    assert digits(num=5, resolution=8).data.shape == (5, 1, 8, 8)


def test_image_sets_by_name():
    data = dataset_from_spec("shapes:split=test", num=3, resolution=8)
    assert data.data.shape == (3, 1, 8, 8) and data.spec["kwargs"]["split"] == "test"
    with pytest.raises(ValueError, match="num=500"):
        pytest.importorskip("skimage")
        dataset_from_spec("faces", num=500)


def test_missing_package_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # as if scikit-learn were not installed
    with pytest.raises(ValueError, match=r"hilbert_diffusion\[images\]"):
        digits()


def test_data_command_writes_image_sets(tmp_path):
    """`data` writes a whole packaged split (its size unknown before loading) and a procedural one."""
    import numpy as np

    from hilbert_diffusion.cli import main

    assert main(["data", "shapes:split=test", "--num", "3", "--resolution", "8", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3, 1, 8, 8)
    pytest.importorskip("skimage")
    assert main(["data", "faces:split=test", "--resolution", "8", "--out", str(tmp_path / "f.npy")]) == 0
    assert np.load(tmp_path / "f.npy").shape == (20, 1, 8, 8)
