"""What the command line and its config files may hold: configs found by name and read with bounds,
bad numbers named in one line, PHNN_DEBUG taken at its word, and nothing written under HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cli_helpers  # noqa: F401  registers the tiny_cnn backbone
import pytest
from test_image_cli import tiny

from phnn.checkpoint import merge_hyperparameters
from phnn.cli import main
from phnn.cli.parse_errors import one_line
from phnn.config_files import MAX_BYTES

#: nine lines of nested aliases ("billion laughs"): 9^9 values once expanded
BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n" for previous, name in zip("abcdefgh", "bcdefghi"))


def one_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `phnn args`; check exit 2 and one error line (plus the PHNN_DEBUG hint); return the line."""
    capsys.readouterr()
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[1] == "(set PHNN_DEBUG=1 for the traceback)", lines
    assert lines[0].startswith(f"phnn {args[0]}: error: ")
    return lines[0]


@pytest.mark.parametrize("form", ["--config", "-c", "--config="])
def test_a_config_bomb_is_refused_naming_the_file(form: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bomb = tmp_path / "laughs.yaml"
    bomb.write_text(BILLION_LAUGHS)
    args = [f"--config={bomb}"] if form.endswith("=") else [form, str(bomb)]
    error = one_error(["fit", *args], capsys)
    assert f"{bomb}: more than 100,000 values once its aliases" in error


def test_configs_named_inside_configs_and_large_files_are_checked(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "laughs.yaml").write_text(BILLION_LAUGHS)
    outer = tmp_path / "outer.yaml"
    outer.write_text("model: laughs.yaml\n")  # jsonargparse reads a class group given as a file
    assert f"{tmp_path / 'laughs.yaml'}: more than" in one_error(["fit", "--config", str(outer)], capsys)
    assert "more than" in one_error(["fit", "--model", str(tmp_path / "laughs.yaml")], capsys)
    large = tmp_path / "large.yaml"
    large.write_text("# padding\n" * (MAX_BYTES // 10 + 1))
    assert f"{large}: larger than 1,000,000 bytes" in one_error(["fit", "-c", str(large)], capsys)
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 5000 + "]" * 5000)
    assert f"{deep}: nested deeper than 64 levels" in one_error(["fit", "-c", str(deep)], capsys)


def test_a_config_is_found_by_its_shipped_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "-c", "trainer/debug.yaml", "--print_config"]) == 0
    assert "fast_dev_run: true" in capsys.readouterr().out
    error = one_error(["fit", "-c", "trainer/debgu.yaml"], capsys)
    assert f"--config trainer/debgu.yaml: no such file: looked for {tmp_path / 'trainer/debgu.yaml'}" in error
    assert "did you mean trainer/debug.yaml" in error


@pytest.mark.parametrize(("value", "expected"), [
    ("nan", "--model.optimizer.init_args.lr nan: expected a finite number >= 0"),  # a string to YAML: parser refuses
    (".nan", "optimizer.init_args.lr = nan: expected a finite number >= 0"),      # a float to YAML: the task refuses
    ("-inf", "--model.optimizer.init_args.lr -inf: expected a finite number >= 0"),
])
def test_a_learning_rate_that_is_not_a_number_is_one_line(value: str, expected: str, image_folder: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    error = one_error(["fit", *tiny(image_folder, f"--model.optimizer.init_args.lr={value}", "--trainer.logger=false",
                                    "--trainer.max_epochs=1")], capsys)
    assert expected in error


@pytest.mark.parametrize(("value", "debugging"), [("0", False), ("", False), ("no", False), ("1", True),
                                                  ("true", True), ("YES", True)])
def test_phnn_debug_turns_tracebacks_on_only_when_asked(value: str, debugging: bool, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PHNN_DEBUG", value)
    if debugging:
        with pytest.raises(ValueError, match="no such file"):
            main(["fit", "-c", "no/such.yaml"])
    else:
        assert "no such file" in one_error(["fit", "-c", "no/such.yaml"], capsys)


def test_help_writes_nothing_under_home(tmp_path: Path) -> None:
    """No dependency's cache or telemetry database is opened by `phnn --help` (matplotlib's font cache,
    which torchmetrics' import builds once per user, is pointed elsewhere: it is not phnn's to avoid)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "MPLCONFIGDIR": str(tmp_path / "matplotlib")}
    env.pop("XDG_CACHE_HOME", None)
    done = subprocess.run([sys.executable, "-m", "phnn", "--help"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "subcommands" in done.stdout, done.stderr
    assert [str(p.relative_to(home)) for p in home.rglob("*")] == []


def test_given_values_that_equal_the_checkpoints_as_data_raise_no_note() -> None:
    """A config's [0.9, 0.999] is the checkpoint's (0.9, 0.999): no "as given" note."""
    saved = {"optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-3, "betas": (0.9, 0.999)}}}
    given = {"optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-3, "betas": [0.9, 0.999]}}}
    assert merge_hyperparameters(saved, given)[1] == []
    given["optimizer"]["init_args"]["betas"] = [0.8, 0.999]
    assert merge_hyperparameters(saved, given)[1] == [
        "model.optimizer: {'class_path': 'torch.optim.Adam', 'init_args': {'lr': 0.001, 'betas': [0.8, 0.999]}} as "
        "given (the checkpoint has {'class_path': 'torch.optim.Adam', 'init_args': "
        "{'lr': 0.001, 'betas': (0.9, 0.999)}})"]


def test_parse_errors_in_config_files_are_one_line_too() -> None:
    """jsonargparse's report of a config file's `lr: nan` (no command-line option to name)."""
    report = ('Parser key "model":\n  Does not validate against any of the Union subtypes\n  Errors:\n'
              "    - Problem with given class_path 'phnn.tasks.ImageClassifier':\n"
              '        Parser key "optimizer":\n          Type typing.Callable expects a function: Parser key "lr":\n'
              "            - Expected a <class 'float'>\n            - Expected a dot import path string: nan\n")
    assert one_line(report) == ("model.optimizer.lr: not accepted: expected a finite number >= 0 "
                                "(e.g. 0.1 for SGD, 0.001 for Adam)")
    assert one_line("Unrecognized arguments: --foo 1\n") == "Unrecognized arguments: --foo 1"
