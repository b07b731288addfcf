"""The `phnn` CLI on a tiny generated ImageFolder: fit → validate → test → predict in-process, resume,
bf16 on CPU, DDP with two CPU processes, help and print_config, extra commands, failures → exit 1."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cli_helpers  # noqa: F401  registers the tiny_cnn backbone
import pytest
import torch
import yaml
from PIL import Image

from phnn import cli
from phnn.cli import main, run_cli
from phnn.config_files import SHIPPED_CONFIGS

HERE = Path(__file__).parent
REPO = HERE.parents[1]
RUN = Path("runs") / "imagefolder_tiny_cnn_phc2"  # <data>_<backbone>_<family><n>


def tiny(root: Path, *extra: str) -> list[str]:
    """Options for a fast run: a one-conv PHC (n = 2) network on 8×8 images with a zero 4th channel."""
    return ["--model", "ImageClassifier", "--model.backbone", "tiny_cnn", "--model.family", "phc", "--model.n", "2",
            "--data", "ImageFolderDataModule", f"--data.root={root}", "--data.image_size=8", "--data.batch_size=8",
            "--data.num_workers=0", "--data.extra_channel=zeros", "--data.augment=false",
            "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--seed_everything=0", *extra]


def metrics_of(run: Path) -> dict[str, list[float]]:
    """metrics.csv of a run as column -> non-empty values."""
    with open(run / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    return {key: [float(row[key]) for row in rows if row[key]] for key in rows[0]}


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh folder, so that runs/ lands there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_fit_validate_test_predict(in_tmp: Path, image_folder_splits: Path) -> None:
    timing = ["--trainer.callbacks+=Timing", "--trainer.callbacks.warmup_steps=0"]  # replaces the default one
    assert main(["fit", *tiny(image_folder_splits, "--trainer.max_epochs=2", *timing)]) == 0
    run = in_tmp / RUN / "version_0"
    best, last = run / "checkpoints" / "best.ckpt", run / "checkpoints" / "last.ckpt"
    assert best.is_file() and last.is_file()
    hparams = torch.load(best, map_location="cpu", weights_only=False)["hyper_parameters"]
    assert hparams["num_classes"] == 3  # linked from the DataModule
    assert hparams["in_channels"] == 4  # RGB + the zero channel
    metrics = metrics_of(run)
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "lr-SGD", "params/trainable",
                "params/dense_equivalent", "timing/train_step_ms", "timing/data_fraction", "timing/val_samples_per_s"):
        assert metrics.get(key), key
    assert len(metrics["val/acc"]) == 2
    assert metrics["params/trainable"][0] < metrics["params/dense_equivalent"][0]
    state = torch.load(best, map_location="cpu", weights_only=False)
    (checkpoint_key,) = [key for key in state["callbacks"] if key.startswith("ModelCheckpoint")]
    assert "'monitor': 'val/acc'" in checkpoint_key and "'mode': 'max'" in checkpoint_key

    # later commands on the run write inside it and make no run of their own
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    assert main(["validate", "--config", str(run / "config.yaml"), "--ckpt_path", str(best)]) == 0
    assert main(["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(best)]) == 0
    validated = json.loads((run / "validate" / "metrics.json").read_text())
    tested = json.loads((run / "test" / "metrics.json").read_text())
    assert validated["metrics"]["val/acc"] == pytest.approx(max(metrics["val/acc"]))  # the best checkpoint's
    assert 0.0 <= tested["metrics"]["test/acc"] <= 1.0 and tested["checkpoint"] == str(best)
    assert tested["metrics"]["test/acc_top5"] == 1.0  # top-k with k = num_classes = 3
    assert [p.name for p in (in_tmp / RUN).iterdir()] == ["version_0"]
    after = sorted(p.relative_to(run) for p in run.rglob("*"))
    assert sorted(set(after) - set(before)) == [Path("test"), Path("test/metrics.json"), Path("validate"),
                                                Path("validate/metrics.json")]

    predicted = run_cli(["predict", "--config", str(run / "config.yaml"), "--ckpt_path", str(best),
                         "--writer", "cli_helpers.CollectPredictions"])
    (writer,) = [c for c in predicted.trainer.callbacks if isinstance(c, cli_helpers.CollectPredictions)]
    probs = torch.cat([p["probs"] for p in writer.predictions])
    labels = torch.cat([p["labels"] for p in writer.predictions])
    assert probs.shape == (12, 3)  # the 3 × 4 test images, in order
    torch.testing.assert_close(probs.sum(1), torch.ones(12))
    assert torch.equal(labels, probs.argmax(1))

    code = main(["predict", "--config", str(run / "config.yaml"), "--ckpt_path", str(best),
                 "--writer", "cli_helpers.CollectPredictions", "--writer.fail=true"])
    assert code == 1  # a writer that reports failures makes the command fail

    # the task's own writer: a CSV of the test images in <run>/predictions
    assert main(["predict", "--config", str(run / "config.yaml"), "--ckpt_path", str(best)]) == 0
    with open(run / "predictions" / "predictions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["path"] for row in rows] == sorted(str(p) for p in (image_folder_splits / "test").rglob("*.png"))
    assert [float(row["probability"]) for row in rows] == pytest.approx(probs.max(1).values.tolist(), abs=1e-4)
    assert [row["predicted_class"] for row in rows] == [("cat", "dog", "frog")[i] for i in labels.tolist()]
    assert [p.name for p in (in_tmp / RUN).iterdir()] == ["version_0"]


def test_predict_images_from_a_glob_into_out(in_tmp: Path, image_folder_splits: Path, image_folder: Path) -> None:
    assert main(["fit", *tiny(image_folder_splits, "--trainer.max_epochs=1")]) == 0
    run = in_tmp / RUN / "version_0"
    out = in_tmp / "elsewhere"
    assert main(["predict", "--config", str(run / "config.yaml"), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
                 f"--data.predict_path={image_folder}/dog/[0-4].png", f"--out={out}",
                 "--writer", "ImagePredictionWriter", "--writer.top_k=2", "--writer.contact_sheet=true"]) == 0
    with open(out / "predictions" / "predictions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [Path(row["path"]).name for row in rows] == [f"{i}.png" for i in range(5)]  # any size: resized to 8
    for row in rows:
        top = [pair.split(":") for pair in row["top5"].split()]
        assert len(top) == 2 and top[0] == [row["predicted_class"], row["probability"]]
        assert float(top[0][1]) >= float(top[1][1]) and {name for name, _ in top} <= {"cat", "dog", "frog"}
    with Image.open(out / "predictions" / "contact_sheet.png") as sheet:
        assert sheet.format == "PNG"
    assert not (run / "predictions").exists()


def test_predict_without_a_writer_says_so(in_tmp: Path, image_folder_splits: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from phnn.tasks import ImageClassifier

    assert main(["fit", *tiny(image_folder_splits, "--trainer.max_epochs=1")]) == 0
    run = in_tmp / RUN / "version_0"
    monkeypatch.setattr(ImageClassifier, "prediction_writer", None)
    capsys.readouterr()
    last = run / "checkpoints" / "last.ckpt"
    code = main(["predict", "--config", str(run / "config.yaml"), "--ckpt_path", str(last)])
    assert code == 2
    assert "ImageClassifier has no prediction writer" in capsys.readouterr().err
    assert not (run / "predictions").exists()


def test_a_fit_that_fails_at_once_uses_no_version(in_tmp: Path, image_folder_splits: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", *tiny(image_folder_splits, "--trainer.max_epochs=1")]) == 0
    printed = capsys.readouterr().out
    run = RUN / "version_0"
    assert f"Run folder: {run}" in printed
    assert f"phnn test --config {run / 'config.yaml'} --ckpt_path {run / 'checkpoints' / 'best.ckpt'}" in printed
    shutil.rmtree(image_folder_splits / "val")  # validation is now carved from train/ ...
    code = main(["fit", "--config", str(run / "config.yaml"), "--data.val_fraction=0.99"])  # ... and fails in setup
    assert code == 2
    assert sorted(p.name for p in (in_tmp / RUN).iterdir()) == ["version_0"]


def test_debug_trainer_config_writes_nothing(in_tmp: Path, image_folder_splits: Path) -> None:
    assert main(["fit", *tiny(image_folder_splits), "--config", str(SHIPPED_CONFIGS / "trainer" / "debug.yaml")]) == 0
    assert [p.name for p in in_tmp.iterdir()] == ["images"]  # only the fixture's images


def test_resume_from_last_checkpoint(in_tmp: Path, image_folder_splits: Path) -> None:
    assert main(["fit", *tiny(image_folder_splits, "--trainer.max_epochs=1")]) == 0
    last = in_tmp / RUN / "version_0" / "checkpoints" / "last.ckpt"
    record = in_tmp / "resume.pt"
    assert main(["fit", *tiny(image_folder_splits, "--trainer.max_epochs=2"), "--ckpt_path", str(last),
                 "--trainer.callbacks+=cli_helpers.RecordResume", f"--trainer.callbacks.path={record}"]) == 0
    resumed = torch.load(record, weights_only=False)
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert saved["epoch"] == 0 and resumed["epoch"] == 1  # continues with the next epoch
    saved_state = saved["optimizer_states"][0]["state"]
    assert saved_state and resumed["optimizer"]["state"].keys() == saved_state.keys()
    for index, state in saved_state.items():
        torch.testing.assert_close(resumed["optimizer"]["state"][index]["momentum_buffer"], state["momentum_buffer"])


def test_bf16_mixed_on_cpu(in_tmp: Path, image_folder_splits: Path) -> None:
    ran = run_cli(["fit", *tiny(image_folder_splits, "--trainer.precision=bf16-mixed", "--trainer.max_epochs=1")])
    assert ran.trainer.precision == "bf16-mixed"
    with ran.trainer.precision_plugin.forward_context():
        assert ran.model(torch.rand(2, 4, 8, 8)).dtype == torch.bfloat16
    assert torch.isfinite(torch.tensor(metrics_of(Path(ran.trainer.log_dir))["val/loss"])).all()


def test_ddp_two_cpu_processes_see_different_data(tmp_path: Path, image_folder_splits: Path) -> None:
    """`--trainer.strategy ddp` relaunches the command per rank, so it runs as a real `python -m phnn`."""
    record = tmp_path / "batches"
    command = [sys.executable, "-m", "phnn", "fit", *tiny(image_folder_splits, "--trainer.max_epochs=1"),
               "--trainer.strategy=ddp", "--trainer.devices=2",  # sync_batchnorm needs GPUs
               "--trainer.callbacks+=cli_helpers.RecordBatches", f"--trainer.callbacks.folder={record}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)])}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and ranks[0]["pid"] != ranks[1]["pid"]
    first, second = (set(r["hashes"]) for r in ranks)
    assert len(first) == len(second) == 12  # 3 classes × 8 training images, split between the ranks
    assert not first & second
    assert (tmp_path / RUN / "version_0" / "checkpoints" / "last.ckpt").is_file()
    assert [p.name for p in (tmp_path / RUN).iterdir()] == ["version_0"]


def test_help_lists_subcommands_and_extra_commands(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(cli.EXTRA_COMMANDS, "echo", cli_helpers.echo_command)
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: phnn")
    listed = {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines()
              if line.startswith("    ") and not line.startswith("     ") and len(line.split()) > 1}
    names = ("fit", "validate", "test", "predict", *cli.EXTRA_COMMANDS)  # "echo" and any command added later
    assert "echo" in names and set(names) <= set(listed)  # each with its one-line summary on the same line
    assert listed["echo"] == "An extra command for the dispatch test: its exit code is the number of its arguments."
    assert all(listed[name].endswith(".") for name in names)
    assert main(["echo", "a", "b"]) == 2  # dispatched before LightningCLI, with the remaining argv


def test_print_config_shows_defaults(image_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--model", "ImageClassifier", "--data", "ImageFolderDataModule", f"--data.root={image_folder}",
                 "--print_config"]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    model = config["model"]["init_args"]
    assert config["model"]["class_path"] == "phnn.tasks.ImageClassifier"
    assert model["optimizer"]["class_path"].endswith("SGD")
    published = {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0005}
    assert {key: model["optimizer"]["init_args"][key] for key in published} == published
    assert model["lr_scheduler"]["class_path"].endswith("CosineAnnealingLR")
    assert [logger["class_path"].rsplit(".", 1)[1] for logger in config["trainer"]["logger"]] == \
        ["TensorBoardLogger", "CSVLogger"]


def test_bad_arguments_return_an_error_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--model", "NoSuchTask"]) == 2
    assert "NoSuchTask" in capsys.readouterr().err


def test_a_normal_fit_prints_at_most_one_warning_line(tmp_path: Path, image_folder: Path) -> None:
    """As a user runs it: its own process, default workers (sized to the CPUs) and seed."""
    command = [sys.executable, "-m", "phnn", "fit", "--model", "ImageClassifier", "--model.backbone", "resnet18",
               "--model.family", "real", "--data", "ImageFolderDataModule", f"--data.root={image_folder}",
               "--data.image_size=8", "--trainer.max_epochs=1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)]), "PYTHONWARNINGS": ""}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    warning_lines = [line for line in done.stderr.splitlines() if re.match(r"\S+\.py:\d+: ", line)]
    assert len(warning_lines) <= 1, "\n".join(warning_lines)
    assert "Run folder: runs/imagefolder_resnet18_real/version_0" in done.stdout
