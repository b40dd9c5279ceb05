"""What is not Gaussian in images: score operators on one CPU budget, against held-out images (issue 15).

Per data set (:data:`DATASETS`, built in, nothing downloaded: :func:`~hilbert_diffusion.datasets.shapes` — discs,
rectangles and triangles with sharp edges, 32², 20000 to train on; :func:`~hilbert_diffusion.datasets.faces` —
scikit-image's 100 LFW faces, 80 to train, 24²; optionally ``patches`` and ``digits``, and the two physical fields of
the issue: ``darcy``, Darcy's two-valued coefficient, and ``vorticity``, Navier–Stokes vorticity at ``T = 20`` on the
torus) and per architecture (:data:`ARCHITECTURES`: two exact denoisers with no network and no training — the
per-mode Gaussian fit of the training images (``gaussian``, :class:`GaussianFit`: the control) and its scale mixture,
one amplitude per image or per octave band (``scale-mixture``, ``scale-mixture-bands``, :class:`ScaleMixtureFit`) —
the default FNO, a wider and deeper FNO, neuraloperator's U-shaped UNO, the FNO with differential kernels
(``local``), the U-shape on the domain's basis with and without them (``multiscale``, ``multiscale-spectral``);
select with ``--architectures``), one model trained for the same CPU seconds on one thread, in segments (train,
then resume), each segment's end a point of the learning curve. Then, samples against held-out images (the test
split: other shapes; the 20 held-out faces and their mirror images):

* excess kurtosis of horizontal pixel differences (:func:`~hilbert_diffusion.nongaussian.difference_kurtosis`;
  target: within 25 % of the held-out data's), the one-point law's Wasserstein distance
  (:func:`~.nongaussian.marginal_distance`, in the data's standard deviations), radial spectrum error
  (:func:`~.nongaussian.spectrum_distance`), and a classifier two-sample test
  (:func:`~.nongaussian.classifier_two_sample_test`, a small CNN; 0.5 is perfect; target ≤ 0.65), at the training
  grid and at 2× (held-out shapes rendered at 2×, faces resized).
  Samples are drawn by the probability-flow ODE (DPM-Solver++(3M), 32 steps), or with ``--sampler`` by the exact
  ancestral bridge or Song et al.'s predictor-corrector; beside them, training fields upsampled bicubically to 2×
  are scored against the held-out ones there: what the training grid carries to 2×;
* zero-shot restoration of held-out images at the training grid: ×2 and ×4 super-resolution from block means
  and from the band-limited (spectral) field, a 25 % box and 70 % random pixels missing; PSNR / SSIM of the
  posterior mean (``draws`` draws: DDNM for the spectral tasks, covariance guidance for the others, or with
  ``--restorer twisted-smc`` the twisted SMC, each with ``restoration_steps`` steps; images only, not vorticity)
  against bicubic and zero-padding upsampling, biharmonic and TV inpainting (:mod:`hilbert_diffusion.restoration.classical`). Target: the posterior mean beats every baseline on every task.
  The PSNR is also given for infinitely many draws (eq. M1) and, for the untrained priors, for the exact posterior
  mean (:mod:`benchmarks._image_restoration`).

The issue allows ≤ 30 CPU-minutes per data set; the committed run uses ``--cpu-minutes`` per *model* (see the
JSON's config), far less. A longer run on a GPU::

    python benchmarks/images.py --cpu-minutes 30 --datasets shapes,faces,patches,digits --device cuda

(``--cpu-minutes`` is then the wall-clock budget per model.) ``--quick``: tiny models, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor
from torch.nn.functional import interpolate

if __package__ in (None, ""):  # run as a file (python benchmarks/images.py): make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._image_data import DATASETS
from benchmarks._image_figures import figure
from benchmarks._image_report import table, verdicts
from benchmarks._image_restoration import TASK_KEYS, restoration
from hilbert_diffusion import cli_options as option
from hilbert_diffusion.bases import SpectralBasis
from hilbert_diffusion.checkpoint import load
from hilbert_diffusion.engine import Sampler
from hilbert_diffusion.loader import split_rows
from hilbert_diffusion.losses import LogUniformTime
from hilbert_diffusion.models.cross_spectrum import ChannelCovariance, ChannelGaussianDenoiser
from hilbert_diffusion.models.fno import ScoreFNOConfig
from hilbert_diffusion.models.local_fno import ScoreLocalConfig
from hilbert_diffusion.models.multiscale import ScoreMultiScaleConfig
from hilbert_diffusion.models.scale_mixture import ScaleMixture, ScaleMixtureDenoiser
from hilbert_diffusion.models.uno import ScoreUNOConfig
from hilbert_diffusion.normalization import Normalization
from hilbert_diffusion.nongaussian import (
    classifier_two_sample_test,
    denoising_gain,
    difference_kurtosis,
    marginal_distance,
    spectrum_distance,
)
from hilbert_diffusion.restoration import covariance_guidance, twisted_smc
from hilbert_diffusion.sampling import exponential_ancestral, exponential_multistep, predictor_corrector
from hilbert_diffusion.sde import default_sde
from hilbert_diffusion.trained import TrainedRun
from hilbert_diffusion.training import TrainConfig, train
from hilbert_diffusion.training_hooks import BEST_DIR

RESULTS = Path(__file__).resolve().parent / "results"
#: noise levels of the denoising-gain diagnostic (:func:`gains`): from nearly clean to nearly pure noise.
GAIN_TIMES = (0.01, 0.03, 0.1, 0.3, 0.7)


@dataclass(frozen=True)
class GaussianFit:
    """No network and no training: the exact denoiser of the centred Gaussian with the training images' per-mode
    spectrum (:class:`~hilbert_diffusion.models.cross_spectrum.ChannelGaussianDenoiser`), under the same forward
    process. What second-order statistics alone give: the control every learned model must beat."""


@dataclass(frozen=True)
class ScaleMixtureFit:
    """No network and no training: the exact denoiser of the Gaussian fit's scale mixture, one amplitude per image in
    ``bins`` classes fitted to the training images' whitened energies
    (:class:`~hilbert_diffusion.models.scale_mixture.ScaleMixtureDenoiser`), or one per octave band of modes in each
    class (``bands``). The Gaussian fit plus amplitude adaptivity — flat and busy, smooth and rough images told
    apart — and nothing else."""

    bins: int = 16
    bands: int = 1


@dataclass(frozen=True)
class Plan:
    """Sizes of one run (full or quick)."""

    architectures: dict
    train: TrainConfig
    cpu_seconds: float  # per model
    segments: int  # learning-curve points
    sampler_steps: int
    curve_samples: int
    samples: tuple[int, int]  # at the training grid and at 2×
    c2st_epochs: int
    test_images: int
    draws: int
    restoration_steps: int
    resolution_scale: float = 1.0  # quick runs shrink the grids
    kappa_nyquist: float = 0.0  # the forward process: κ λ_max at the training grid (0: DDO's coloured noise)
    train_images: int = 0  # fields to train on (0: each data set's own number; quick runs take 256)
    sampler: Sampler = exponential_multistep  # every unconditional draw: sampler_steps steps on the sampler's own grid
    restorer: Sampler = covariance_guidance  # the restoration tasks not diagonal in the basis (block means, masks)
    tasks: tuple[str, ...] = ()  # the restoration tasks' labels (TASK_KEYS' values); empty: all six

    def sampler_text(self) -> str:
        return f"{self.sampler.name}, {self.sampler.method!r}, {self.sampler_steps} steps on its own grid"


def _models(width: int, modes: int, layers: int) -> dict:
    return {"gaussian": GaussianFit(), "scale-mixture": ScaleMixtureFit(), "scale-mixture-bands": ScaleMixtureFit(bands=4),
            "fno": ScoreFNOConfig(hidden_channels=width, n_modes=modes, n_layers=layers, positional_embedding=True),
            # the same FNO on an amplitude-adaptive skip: the scale mixture's exact denoiser (16 classes, 4 octave
            # bands) for the Wiener's
            "fno-amplitude": ScoreFNOConfig(hidden_channels=width, n_modes=modes, n_layers=layers, positional_embedding=True,
                                            amplitude_classes=16, amplitude_bands=4),
            "fno-wide": ScoreFNOConfig(hidden_channels=2 * width, n_modes=modes, n_layers=layers + 2,
                                       positional_embedding=True),
            "uno": ScoreUNOConfig(hidden_channels=width, n_modes=modes, positional_embedding=True),
            # the FNO with differential kernels in its blocks: 4 % more parameters than the FNO
            "local": ScoreLocalConfig(hidden_channels=width, n_modes=modes, n_layers=layers, positional_embedding=True),
            # half the width (doubling per level), two more modes: about the FNO's parameter count
            "multiscale": ScoreMultiScaleConfig(hidden_channels=max(1, width // 2), n_modes=modes + 2,
                                                positional_embedding=True),
            # the same without its differential kernels: what they add, and what they cost at 2x
            "multiscale-spectral": ScoreMultiScaleConfig(hidden_channels=max(1, width // 2), n_modes=modes + 2,
                                                         local_levels=0, positional_embedding=True)}


ARCHITECTURES = _models(32, 12, 4)
FULL = Plan(architectures=ARCHITECTURES,
            train=TrainConfig(steps=1, batch_size=32, lr=2e-3, warmup_steps=50, cosine_decay=False, ema_decay=0.995,
                              checkpoint_every=0, figure_samples=0, optimised_steps=0),
            cpu_seconds=120.0, segments=4, sampler_steps=32, curve_samples=48, samples=(200, 64), c2st_epochs=30,
            test_images=6, draws=4, restoration_steps=50)
QUICK = Plan(architectures=_models(4, 4, 2),
             train=replace(FULL.train, batch_size=8, warmup_steps=2),
             cpu_seconds=4.0, segments=2, sampler_steps=4, curve_samples=8, samples=(16, 8), c2st_epochs=2,
             test_images=2, draws=2, restoration_steps=4, resolution_scale=0.5, train_images=256)


# --------------------------------------------------------------------------------------------- metrics
def statistics(samples: Tensor, data: Tensor, basis: SpectralBasis, *, epochs: int) -> dict:
    """Kurtosis of differences (samples, data, relative error), the one-point law's distance, spectrum distance
    and the classifier test."""
    k_samples, k_data = float(difference_kurtosis(samples)[0]), float(difference_kurtosis(data)[0])
    c2st = classifier_two_sample_test(samples, data, epochs=epochs)
    return {"kurtosis": k_samples, "data_kurtosis": k_data, "kurtosis_error": abs(k_samples - k_data) / abs(k_data),
            "marginal_distance": float(marginal_distance(samples, data)[0]),
            "spectrum_error": spectrum_distance(samples, data, basis), "c2st": c2st.accuracy,
            "c2st_stderr": c2st.stderr, "c2st_fields": c2st.tested, "range": [float(samples.min()), float(samples.max())]}


def gains(run: TrainedRun, control: TrainedRun, data: Tensor) -> list[float]:
    """:func:`~hilbert_diffusion.nongaussian.denoising_gain` over the Gaussian fit at :data:`GAIN_TIMES`, rounded."""
    return [round(g, 4) for g in denoising_gain(run, control, data, times=GAIN_TIMES)]


def draw(run, num: int, resolution: int, plan: Plan, seed: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return run.sample(num, resolution, sampler=plan.sampler, times=plan.sampler.times(plan.sampler_steps),
                          generator=generator).float()


# --------------------------------------------------------------------------------------------- training
def train_with_curve(data: Tensor, model, plan: Plan, reference: Tensor, control: TrainedRun, *, out: Path | None,
                     device: str) -> tuple:
    """Train for ``plan.cpu_seconds`` (process CPU time; wall time on a GPU) in ``plan.segments`` segments, the
    step count of each set from the measured seconds per step; after each, the kurtosis, one-point distance and
    spectrum error of ``curve_samples`` samples and the denoising gain (:func:`gains`) over ``control`` on ``reference``.
    Trains in ``out`` (kept; a folder that holds a finished run is loaded, not retrained: :func:`kept_run`) or in a
    temporary folder.
    Returns ``(run, curve, timing)``."""
    record = out / "curve.json" if out is not None else None
    if record is not None and record.exists():
        saved = json.loads(record.read_text())
        return kept_run(out, saved["timing"]), saved["curve"], saved["timing"]
    clock = time.perf_counter if device != "cpu" else time.process_time
    curve, spent, steps, run, per_step = [], 0.0, 0, None, 0.0  # per_step: measured in the first segment
    with tempfile.TemporaryDirectory(prefix="hd_images_") if out is None else nullcontext(out) as folder:
        for segment in range(plan.segments):
            target = steps + (max(10, plan.train.warmup_steps) if segment == 0 else
                              max(1, round((plan.cpu_seconds * (segment + 1) / plan.segments - spent) / per_step)))
            start = clock()
            run = train(data, sde=control.sde, model=model, config=replace(plan.train, steps=target), out_dir=folder,
                        resume=segment > 0, progress=False, device=device)
            spent += clock() - start
            per_step = spent / target
            steps = target
            samples = draw(run, plan.curve_samples, data.shape[-1], plan, seed=segment).cpu()
            curve.append({"steps": steps, "cpu_minutes": round(spent / 60, 3),
                          "kurtosis": float(difference_kurtosis(samples)[0]),
                          "marginal_distance": float(marginal_distance(samples, reference)[0]),
                          "spectrum_error": spectrum_distance(samples, reference, control.sde.basis),
                          "denoising_gain": gains(run, control, reference)})
            print(f"    step {steps}: {spent:.0f} s, kurtosis {curve[-1]['kurtosis']:.2f}, "
                  f"denoising error / Gaussian fit's {curve[-1]['denoising_gain']}", flush=True)
    timing = {"steps": steps, "seconds": round(spent, 1), "parameters": sum(p.numel() for p in run.model.parameters()),
              "curve_sampler": plan.sampler_text(), "kept_step": run.step}  # kept_step < steps: stopped early
    if record is not None:
        record.write_text(json.dumps({"curve": curve, "timing": timing}))
    return run, curve, timing


def kept_run(folder: Path, timing: dict) -> TrainedRun:
    """The model a kept run was scored with: ``folder/best`` where it stopped early (``keep_best``), else its last
    checkpoint; checked against the step its ``curve.json`` records (``kept_step``)."""
    best = folder / BEST_DIR
    run = load(best if best.exists() else folder)
    if run.step != timing.get("kept_step", run.step):
        raise ValueError(f"{folder} holds step {run.step} but its curve.json kept step {timing['kept_step']}; delete "
                         f"the folder to train it anew.")
    return run


def untrained_run(data: Tensor, plan: Plan, basis: SpectralBasis, fit: GaussianFit | ScaleMixtureFit) -> TrainedRun:
    """The :class:`GaussianFit` or :class:`ScaleMixtureFit` of ``data`` as a run: normalised like training, the
    forward process of training."""
    sde = default_sde(basis, tuple(data.shape[2:]), kappa_nyquist=plan.kappa_nyquist)
    normalization = Normalization.fit(data, basis=basis)
    encoded = normalization.encode(data)
    covariance = ChannelCovariance.estimate(encoded, basis)
    model = (ChannelGaussianDenoiser(sde, covariance) if isinstance(fit, GaussianFit) else
             ScaleMixtureDenoiser(sde, covariance, ScaleMixture.fit(encoded, covariance, basis, bins=fit.bins, bands=fit.bands)))
    return TrainedRun(model=model, sde=sde, normalization=normalization, step=0)


# --------------------------------------------------------------------------------------------- one data set
def run_name(name: str, arch: str, plan: Plan) -> str:
    """The folder of a kept run: ``<data>_<arch>_heat<K>`` and every training choice that differs from the default
    (mirror axes, early stopping, the number of training fields, log-uniform times, the per-mode loss's exponent,
    translations, the training grids), so
    a run kept with other choices is never loaded in its place."""
    spec, train = DATASETS[name], plan.train
    gamma = float(train.mode_weighting)
    return "".join([f"{name}_{arch}_heat{plan.kappa_nyquist:g}", *(f"_flip{a}" for a in spec.flip_axes),
                    f"_val{spec.val_fraction:g}" if spec.val_fraction else "",
                    f"_n{plan.train_images}" if plan.train_images else "",
                    "_logt" if isinstance(train.time_sampler, LogUniformTime) else "",
                    ("_modes" + (f"{gamma:g}" if gamma != 1 else "")) if gamma else "",
                    f"_shift{train.translate}" if train.translate else "",
                    "_multires" + "-".join(map(str, train.resolutions)) if train.resolutions else ""])


def run_dataset(name: str, plan: Plan, *, runs: Path | None, device: str) -> dict:
    spec = DATASETS[name]
    n0, basis = max(8, round(spec.resolution * plan.resolution_scale)), spec.basis
    data = spec.load(n0, "train", plan.train_images or spec.train_num)
    control = untrained_run(data, plan, basis, GaussianFit())
    reference = {n: spec.load(n, "test", num) for n, num in zip((n0, 2 * n0), plan.samples)}
    fitted, stopping = split_rows(len(data), spec.val_fraction)
    out = {"resolution": n0, "train_images": len(fitted), "validation_images": len(stopping),
           "flip_axes": spec.flip_axes, "val_fraction": spec.val_fraction,
           "held_out": {str(n): len(r) for n, r in reference.items()},
           "images": spec.images, "interpolated_2x": spec.interpolated_2x, "architectures": {},
           **references(name, data, reference, plan)}
    for arch, model in plan.architectures.items():
        print(f"{name} · {arch}", flush=True)
        if isinstance(model, (GaussianFit, ScaleMixtureFit)):
            run = control if isinstance(model, GaussianFit) else untrained_run(data, plan, basis, model)
            curve, timing = [], {"steps": 0, "seconds": 0.0, "parameters": 0}
        else:
            folder = runs / run_name(name, arch, plan) if runs is not None else None
            run, curve, timing = train_with_curve(data, model, replace(plan, train=spec.train_config(plan.train)),
                                                  reference[n0], control, out=folder, device=device)
        row = {"train": timing, "curve": curve, "denoising_gain": gains(run, control, reference[n0])}
        for n, num in zip((n0, 2 * n0), plan.samples):
            samples = draw(run, num, n, plan, seed=100).cpu()
            row[f"{n}"] = statistics(samples, reference[n], basis, epochs=plan.c2st_epochs)
            if n == n0:  # two pictures for the figure, rounded: the JSON stays small
                row[f"{n}"]["first"] = samples[:2, 0].double().round(decimals=3).tolist()
        row["restoration"] = (restoration(run, reference[n0][: plan.test_images], basis, draws=plan.draws,
                                          steps=plan.restoration_steps, device=device, method=plan.restorer,
                                          only=plan.tasks)
                              if spec.images else {})
        out["architectures"][arch] = row
        print(f"  {json.dumps({k: row[str(n0)][k] for k in ('kurtosis', 'data_kurtosis', 'c2st')})}", flush=True)
    out["data_first"] = reference[n0][:2, 0].double().round(decimals=3).tolist()
    out["train_first"] = data[:1, 0].double().round(decimals=3).tolist()
    return out


def references(name: str, data: Tensor, reference: dict[int, Tensor], plan: Plan) -> dict:
    """The data's own scores against the held-out fields, to read a model's against. ``training_fields``: training
    fields at each grid, as many as the held-out samples (the first of the training split; faces: all 80, the 8
    that stop training early among them) — what a perfect model of the training law would score, short of the target
    where the held-out law is another (patches: another photograph). ``upsampled_2x``: the training fields upsampled
    bicubically — what the training grid alone carries to 2×."""
    spec, (n0, n1) = DATASETS[name], sorted(reference)
    fields = {n: spec.load(n, "train", num) for n, num in zip((n0, n1), plan.samples)}
    return {"training_fields": {str(n): statistics(f, reference[n], spec.basis, epochs=plan.c2st_epochs)
                                for n, f in fields.items()},
            "upsampled_2x": statistics(interpolate(data[: plan.samples[1]], scale_factor=2, mode="bicubic"),
                                       reference[n1], spec.basis, epochs=plan.c2st_epochs)}


# --------------------------------------------------------------------------------------------- output
def headline(document: dict) -> dict[str, object]:
    return {key: {"kurtosis": v["kurtosis_within_25%"], "c2st": v["c2st_at_most_0.65"],
                  "restoration": v["restoration_beats_baselines"] and all(v["restoration_beats_baselines"].values())}
            for key, v in document["verdicts"].items()}


def machine(started: float) -> dict:
    """Where and how long the run ran."""
    return {"total_seconds": round(time.perf_counter() - started, 1), "threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "platform": platform.platform(),
            "torch": torch.__version__}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models and few samples: seconds")
    parser.add_argument("--cpu-minutes", type=float, help="training budget per model (default: the plan's)")
    parser.add_argument("--datasets", default="shapes,faces", help="comma-separated: " + ", ".join(DATASETS))
    parser.add_argument("--architectures", help="comma-separated subset of " + ", ".join(ARCHITECTURES))
    parser.add_argument("--data-only", action="store_true", help="no model: only the data's own scores against the "
                        "held-out fields (training fields at both grids, and upsampled to 2×): seconds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--kappa-nyquist", type=float, default=0.0,
                        help="heat of the forward process, κ λ_max at the training grid (default 0, DDO's process; the "
                             "command line's default is 25 for images, 0 on the torus)")
    parser.add_argument("--draws", type=int, help="draws averaged into each posterior mean (default: the plan's)")
    parser.add_argument("--test-images", type=int, help="held-out images restored per task (default: the plan's, 6)")
    parser.add_argument("--runs", help="keep each trained model in RUNS/<data>_<arch>_heat<K>; one already there is "
                        "loaded, not retrained (e.g. to score it again with more --draws)")
    parser.add_argument("--log-time", action="store_true", help="train on log-uniform times (every decade of t "
                        "equally often) instead of uniform ones")
    parser.add_argument("--mode-weighting", nargs="?", const=True, default=False, type=option.exponent,
                        metavar="GAMMA",
                        help="train on the per-mode loss (eq. L3 of hilbert_diffusion.losses: each mode's error over "
                        "the Wiener filter's, to the power GAMMA, default 1) instead of the L² one")
    parser.add_argument("--translate", type=option.count, default=0, metavar="PIXELS",
                        help="augment training with random shifts of up to PIXELS pixels per axis (TrainConfig.translate)")
    parser.add_argument("--multires", type=option.resolutions, default=(), metavar="N,M",
                        help="train on batches resampled to these grids (TrainConfig.resolutions), e.g. 16,32")
    parser.add_argument("--train-images", type=int, default=0,
                        help="fields to train on (default: each data set's own: 20000 shapes, 1000 of the others; "
                             "faces have 80 and digits 1438 at most)")
    parser.add_argument("--sampler", choices=("multistep", "ancestral", "pc"), default="multistep",
                        help="every unconditional draw: the probability-flow ODE by DPM-Solver++(3M) (32 steps, the "
                        "default), the exact ancestral bridge (64 steps) or Song et al.'s predictor-corrector (96 steps, "
                        "191 evaluations)")
    parser.add_argument("--snr", type=float, help="the predictor-corrector's corrector step (default 0.16; with "
                        "--sampler pc): larger is flatter at nearly the same kurtosis on shapes (README)")
    parser.add_argument("--eta", type=float, help="the ancestral sampler's noise, DDIM's eta in [0, 1] (default 1; "
                        "with --sampler ancestral): 0 is its deterministic member")
    parser.add_argument("--restorer", choices=("cg", "twisted-smc"), default="cg",
                        help="the restoration method of the block-mean and mask tasks: covariance guidance (the "
                        "default; exact for Gaussian data) or the twisted SMC (asymptotically exact for any data, "
                        "--particles times the cost); the spectral tasks always take DDNM")
    parser.add_argument("--particles", type=int, help="the twisted SMC's particles per draw (default 8; with "
                        "--restorer twisted-smc)")
    parser.add_argument("--particle-mean", action="store_true", help="each of the twisted SMC's --draws is its "
                        "filter's weighted particle mean instead of one particle (with --restorer twisted-smc)")
    parser.add_argument("--tasks", help="comma-separated restoration tasks to run (default: all): "
                        + ", ".join(TASK_KEYS))
    parser.add_argument("--tag", help="write images_TAG.json/.png (a run beside the committed one, e.g. a longer budget)")
    return parser


def _plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Plan:
    """The plan the arguments ask for (errors through ``parser``)."""
    plan = QUICK if args.quick else FULL
    if args.cpu_minutes:
        plan = replace(plan, cpu_seconds=60 * args.cpu_minutes)
    if args.train_images < 0:
        parser.error(f"--train-images must be positive (or 0 for each data set's own), got {args.train_images}")
    if (args.draws is not None and args.draws < 1) or (args.test_images is not None and args.test_images < 1):
        parser.error(f"--draws and --test-images must be positive, got {args.draws} and {args.test_images}")
    plan = replace(plan, kappa_nyquist=args.kappa_nyquist, draws=args.draws or plan.draws,
                   test_images=args.test_images or plan.test_images,
                   train_images=args.train_images or plan.train_images)
    sampler, factor = {"multistep": (exponential_multistep, 1), "ancestral": (exponential_ancestral, 2),
                       "pc": (predictor_corrector, 3)}[args.sampler]
    if args.snr is not None and (args.sampler != "pc" or args.snr <= 0):
        parser.error(f"--snr is the predictor-corrector's: give it with --sampler pc and above 0, got {args.snr}")
    if args.eta is not None and (args.sampler != "ancestral" or not 0 <= args.eta <= 1):
        parser.error(f"--eta is the ancestral sampler's: give it with --sampler ancestral, in [0, 1], got {args.eta}")
    options = {k: v for k, v in (("snr", args.snr), ("eta", args.eta)) if v is not None}
    sampler = sampler.configure(**options) if options else sampler
    if (args.particles is not None or args.particle_mean) and args.restorer != "twisted-smc":
        parser.error("--particles and --particle-mean are the twisted SMC's: give them with --restorer twisted-smc")
    if args.particles is not None and args.particles < 1:
        parser.error(f"--particles must be at least 1, got {args.particles}")
    smc = {k: v for k, v in (("particles", args.particles), ("weighted_mean", args.particle_mean or None)) if v}
    restorer = twisted_smc.configure(**smc) if args.restorer == "twisted-smc" else covariance_guidance
    plan = replace(plan, restorer=restorer, tasks=_tasks(args.tasks, parser))
    plan = replace(plan, sampler=sampler, sampler_steps=factor * plan.sampler_steps)
    if args.log_time:
        plan = replace(plan, train=replace(plan.train, time_sampler=LogUniformTime(plan.train.time_sampler.t_min)))
    plan = replace(plan, train=replace(plan.train, mode_weighting=args.mode_weighting, translate=args.translate,
                                       resolutions=args.multires))
    if args.data_only and args.architectures:
        parser.error("--data-only scores no model: leave out --architectures")
    if args.data_only:
        plan = replace(plan, architectures={})
    if args.architectures:
        chosen = [a for a in args.architectures.split(",") if a]
        if unknown := [a for a in chosen if a not in plan.architectures]:
            parser.error(f"unknown architectures {unknown}; choose from {', '.join(plan.architectures)}")
        plan = replace(plan, architectures={a: plan.architectures[a] for a in chosen})
    return plan


def _tasks(text: str | None, parser: argparse.ArgumentParser) -> tuple[str, ...]:
    """The labels of the ``--tasks`` asked for, in the order of :data:`TASK_KEYS` (all: empty)."""
    keys = [k for k in (text or "").split(",") if k]
    if unknown := [k for k in keys if k not in TASK_KEYS]:
        parser.error(f"unknown restoration tasks {unknown}; choose from {', '.join(TASK_KEYS)}")
    if text is not None and not keys:
        parser.error(f"--tasks names no task; choose from {', '.join(TASK_KEYS)}")
    return tuple(label for key, label in TASK_KEYS.items() if key in keys)  # in the order of the table


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    plan = _plan(args, parser)
    names = [n for n in args.datasets.split(",") if n]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        parser.error(f"unknown data sets {unknown}; choose from {sorted(DATASETS)}")
    started = time.perf_counter()
    runs = Path(args.runs) if args.runs else None
    results = {name: run_dataset(name, plan, runs=runs, device=args.device) for name in names}
    print(table(results))
    document = {
        "config": {"architectures": {a: {"type": type(m).__name__, **{k: v for k, v in vars(m).items()}}
                                     for a, m in plan.architectures.items()},
                   "budget_seconds_per_model": plan.cpu_seconds, "kappa_nyquist": plan.kappa_nyquist, "clock": "process CPU time" if args.device == "cpu"
                   else "wall time", "train": {"batch_size": plan.train.batch_size, "lr": plan.train.lr,
                                               "ema_decay": plan.train.ema_decay, "segments": plan.segments,
                                               "time_sampler": repr(plan.train.time_sampler),
                                               "mode_weighting": plan.train.mode_weighting,
                                               "translate": plan.train.translate,
                                               "resolutions": plan.train.resolutions},
                   "sampler": plan.sampler_text(), "data_only": args.data_only,
                   "samples": plan.samples, "c2st_epochs": plan.c2st_epochs,
                   "restoration": {"images": plan.test_images, "draws": plan.draws, "steps": plan.restoration_steps,
                                   "tasks": list(plan.tasks) or "all",
                                   "methods": f"ddnm (spectral), {plan.restorer.name} {plan.restorer.method!r} "
                                              "(block means, masks)"}}
        | machine(started),
        "verdicts": verdicts(results),
        "results": results,
    }
    stem = ("images_quick" if args.quick else "images") + (f"_{args.tag}" if args.tag else "")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(document, indent=1, ensure_ascii=False, default=str))
    figure(results, RESULTS / f"{stem}.png", gain_times=GAIN_TIMES)
    print(f"total {document['config']['total_seconds']:.0f} s; wrote {RESULTS / f'{stem}.json'} and {stem}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
