"""neuraloperator's FNO forward without the work it does not need: the same weights, the same function.

neuraloperator 2.0.0's ``SpectralConv`` transforms every feature map with a full ``rfftn``, ``fftshift``\\ s the whole
spectrum, writes the kept ``n_modes`` into a zeroed full-size spectrum, shifts back and inverts with a full
``irfftn``; its 1×1 channel products are ``Conv1d`` calls and its mode contraction goes through tensorly's einsum.
Here, for the configurations :func:`supports` accepts (real data, dense weights, full precision, post-activation
blocks with a linear FNO skip and a soft-gated channel-MLP skip, no norm, no stabiliser — the score operators'),
one layer computes the identical function with:

* the FFT factored by axes: ``rfft`` along the last axis keeping its first ``k_last`` columns, then ``fft`` along
  each other axis *on those columns only*, keeping the low band ``[-k//2, k - k//2)`` (what ``fftshift`` and the
  centred slice select) — and the inverse in reverse order, zero-padding one axis at a time; no shifts, no
  full-size zero spectrum (``rfftn = fft ∘ … ∘ rfft`` and ``irfftn = irfft ∘ ifft ∘ …``, same ``norm``);
* the mode contraction as one batched matrix product over the kept modes (``b i m, i o m → b o m``);
* every 1×1 channel product (lifting, FNO skip, channel MLP, projection) as a matrix product on the flattened grid.

:func:`run_reference` is neuraloperator's own path (kept for the equality test and the speed benchmark).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn
from torch.profiler import record_function

__all__ = ["supports", "run_lean", "run_reference", "FFT", "SPECTRAL_PRODUCT", "CHANNEL_PRODUCT"]

FFT, SPECTRAL_PRODUCT, CHANNEL_PRODUCT = "fno.fft", "fno.spectral_product", "fno.channel_product"
"""Profiler labels (``torch.profiler.record_function``) of the lean layers' parts (``benchmarks/speed.py``)."""


def supports(fno: nn.Module) -> bool:
    """Whether :func:`run_lean` computes ``fno``'s function (otherwise use :func:`run_reference`)."""
    try:
        return _supports(fno)
    except (ImportError, AttributeError, TypeError):  # another layer family (the sphere's SFNO) or release: its own path only
        return False


def _supports(fno: nn.Module) -> bool:
    from neuralop.layers.skip_connections import Flattened1dConv, SoftGating
    from neuralop.layers.spectral_convolution import SpectralConv

    blocks = fno.fno_blocks
    convs_ok = all(
        type(conv) is SpectralConv and not conv.complex_data and not conv.separable and conv.fno_block_precision == "full"
        and conv.resolution_scaling_factor is None and list(conv.n_modes) == list(conv.max_n_modes)
        and torch.is_tensor(getattr(conv.weight, "tensor", None))
        for conv in blocks.convs
    )
    return (
        convs_ok and blocks.norm is None and not blocks.preactivation and blocks.stabilizer is None
        and blocks.use_channel_mlp and not blocks.complex_data
        and all(isinstance(s, Flattened1dConv) for s in blocks.fno_skips)
        and all(isinstance(s, SoftGating) for s in blocks.channel_mlp_skips)
        and all(m.dropout is None for m in (fno.lifting, fno.projection, *blocks.channel_mlp))
    )


def run_reference(fno: nn.Module, films: nn.ModuleList, h: Tensor, embedding: Tensor) -> Tensor:
    """neuraloperator's ``FNO.forward`` with a FiLM modulation after the lifting and after each block."""
    if fno.positional_embedding is not None:
        h = fno.positional_embedding(h)
    h = films[0](fno.lifting(h), embedding)
    if fno.domain_padding is not None:
        h = fno.domain_padding.pad(h)
    for index in range(fno.n_layers):
        h = films[index + 1](fno.fno_blocks(h, index), embedding)
    if fno.domain_padding is not None:
        h = fno.domain_padding.unpad(h)
    return fno.projection(h)


def run_lean(fno: nn.Module, films: nn.ModuleList, h: Tensor, embedding: Tensor,
             local: nn.ModuleList | None = None) -> Tensor:
    """:func:`run_reference`'s function, by the lean layers (``supports(fno)`` must hold); ``local[i]``, where given,
    is added to block ``i``'s spectral convolution and linear skip (:mod:`.local_fno`'s differential kernels)."""
    if fno.positional_embedding is not None:
        h = fno.positional_embedding(h)
    h = films[0](_channel_mlp(fno.lifting, h), embedding)
    if fno.domain_padding is not None:
        h = fno.domain_padding.pad(h)
    blocks = fno.fno_blocks
    for index in range(fno.n_layers):
        h = films[index + 1](_block(blocks, index, h, None if local is None else local[index]), embedding)
    if fno.domain_padding is not None:
        h = fno.domain_padding.unpad(h)
    return _channel_mlp(fno.projection, h)


def _pointwise(weight: Tensor, bias: Tensor | None, x: Tensor, *, add: Tensor | None = None) -> Tensor:
    """A 1×1 convolution ``(out, in, 1)`` on ``(batch, in, *grid)`` as one matrix product on the flattened grid, plus
    ``add`` (same shape as the output) in the same pass."""
    with record_function(CHANNEL_PRODUCT):
        flat = x.reshape(x.shape[0], x.shape[1], -1)
        w = weight.reshape(weight.shape[0], weight.shape[1]).expand(x.shape[0], -1, -1)
        out = torch.bmm(w, flat) if add is None else torch.baddbmm(add.reshape(x.shape[0], w.shape[1], -1), w, flat)
        if bias is not None:
            out += bias[:, None]
        return out.reshape(x.shape[0], w.shape[1], *x.shape[2:])


def _channel_mlp(mlp: nn.Module, x: Tensor) -> Tensor:
    for i, fc in enumerate(mlp.fcs):
        x = _pointwise(fc.weight, fc.bias, x)
        if i < mlp.n_layers - 1:
            x = mlp.non_linearity(x)
    return x


def _block(blocks: nn.Module, index: int, x: Tensor, local: nn.Module | None = None) -> Tensor:
    """``FNOBlocks.forward_with_postactivation`` for the supported configuration (module docstring), plus ``local(x)``
    beside the spectral convolution where given."""
    skip = blocks.fno_skips[index].conv
    spectral = _spectral(blocks.convs[index], x)
    if local is not None:
        spectral = spectral + local(x)
    x_fno = _pointwise(skip.weight, skip.bias, x, add=spectral)  # SpectralConv(x) [+ D x] + W x
    last = index == blocks.n_layers - 1
    if not last:
        x_fno = blocks.non_linearity(x_fno)
    out = _channel_mlp(blocks.channel_mlp[index], x_fno)
    gating = blocks.channel_mlp_skips[index]
    out.addcmul_(gating.weight, x)  # + the soft-gated skip
    if gating.bias is not None:
        out += gating.bias
    return out if last else blocks.non_linearity(out)


@functools.lru_cache(maxsize=64)
def _dft(n: int, k: int, norm: str, inverse: bool, real: bool, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The truncated DFT of an axis of ``n`` points onto frequencies ``f`` (``real``: ``0 … k-1``, as ``rfft``; else
    the low band ``-(k//2) … k - k//2 - 1``), with ``torch.fft``'s ``norm``; built in float64, cast to ``dtype``.

    Forward, complex: ``(n, k)``, ``X_f = s Σ_j x_j e^{-2πi f j/n}``; inverse, complex: ``(k, n)``. Real forward:
    ``(n, 2k)`` = ``[cos | -sin]`` (real and imaginary parts); real inverse (``irfft`` from ``k`` columns, the rest
    zero): ``(2k, n)`` = ``[w cos; -w sin]``, ``w_f = 2`` except 1 at ``f = 0`` and at the Nyquist ``f = n/2``."""
    f = torch.arange(k, dtype=torch.float64) if real else torch.arange(-(k // 2), k - k // 2, dtype=torch.float64)
    angle = 2 * torch.pi * torch.outer(torch.arange(n, dtype=torch.float64), f) / n  # (n, k)
    scale = {"forward": (1 / n, 1.0), "backward": (1.0, 1 / n), "ortho": (n**-0.5, n**-0.5)}[norm][int(inverse)]
    if real and not inverse:
        matrix = scale * torch.cat([angle.cos(), -angle.sin()], 1)
    elif real:
        w = torch.where((f == 0) | (2 * f == n), 1.0, 2.0)
        matrix = scale * torch.cat([(w * angle.cos()).T, -(w * angle.sin()).T], 0)
    else:
        matrix = scale * torch.polar(torch.ones_like(angle), angle if inverse else -angle)
        matrix = matrix.T if inverse else matrix
        dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    return matrix.to(device=device, dtype=dtype)


def _along(c: Tensor, dim: int, matrix: Tensor) -> Tensor:
    """``c`` with axis ``dim`` multiplied by ``matrix`` (``(size, new size)``)."""
    return torch.matmul(c.movedim(dim, -1), matrix).movedim(-1, dim)


def _spectral(conv: nn.Module, x: Tensor) -> Tensor:
    """``SpectralConv.forward`` (real data, dense weights): truncated DFTs by matrix products, axis by axis, onto the
    kept modes only (module docstring), the contraction as one batched product over modes, and back."""
    if x.dtype in (torch.float16, torch.bfloat16):  # under autocast: the DFTs and the complex product in float32
        with torch.autocast(x.device.type, enabled=False):
            return _spectral(conv, x.float())
    weight = conv.weight.tensor  # (in, out, *kept modes), complex
    grid, kept, norm = x.shape[2:], weight.shape[2:], conv.fft_norm
    dft = functools.partial(_dft, norm=norm, dtype=x.dtype, device=x.device)
    with record_function(FFT):
        parts = torch.matmul(x, dft(grid[-1], kept[-1], inverse=False, real=True))  # rfft onto the kept columns
        c = torch.complex(*parts.split(kept[-1], -1))
        for axis in range(len(grid) - 1):  # fft along the other axes onto their low bands
            c = _along(c, 2 + axis, dft(grid[axis], kept[axis], inverse=False, real=False))
    with record_function(SPECTRAL_PRODUCT):
        b, i = c.shape[:2]
        modes = c.reshape(b, i, -1).permute(2, 0, 1)  # (modes, batch, in)
        out = torch.bmm(modes, weight.reshape(i, weight.shape[1], -1).permute(2, 0, 1))  # (modes, batch, out)
        c = out.permute(1, 2, 0).reshape(b, weight.shape[1], *kept)
    with record_function(FFT):
        for axis in reversed(range(len(grid) - 1)):
            c = _along(c, 2 + axis, dft(grid[axis], kept[axis], inverse=True, real=False))
        out = torch.matmul(torch.cat([c.real, c.imag], -1), dft(grid[-1], kept[-1], inverse=True, real=True))
    if conv.bias is not None:
        out += conv.bias
    return out
