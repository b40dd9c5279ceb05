"""The ``hilbert-diffusion`` command line.

Every array file follows one convention: ``(num, channels, *grid)`` float32 in ``.npy``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .bases import DirichletBasis, NeumannBasis, PeriodicBasis, SpectralBasis, SphereBasis
from .noise import GaussianRandomField, Matern

__all__ = ["main", "save_array"]


def save_array(path: str | os.PathLike, array: np.ndarray | torch.Tensor) -> Path:
    """Write ``array`` to ``path`` (``.npy``) atomically: a temporary file in the same folder, then rename."""
    path = Path(path)
    if path.suffix != ".npy":
        raise ValueError(f"--out {path} must end in .npy (arrays are stored as (num, channels, *grid) .npy files).")
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _box_basis(kind: str, dim: int) -> SpectralBasis:
    if kind == "sphere":
        return SphereBasis()
    boxes = {"periodic": PeriodicBasis, "neumann": NeumannBasis, "dirichlet": DirichletBasis}
    return boxes[kind](dim)


def _cmd_data_grf(args: argparse.Namespace) -> int:
    basis = _box_basis(args.domain, args.dim)
    field = GaussianRandomField(basis, Matern(alpha=args.alpha, tau=args.tau, scale=args.scale))
    generator = torch.Generator().manual_seed(args.seed)
    samples = field.sample(args.num, args.resolution, channels=args.channels, generator=generator)
    out = save_array(args.out, samples.to(torch.float32))
    print(f"wrote {tuple(samples.shape)} float32 to {out}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hilbert-diffusion",
        description="Score-based generative modelling in function space (stochastic heat SPDE, FNO score operators).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="generate a built-in data set as a (num, channels, *grid) .npy file")
    kinds = data.add_subparsers(dest="kind", required=True)
    grf = kinds.add_parser("grf", help="Gaussian random fields N(0, Q) with a Matérn spectrum (τ²(τ² + λ))^-α")
    grf.add_argument("--resolution", type=_positive_int, required=True, help="grid points per axis")
    grf.add_argument("--num", type=_positive_int, required=True, help="number of fields")
    grf.add_argument("--out", required=True, help="output .npy file")
    grf.add_argument("--dim", type=int, choices=(1, 2, 3), default=2, help="grid dimension (box domains)")
    grf.add_argument("--domain", choices=("periodic", "neumann", "dirichlet", "sphere"), default="periodic")
    grf.add_argument("--channels", type=_positive_int, default=1)
    grf.add_argument("--alpha", type=float, default=2.5, help="Matérn smoothness α (trace class needs α > dim/2)")
    grf.add_argument("--tau", type=float, default=7.0, help="Matérn inverse length scale τ")
    grf.add_argument("--scale", type=float, default=1.0, help="variance of the constant mode")
    grf.add_argument("--seed", type=int, default=0)
    grf.set_defaults(handler=_cmd_data_grf)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as err:  # bad input: say what is wrong and how to fix it, without a stack trace
        print(f"hilbert-diffusion {args.command}: error: {err}", file=sys.stderr)
        return 2
