"""`pip install .` into a brand-new virtualenv builds puff._native and gives a working `puff`.

This is the user's install path (build isolation: pip fetches scikit-build-core and greenlet
itself), so it checks the wheel carries the extension module, the headers and the entry point."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_pip_install_dot_in_a_fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = dict(os.environ, PIP_CONSTRAINT=str(ROOT / "requirements" / "constraints.txt"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    r = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "-C", f"build-dir={tmp_path / 'build'}", str(ROOT)],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = subprocess.run([str(venv / "bin" / "puff"), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("puff "), out.stdout + out.stderr
    code = (
        "import os, puff\n"
        "assert os.path.exists(os.path.join(puff.get_include(), 'puff', 'puff.h'))\n"
        "assert 'site-packages' in puff.__file__\n"
        "print(puff.run(lambda: (puff.sleep_ms(5), 'ok')[1]))\n"
    )
    out = subprocess.run([str(py), "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr
