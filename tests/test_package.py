"""phnn installed from a wheel: the shipped configs are inside it and found by name."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from phnn.config_files import SHIPPED_CONFIGS, find_config, shipped_config_names
from phnn.errors import ConfigFileError

REPO = Path(__file__).resolve().parents[1]


def test_package_data_covers_every_shipped_config() -> None:
    """Every file under phnn/configs matches a package-data pattern of pyproject.toml."""
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["phnn"]
    files = [p.relative_to(SHIPPED_CONFIGS.parent) for p in SHIPPED_CONFIGS.rglob("*") if p.is_file()]
    regexes = [re.escape(p).replace(r"\*\*/", "(.+/)?").replace(r"\*", "[^/]*") for p in patterns]
    uncovered = [str(f) for f in files if not any(re.fullmatch(r, f.as_posix()) for r in regexes)]
    assert files and not uncovered


def test_a_config_is_found_by_name_and_a_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config("sed/demo.yaml") == SHIPPED_CONFIGS / "sed" / "demo.yaml"
    assert "trainer/debug.yaml" in shipped_config_names()
    (tmp_path / "sed").mkdir()
    (tmp_path / "sed" / "demo.yaml").write_text("seed_everything: 1\n")
    assert find_config("sed/demo.yaml") == Path("sed/demo.yaml")
    with pytest.raises(ConfigFileError, match=r"--config sed/dem\.yaml: no such file: looked for .* did you mean "
                                              r"sed/demo\.yaml"):
        find_config("sed/dem.yaml")
    with pytest.raises(ConfigFileError, match="no such file"):
        find_config("../cli.py")  # outside the shipped configs: not a name of one


def _documented_config_names() -> set[str]:
    """The configs the docs name, as the docs test extracts them (loaded from its file: tests/ is no package)."""
    path = REPO / "tests" / "docs" / "test_documented_commands.py"
    spec = importlib.util.spec_from_file_location("documented_commands", path)
    module = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))  # its dataclasses look it up
    spec.loader.exec_module(module)
    return module.documented_config_names()


def _build_wheel(folder: Path) -> Path:
    """`pip wheel` of a copy of the sources (pyproject.toml, README.md, phnn/: what the wheel is built from), so
    that the build leaves nothing in the checkout; pip's build isolation fetches setuptools."""
    source = folder / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "phnn", source / "phnn", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder / "dist"),
                            str(source)], check=False, capture_output=True, text=True)
    if built.returncode != 0 and "Could not find a version that satisfies" in built.stderr:
        pytest.skip("pip cannot fetch setuptools to build the wheel (offline)")
    assert built.returncode == 0, built.stderr
    return next((folder / "dist").glob("phnn-*.whl"))


def _fresh_venv(folder: Path, wheel: Path) -> Path:
    """A new virtual environment with the wheel installed (no dependencies): torch and the rest come from this
    environment through a .pth file, so nothing is downloaded. Returns its python."""
    import torch

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text(str(Path(torch.__file__).resolve().parents[1]) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True)
    return python


@pytest.mark.slow
def test_the_wheel_ships_the_configs_and_the_demo_runs_from_it(tmp_path: Path) -> None:
    """`pip wheel .` installed into a fresh virtual environment: the configs the docs name are in the wheel and
    found by name, `python -m phnn.demo --help` works, and a tiny demo (fit, test, predict) runs from a folder
    outside the checkout, reading nothing of the source tree."""
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"phnn/configs/{name}" for name in shipped_config_names()} <= names
    assert {f"phnn/configs/{name}" for name in _documented_config_names()} <= names
    assert "phnn/configs/README.md" in names
    python = _fresh_venv(tmp_path / "venv", wheel)
    user = tmp_path / "user"
    user.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}

    def run(*args: str) -> str:
        done = subprocess.run([str(python), *args], check=False, cwd=user, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done.stdout

    assert "--epochs" in run("-m", "phnn.demo", "--help")
    tiny = ("import sys, phnn, phnn.demo as demo; from phnn.config_files import find_config; "
            "print(phnn.__file__); print(find_config('sed/demo.yaml')); "
            "demo.DATA.update(train_clips=4, dev_clips=1, duration=4.0); "
            "sys.exit(demo.main(['--out', 'demo_output', '--epochs', '1', '--threads', '1']))")
    printed = run("-c", tiny).splitlines()
    site = Path(printed[0]).parent
    assert site.is_relative_to(tmp_path / "venv") and Path(printed[1]) == site / "configs" / "sed" / "demo.yaml"
    assert any(line.startswith("  location-sensitive F") for line in printed)
    assert len(list((user / "demo_output" / "predictions" / "l3das21_task2").glob("*.csv"))) == 1
