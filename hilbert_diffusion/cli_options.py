"""Option types and shared option groups of the ``hilbert-diffusion`` command line: each type parses one value or
fails with what it wants (argparse prints it as a one-line usage error)."""

from __future__ import annotations

import argparse
import math

__all__ = ["positive_int", "sampling_steps", "fraction", "exponent", "count", "positive_float", "non_negative_float",
           "resolutions", "axes", "debug_option", "execution_options"]


def bounded(kind: type, accept, wanted: str):
    """An argparse type: ``kind(text)`` if ``accept`` takes it, else an error saying what is wanted."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value

    return parse


positive_int = bounded(int, lambda v: v >= 1, "a positive integer")
sampling_steps = bounded(int, lambda v: v >= 2, "an integer ≥ 2 (one step cannot carry noise to data)")
fraction = bounded(float, lambda v: 0 <= v < 1, "a fraction in [0, 1)")
exponent = bounded(float, lambda v: 0 < v <= 1, "an exponent in (0, 1]")
count = bounded(int, lambda v: v >= 0, "an integer ≥ 0 (0: off)")
positive_float = bounded(float, lambda v: v > 0 and math.isfinite(v), "a positive number")
non_negative_float = bounded(float, lambda v: v >= 0 and math.isfinite(v), "a number ≥ 0")


def resolutions(text: str) -> tuple[int, ...]:
    """``--multires 32,48`` → ``(32, 48)``."""
    items = [item.strip() for item in text.split(",")]
    bad = [item for item in items if not item.isdigit() or int(item) < 2]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{bad[0] if bad else text!r} is not a grid size ≥ 2; give resolutions "
                                         f"separated by commas, e.g. --multires 32,48")
    return tuple(int(item) for item in items)


def axes(text: str) -> tuple[int, ...]:
    """``--flip-axes 1`` → ``(1,)``; ``0,1`` → ``(0, 1)``: distinct grid axes, 0 the first."""
    items = [item.strip() for item in text.split(",")]
    if not all(item.isdigit() for item in items) or len(set(items)) != len(items):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of distinct grid axes ≥ 0; give them separated by "
                                         f"commas, e.g. --flip-axes 1 (left-right for images) or 0,1")
    return tuple(int(item) for item in items)


def debug_option() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an internal error")
    return common


def execution_options() -> argparse.ArgumentParser:
    """``--device``, ``--precision`` and ``--compile`` of the commands that run a score model (:mod:`.execution`)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda or cuda:N")
    common.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: the network under bfloat16 autocast (the SDE maths stay in full precision)")
    common.add_argument("--compile", action="store_true", help="run the network's backbone through torch.compile")
    return common
