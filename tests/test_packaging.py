"""Packaging: every subpackage is installed, ``cli`` is not a top-level module, the script runs."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "diqkd").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert "diqkd" in found
    missing = sorted(found - listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
    assert "diqkd_cli" in listed and config["package-dir"]["diqkd_cli"] == "cli"
    assert "cli" not in listed


def test_cli_is_not_importable_as_top_level_module(tmp_path: Path) -> None:
    code = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('cli') is None, importlib.util.find_spec('cli')\n"
        "import diqkd_cli.main\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_diqkd_help_runs() -> None:
    script = Path(sys.executable).parent / "diqkd"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout and "records" in proc.stdout
