"""The ``hilbert-diffusion`` command line.

Every array file follows one convention: ``(num, channels, *grid)`` float32 in ``.npy``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import torch

from .bases import PeriodicBasis
from .cli_files import check_output_file, load_mask, load_observation, save_array
from .cli_limits import check_data_memory, check_generation_memory
from . import cli_options as option
from .config import from_config
from .datasets.lazy import LazyFields
from .datasets.spec import BUILT_IN, dataset_from_spec, parse_options
from .noise import Matern
from .resources import check_memory
from .resume import RESUME_RULE
from .schema import check_config_document, check_options, dataclass_from_options
from .sde import DiagonalSDE, default_sde

__all__ = ["main", "save_array"]


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


def _load_config(path: str | None) -> dict:
    """The ``--config`` document, checked (:mod:`.schema`) before anything is built from it."""
    if path is None:
        return {}
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"--config {path}: cannot read it as JSON ({err}).") from err
    check_config_document(document, f"--config {path}")
    return document


def _cmd_train(args: argparse.Namespace) -> int:
    from .distributed import distributed_context
    from .execution import on_device
    from .interrupts import TrainingInterrupted
    from .models.fno import ScoreFNOConfig
    from .models.sphere import SphericalScoreConfig
    from .models.uno import ScoreUNOConfig
    from .rundir import RunDirectory
    from .training import TrainConfig, train, training_bytes

    config = _load_config(args.config)
    for model_cls in (ScoreFNOConfig, ScoreUNOConfig, SphericalScoreConfig):  # the model's options, before any data
        check_options(model_cls, config.get("model", {}), f"--config {args.config}: model", unknown_ok=True)
    train_options = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                     "checkpoint_every": args.checkpoint_every, "sample_every": args.sample_every,
                     "resolutions": args.multires, "val_fraction": args.val_fraction, "workers": args.workers,
                     "bf16": args.precision == "bf16" or None, "compile": args.compile or None}
    train_options = {k: v for k, v in train_options.items() if v is not None} | config.get("train", {})
    train_config = dataclass_from_options(TrainConfig, train_options, f"--config {args.config}: train")
    context = on_device(distributed_context(), args.device)  # a CUDA device that is absent: refused before any work
    run_dir = RunDirectory(args.out, option="--out", resume_option="--resume")
    if context.is_main:  # before any work: the lock, a writable --out, a run exactly when resuming
        run_dir.acquire(resume=args.resume)
    try:
        width = int(config.get("model", {}).get("hidden_channels", args.width))
        layers = int(config.get("model", {}).get("n_layers", args.layers or 4))
        check_data_memory(args.data, num=args.num, resolution=args.resolution, extra={},
                           batch=train_config.batch_size, width=width, layers=layers)
        dataset, sde, model = _train_setup(args, config)
        fields = dataset if isinstance(dataset, LazyFields) else dataset.data  # lazy: read from disk as needed
        check_memory(training_bytes(fields, sde=sde, model=model, config=train_config),
                     what=f"training on {tuple(fields.shape)} in batches of {train_config.batch_size} at width "
                     f"{width}", fix="lower --batch-size or --width, or train at a coarser --resolution")
        print(f"training on {dataset.name} {tuple(fields.shape)} with {sde}", file=sys.stderr)
        try:
            run = train(dataset, sde=sde, model=model, config=train_config, out_dir=run_dir, resume=args.resume,
                        progress=not args.quiet, max_seconds=60 * args.max_minutes if args.max_minutes else None,
                        device=context.device, log_dir=args.log_dir)
        except TrainingInterrupted as stop:
            print(f"hilbert-diffusion train: {stop}; continue with the same command and --resume", file=sys.stderr)
            return stop.exit_code
    finally:
        run_dir.release()
    if context.is_main:
        print(f"trained {run.step} steps; checkpoint {run.path}")
    return 0


def _train_setup(args: argparse.Namespace, config: dict):
    """The data set, the SDE (from ``--config`` or the default for the data) and the model config of ``train``."""
    from .bases import SphereBasis
    from .models.sphere import SphericalScoreConfig

    dataset = dataset_from_spec(args.data, num=args.num, resolution=args.resolution, seed=args.seed)
    if args.resolution is not None and not isinstance(dataset.basis, SphereBasis) and dataset.grid != dataset.basis.grid(args.resolution):
        dataset = dataset.resample(args.resolution)
    sde = _train_sde(args, config, dataset)
    if type(sde.basis) is not type(dataset.basis):
        raise ValueError(f"the SDE's basis {sde.basis} does not fit the data's domain {dataset.basis}.")
    if isinstance(dataset.basis, SphereBasis) and args.arch != "fno":
        raise ValueError(f"--arch {args.arch} works on boxes; on the sphere the score operator is the SFNO (drop --arch).")
    model_cls = SphericalScoreConfig if isinstance(dataset.basis, SphereBasis) else _architectures()[args.arch]
    layers = {} if args.layers is None else {"n_layers": args.layers}
    if layers and args.arch == "uno":
        raise ValueError("--layers sets the FNO's depth; the U-shaped operator's blocks are its 'scalings' and "
                         "'channel_ratios' (set them in --config's model section).")
    model_options = {"hidden_channels": args.width, "n_modes": args.modes} | layers | config.get("model", {})
    if model_cls is SphericalScoreConfig:
        model_options.pop("n_modes", None)
    elif not isinstance(dataset.basis, PeriodicBasis):  # walls break translation invariance: let F see where it is
        model_options = {"positional_embedding": True} | model_options
    return dataset, sde, dataclass_from_options(model_cls, model_options, f"--config {args.config}: model")


def _train_sde(args: argparse.Namespace, config: dict, dataset) -> DiagonalSDE:
    """``train``'s forward process: ``--config``'s ``sde``; a resumed run's own (whatever today's default);
    ``--kappa-nyquist``; else the default of the data's domain (:data:`DEFAULT_HEAT`)."""
    if "sde" in config:
        return from_config(config["sde"], expect=DiagonalSDE)
    if args.resume and args.kappa_nyquist is None:
        from .checkpoint import read_checkpoint

        return from_config(read_checkpoint(args.out).config["sde"], expect=DiagonalSDE)
    heat = args.kappa_nyquist
    if heat is None:
        domain = _domain(dataset.basis)
        heat = DEFAULT_HEAT[domain][0]
        print(f"forward process for {domain}: κ λ_max = {heat:g} (the default; --kappa-nyquist sets it)", file=sys.stderr)
    return default_sde(dataset.basis, dataset.grid, kappa_nyquist=heat)


#: ``train``'s forward process per domain when neither ``--kappa-nyquist`` nor ``--config`` sets one: ``κ λ_max`` at the
#: training grid (``default_sde``) and the reason, measured by ``benchmarks/heat_default.py`` (README, "Which forward
#: process"). A trained run keeps the process stored in its checkpoint: changing these never changes an old run.
DEFAULT_HEAT: dict[str, tuple[float, str]] = {
    "curves": (0.0, "Quadratic MMD power ties (5.0 / 5.4 / 4.6 ± 1-2 for κλ_max 0 / ¼ / 25, all at a perfect "
               "generator's 5), and κ = 0 keeps SMC inpainting exact"),
    "periodic fields": (0.0, "GRF spectra tie; Navier-Stokes spectrum errors are mixed (strong heat 6 % lower on the "
                        "trained band, 6 % higher beyond it); restoration PSNR favours κ = 0 (29.8 / 29.4 / 28.3 dB)"),
    "images": (0.0, "no evidence at the measured budget: no process learned the edges' heavy tails (kurtosis of "
               "pixel differences ≈ 0 against 4.8 held out), so HDM's and IHDM's case for heat is untested; kept"),
    "sphere": (0.0, "not measured; κ = 0 kept"),
}


def _domain(basis) -> str:
    """The key of :data:`DEFAULT_HEAT` for a data set's basis: the sphere, the torus, 1-D walls, walled boxes."""
    from .bases import SphereBasis

    if isinstance(basis, SphereBasis):
        return "sphere"
    if isinstance(basis, PeriodicBasis):
        return "periodic fields"
    return "curves" if basis.ndim == 1 else "images"


def _architectures() -> dict:
    """``--arch`` name → score-operator config class on boxes (the checkpoint records the class)."""
    from .models.fno import ScoreFNOConfig
    from .models.uno import ScoreUNOConfig

    return {"fno": ScoreFNOConfig, "uno": ScoreUNOConfig}


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
            "guidance": restoration.covariance_guidance, "twisted": restoration.twisted_smc}


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
    times, origin = run.sampling_times(sampler, args.steps)
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

    tr = commands.add_parser("train", help="train a score operator; checkpoints, figures and config go to --out",
                             parents=[option.debug_option(), option.execution_options()], epilog=_TRAIN_EPILOG)
    tr.add_argument("--data", required=True, help="built-in NAME[:key=value,...] (" + ", ".join(BUILT_IN) + "), a .npy/.npz "
                    "file or an image folder; read lazily (larger than memory): FILE.npy:mmap=true, "
                    "FILE.h5:key=NAME,axes=ntxy (n samples, t time, c channels, others grid) or a folder of .npy shards")
    tr.add_argument("--resolution", type=option.positive_int, help="training grid (built-in data are generated there, files resampled)")
    tr.add_argument("--out", required=True, help="run directory (locked while training: one trainer at a time)")
    tr.add_argument("--steps", type=option.positive_int, help="optimisation steps (default 2000)")
    tr.add_argument("--config", help="JSON with optional 'sde' (a to_config document), 'model' and 'train' option objects")
    tr.add_argument("--resume", action="store_true", help=RESUME_RULE)
    tr.add_argument("--num", type=option.positive_int, help="number of training fields (built-in data)")
    tr.add_argument("--batch-size", type=option.positive_int)
    tr.add_argument("--lr", type=option.positive_float)
    tr.add_argument("--arch", choices=tuple(_architectures()), default="fno",
                    help="score operator on boxes: fno (Fourier neural operator, the default) or uno (U-shaped: down "
                    "one octave and back, with skips; neuraloperator's UNO); both sample at any resolution")
    tr.add_argument("--width", type=option.positive_int, default=32, help="hidden channels (FNO; UNO: of its outer blocks)")
    tr.add_argument("--modes", type=option.positive_int, default=12, help="Fourier modes per axis (at the input's grid)")
    tr.add_argument("--layers", type=option.positive_int, help="FNO blocks (default 4)")
    tr.add_argument("--kappa-nyquist", type=option.non_negative_float,
                    help="heat: κ λ_max at the training grid (0: DDO's coloured-noise VP; ¼: HDM's heat); default per "
                    "domain: " + ", ".join(f"{d} {k:g}" for d, (k, _) in DEFAULT_HEAT.items()) + " (why: below)")
    tr.add_argument("--multires", type=option.resolutions, help="train on batches resampled to these resolutions, e.g. 32,48")
    tr.add_argument("--checkpoint-every", type=option.count, help="steps between checkpoints (default 500; 0: at the end)")
    tr.add_argument("--sample-every", type=option.count, help="steps between sample figures (default: at the end)")
    tr.add_argument("--max-minutes", type=option.positive_float, help="stop (with a checkpoint) after this wall time")
    tr.add_argument("--val-fraction", type=option.fraction,
                    help="hold out this fraction of the fields (the last ones); their loss is logged at checkpoints")
    tr.add_argument("--workers", type=option.count, help="processes reading batches ahead (default 0: the trainer reads them)")
    tr.add_argument("--log-dir", help="also log to TensorBoard there (metrics.jsonl in --out is always written)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(handler=_cmd_train)

    sa = commands.add_parser("sample", help="sample a trained run (or the Gaussian oracle) at any resolution",
                             parents=[option.debug_option(), option.execution_options()])
    sa.add_argument("run_dir", help="run directory from `train`, or oracle[:dim=2,domain=periodic,alpha=2.5,tau=7]")
    sa.add_argument("--resolution", type=option.positive_int, required=True)
    sa.add_argument("--num", type=option.positive_int, required=True)
    sa.add_argument("--out", required=True, help="output .npy (num, channels, *grid); a PNG grid is written beside it")
    sa.add_argument("--sampler", choices=tuple(_samplers()), default="multistep",
                    help="multistep: exponential 3M, the default; euler-maruyama: HDM's baseline")
    sa.add_argument("--steps", type=option.sampling_steps, help="time steps; default: multistep on the run's grid optimised at "
                    "training (16 steps), else per sampler (model evaluations): " +
                    ", ".join(f"{n} {s.default_steps} ({s.evaluations()})" for n, s in _samplers().items()))
    sa.add_argument("--batch-size", type=option.positive_int, default=64)
    sa.add_argument("--seed", type=int, default=0)
    sa.add_argument("--quiet", action="store_true")
    sa.set_defaults(handler=_cmd_sample)

    _add_restoration_commands(commands)
    return parser


_TRAIN_EPILOG = (
    "Ctrl-C or SIGTERM finishes the step, writes a checkpoint and exits with 130 or 143 (a second Ctrl-C exits at "
    "once); a second trainer on the same --out is refused; free disk space is checked before every checkpoint. "
    "Resume: " + RESUME_RULE + ". The default forward process (--kappa-nyquist) per domain, and why (measured by "
    "benchmarks/heat_default.py; a trained run keeps its own): "
    + "; ".join(f"{d}: {k:g}, {why}" for d, (k, why) in DEFAULT_HEAT.items()) + "."
)


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
