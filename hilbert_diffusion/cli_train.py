"""The ``train`` command of the command line: options, the data, forward process and score operator it builds, and the
default forward process per domain (:data:`DEFAULT_HEAT`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import cli_options as option
from .bases import PeriodicBasis
from .cli_limits import check_data_memory
from .config import from_config
from .datasets.lazy import LazyFields
from .datasets.spec import BUILT_IN, dataset_from_spec
from .resources import check_memory
from .resume import RESUME_RULE
from .schema import check_config_document, check_options, dataclass_from_options
from .sde import DiagonalSDE, default_sde

__all__ = ["DEFAULT_HEAT", "add_train_command", "architectures", "domain", "load_config", "run_train"]


def load_config(path: str | None) -> dict:
    """The ``--config`` document, checked (:mod:`.schema`) before anything is built from it."""
    if path is None:
        return {}
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"--config {path}: cannot read it as JSON ({err}).") from err
    check_config_document(document, f"--config {path}")
    return document


def run_train(args: argparse.Namespace) -> int:
    from .distributed import distributed_context
    from .execution import on_device
    from .interrupts import TrainingInterrupted
    from .models.sphere import SphericalScoreConfig
    from .rundir import RunDirectory
    from .training import TrainConfig, train, training_bytes
    from .training_hooks import BEST_DIR

    config = load_config(args.config)
    for model_cls in (*architectures().values(), SphericalScoreConfig):  # the model's options, before any data
        check_options(model_cls, config.get("model", {}), f"--config {args.config}: model", unknown_ok=True)
    train_options = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                     "checkpoint_every": args.checkpoint_every, "sample_every": args.sample_every,
                     "resolutions": args.multires, "flip_axes": args.flip_axes, "translate": args.translate,
                     "val_fraction": args.val_fraction,
                     "keep_best": args.keep_best or None,
                     "mode_weighting": args.mode_weighting or None, "workers": args.workers,
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
        dataset, sde, model = _setup(args, config)
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
    if context.is_main and train_config.keep_best and run.path is not None and run.path.parent.name == BEST_DIR:
        print(f"trained; the checkpoint of the lowest held-out loss (step {run.step}): {run.path}")
    elif context.is_main:
        print(f"trained {run.step} steps; checkpoint {run.path}")
    return 0


def _setup(args: argparse.Namespace, config: dict):
    """The data set, the SDE (from ``--config`` or the default for the data) and the model config of ``train``."""
    from .bases import SphereBasis
    from .models.sphere import SphericalScoreConfig

    dataset = dataset_from_spec(args.data, num=args.num, resolution=args.resolution, seed=args.seed)
    if args.resolution is not None and not isinstance(dataset.basis, SphereBasis) and dataset.grid != dataset.basis.grid(args.resolution):
        dataset = dataset.resample(args.resolution)
    sde = _sde(args, config, dataset)
    if type(sde.basis) is not type(dataset.basis):
        raise ValueError(f"the SDE's basis {sde.basis} does not fit the data's domain {dataset.basis}.")
    if isinstance(dataset.basis, SphereBasis) and args.arch != "fno":
        raise ValueError(f"--arch {args.arch} works on boxes; on the sphere the score operator is the SFNO (drop --arch).")
    model_cls = SphericalScoreConfig if isinstance(dataset.basis, SphereBasis) else architectures()[args.arch]
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


def _sde(args: argparse.Namespace, config: dict, dataset) -> DiagonalSDE:
    """``train``'s forward process: ``--config``'s ``sde``; a resumed run's own (whatever today's default);
    ``--kappa-nyquist``; else the default of the data's domain (:data:`DEFAULT_HEAT`)."""
    if "sde" in config:
        return from_config(config["sde"], expect=DiagonalSDE)
    if args.resume and args.kappa_nyquist is None:
        from .checkpoint import read_checkpoint

        return from_config(read_checkpoint(args.out).config["sde"], expect=DiagonalSDE)
    heat = args.kappa_nyquist
    if heat is None:
        where = domain(dataset.basis)
        heat = DEFAULT_HEAT[where][0]
        print(f"forward process for {where}: κ λ_max = {heat:g} (the default; --kappa-nyquist sets it)", file=sys.stderr)
    return default_sde(dataset.basis, dataset.grid, kappa_nyquist=heat)


#: ``train``'s forward process per domain when neither ``--kappa-nyquist`` nor ``--config`` sets one: ``κ λ_max`` at the
#: training grid (``default_sde``) and the reason, measured by ``benchmarks/heat_default.py`` (README, "Which forward
#: process"). A trained run keeps the process stored in its checkpoint: changing these never changes an old run.
DEFAULT_HEAT: dict[str, tuple[float, str]] = {
    "curves": (0.0, "Quadratic MMD power ties (5.0 / 5.4 / 4.6 ± 1-2 for κλ_max 0 / ¼ / 25, all at a perfect "
               "generator's 5); restoration is asymptotically exact under either (filtering SMC at κ = 0, "
               "twisted SMC under heat), so it does not decide"),
    "periodic fields": (0.0, "GRF spectra tie; Navier-Stokes spectrum errors are mixed (strong heat 6 % lower on the "
                        "trained band, 6 % higher beyond it); restoration PSNR favours κ = 0 (29.8 / 29.4 / 28.3 dB)"),
    "images": (25.0, "IHDM-like strong heat: on shapes at 30 CPU-minutes per model (benchmarks/images.py "
               "--kappa-nyquist; one model per process) the classifier two-sample test gives 0.60 / 0.55 at 32² / 64² "
               "against κ = 0's 0.69 / 0.70 and HDM's heat's 0.67 / 0.77 (0.5 is perfect), and the posterior mean "
               "restores 0.5-1.4 dB better than κ = 0's on all 6 tasks; its kurtosis of pixel differences is further "
               "from the data's (18.9 against κ = 0's 25.8, held out 30.0); faces not measured at that budget"),
    "sphere": (0.0, "not measured; κ = 0 kept"),
}


def domain(basis) -> str:
    """The key of :data:`DEFAULT_HEAT` for a data set's basis: the sphere, the torus, 1-D walls, walled boxes."""
    from .bases import SphereBasis

    if isinstance(basis, SphereBasis):
        return "sphere"
    if isinstance(basis, PeriodicBasis):
        return "periodic fields"
    return "curves" if basis.ndim == 1 else "images"


def architectures() -> dict:
    """``--arch`` name → score-operator config class on boxes (the checkpoint records the class)."""
    from .models.fno import ScoreFNOConfig
    from .models.local_fno import ScoreLocalConfig
    from .models.multiscale import ScoreMultiScaleConfig
    from .models.uno import ScoreUNOConfig

    return {"fno": ScoreFNOConfig, "uno": ScoreUNOConfig, "local": ScoreLocalConfig,
            "multiscale": ScoreMultiScaleConfig}


def add_train_command(commands) -> None:
    """The ``train`` sub-command on ``commands`` (an ``argparse`` sub-parser action)."""
    tr = commands.add_parser("train", help="train a score operator; checkpoints, figures and config go to --out",
                             parents=[option.debug_option(), option.execution_options()], epilog=TRAIN_EPILOG)
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
    tr.add_argument("--arch", choices=tuple(architectures()), default="fno",
                    help="score operator on boxes: fno (Fourier neural operator, the default), uno (U-shaped: down "
                    "one octave and back, with skips; neuraloperator's UNO), local (the FNO with differential kernels "
                    "in its blocks) or multiscale (a U-shape in the domain's own basis: cosine resampling at walls, "
                    "differential kernels at the finest level); all sample at any resolution")
    tr.add_argument("--width", type=option.positive_int, default=32,
                    help="hidden channels (FNO, local; UNO: of its outer blocks; multiscale: of its finest level)")
    tr.add_argument("--modes", type=option.positive_int, default=12,
                    help="Fourier modes per axis (at the input's grid; multiscale: at its finest level)")
    tr.add_argument("--layers", type=option.positive_int,
                    help="FNO and local: blocks (default 4); multiscale: levels, each one octave coarser (default 3)")
    tr.add_argument("--kappa-nyquist", type=option.non_negative_float,
                    help="heat: κ λ_max at the training grid (0: DDO's coloured-noise VP; ¼: HDM's heat); default per "
                    "domain: " + ", ".join(f"{d} {k:g}" for d, (k, _) in DEFAULT_HEAT.items()) + " (why: below)")
    tr.add_argument("--multires", type=option.resolutions, help="train on batches resampled to these resolutions, e.g. 32,48")
    tr.add_argument("--flip-axes", type=option.axes,
                    help="mirror each training field along these grid axes at random (augmentation for data whose law "
                    "has the symmetry), e.g. 1: left-right for images (rows, columns)")
    tr.add_argument("--translate", type=option.count, metavar="PIXELS",
                    help="shift each training field by up to PIXELS pixels per axis at random (augmentation: cyclic on "
                    "the torus, mirrored at reflecting walls; default 0)")
    tr.add_argument("--checkpoint-every", type=option.count, help="steps between checkpoints (default 500; 0: at the end)")
    tr.add_argument("--sample-every", type=option.count, help="steps between sample figures (default: at the end)")
    tr.add_argument("--max-minutes", type=option.positive_float, help="stop (with a checkpoint) after this wall time")
    tr.add_argument("--val-fraction", type=option.fraction,
                    help="hold out this fraction of the fields (the last ones); their loss is logged at checkpoints")
    tr.add_argument("--mode-weighting", nargs="?", const=True, type=option.exponent, metavar="GAMMA",
                    help="weigh each mode's error by the Wiener filter's there, to the power GAMMA (default 1; eq. "
                    "L3): sharper edges for sharp-edged data (README, Benchmarks)")
    tr.add_argument("--keep-best", action="store_true",
                    help="with --val-fraction: also keep the checkpoint of the lowest held-out loss in OUT/best "
                    "(early stopping; sample or restore with OUT/best)")
    tr.add_argument("--workers", type=option.count, help="processes reading batches ahead (default 0: the trainer reads them)")
    tr.add_argument("--log-dir", help="also log to TensorBoard there (metrics.jsonl in --out is always written)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(handler=run_train)


TRAIN_EPILOG = (
    "Ctrl-C or SIGTERM finishes the step, writes a checkpoint and exits with 130 or 143 (a second Ctrl-C exits at "
    "once); a second trainer on the same --out is refused; free disk space is checked before every checkpoint. "
    "Resume: " + RESUME_RULE + ". The default forward process (--kappa-nyquist) per domain, and why (measured by "
    "benchmarks/heat_default.py; a trained run keeps its own): "
    + "; ".join(f"{d}: {k:g}, {why}" for d, (k, why) in DEFAULT_HEAT.items()) + "."
)
