"""`phnn compress` on a tiny real teacher: the student's run, its compress.json (a recount of the
parameters), its checkpoint in test / predict / inspect / export, and bad input as one line and exit 2."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cli_helpers  # noqa: F401  registers the tiny_cnn backbone
import pytest
import torch
from dataset_files import write_image_folder
from test_image_cli import tiny
from test_sed_cli import QUIET, TINY_MODEL

from phnn.checkpoint import load_task
from phnn.cli import main

TEACHER = "runs/imagefolder_tiny_cnn_real/version_0"
STUDENT = "runs/imagefolder_tiny_cnn_real_compress_n2/version_0"


def real_tiny(images: Path, *extra: str) -> list[str]:
    """`tiny` with the real family (the teacher) and Adam."""
    return [*tiny(images), "--model.family=real", "--model.optimizer=Adam", *extra]


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory, image_folder_module: Path) -> tuple[Path, str]:
    """(the folder holding runs/, what compress printed) after a 1-epoch teacher and a 1-epoch compress."""
    root = tmp_path_factory.mktemp("compress")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert main(["fit", *real_tiny(image_folder_module, "--trainer.max_epochs=1")]) == 0
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["compress", "--ckpt_path", f"{TEACHER}/checkpoints/best.ckpt", "--n", "2",
                         "-c", f"{TEACHER}/config.yaml", "--trainer.max_epochs=1"]) == 0
    return root, printed.getvalue()


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_compress_report_is_a_recount(compressed: tuple[Path, str]) -> None:
    root, printed = compressed
    report = json.loads((root / STUDENT / "compress.json").read_text())
    teacher = load_task(root / TEACHER / "checkpoints/best.ckpt")[0]
    student = load_task(Path(report["student"]["checkpoint"]) if Path(report["student"]["checkpoint"]).is_absolute()
                        else root / report["student"]["checkpoint"])[0]
    assert report["teacher"]["parameters"] == parameters(teacher.model)
    assert report["student"]["parameters"] == parameters(student.model) < parameters(teacher.model)
    assert f"parameters {parameters(teacher.model):,} -> {parameters(student.model):,}" in printed
    converted = {row["name"]: row for row in report["layers"]["converted"]}
    assert set(converted) == {"0"} and 0 <= converted["0"]["relative_error"] < 1
    assert converted["0"]["relative_error"] ** 2 + converted["0"]["energy_kept"] == pytest.approx(1, abs=1e-4)
    assert "not divisible" in report["layers"]["kept_dense"]["5"]
    assert {"teacher", "student_start", "student_end"} <= set(report["metrics"])
    assert "test/acc" in report["metrics"]["student_end"] and report["seconds"]["total"] > 0
    assert student.hparams["model_kwargs"] == {"converted_n": 2}


def test_student_checkpoint_works_like_any_other(compressed: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = compressed
    monkeypatch.chdir(root)
    config, best = f"{STUDENT}/config.yaml", f"{STUDENT}/checkpoints/best.ckpt"
    assert main(["test", "--config", config, "--ckpt_path", best]) == 0
    assert main(["predict", "--config", config, "--ckpt_path", best]) == 0
    assert main(["inspect", best, "--no-plots"]) == 0
    assert main(["export", best, "--format", "torchscript"]) == 0
    assert (root / STUDENT / "test/metrics.json").is_file() and any((root / STUDENT / "predictions").iterdir())


@pytest.mark.parametrize("case", ["missing", "empty", "n_divides_nothing", "already_ph", "other_classes"])
def test_bad_input_is_one_line_and_exit_2(case: str, compressed: tuple[Path, str], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    root, _ = compressed
    monkeypatch.chdir(root)
    (tmp_path / "empty.ckpt").write_bytes(b"")
    two_classes = write_image_folder(tmp_path / "two", classes=("a", "b"), size=8)
    teacher = [f"{TEACHER}/checkpoints/best.ckpt", "--n", "2", "-c", f"{TEACHER}/config.yaml"]
    argv, expected = {
        "missing": (["nowhere.ckpt", "--n", "2"], "no such checkpoint file"),
        "empty": ([str(tmp_path / "empty.ckpt"), "--n", "2"], "the checkpoint is empty"),
        "n_divides_nothing": ([*teacher[:1], "--n", "5", *teacher[3:]], "n=5 divides no layer of the teacher"),
        "already_ph": ([f"{STUDENT}/checkpoints/best.ckpt", *teacher[1:]], "already PH at n=2"),
        "other_classes": ([*teacher, f"--data.root={two_classes}"], "the teacher has num_classes=3, the data"),
    }[case]
    runs_before = sorted(Path("runs").iterdir())
    assert main(["compress", "--ckpt_path", *argv]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[0].startswith("phnn compress: error: ") and expected in error[0], error
    assert sorted(Path("runs").iterdir()) == runs_before, "a refused compress leaves no run folder"


def test_teacher_of_another_task_than_the_data(compressed: tuple[Path, str], l3das21_root: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    root, _ = compressed
    monkeypatch.chdir(root)
    assert main(["compress", "--ckpt_path", f"{TEACHER}/checkpoints/best.ckpt", "--n", "2", "--data",
                 "L3DAS21DataModule", f"--data.root={l3das21_root}", f"--data.cache_dir={tmp_path}"]) == 2
    assert "image classification task trained on 'image' inputs" in capsys.readouterr().err


def test_a_seld_teacher_compresses_into_its_own_run(l3das21_root: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A real SELD teacher (the demo's network, tiny): the student's run is named `..._compress_n2`, its report
    holds the location-sensitive scores, and its checkpoint is an ordinary SoundEventDetector's."""
    monkeypatch.chdir(tmp_path)
    data = ["-c", "sed/demo.yaml", "-c", "sed/model/real.yaml", f"--data.root={l3das21_root}",
            f"--data.cache_dir={tmp_path / 'cache'}", "--data.segment_seconds=2.0", "--data.batch_size=4",
            "--writer=null", *QUIET]
    assert main(["fit", *data, *TINY_MODEL, "--trainer.max_epochs=1"]) == 0
    teacher = Path("runs/l3das21_sednet_real/version_0")
    assert main(["compress", "--ckpt_path", str(teacher / "checkpoints/best.ckpt"), "--n", "2",
                 "-c", str(teacher / "config.yaml"), "--trainer.max_epochs=1"]) == 0
    student = Path("runs/l3das21_sednet_real_compress_n2/version_0")
    report = json.loads((student / "compress.json").read_text())
    assert report["metrics"]["name"] == "test/seld_f_score"
    assert {"test/seld_f_score", "test/doa_error_m"} <= set(report["metrics"]["student_end"])
    assert report["student"]["parameters"] < report["teacher"]["parameters"]
    assert load_task(student / "checkpoints/best.ckpt")[0].hparams["model"]["converted_n"] == 2
    assert main(["test", "--config", str(student / "config.yaml"), "--ckpt_path",
                 str(student / "checkpoints/best.ckpt")]) == 0
