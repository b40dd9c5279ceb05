"""The README's Python snippets run as written, and every public name is documented."""

import re
from pathlib import Path

import pytest

import hilbert_diffusion

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_snippets():
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index):
    exec(compile(SNIPPETS[index], f"README snippet {index}", "exec"), {"__name__": f"readme_{index}"})


@pytest.mark.parametrize("name", hilbert_diffusion.__all__)
def test_public_name_is_importable_and_documented(name):
    obj = getattr(hilbert_diffusion, name)
    assert obj.__doc__ and len(obj.__doc__.strip()) > 10, f"{name} lacks a docstring"
