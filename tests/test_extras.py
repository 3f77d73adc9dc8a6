"""Optional extras: a missing one stops a command with one sentence naming the install command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from voterolls.errors import UserError
from voterolls.extras import EXTRAS, require_extra

ROOT = Path(__file__).resolve().parent.parent
VOTEROLLS = Path(sys.executable).with_name("voterolls")

# A sitecustomize that makes the service extra look uninstalled (as on a core-only install).
HIDE_SERVICE = """
import importlib.abc, sys
class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("fastapi", "uvicorn", "python_multipart"):
            raise ModuleNotFoundError(name, name=name)
        return None
sys.meta_path.insert(0, _Hide())
"""


def test_require_extra_names_the_pip_command(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr("importlib.import_module", missing)
    with pytest.raises(UserError) as err:
        require_extra("service", "voterolls serve")
    assert "pip install 'voterolls[service]'" in str(err.value)
    assert "\n" not in str(err.value)


def test_every_extra_is_declared_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    for extra in EXTRAS:
        assert f"\n{extra} = [" in text, extra


def test_serve_without_the_service_extra_is_one_sentence(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDE_SERVICE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    res = subprocess.run(
        [str(VOTEROLLS), "serve", "--workspace", str(tmp_path / "w")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert "pip install 'voterolls[service]'" in res.stderr
    assert "Traceback" not in res.stderr
