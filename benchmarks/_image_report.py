"""The verdicts and the printed table of :mod:`benchmarks.images` (issue 15): which targets each model meets, and
its samples' statistics, the restoration gaps and the data's own scores as text."""

from __future__ import annotations

from benchmarks._image_restoration import gap_text

__all__ = ["KURTOSIS_TOLERANCE", "C2ST_TARGET", "verdicts", "table"]

#: the issue's targets: samples' kurtosis of differences within 25 % of the held-out data's, C2ST at most 0.65.
KURTOSIS_TOLERANCE, C2ST_TARGET = 0.25, 0.65


def verdicts(results: dict) -> dict:
    """Per data set and architecture: which targets are met (kurtosis within 25 %, C2ST ≤ 0.65 at both grids,
    the posterior mean beating every baseline on every task; ``None`` where restoration is not measured)."""
    out = {}
    for name, result in results.items():
        n0 = result["resolution"]
        for arch, row in result["architectures"].items():
            grids = (str(n0), str(2 * n0))
            out[f"{name}/{arch}"] = {
                "kurtosis_within_25%": all(row[g]["kurtosis_error"] <= KURTOSIS_TOLERANCE for g in grids),
                "c2st_at_most_0.65": all(row[g]["c2st"] <= C2ST_TARGET for g in grids),
                "restoration_beats_baselines": {t: r["beats_every_baseline"] for t, r in row["restoration"].items()}
                or None}
    return out


def table(results: dict) -> str:
    """The printed table: per model its training, samples' statistics at both grids and restoration gaps; per data
    set its training fields' own scores."""
    lines = [f"{'data/arch':26s} {'min':>5s} {'steps':>6s} {'kurt':>6s} {'data':>6s} {'W1':>5s} {'C2ST':>5s} "
             f"{'spec':>5s} | {'2×kurt':>6s} {'data':>6s} {'W1':>5s} {'C2ST':>5s} | "
             f"restoration PSNR − best baseline's (dB): posterior mean of the draws / of infinitely many / exact"]
    lines = lines if any(r["architectures"] for r in results.values()) else []  # --data-only: no model rows
    for name, result in results.items():
        n0 = result["resolution"]
        for arch, row in result["architectures"].items():
            a, b = row[str(n0)], row[str(2 * n0)]
            gaps = " ".join(f"{t.replace(' ', '')[:7]}:{gap_text(r)}" for t, r in row["restoration"].items())
            label = f"{name}{'*' if result.get('interpolated_2x') else ''}/{arch}"
            lines.append(f"{label:26s} {row['train']['seconds'] / 60:5.1f} {row['train']['steps']:6d} "
                         f"{a['kurtosis']:6.2f} {a['data_kurtosis']:6.2f} {a['marginal_distance']:5.2f} {a['c2st']:5.2f} "
                         f"{a['spectrum_error']:5.2f} | {b['kurtosis']:6.2f} {b['data_kurtosis']:6.2f} "
                         f"{b['marginal_distance']:5.2f} {b['c2st']:5.2f} | {gaps}")
    for name, r in results.items():
        own = " / ".join(f"kurtosis {v['kurtosis']:.2f} (held out {v['data_kurtosis']:.2f}), C2ST {v['c2st']:.2f}"
                         for v in r["training_fields"].values())
        lines += [f"{name}: training fields at {r['resolution']}² / 2× (a perfect model of them): {own}",
                  f"{name}: training fields upsampled bicubically to 2× (what the training grid carries there): "
                  f"kurtosis {r['upsampled_2x']['kurtosis']:.2f}, C2ST {r['upsampled_2x']['c2st']:.2f}"]
    if any(r.get("interpolated_2x") for r in results.values()):
        lines.append("* held out at 2×: coarser images resized (there are no data at that grid)")
    return "\n".join(lines)
