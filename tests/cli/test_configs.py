"""Every image config parses, alone or composed in the documented order, and says what it should."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from phnn.cli import main
from phnn.config_files import SHIPPED_CONFIGS

CONFIGS = SHIPPED_CONFIGS
DATA = sorted((CONFIGS / "data").glob("*.yaml"))
MODELS = sorted((CONFIGS / "model").glob("*.yaml"))
FAMILIES = sorted((CONFIGS / "model" / "family").glob("*.yaml"))
TRAINERS = sorted((CONFIGS / "trainer").glob("*.yaml"))
EXPERIMENTS = sorted((CONFIGS / "experiment").glob("*.yaml"))

# family file -> (family, n for phc, extra input channel): what each family config must resolve to
EXPECTED_FAMILY = {"real": ("real", None, "none"), "quaternion": ("quaternion", None, "zeros"),
                   "phc2": ("phc", 2, "zeros"), "phc3": ("phc", 3, "none"), "phc4": ("phc", 4, "zeros")}


def print_config(capsys: pytest.CaptureFixture[str], *files: Path) -> dict:
    args = ["fit", *[arg for path in files for arg in ("--config", str(path))], "--print_config"]
    assert main(args) == 0, capsys.readouterr().err[-2000:]
    return yaml.safe_load(capsys.readouterr().out)


def test_the_published_grid_is_covered() -> None:
    assert {p.stem for p in DATA} >= {"cifar10", "cifar100", "svhn"}
    assert {p.stem for p in MODELS} == {"resnet18_large", "resnet50_large", "resnet152_large", "vgg16", "vgg19_large"}
    assert {p.stem for p in FAMILIES} == set(EXPECTED_FAMILY)
    assert {p.stem for p in TRAINERS} >= {"cpu", "gpu", "gpu_bf16", "ddp", "debug", "wandb"}


@pytest.mark.parametrize("index", range(max(len(DATA), len(MODELS), len(FAMILIES), len(TRAINERS))))
def test_compositions_parse(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Composition `index` takes the index-th file of each folder (cycling), so every file is parsed once."""
    data, model, family, trainer = (group[index % len(group)] for group in (DATA, MODELS, FAMILIES, TRAINERS))
    config = print_config(capsys, data, model, family, trainer)
    init = config["model"]["init_args"]
    assert init["backbone"] == model.stem
    expected_family, expected_n, extra = EXPECTED_FAMILY[family.stem]
    assert init["family"] == expected_family and config["data"]["init_args"]["extra_channel"] == extra
    if expected_family == "phc":
        assert init["n"] == expected_n
    assert config["trainer"]["max_epochs"] == 200 and init["optimizer"]["init_args"]["lr"] == 0.1


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiments_parse(experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = print_config(capsys, experiment, CONFIGS / "trainer" / "ddp.yaml")
    assert config["trainer"]["strategy"] == "ddp" and config["trainer"]["sync_batchnorm"] is True
    assert {logger["init_args"]["name"] for logger in config["trainer"]["logger"]} == {experiment.stem}


SED = CONFIGS / "sed"
SED_DATA = sorted((SED / "data").glob("*.yaml"))
VARIANTS = ("full_phm", "fully_ph")  # compose after a family file
SED_MODELS = sorted(p for p in (SED / "model").glob("*.yaml") if p.stem not in VARIANTS)
# data file -> in_channels it gives; model file -> (family, n)
SED_CHANNELS = {"4ch": 4, "8ch": 8, "8ch_phase": 8, "16ch": 16}
SED_FAMILY = {"real": ("real", None), "quaternion": ("quaternion", None), "phc2": ("phc", 2), "phc4": ("phc", 4),
              "phc8": ("phc", 8), "phc16": ("phc", 16)}


def test_the_published_sed_grid_is_covered() -> None:
    assert {p.stem for p in SED_DATA} == set(SED_CHANNELS)
    assert {p.stem for p in SED_MODELS} == set(SED_FAMILY)
    assert (SED / "model" / "full_phm.yaml").is_file() and (SED / "demo.yaml").is_file()


@pytest.mark.parametrize("model", SED_MODELS, ids=lambda p: p.stem)
def test_sed_compositions_parse_with_the_published_recipe(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    family, n = SED_FAMILY[model.stem]
    data = next(p for p in SED_DATA if n is None or SED_CHANNELS[p.stem] % n == 0 and SED_CHANNELS[p.stem] >= n)
    config = print_config(capsys, SED / "sed.yaml", data, model, SED / "model" / "full_phm.yaml")
    init, data_init = config["model"]["init_args"], config["data"]["init_args"]
    network = init["model"]  # composed field by field: sed.yaml's widths, the model file's family, full_phm
    assert network["family"] == family and network["full_phm"] is True and network["widths"] == [64, 128, 256, 512]
    if n is not None:
        assert network["n"] == n
    assert init["optimizer"]["class_path"] == "torch.optim.Adam" and init["optimizer"]["init_args"]["lr"] == 1e-5
    assert data_init["batch_size"] == 16 and network["recurrent"] == "dense"
    channels = 4 * len(data_init["mics"]) * (2 if data_init["phase"] else 1)
    assert channels == SED_CHANNELS[data.stem]


def test_the_fully_ph_variant_makes_the_gru_ph_too(capsys: pytest.CaptureFixture[str]) -> None:
    config = print_config(capsys, SED / "sed.yaml", SED / "data" / "4ch.yaml", SED / "model" / "phc4.yaml",
                          SED / "model" / "fully_ph.yaml")
    network = config["model"]["init_args"]["model"]
    assert (network["family"], network["n"], network["full_phm"], network["recurrent"]) == ("phc", 4, True, "ph")


def test_sed_model_that_does_not_fit_the_channels_fails_by_name(tmp_path: Path) -> None:
    from phnn.cli import run_cli

    with pytest.raises(ValueError) as error:
        run_cli(["--config", str(SED / "sed.yaml"), "--config", str(SED / "data" / "4ch.yaml"),
                 "--config", str(SED / "model" / "phc8.yaml"), f"--data.root={tmp_path}"], run=False)
    message = str(error.value)
    assert "n=8" in message and "4" in message


def test_bad_model_for_the_data_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fit", "--config", str(SED / "sed.yaml"), "--config", str(SED / "data" / "4ch.yaml"),
                 "--config", str(SED / "model" / "phc8.yaml"), f"--data.root={tmp_path}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "phnn fit: error: create_model('sednet', family='phc', n=8, in_channels=4)" in err
    assert "data.mics: AB" in err and "Union subtypes" not in err and "Traceback" not in err


@pytest.mark.parametrize(("data", "channels"), [("4ch", 8), ("8ch", 16)])
def test_seld_overlay_localises_any_composition(data: str, channels: int, capsys: pytest.CaptureFixture[str]) -> None:
    """configs/sed/seld.yaml after sed.yaml, a data and a model file: DOA head, DOA targets, intensity channels."""
    config = print_config(capsys, SED / "sed.yaml", SED / "data" / f"{data}.yaml", SED / "model" / "quaternion.yaml",
                          SED / "seld.yaml")
    init, data_init = config["model"]["init_args"], config["data"]["init_args"]
    assert (init["doa"]["sed_loss_weight"], init["doa"]["loss_weight"]) == (1.0, 5.0)
    assert data_init["return_doa"] is True and data_init["intensity"] is True
    assert 4 * len(data_init["mics"]) * (1 + data_init["phase"] + data_init["intensity"]) == channels
    assert init["model"]["family"] == "quaternion" and init["optimizer"]["init_args"]["lr"] == 1e-5
    (stopping,) = config["trainer"]["callbacks"]
    assert stopping["init_args"]["monitor"] == "val/seld_f_score"


def test_seldnet_baseline_is_the_official_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    config = print_config(capsys, SED / "seldnet_baseline.yaml")
    init, data_init = config["model"]["init_args"], config["data"]["init_args"]
    assert (init["model"]["family"], init["doa"]["loss_mask"]) == ("real", False)
    got = (data_init["mics"], data_init["phase"], data_init["intensity"], data_init["batch_size"])
    assert got == ("A", False, False, 3)
    assert init["optimizer"]["init_args"]["lr"] == 1e-5 and data_init["segment_seconds"] == 60


PAPER = sorted((CONFIGS / "experiment" / "paper").glob("*.yaml"))
# the original argument files (eleGAN23/HyperNets image-classification/configs) and main.py's defaults
ORIGINAL_RUNS = {
    "cifar100_phcresnet152large_n4": ("CIFAR100DataModule", "resnet152_large", "phc", 0.1, 200, 1656079),
    "svhn_phcresnet50large_n4": ("SVHNDataModule", "resnet50_large", "phc", 0.01, 50, 1202),
    "cifar10_phcvgg19large_n4": ("CIFAR10DataModule", "vgg19_large", "phc", 0.01, 200, 1656079),
    "svhn_qvgg16": ("SVHNDataModule", "vgg16", "quaternion", 0.01, 50, 1202),
}


@pytest.mark.parametrize("experiment", PAPER, ids=lambda p: p.stem)
def test_paper_runs_are_the_original_argument_files(experiment: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = print_config(capsys, experiment)
    data, backbone, family, lr, epochs, seed = ORIGINAL_RUNS[experiment.stem]
    model = config["model"]["init_args"]
    assert config["data"]["class_path"].endswith(data) and config["seed_everything"] == seed
    assert (model["backbone"], model["family"], config["trainer"]["max_epochs"]) == (backbone, family, epochs)
    assert model["optimizer"]["init_args"] | {"lr": lr} == model["optimizer"]["init_args"]
    init_args = model["optimizer"]["init_args"]
    assert init_args["momentum"] == 0.9 and init_args["weight_decay"] == 5e-4
    assert model["lr_scheduler"]["init_args"]["T_max"] == 200  # fixed in main.py, whatever the epochs
    assert config["data"]["init_args"]["augment"] is False and config["data"]["init_args"]["batch_size"] == 128
    assert config["data"]["init_args"]["extra_channel"] == "zeros"  # quat_data=True: a zero channel first


def test_sed_paper_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    config = print_config(capsys, SED / "paper.yaml", SED / "data" / "16ch.yaml", SED / "model" / "phc8.yaml")
    data, model = config["data"]["init_args"], config["model"]["init_args"]
    assert (data["segment_seconds"], data["batch_size"], data["mics"], data["phase"]) == (60.0, 16, "AB", True)
    assert model["optimizer"]["init_args"]["lr"] == 1e-5 and config["trainer"]["max_epochs"] == 1000
    assert (model["model"]["n"], data["label_grid"], data["magnitude_scale"]) == (8, "official", "div512")
    (checkpoint,) = config["trainer"]["callbacks"]
    assert checkpoint["init_args"]["monitor"] == "val/loss" and checkpoint["init_args"]["mode"] == "min"
