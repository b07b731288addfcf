"""phnn installed from a wheel: the shipped configs are inside it and found by name."""

from __future__ import annotations

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


@pytest.mark.slow
def test_the_wheel_ships_the_configs_and_the_demo_finds_its_own(tmp_path: Path) -> None:
    """`pip wheel .` (setuptools fetched by pip's build isolation), installed into a folder of its own:
    the configs are in the wheel and `phnn.demo` and `--config sed/demo.yaml` find them there."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "phnn", source / "phnn", ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True)
    if built.returncode != 0 and "Could not find a version that satisfies" in built.stderr:
        pytest.skip("pip cannot fetch setuptools to build the wheel (offline)")
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("phnn-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"phnn/configs/{name}" for name in shipped_config_names()} <= names
    assert "phnn/configs/README.md" in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True)
    check = ("import phnn, phnn.demo; from phnn.config_files import find_config; "
             "print(phnn.__file__); assert phnn.demo.DEMO_CONFIG.is_file(); print(find_config('sed/demo.yaml'))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [str(site / "phnn" / "__init__.py"), str(site / "phnn/configs/sed/demo.yaml")]
