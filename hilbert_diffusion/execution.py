"""Where and how a score model runs: the device, bfloat16 autocast of its network, ``torch.compile`` of its backbone.

* :func:`resolve_device` turns ``"auto"`` / ``"cpu"`` / ``"cuda"`` / ``"cuda:N"`` (or a ``torch.device``) into a device,
  refusing CUDA where there is none with a one-line error.
* :func:`accelerate` switches a score operator's bf16 autocast and ``torch.compile`` on or off and moves it to a
  device. Only the network runs in bf16 (the time embedding's MLP and the FNO backbone's channel products); the
  preconditioning, the Wiener skip, the spectral transforms and every SDE coefficient stay in float32/float64.

Every tensor the toolkit builds follows the device of its inputs: per-mode tables (eigenvalues, quadrature weights,
the SDE's variance table) are computed once on the CPU in float64 and copied to the device where they are used;
random draws are made on the generator's device (the CPU for ``torch.Generator()``) and moved, so a seed gives the
same numbers on every device.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .distributed import DistributedContext

__all__ = ["resolve_device", "accelerate", "model_device", "on_device"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"``: ``cuda`` when CUDA is available, else ``cpu``; otherwise the device named, checked."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a device name; use auto, cpu, cuda or cuda:N.") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} asked for but CUDA is not available here "
                             f"(torch.cuda.is_available() is False); use --device cpu or auto.")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {str(device)!r} asked for but this machine has {count} CUDA device(s): "
                             f"use cuda:0 … cuda:{count - 1}.")
    elif device.type != "cpu":
        raise ValueError(f"device {str(device)!r} is not supported; use auto, cpu, cuda or cuda:N.")
    return device


def model_device(model: object) -> torch.device:
    """The device of a model's first parameter or buffer (the CPU for a model without tensors)."""
    if isinstance(model, nn.Module):
        for tensor in (*model.parameters(), *model.buffers()):
            return tensor.device
    return torch.device("cpu")


def accelerate(model: nn.Module, *, device: torch.device | None = None, bf16: bool = False,
               compile: bool = False) -> nn.Module:
    """Move ``model`` to ``device`` (``None``: where it is) and set its bf16 autocast and ``torch.compile`` switches
    (in place; returns ``model``). A model without those switches (the Gaussian oracle, an ``nn.Module`` of yours)
    is refused when either is asked for."""
    if (bf16 or compile) and not (hasattr(model, "bf16") and hasattr(model, "compiled")):
        raise ValueError(f"bf16 precision and compile are switches of the toolkit's score operators; "
                         f"{type(model).__name__} has neither: run it in fp32 without compile.")
    if hasattr(model, "bf16"):
        model.bf16, model.compiled = bf16, compile
    return model.to(device) if device is not None and isinstance(model, nn.Module) else model


def on_device(context: DistributedContext, device: str | torch.device | None) -> DistributedContext:
    """``context`` computing on ``device`` (``None``: its own, the CPU for one process). Under ``torchrun`` each rank
    computes on ``cuda:LOCAL_RANK`` (or the CPU): only ``None``/``"auto"`` or that very device are accepted there."""
    if device is None or (device == "auto" and context.distributed):
        return context
    device = resolve_device(device)
    if context.distributed and device != context.device:
        raise ValueError(f"under torchrun this rank trains on {context.device} (cuda:LOCAL_RANK or the CPU), not "
                         f"{device}; leave the device at auto.")
    return dataclasses.replace(context, device=device)
