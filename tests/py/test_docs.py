"""Every ```python block in README.md, docs/*.md and examples/*/README.md is a runnable example:
run each one.

Fragments that cannot run on their own use another info string (```py-fragment, ```toml, ```console)."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").glob("*/README.md"))]


def _blocks():
    for doc in DOCS:
        for i, m in enumerate(re.finditer(r"^```python\n(.*?)^```", doc.read_text(), re.S | re.M)):
            yield pytest.param(m.group(1), id=f"{doc.relative_to(ROOT)}#{i}")


@pytest.mark.parametrize("code", list(_blocks()))
def test_doc_example_runs(code, tmp_path):
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"example failed:\n{code}\n--- stderr ---\n{r.stderr}"
