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

from .datasets.spec import BUILT_IN, dataset_from_spec

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


def _cmd_data(args: argparse.Namespace) -> int:
    extra = {"dim": args.dim} if args.dim is not None else {}
    dataset = dataset_from_spec(args.spec, num=args.num, resolution=args.resolution, seed=args.seed, **extra)
    out = save_array(args.out, dataset.data.to(torch.float32))
    print(f"wrote {dataset.name}: {tuple(dataset.data.shape)} float32 to {out}")
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

    data = commands.add_parser(
        "data",
        help="write a built-in data set as a (num, channels, *grid) float32 .npy file",
        description="SPEC: " + ", ".join(BUILT_IN) + " with options NAME:key=value,... "
        "(e.g. grf:alpha=2.5,tau=7,domain=neumann; navier-stokes:horizon=10).",
    )
    data.add_argument("spec", help="built-in data set name, with options as NAME:key=value,...")
    data.add_argument("--resolution", type=_positive_int, help="grid points per axis (default: the data set's)")
    data.add_argument("--num", type=_positive_int, help="number of fields (default: the data set's)")
    data.add_argument("--out", required=True, help="output .npy file")
    data.add_argument("--dim", type=int, choices=(1, 2, 3), help="grid dimension of grf (default 2)")
    data.add_argument("--seed", type=int, default=0)
    data.set_defaults(handler=_cmd_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as err:  # bad input: say what is wrong and how to fix it, without a stack trace
        print(f"hilbert-diffusion {args.command}: error: {err}", file=sys.stderr)
        return 2
