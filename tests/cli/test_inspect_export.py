"""`phnn inspect` and `phnn export` on a checkpoint written by `phnn fit` (tiny PHC n = 2 network)."""

from __future__ import annotations

import json
from pathlib import Path

import cli_helpers  # noqa: F401  registers the tiny_cnn backbone
import pytest
import torch
from PIL import Image
from test_image_cli import tiny

from phnn.cli import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, image_folder_module: Path) -> Path:
    root = tmp_path_factory.mktemp("run")
    images = image_folder_module
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # runs/ lands in the temporary folder
        assert main(["fit", *tiny(images, "--trainer.max_epochs=1")]) == 0
    (path,) = root.glob("runs/*/version_0/checkpoints/last.ckpt")
    return path


def test_inspect_table_matches_hand_counts(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["inspect", str(checkpoint), "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {row["name"]: row for row in report["layers"]}
    # PHConv2d(4 → 8, 3×3, n=2): A 2³ + F 4·8·9/2 + bias 8; dense 4·8·9 + 8
    assert (rows["0"]["type"], rows["0"]["n"], rows["0"]["algebra"]) == ("PHConv2d", 2, "learned")
    assert (rows["0"]["parameters"], rows["0"]["dense_parameters"]) == (8 + 144 + 8, 288 + 8)
    assert rows["1"]["parameters"] == rows["1"]["dense_parameters"] == 16  # BatchNorm2d(8)
    assert rows["5"]["parameters"] == rows["5"]["dense_parameters"] == 8 * 3 + 3  # Linear(8, 3)
    assert report["total"]["parameters"] == 160 + 16 + 27
    assert report["total"]["dense_parameters"] == 296 + 16 + 27
    out = capsys.readouterr().out
    assert "PHConv2d" in out and "real-family equivalent: 339 parameters" in out
    (plot,) = report["plots"]
    assert Path(plot).name == "algebra_0.png"
    with Image.open(plot) as image:
        image.verify()
        assert image.format == "PNG"


def test_inspect_builds_a_fresh_model_from_configs(tmp_path: Path, image_folder: Path) -> None:
    config = tmp_path / "model.yaml"
    config.write_text("model:\n  class_path: ImageClassifier\n  init_args:\n    backbone: tiny_cnn\n"
                      "    family: quaternion\ndata:\n  class_path: ImageFolderDataModule\n  init_args:\n"
                      f"    root: {image_folder}\n    extra_channel: zeros\n")
    assert main(["inspect", "--config", str(config), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["layers"][0]["algebra"] == "quaternion"
    assert report["layers"][0]["parameters"] == 4 * 8 * 9 // 4 + 8  # fixed algebra: no A parameters
    assert report["plots"] == []


def test_inspect_rejects_unknown_layer_and_foreign_checkpoint(checkpoint: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    assert main(["inspect", str(checkpoint), "--out", str(tmp_path), "--layer", "nope"]) == 2
    assert "no PH layer named ['nope']" in capsys.readouterr().err
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    assert main(["inspect", str(foreign)]) == 2
    assert "not a phnn checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("fmt, suffix", [("torchscript", ".pt"), ("torch-export", ".pt2"), ("onnx", ".onnx")])
def test_export_round_trips(checkpoint: Path, tmp_path: Path, fmt: str, suffix: str,
                            capsys: pytest.CaptureFixture) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    out = tmp_path / f"model{suffix}"
    assert main(["export", str(checkpoint), "--format", fmt, "--out", str(out), "--tolerance", "1e-5"]) == 0
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert meta["max_abs_diff_vs_phnn"] <= 1e-5
    assert meta["input_shape"] == ["batch", 4, 8, 8]
    assert meta["input"]["channels"] == ["zeros", "R", "G", "B"]
    assert meta["hyper_parameters"]["family"] == "phc"
    assert "max |exported - phnn|" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind
