"""The notebooks in ``notebooks/`` run top to bottom, in quick mode, on a fresh kernel of this interpreter.

Quick mode (``HILBERT_DIFFUSION_NOTEBOOK_QUICK=1``, read by each notebook's first code cell) shrinks data,
training and sampling so that the four notebooks together take about a minute and a half on 2 CPU cores. The
kernel is the ``python3`` kernelspec of the current interpreter, installed in a temporary prefix placed
first on ``JUPYTER_PATH`` (so another ``python3`` kernelspec on the machine is never picked up), with one
OpenMP thread; the Navier–Stokes data are generated into a temporary cache, never into the user's.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
ipykernel_kernelspec = pytest.importorskip("ipykernel.kernelspec")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = ["01_quickstart", "02_resolution_free", "03_zero_shot_restoration", "04_sphere"]
QUICK_ENV = "HILBERT_DIFFUSION_NOTEBOOK_QUICK"
CELL_TIMEOUT = 300  # seconds per cell; the slowest quick cell takes a few seconds


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A ``python3`` kernelspec for ``sys.executable`` in a temporary prefix, first on ``JUPYTER_PATH``."""
    prefix = tmp_path_factory.mktemp("jupyter")
    ipykernel_kernelspec.install(prefix=str(prefix), kernel_name="python3")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        patch.setenv(QUICK_ENV, "1")
        patch.setenv("OMP_NUM_THREADS", "1")  # quick sizes gain nothing from threads; spinning threads cost on a busy CI
        patch.setenv("HILBERT_DIFFUSION_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def _read(name: str):
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def _stdout(nb) -> str:
    return "".join(
        output.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_clean(name):
    """Stored without outputs; opens with a markdown explanation; the first code cell reads the quick switch."""
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code), f"{name}: strip the outputs"
    assert QUICK_ENV in code[0].source
    assert sum(cell.cell_type == "markdown" for cell in nb.cells) >= 4, f"{name}: explain the steps in markdown"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, kernel_env, tmp_path):
    """Top to bottom without an error, drawing figures; restoration numbers match the exact posterior."""
    nb = _read(name)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    images = sum(
        "image/png" in output.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert images >= 2, f"{name} drew {images} figures"
    text = _stdout(nb)
    assert "notebook ran in" in text
    if name == "03_zero_shot_restoration":
        # Inpainting by SMC and super-resolution by DDNM against the closed-form Gaussian posterior
        # (48 draws in quick mode: Monte Carlo error of a few percent on the mean and ~10 % on the spread).
        errors = [float(v) for v in re.findall(r"relative L² error of the \w+ mean: ([0-9.]+)", text)]
        ratios = [float(v) for v in re.findall(r"std ratio[^:]*: ([0-9.]+)", text)]
        assert len(errors) == 2 and len(ratios) == 2, text
        assert max(errors) < 0.1, text
        assert all(0.8 < r < 1.2 for r in ratios), text
