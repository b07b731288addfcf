"""Checkpoints and run configs written by the flat-argument SoundEventDetector (tests/fixtures/legacy_*) keep
working: they load with the network and outputs they had, and `phnn test` on them gives the same metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from phnn.checkpoint import load_task
from phnn.cli import main
from phnn.tasks.legacy import upgrade_config, upgrade_sed_args

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize("name", ["sed", "seld"])
def test_old_checkpoint_loads_with_identical_outputs(name: str) -> None:
    task, _ = load_task(FIXTURES / f"legacy_{name}.ckpt")
    features = torch.randn(task.in_channels, 256, 8 * 30, generator=torch.Generator().manual_seed(0))
    expected = torch.load(FIXTURES / f"legacy_{name}_outputs.pt", weights_only=True)["outputs"]
    assert torch.equal(task.clip_scores(features), expected)
    assert task.hparams["model"]["widths"] == [4, 4, 8, 8] and "localize" not in task.hparams
    assert (task.doa is None) == (name == "sed")


def test_old_flat_arguments_map_to_a_network_and_a_doa_head() -> None:
    flat = yaml.safe_load((FIXTURES / "legacy_seld_config.yaml").read_text())["model"]["init_args"]
    upgraded = upgrade_sed_args(flat)
    assert upgraded["model"] == {"family": "phc", "n": 4, "full_phm": False, "widths": [4, 4, 8, 8], "gru_hidden": 8,
                                 "gru_layers": 1, "fc_width": 16, "fc_layers": 1, "dropout": 0.0, "output_prior": 0.03,
                                 "doa_shared_blocks": 0, "doa_widths": [4, 4, 8, 8], "doa_pooling": "max"}
    assert upgraded["doa"] == {"sed_loss_weight": 1.0, "loss_weight": 1.0, "loss_mask": True, "loss": "distance",
                               "smoothing": "event_median", "spatial_threshold": 2.0}
    assert upgraded["threshold"] == 0.5 and upgraded["optimizer"] == flat["optimizer"]
    assert upgrade_sed_args({"localize": False, "widths": [8]}) == {"model": {"widths": [8]}, "doa": None}
    assert upgrade_sed_args({"doa_loss_weight": 2.0}) == {"doa": {"loss_weight": 2.0}}  # a layered config file
    assert upgrade_sed_args({"threshold": 0.3}) == {"threshold": 0.3}
    with pytest.raises(ValueError, match="slots=2"):
        upgrade_sed_args({"slots": 2})


def test_yaml_upgrade_touches_only_the_sed_task() -> None:
    image = {"model": {"class_path": "phnn.tasks.ImageClassifier", "init_args": {"family": "real", "n": 1}}}
    assert upgrade_config(yaml.safe_load(yaml.safe_dump(image))) == image
    unnamed = {"model": {"init_args": {"family": "real", "localize": True}}}
    assert upgrade_config(unnamed)["model"]["init_args"] == {"model": {"family": "real"}, "doa": {}}
    nested = {"fit": {"model": {"class_path": "phnn.tasks.SoundEventDetector", "init_args": {"gru_hidden": 8}}}}
    assert upgrade_config(nested)["fit"]["model"]["init_args"] == {"model": {"gru_hidden": 8}}


def test_old_run_config_parses_into_the_new_shape(capsys: pytest.CaptureFixture[str]) -> None:
    """An old run's config.yaml (flat SEDnet and DOA keys) goes through the CLI's parser unchanged."""
    assert main(["fit", "--config", str(FIXTURES / "legacy_seld_config.yaml"), "--print_config"]) == 0
    init = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
    assert init["model"]["doa_widths"] == [4, 4, 8, 8] and init["doa"]["smoothing"] == "event_median"
    assert "localize" not in init and "widths" not in init


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sed", "seld"])
def test_old_run_config_and_checkpoint_test_as_before(name: str, l3das21_root: Path, tmp_path: Path) -> None:
    """`phnn test --config RUN/config.yaml --ckpt_path ...` of a run of the flat form: the metrics it had."""
    code = main(["test", "--config", str(FIXTURES / f"legacy_{name}_config.yaml"),
                 "--ckpt_path", str(FIXTURES / f"legacy_{name}.ckpt"), f"--data.root={l3das21_root}",
                 f"--data.cache_dir={tmp_path / 'cache'}", f"--out={tmp_path}", "--trainer.enable_progress_bar=false"])
    assert code == 0
    metrics = json.loads((tmp_path / "test" / "metrics.json").read_text())["metrics"]
    expected = json.loads((FIXTURES / f"legacy_{name}_test_metrics.json").read_text())
    assert metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert math.isnan(metrics[key]) if math.isnan(value) else metrics[key] == pytest.approx(value, rel=1e-6,
                                                                                                abs=1e-7), key
    code = main(["predict", "--config", str(FIXTURES / f"legacy_{name}_config.yaml"),
                 "--ckpt_path", str(FIXTURES / f"legacy_{name}.ckpt"), f"--data.root={l3das21_root}",
                 f"--data.predict_path={l3das21_root / 'L3DAS_Task2_dev' / 'data'}", f"--out={tmp_path}",
                 "--trainer.enable_progress_bar=false"])
    assert code == 0 and any((tmp_path / "predictions").glob("*.csv"))
