"""The user's own data: arrays ``(num, channels, *grid)`` in ``.npy`` / ``.npz`` files, and folders
of images (PNG / JPEG through Pillow).

Domain of arrays: by default :class:`NeumannBasis` on ``[0, 1]^d`` (cosine transform). The even
reflection behind it is continuous for every field, so it is safe for data that are not periodic
(images, measured curves: a periodic basis would see a jump at the wrap and ring on resampling) and
still fine for periodic data. Pass ``basis=PeriodicBasis(d)`` for data on a torus (simulations with
periodic boundaries) or ``basis=SphereBasis()`` for ``(nlat, nlon)`` Legendre–Gauss grids.

Images become ``(num, channels, height, width)`` float32 in ``[0, 1]`` on
``NeumannBasis(2, lengths=(1, width/height))`` (square pixels).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..bases import NeumannBasis, SpectralBasis
from .base import FieldDataset, dataset_spec, grid_coordinates

__all__ = ["from_array", "load_array", "load_images", "IMAGE_SUFFIXES"]

#: file suffixes read by :func:`load_images` (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _validate_array(array: np.ndarray, basis: SpectralBasis | None, what: str) -> np.ndarray:
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(
            f"{what} has dtype {array.dtype}; it must hold real numbers (convert it with .astype(np.float32))."
        )
    if np.iscomplexobj(array):
        raise ValueError(f"{what} is complex; store real fields (e.g. real and imaginary parts as two channels).")
    if array.ndim < 3:
        raise ValueError(
            f"{what} has shape {array.shape}, but fields must be shaped (num, channels, *grid); "
            f"add a channel axis, e.g. array[:, None] for one channel."
        )
    if basis is not None and array.ndim != 2 + basis.ndim:
        raise ValueError(
            f"{what} has shape {array.shape} but {type(basis).__name__} is {basis.ndim}-D; "
            f"it needs {2 + basis.ndim} axes (num, channels, *grid)."
        )
    if array.size == 0:
        raise ValueError(f"{what} is empty (shape {array.shape}); it needs at least one field with at least one point.")
    bad = np.count_nonzero(~np.isfinite(array))
    if not bad and np.issubdtype(array.dtype, np.floating) and array.dtype.itemsize > 4:
        _check_float32_range(array, what)
    if bad:
        rows = np.unique(np.nonzero(~np.isfinite(array.reshape(array.shape[0], -1)))[0])
        raise ValueError(
            f"{what} has {bad} NaN/inf values in {rows.size} of its {array.shape[0]} fields "
            f"(first: {rows[:5].tolist()}); drop or repair those fields (e.g. np.nan_to_num) before training."
        )
    return array


def _check_float32_range(array: np.ndarray, what: str) -> None:
    """Finite float64 values beyond float32's range would become inf when the fields are stored as float32."""
    limit = float(np.finfo(np.float32).max)
    over = np.count_nonzero(np.abs(array) > limit)
    if over:
        raise ValueError(
            f"{what} has {over} values beyond float32's range (|x| up to {np.abs(array).max():.3g} > {limit:.3g}): "
            f"they are finite in {array.dtype} but overflow to inf in float32, which training uses; "
            f"rescale the data (e.g. divide by {10 ** math.ceil(math.log10(np.abs(array).max() / limit) + 1):.0e})."
        )


def from_array(
    array: np.ndarray | Tensor,
    *,
    basis: SpectralBasis | None = None,
    name: str = "array",
    spec: dict | None = None,
) -> FieldDataset:
    """A dataset from an in-memory array ``(num, channels, *grid)`` (validated: rank, non-empty,
    finite, real). ``basis`` defaults to ``NeumannBasis(array.ndim - 2)`` (see the module docstring)."""
    if isinstance(array, Tensor):
        array = array.detach().cpu().numpy()
    array = _validate_array(np.asarray(array), basis, f"array {name!r}")
    if basis is None:
        basis = NeumannBasis(array.ndim - 2)
    data = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    grid = basis.grid_of(data)
    spec = spec if spec is not None else {"builder": None, "kwargs": {}, "note": "built from an in-memory array"}
    return FieldDataset(data=data, basis=basis, name=name, spec=spec, coordinates=grid_coordinates(basis, grid))


def load_array(path: str | os.PathLike, *, basis: SpectralBasis | None = None, key: str | None = None) -> FieldDataset:
    """Fields ``(num, channels, *grid)`` from a ``.npy`` or ``.npz`` file.

    Args:
        path: the file.
        basis: the domain; default ``NeumannBasis(ndim)`` (see the module docstring).
        key: the array's name inside a ``.npz`` holding several arrays.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"data file {str(path)!r} does not exist; give the path of a .npy or .npz file.")
    suffix = path.suffix.lower()
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"cannot read {str(path)!r} as a NumPy file ({err}); write it with np.save or np.savez.") from err
    if suffix == ".npz" or isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            names = list(loaded.files)
            if key is None:
                if len(names) != 1:
                    raise ValueError(f"{str(path)!r} holds arrays {names}; choose one: {path.name}:key={names[0]} "
                                     f"on the command line, load_array(..., key={names[0]!r}) from code.")
                key = names[0]
            if key not in names:
                raise ValueError(f"{str(path)!r} has no array {key!r}; it holds {names}.")
            array = loaded[key]
    else:
        if key is not None:
            raise ValueError(f"key={key!r} applies to .npz files only, but {str(path)!r} is a single array.")
        array = loaded
    spec = dataset_spec(load_array, path=str(path), basis=basis, key=key)
    return from_array(array, basis=basis, name=path.stem, spec=spec)


def _image_array(path: Path, grayscale: bool, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                values = np.asarray(image, dtype=np.float64)
                peak = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
                image = Image.fromarray((values / peak).astype(np.float32), mode="F")
                scale = 1.0
            else:
                image = image.convert("L" if grayscale else "RGB")
                scale = 1.0 / 255.0
            height, width = size
            fitted = ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)
            array = np.asarray(fitted, dtype=np.float32) * scale
    except (UnidentifiedImageError, OSError) as err:
        raise _unreadable(path, err) from err
    if array.ndim == 2:
        array = array[None]
        if not grayscale:  # a 16-bit or float grey image in an RGB set
            array = np.repeat(array, 3, axis=0)
    else:
        array = np.moveaxis(array, -1, 0)
    return np.clip(array, 0.0, 1.0)


def _is_grey(path: Path) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
    except (UnidentifiedImageError, OSError) as err:
        raise _unreadable(path, err) from err


def _unreadable(path: Path, err: Exception) -> ValueError:
    return ValueError(f"cannot read the image {str(path)!r} ({err}); remove it from the folder or convert it to PNG.")


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.height, image.width


def load_images(
    folder: str | os.PathLike,
    *,
    resolution: int | Sequence[int] | None = None,
    grayscale: bool | None = None,
) -> FieldDataset:
    """Every PNG / JPEG in ``folder`` (sorted by name, not recursive) as ``(num, channels, H, W)`` in ``[0, 1]``.

    Args:
        folder: the directory.
        resolution: output size, an int (square) or ``(height, width)``; default: the size of the
            first image. Each image is centre-cropped to the target aspect ratio and resized with a
            Lanczos filter (antialiased), so nothing is stretched.
        grayscale: one channel (``True``) or RGB (``False``); default: grey only if every image is
            grey. 16-bit grey PNGs keep their full range.

    The domain is ``NeumannBasis(2, lengths=(1, W/H))``: reflecting walls, square pixels.
    """
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist; give a directory of PNG/JPEG files.")
    paths = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"image folder {str(root)!r} has no {'/'.join(IMAGE_SUFFIXES)} files; put the images there.")
    if grayscale is None:
        grayscale = all(_is_grey(p) for p in paths)
    if resolution is None:
        size = _image_size(paths[0])
    elif isinstance(resolution, int):
        size = (resolution, resolution)
    else:
        size = tuple(int(n) for n in resolution)
    if len(size) != 2 or min(size) < 2:
        raise ValueError(f"resolution must be an int or (height, width) with sizes ≥ 2, got {resolution!r}.")
    data = np.stack([_image_array(p, grayscale, size) for p in paths])
    height, width = size
    basis = NeumannBasis(2, lengths=(1.0, width / height))
    spec = dataset_spec(load_images, folder=str(root), resolution=list(size), grayscale=grayscale)
    return from_array(data, basis=basis, name=root.name, spec=spec)
