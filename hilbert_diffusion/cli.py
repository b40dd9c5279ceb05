"""The ``hilbert-diffusion`` command line.

Every array file follows one convention: ``(num, channels, *grid)`` float32 in ``.npy``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import torch

from .cli_files import check_output_file, load_mask, load_observation, save_array
from .cli_limits import check_data_memory, check_generation_memory
from . import cli_options as option
from .cli_train import DEFAULT_HEAT, add_train_command
from .datasets.lazy import LazyFields
from .datasets.spec import BUILT_IN, dataset_from_spec, parse_options
from .noise import Matern
from .sde import default_sde

__all__ = ["main", "save_array", "DEFAULT_HEAT"]


def _cmd_data(args: argparse.Namespace) -> int:
    from .figures import save_sample_figure

    extra = {"dim": args.dim} if args.dim is not None else {}
    check_output_file(args.out)
    check_data_memory(args.spec, num=args.num, resolution=args.resolution, extra=extra)
    dataset = dataset_from_spec(args.spec, num=args.num, resolution=args.resolution, seed=args.seed, **extra)
    if isinstance(dataset, LazyFields):
        raise ValueError(f"`data` writes built-in data sets; {args.spec!r} is already a file: train on it directly.")
    data = dataset.data.to(torch.float32)
    out = save_array(args.out, data)
    shown, note = data[: min(4, len(data))], ""
    if shown.dim() == 5:  # 3-D: the mid-plane of the last axis
        shown, note = shown[..., shown.shape[-1] // 2], ", mid-plane of the last axis"
    grid = "×".join(map(str, data.shape[2:]))
    figure = save_sample_figure(shown, out.with_suffix(".png"), label="field",
                                title=f"{dataset.name}: {len(shown)} of {len(data)} fields on {grid}{note}")
    print(f"wrote {dataset.name}: {tuple(data.shape)} float32 to {out} and a figure to {figure}")
    return 0


def _samplers() -> dict:
    """``--sampler`` name → sampler; each runs on its own default time grid and step count."""
    from . import sampling

    return {"multistep": sampling.exponential_multistep, "multistep-corrected": sampling.exponential_corrected,
            "rk3": sampling.rk3_ode, "heun": sampling.heun_ode,
            "ancestral": sampling.exponential_ancestral, "ddim": sampling.exponential_deterministic,
            "euler-maruyama": sampling.euler_maruyama, "pc": sampling.predictor_corrector}


def _methods() -> dict:
    """``--method`` name → restoration method (``auto``: :func:`~hilbert_diffusion.restoration.default_method`)."""
    from . import restoration

    return {"auto": None, "smc": restoration.filtering_smc, "ddnm": restoration.ddnm,
            "repaint": restoration.repaint, "dps": restoration.dps,
            "guidance": restoration.covariance_guidance, "twisted": restoration.twisted_smc,
            "consistency": restoration.hard_consistency}


def _load_run(run: str, resolution: int | None):
    """The :class:`~hilbert_diffusion.trained.TrainedRun` of a run directory, or of ``oracle[:options]`` (the exact
    Gaussian model, in units where the normalisation is the identity)."""
    from .trained import TrainedRun

    if run.split(":")[0] != "oracle":
        from .checkpoint import load

        return load(run)
    from .datasets.spec import _BOXES
    from .models.oracle import GaussianOracle
    from .normalization import Normalization

    options = parse_options(run.partition(":")[2])
    dim, domain = int(options.pop("dim", 2)), str(options.pop("domain", "periodic"))
    data = Matern(alpha=float(options.pop("alpha", 2.5)), tau=float(options.pop("tau", 7.0)))
    if options:
        raise ValueError(f"oracle options {sorted(options)} are unknown; use dim, domain, alpha, tau.")
    if domain not in _BOXES:
        raise ValueError(f"oracle domain={domain!r} is not one of {sorted(_BOXES)}.")
    basis = _BOXES[domain](dim)
    sde = default_sde(basis, basis.grid(min(resolution or 32, 32)))  # κ = 0: only λ_1 matters, on any grid
    return TrainedRun(model=GaussianOracle(sde, data), sde=sde, normalization=Normalization.identity(1), step=0)


def _cmd_sample(args: argparse.Namespace) -> int:
    from .distributed import distributed_context, sharded_sample
    from .figures import save_sample_figure

    context = distributed_context()  # under torchrun: batches of --batch-size spread over the ranks
    execution = _execution(args)
    check_output_file(args.out)
    run = _load_run(args.run_dir, args.resolution)
    check_generation_memory(run, run.sde.basis.grid(args.resolution), num_out=args.num,
                             batch=min(args.batch_size, args.num), fix_batch="--batch-size")
    sampler = _samplers()[args.sampler]
    times, origin = run.sampling_times(sampler, args.steps, resolution=args.resolution)
    steps = len(times) - 1
    if context.is_main:
        print(f"sampling {args.num} fields at {args.resolution} with {sampler.name}: {steps} steps on {origin}, "
              f"{sampler.evaluations(steps)} model evaluations per batch", file=sys.stderr)

    def draw(num: int, generator: torch.Generator) -> torch.Tensor:
        return run.sample(num, args.resolution, sampler=sampler, times=times, generator=generator,
                          progress=not args.quiet and context.is_main, **execution)

    samples = sharded_sample(draw, args.num, seed=args.seed, chunk_size=args.batch_size, context=context).to(torch.float32)
    if not torch.isfinite(samples).all():
        raise ValueError(f"sampler {args.sampler} diverged at resolution {args.resolution}; use more --steps or "
                         f"--sampler multistep (exact in the linear part, stable on every grid).")
    if not context.is_main:
        return 0
    out = save_array(args.out, samples)
    figure = save_sample_figure(samples[: min(8, len(samples))], Path(args.out).with_suffix(".png"),
                                title=f"{args.run_dir} at {tuple(samples.shape[2:])}, {sampler.name} {steps} steps")
    print(f"wrote {tuple(samples.shape)} float32 to {out} and a figure to {figure}")
    return 0


def _restore(args: argparse.Namespace, operators, grid, *, mask: torch.Tensor | None = None) -> int:
    """Shared body of inpaint / superres / deblur: ``operators(i)`` is the operator of observation ``i``, ``grid``
    the output grid, ``mask`` the observed points drawn in the figure; each observation is restored with its own
    generator (the same on any number of processes)."""
    from .distributed import chunk_generator, distributed_context, map_chunks
    from .figures import save_restoration_figure

    run, y = args.run, args.y
    if y.shape[1] != run.channels:
        raise ValueError(f"--observed has {y.shape[1]} channels but the model was trained on {run.channels}.")
    method = _methods()[args.method] or _default_method(run, operators(0))
    options = {} if args.particles is None else {"particles": args.particles}
    if options and "particles" not in {f.name for f in dataclasses.fields(method.method)}:
        raise ValueError(f"--particles sets the particles of --method smc or twisted; {method.name} has none (drop --particles).")
    method = method.configure(**options)
    steps = args.steps or method.default_steps
    execution = _execution(args)
    particles = int(getattr(getattr(method, "method", None), "particles", 1))
    check_generation_memory(run, tuple(grid), num_out=y.shape[0] * args.num, batch=args.num * particles,
                             fix_batch="--num × --particles ≤")
    context = distributed_context()  # under torchrun: observations spread over the ranks
    if context.is_main:
        print(f"{args.command}: {y.shape[0]} observation(s) × {args.num} draws with {method.name}, {steps} steps: "
              f"{method.evaluations(steps)} model evaluations per draw, "
              f"{y.shape[0] * args.num * method.evaluations(steps)} in all", file=sys.stderr)

    def restore_one(index: int) -> torch.Tensor:
        return run.restore(operators(index), y[index : index + 1], resolution=grid, num=args.num, method=method,
                           steps=steps, generator=chunk_generator(args.seed, index),
                           progress=not args.quiet and context.is_main, **execution)

    samples = map_chunks(restore_one, y.shape[0], context=context).to(torch.float32)
    if not context.is_main:
        return 0
    path = save_array(args.out, samples)
    figure = save_restoration_figure(y, samples, Path(args.out).with_suffix(".png"),
                                     mask=mask, title=f"{args.command} with {method.name}, {steps} steps")
    print(f"wrote {tuple(samples.shape)} float32 ({args.num} samples per observation, observation-major) to {path} "
          f"and a figure to {figure}")
    return 0


def _default_method(run, operator):
    from .restoration import default_method

    return default_method(run.sde, operator)


def _prepare(args: argparse.Namespace, *, allow_nan: bool = False) -> None:
    check_output_file(args.out)
    args.y = load_observation(args.observed, "--observed", allow_nan=allow_nan)
    args.run = _load_run(args.run_dir, None)
    if not allow_nan:
        args.run.sde.basis.check_field(args.y, "--observed")


def _cmd_inpaint(args: argparse.Namespace) -> int:
    from .restoration import Mask, missing_mask

    _prepare(args, allow_nan=args.mask is None)
    basis, y = args.run.sde.basis, args.y
    grid = basis.grid(args.resolution) if args.resolution else tuple(y.shape[2:])
    if args.mask is None:  # NaN marks the missing points of each observation
        operators = [missing_mask(basis, y[i : i + 1], noise_std=args.noise_std)[0] for i in range(len(y))]
        args.y = torch.nan_to_num(y, nan=0.0)
        mask = torch.stack([operator.observed for operator in operators])[:, None]
        return _restore(args, operators.__getitem__, grid, mask=mask)
    operator = Mask(basis=basis, observed=load_mask(args.mask, tuple(y.shape[2:])), noise_std=args.noise_std)
    return _restore(args, lambda index: operator, grid, mask=operator.observed)


def _cmd_superres(args: argparse.Namespace) -> int:
    from .restoration import BlockAverage, SpectralDownsample

    _prepare(args)
    kind = SpectralDownsample if args.operator == "spectral" else BlockAverage
    operator = kind(basis=args.run.sde.basis, resolution=tuple(args.y.shape[2:]), noise_std=args.noise_std)
    return _restore(args, lambda index: operator, args.run.sde.basis.grid(args.resolution))


def _cmd_deblur(args: argparse.Namespace) -> int:
    from .restoration import HeatBlur

    _prepare(args)
    operator = HeatBlur(basis=args.run.sde.basis, time=args.blur_time, noise_std=args.noise_std)
    return _restore(args, lambda index: operator, tuple(args.y.shape[2:]))


def _execution(args: argparse.Namespace) -> dict:
    """``device``, ``bf16`` and ``compile`` of a sampling or restoration command (under torchrun: this rank's device)."""
    from .distributed import distributed_context
    from .execution import on_device

    device = on_device(distributed_context(), args.device).device
    return {"device": device, "bf16": args.precision == "bf16", "compile": args.compile}


def _add_restoration_commands(commands) -> None:
    """``inpaint``, ``superres`` and ``deblur``: the shared options, then each command's own."""
    restorations = {
        "inpaint": ("fill in unobserved points (zero-shot, no retraining)", _cmd_inpaint),
        "superres": ("restore a low-resolution observation at a finer grid", _cmd_superres),
        "deblur": ("invert a heat-kernel (Gaussian) blur", _cmd_deblur),
    }
    for name, (text, handler) in restorations.items():
        r = commands.add_parser(name, help=text, parents=[option.debug_option(), option.execution_options()])
        r.add_argument("run_dir", help="run directory from `train`, or oracle[:options] (see `sample`)")
        r.add_argument("--observed", required=True, help="observations (num, channels, *grid) .npy")
        r.add_argument("--out", required=True, help="output .npy: --num samples per observation, observation-major")
        r.add_argument("--num", type=option.positive_int, default=8, help="posterior samples per observation")
        r.add_argument("--method", choices=tuple(_methods()), default="auto",
                       help="auto: ddnm for spectral/blur operators (exact there), smc (asymptotically exact) for "
                       "masks/blocks without heat, twisted (twisted SMC, asymptotically exact under heat too) with heat; "
                       "guidance (covariance guidance: one evaluation per step, exact for Gaussian data only)")
        r.add_argument("--steps", type=option.sampling_steps, help=f"time steps (default {_methods()['ddnm'].default_steps}): "
                       "fewer is faster, less exact")
        r.add_argument("--particles", type=option.positive_int, help="particles per draw of --method smc or twisted "
                       f"(default {_methods()['smc'].method.particles} and {_methods()['twisted'].method.particles}): cost "
                       "and accuracy grow with them")
        r.add_argument("--noise-std", type=float, default=0.0, help="observation noise σ_y in model units")
        r.add_argument("--seed", type=int, default=0)
        r.add_argument("--quiet", action="store_true")
        r.set_defaults(handler=handler)
        if name == "inpaint":
            r.add_argument("--mask", help="boolean .npy shaped like the grid (nonzero = observed); "
                           "without it, NaN in --observed marks the missing points")
            r.add_argument("--resolution", type=option.positive_int, help="output grid (default: the observation's)")
        elif name == "superres":
            r.add_argument("--resolution", type=option.positive_int, required=True, help="output grid")
            r.add_argument("--operator", choices=("spectral", "block"), default="spectral",
                           help="how the low grid was made: spectral truncation or block averaging")
        else:
            r.add_argument("--blur-time", type=float, required=True, help="heat time τ: e^{-τλ} per mode")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hilbert-diffusion",
        description="Score-based generative modelling in function space (stochastic heat SPDE, FNO score operators).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser(
        "data", parents=[option.debug_option()],
        help="write a built-in data set as a (num, channels, *grid) float32 .npy file",
        description="SPEC: " + ", ".join(BUILT_IN) + " with options NAME:key=value,... "
        "(e.g. grf:alpha=2.5,tau=7,domain=neumann; navier-stokes:horizon=10).",
    )
    data.add_argument("spec", help="built-in data set name, with options as NAME:key=value,...")
    data.add_argument("--resolution", type=option.positive_int, help="grid points per axis (default: the data set's)")
    data.add_argument("--num", type=option.positive_int, help="number of fields (default: the data set's)")
    data.add_argument("--out", required=True, help="output .npy file")
    data.add_argument("--dim", type=int, choices=(1, 2, 3), help="grid dimension of grf (default 2)")
    data.add_argument("--seed", type=int, default=0)
    data.set_defaults(handler=_cmd_data)

    add_train_command(commands)

    sa = commands.add_parser("sample", help="sample a trained run (or the Gaussian oracle) at any resolution",
                             parents=[option.debug_option(), option.execution_options()])
    sa.add_argument("run_dir", help="run directory from `train`, or oracle[:dim=2,domain=periodic,alpha=2.5,tau=7]")
    sa.add_argument("--resolution", type=option.positive_int, required=True)
    sa.add_argument("--num", type=option.positive_int, required=True)
    sa.add_argument("--out", required=True, help="output .npy (num, channels, *grid); a PNG grid is written beside it")
    sa.add_argument("--sampler", choices=tuple(_samplers()), default="multistep-corrected",
                    help="multistep-corrected (the default): exponential 3M with the exponential-frame corrector; "
                    "multistep: without it; euler-maruyama: HDM's baseline")
    sa.add_argument("--steps", type=option.sampling_steps, help="time steps; default: for a trained run 16 (its "
                    "TrainConfig.optimised_steps) on a grid optimised for --resolution against the exact law of its data "
                    "spectrum (multistep and multistep-corrected), else per sampler (model evaluations): " +
                    ", ".join(f"{n} {s.default_steps} ({s.evaluations()})" for n, s in _samplers().items()))
    sa.add_argument("--batch-size", type=option.positive_int, default=64)
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--quiet", action="store_true")
    sa.set_defaults(handler=_cmd_sample)

    _add_restoration_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt as stop:  # Ctrl-C outside training's own handling (see interrupts.py)
        print(f"hilbert-diffusion {args.command}: interrupted{': ' + str(stop) if str(stop) else ''}", file=sys.stderr)
        return int(getattr(stop, "exit_code", 130))
    except ValueError as err:  # bad input: say what is wrong and how to fix it, without a stack trace
        if args.debug:
            raise
        print(f"hilbert-diffusion {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the system refused: a full disk, a permission, a missing file
        if args.debug:
            raise
        print(f"hilbert-diffusion {args.command}: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # a bug: one line, and how to see the traceback
        if args.debug:
            raise
        where = traceback.extract_tb(err.__traceback__)[-1]
        print(f"hilbert-diffusion {args.command}: internal error: {type(err).__name__}: {err} (at "
              f"{Path(where.filename).name}:{where.lineno}); rerun with --debug for the traceback", file=sys.stderr)
        return 1
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
