"""Every script in examples/ runs (with few steps) and writes what its docstring promises."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import matplotlib.image
import pytest
import torch

from phnn.io import TEMPORARY_GLOB

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[callable]:
    """Import an example by name (its folder on sys.path, as when run as a script); restores threads."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    threads = torch.get_num_threads()

    def load(name: str) -> ModuleType:
        return importlib.import_module(name)

    yield load
    torch.set_num_threads(threads)


def read_png(path: Path) -> tuple[int, ...]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path).shape


def test_quaternion_product(example, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert example("quaternion_product").main(["--out", str(tmp_path), "--steps", "200"]) == 0
    out = capsys.readouterr().out
    assert "Hamilton rule recovered" in out
    assert "learned Σ A_i" in out and "Hamilton Σ A_i" in out
    height, width, _ = read_png(tmp_path / "quaternion_product.png")
    assert width > height > 100
    result = json.loads((tmp_path / "quaternion_product.json").read_text())
    assert result["recovered"] and result["residual"] < 0.05
    assert torch.equal(torch.tensor(result["aligned_sum"]).sign(),
                       torch.tensor([[1, -1, -1, -1], [1, 1, -1, 1], [1, 1, 1, -1], [1, -1, 1, 1]]).float())
    assert not list(tmp_path.glob(TEMPORARY_GLOB)), "no temporary files left behind"


def test_quaternion_product_untrained_is_not_recovered(example, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    example("quaternion_product").main(["--out", str(tmp_path), "--steps", "0"])
    assert "not recovered yet" in capsys.readouterr().out


def test_phc_filters(example, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert example("phc_filters").main(["--out", str(tmp_path), "--steps", "250"]) == 0
    out = capsys.readouterr().out
    assert "Hamilton rule recovered" in out
    result = json.loads((tmp_path / "phc_filters.json").read_text())
    assert result["filter_error"] < 0.05 and result["recovered"]
    read_png(tmp_path / "phc_filters.png")


def test_toy_regression(example, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert example("toy_regression").main(["--out", str(tmp_path), "--steps", "150"]) == 0
    out = capsys.readouterr().out
    assert "PHM n=3" in out and "nonlinear" in out
    results = json.loads((tmp_path / "toy_regression.json").read_text())["results"]
    assert set(results) == {"quaternion", "dense", "nonlinear"}
    linear = results["quaternion"]
    assert linear["dense"]["params"] == 12 * 12 + 12
    assert linear["PHM n=4"]["params"] == 4**3 + 12 * 12 // 4 + 12
    assert linear["PHM n=3"]["params"] == 3**3 + 12 * 12 // 3 + 12
    assert results["nonlinear"]["dense"]["params"] == 12 * 24 + 24 + 24 * 12 + 12
    assert linear["PHM n=4"]["test_mse"] < 0.1 * linear["PHM n=3"]["test_mse"], \
        "the quaternion structure suits n=4, not n=3"
    read_png(tmp_path / "toy_regression.png")


def test_compress_torch_model(example, tmp_path: Path, image_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = example("compress_torch_model")
    assert module.main(["--data", str(image_folder), "--out", str(tmp_path), "--n", "2", "--epochs", "2",
                        "--image-size", "8"]) == 0
    result = json.loads((tmp_path / "compress_torch_model.json").read_text())
    teacher, student = module.SmallNet(3, 3), module.ImageClassifier(
        backbone="small_net", family="real", num_classes=3, in_channels=3, model_kwargs={"converted_n": 2}).model
    assert result["teacher"]["parameters"] == sum(p.numel() for p in teacher.parameters())
    assert result["student"]["parameters"] == sum(p.numel() for p in student.parameters())
    assert result["student"]["parameters"] < 0.6 * result["teacher"]["parameters"]
    assert set(result["layers"]["kept_dense"]) == {"features.0", "classifier"}  # 3 channels in, 3 classes out
    student.load_state_dict(torch.load(tmp_path / "student.pt", weights_only=True))
    assert "after distillation" in capsys.readouterr().out
