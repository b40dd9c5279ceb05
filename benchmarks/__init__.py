"""The benchmarks of ``hilbert_diffusion``: one module per benchmark, each a script with ``main(argv)``
(``--quick`` for a CI-sized run) that prints a table and writes ``results/<name>[_quick].json``.

Run them all with ``python -m benchmarks [--quick] [--only NAME ...]`` (see :mod:`benchmarks.run`).
"""
