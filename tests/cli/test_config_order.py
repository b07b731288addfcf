"""`--config` files compose in any order; where no file names a class that a file configures, the
error says which file needs which."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from phnn.cli import main
from phnn.config_files import SHIPPED_CONFIGS
from phnn.config_order import order_configs

CONFIGS = SHIPPED_CONFIGS
DATA, MODEL = CONFIGS / "data" / "cifar10.yaml", CONFIGS / "model" / "resnet18_large.yaml"
PHC3, PHC4 = CONFIGS / "model" / "family" / "phc3.yaml", CONFIGS / "model" / "family" / "phc4.yaml"


def resolved(capsys: pytest.CaptureFixture[str], *files: Path) -> dict:
    assert main(["fit", *[a for f in files for a in ("--config", str(f))], "--print_config"]) == 0, \
        capsys.readouterr().err[-2000:]
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("order", [(PHC3, MODEL, DATA), (MODEL, PHC3, DATA), (DATA, MODEL, PHC3), (PHC3, DATA, MODEL)],
                         ids=["family-model-data", "model-family-data", "data-model-family", "family-data-model"])
def test_any_order_resolves_the_same(order: tuple[Path, ...], capsys: pytest.CaptureFixture[str]) -> None:
    config = resolved(capsys, *order)
    assert (config["model"]["init_args"]["family"], config["model"]["init_args"]["n"]) == ("phc", 3)
    assert config["model"]["init_args"]["backbone"] == "resnet18_large"
    assert config["data"]["class_path"].endswith("CIFAR10DataModule")
    assert config["data"]["init_args"]["extra_channel"] == "none"


def test_files_that_already_composed_keep_their_precedence(capsys: pytest.CaptureFixture[str]) -> None:
    assert resolved(capsys, DATA, MODEL, PHC4, PHC3)["data"]["init_args"]["extra_channel"] == "none"
    assert resolved(capsys, DATA, MODEL, PHC3, PHC4)["data"]["init_args"]["extra_channel"] == "zeros"


def test_a_file_whose_class_nobody_names_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--config", str(PHC3), "--config", str(MODEL)]) == 2
    err = capsys.readouterr().err
    assert f"{PHC3} sets data options (data.init_args) but no config names the data class (data.class_path)" in err
    assert "--data CLASS" in err and "Traceback" not in err


def test_only_config_values_move() -> None:
    argv = ["fit", "--config", str(PHC3), "--trainer.max_epochs=1", f"--config={DATA}", "-c", str(MODEL)]
    # the family file also sets model options, so it waits for the model file too
    assert order_configs(argv) == ["fit", "--config", str(DATA), "--trainer.max_epochs=1", f"--config={MODEL}",
                                   "-c", str(PHC3)]
