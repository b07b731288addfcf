"""L3DAS21DataModule on a tiny synthetic set: shapes, by-clip split, train-only stats, checkpoint state, predict."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import soundfile
import torch

from phnn.data import L3DAS21DataModule
from phnn.data.l3das21.layout import CLASSES


def make_dm(root: Path, tmp_path: Path, **kwargs) -> L3DAS21DataModule:
    defaults = dict(mics="AB", val_fraction=0.25, segment_seconds=3, batch_size=3, cache_dir=tmp_path / "cache",
                    progress=False)
    return L3DAS21DataModule(root, **{**defaults, **kwargs})


@pytest.mark.parametrize(("mics", "phase", "channels"),
                         [("A", False, 4), ("AB", False, 8), ("A", True, 8), ("AB", True, 16)])
def test_channels_and_classes_known_at_init(mics: str, phase: bool, channels: int) -> None:
    dm = L3DAS21DataModule("nowhere", mics=mics, phase=phase)
    assert dm.in_channels == channels and dm.num_classes == len(CLASSES) == 14


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"mics": "B"}, "mics='B'"), ({"val_fraction": 1.0}, "val_fraction=1.0"),
     ({"segment_overlap": 1.0}, "segment_overlap=1.0"), ({"segment_seconds": 0.01}, "segment_seconds=0.01"),
     ({"segment_seconds": 0}, "segment_seconds=0"), ({"segment_seconds": -2.0}, "segment_seconds=-2.0")],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        L3DAS21DataModule("nowhere", **kwargs)


@pytest.mark.parametrize("seconds", [1.5, 2.5, 0.5])
def test_segment_seconds_must_hold_whole_dcase_segments(seconds: float) -> None:
    with pytest.raises(ValueError) as error:
        L3DAS21DataModule("nowhere", segment_seconds=seconds)
    message = str(error.value)
    assert f"segment_seconds={seconds}" in message and "whole number of seconds" in message
    assert "1 s segments" in message


@pytest.mark.parametrize("seconds", [1, 2.0, 5.0, 10.0])
def test_whole_second_segments_are_accepted(seconds: float) -> None:
    assert L3DAS21DataModule("nowhere", segment_seconds=seconds).window_frames == round(10 * seconds)


def test_missing_root_names_folder_and_commands(tmp_path: Path) -> None:
    dm = L3DAS21DataModule(tmp_path / "absent", progress=False)
    with pytest.raises(FileNotFoundError, match=r"absent/L3DAS_Task2_train/data not found.*phnn download.*phnn synth"):
        dm.setup("fit")


def test_fit_batches_split_and_train_only_stats(l3das21_root: Path, tmp_path: Path) -> None:
    dm = make_dm(l3das21_root, tmp_path, segment_overlap=0.5)
    dm.prepare_data()
    dm.setup("fit")
    train, val = {c.stem for c in dm.train_clips}, {c.stem for c in dm.val_clips}
    assert len(val) == 1 and len(train) == 3 and not train & val
    again = make_dm(l3das21_root, tmp_path)
    again.setup("fit")
    assert {c.stem for c in again.val_clips} == val  # seeded
    assert {c.stem for c in make_dm(l3das21_root, tmp_path, seed=5).split_train_val(dm.train_clips + dm.val_clips)[1]}

    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (3, 8, 256, 240) and x.dtype == torch.float32 and y.shape == (3, 30, 42)
    # 40 frames per clip, windows of 30 every 15 (+ one aligned to the end): 0, 10
    assert len(dm.train_dataloader().dataset) == 3 * 2

    expected = dm.cache.compute_stats("train", dm.train_clips)
    torch.testing.assert_close(dm.normalizer.mean, expected.mean)
    with_val = dm.cache.compute_stats("train", dm.train_clips + dm.val_clips)
    assert not torch.allclose(dm.normalizer.mean, with_val.mean)
    assert list(dm.cache.folder.glob("stats-*.json"))

    items = list(dm.val_dataloader())
    assert [item["stem"] for item in items] == [c.stem for c in dm.val_clips]  # whole clips, each once
    features = items[0]["features"]
    assert features.shape == (8, 256, 8 * 40) and items[0]["sed"].shape == (40, 42)
    window = features[..., 16:48]  # lazy: read and normalised per slice
    expected = np.concatenate([np.load(dm.cache.feature_path("train", items[0]["stem"], m))[..., 16:48] for m in "AB"])
    torch.testing.assert_close(window, dm.normalizer(torch.from_numpy(expected.astype(np.float32))))


def test_test_items_are_whole_clips_with_events_and_doa(l3das21_root: Path, tmp_path: Path) -> None:
    dm = make_dm(l3das21_root, tmp_path, return_doa=True)
    dm.setup("fit")
    dm.setup("test")
    items = list(dm.test_dataloader())
    assert len(items) == 2 and all(item["duration"] == 4.0 and item["num_frames"] == 40 for item in items)
    item = items[0]
    assert item["doa"].shape == (40, 126) and (item["doa"].abs() <= 1).all()
    assert item["label_grid"] == "official" and item["events"]
    assert all(0 <= onset <= offset and 0 <= cls < 14 for onset, offset, cls in item["events"])


def test_state_dict_round_trip_and_mismatch(l3das21_root: Path, tmp_path: Path) -> None:
    dm = make_dm(l3das21_root, tmp_path)
    dm.setup("fit")
    state = dm.state_dict()
    fresh = make_dm(l3das21_root, tmp_path)
    assert fresh.state_dict() == {}
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.normalizer.std, dm.normalizer.std)
    with pytest.raises(ValueError, match=r"in_channels=8 .*in_channels=16"):
        make_dm(l3das21_root, tmp_path, phase=True).load_state_dict(state)
    assert state["label_grid"] == "official"
    with pytest.raises(ValueError, match=r"trained on label_grid='official'.*--data.label_grid official"):
        make_dm(l3das21_root, tmp_path, label_grid="nearest").load_state_dict(state)


class MeanModel(pl.LightningModule):
    """Just enough model to run fit → checkpoint → predict through a Trainer."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(8, 42)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.head(x.mean(dim=(2, 3)))[:, None].expand(-1, y.shape[1], -1)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, y)

    def validation_step(self, batch, batch_idx):  # a whole clip (dict) with lazy features
        return self.training_step((batch["features"][..., :8][None], batch["sed"][None, :1]), batch_idx)

    def predict_step(self, batch, batch_idx):
        return batch

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def write(path: Path, channels: int = 4, rate: int = 32000, seconds: float = 0.55) -> None:
    soundfile.write(path, np.random.default_rng(0).uniform(-0.3, 0.3, (int(rate * seconds), channels)), rate)


def test_predict_restores_stats_from_checkpoint_and_reports_bad_files(l3das21_root: Path, tmp_path: Path) -> None:
    trainer_kwargs = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False)
    dm = make_dm(l3das21_root, tmp_path)
    trainer = pl.Trainer(max_steps=1, limit_val_batches=1, **trainer_kwargs)
    trainer.fit(MeanModel(), datamodule=dm)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)

    clips = tmp_path / "clips"
    clips.mkdir()
    for mic in "AB":
        shutil.copy(l3das21_root / "L3DAS_Task2_dev" / "data" / f"split0_ov1_1_{mic}.wav", clips / f"good_{mic}.wav")
        write(clips / f"cd_{mic}.wav", rate=44100)
        write(clips / f"stereo_{mic}.wav", channels=2)
    (clips / "corrupt_A.wav").write_bytes(b"RIFF....garbage")
    write(clips / "corrupt_B.wav")
    write(clips / "lonely_A.wav")

    predictor = make_dm(l3das21_root, tmp_path, predict_path=str(clips))
    with pytest.raises(RuntimeError, match="no normalisation statistics for predict.*--ckpt_path"):
        predictor.predict_dataloader()
    items = pl.Trainer(**trainer_kwargs).predict(MeanModel(), datamodule=predictor, ckpt_path=ckpt)
    by_stem = {item["stem"]: item for item in items}
    assert sorted(by_stem) == ["cd", "corrupt", "good", "lonely", "stereo"]
    torch.testing.assert_close(predictor.normalizer.mean, dm.normalizer.mean)

    good = by_stem["good"]
    assert good["features"].shape == (8, 256, 320) and good["num_frames"] == 40
    assert good["duration"] == pytest.approx(4.0) and good["sample_rate"] == 32000
    assert good["paths"] == [str(clips / "good_A.wav"), str(clips / "good_B.wav")]
    assert abs(float(good["features"][..., :].mean())) < 1.0  # normalised with the training statistics
    cd = by_stem["cd"]
    assert cd["sample_rate"] == 44100 and cd["num_frames"] == 6 and cd["features"].shape[-1] == 48
    assert "corrupt_A.wav: cannot read audio" in by_stem["corrupt"]["error"]
    assert "stereo_A.wav: 2 channel(s), expected 4" in by_stem["stereo"]["error"]
    assert "lonely_B.wav: not found" in by_stem["lonely"]["error"]


def test_predict_path_forms(l3das21_root: Path, tmp_path: Path) -> None:
    from phnn.data.l3das21.datamodule import find_predict_groups

    data = l3das21_root / "L3DAS_Task2_dev" / "data"
    stem = data / "split0_ov1_1"
    for path in (stem, data / "split0_ov1_1_B.wav"):
        pair = [data / "split0_ov1_1_A.wav", data / "split0_ov1_1_B.wav"]
        assert find_predict_groups(path, "AB") == [("split0_ov1_1", pair, None)]
    groups = find_predict_groups(str(data / "*_A.wav"), "A")
    assert [g[0] for g in groups] == ["split0_ov1_1", "split0_ov2_1"]  # clip stems, as with mics="AB"
    with pytest.raises(ValueError, match="predict_path=.*nothing.*no .wav file"):
        find_predict_groups(tmp_path / "nothing", "A")


def test_predict_folder_with_both_mics_reads_mic_a_clips(l3das21_root: Path, tmp_path: Path) -> None:
    from phnn.data.l3das21.datamodule import find_predict_groups

    data = l3das21_root / "L3DAS_Task2_dev" / "data"
    official = sorted(data.glob("*.wav"))
    assert sorted(p.name for p in official) == [f"split0_ov{k}_1_{m}.wav" for k in (1, 2) for m in "AB"]
    groups = find_predict_groups(data, "A")
    assert groups == [("split0_ov1_1", [data / "split0_ov1_1_A.wav"], None),
                      ("split0_ov2_1", [data / "split0_ov2_1_A.wav"], None)]  # no _B.wav taken as a mic-A clip
    assert [g[0] for g in find_predict_groups(data, "AB")] == [g[0] for g in groups]  # same stems in both modes

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for file in official:
        shutil.copy(file, mixed / file.name)
    write(mixed / "kitchen.wav")
    write(mixed / "kitchen_B.wav")  # outside the official naming: a user's own recording, kept as is
    groups = find_predict_groups(mixed, "A")
    assert [(stem, [p.name for p in paths], problem) for stem, paths, problem in groups] == [
        ("kitchen", ["kitchen.wav"], None), ("kitchen_B", ["kitchen_B.wav"], None),
        ("split0_ov1_1", ["split0_ov1_1_A.wav"], None), ("split0_ov2_1", ["split0_ov2_1_A.wav"], None)]

    with pytest.raises(ValueError) as error:
        find_predict_groups(data / "split0_ov1_1_B.wav", "A")
    assert "only mic B files" in str(error.value) and "mics='AB'" in str(error.value)
    write(mixed / "split0_ov1_1.wav")  # same output name as split0_ov1_1_A.wav
    clash = [g for g in find_predict_groups(mixed, "A") if g[0] == "split0_ov1_1"]
    assert [(paths[0].name, problem is None) for _, paths, problem in clash] == [
        ("split0_ov1_1.wav", True), ("split0_ov1_1_A.wav", False)]
    assert "same output stem 'split0_ov1_1'" in clash[1][2]


def test_training_windows_and_predict_items_share_the_channel_order(l3das21_root: Path, tmp_path: Path) -> None:
    """Mics A and B with phase and intensity: a cached training window holds the same channels, in the same
    order, as the predict item built from the clip's audio (the cache stores one file per mic)."""
    dm = make_dm(l3das21_root, tmp_path, phase=True, intensity=True, val_fraction=0.0, segment_seconds=1)
    assert dm.in_channels == 24
    dm.setup("fit")
    window = dm.train_dataloader().dataset[0][0]
    clip = dm.train_clips[0]
    predictor = make_dm(l3das21_root, tmp_path, phase=True, intensity=True, predict_path=str(clip.audio["A"]))
    predictor.normalizer.set(dm.normalizer.mean, dm.normalizer.std)
    item = predictor.predict_dataloader().dataset[0]
    assert item["stem"] == clip.stem
    torch.testing.assert_close(window, item["features"][..., : window.shape[-1]], atol=1e-3, rtol=1e-3)
    channels = dm.describe_input()["channels"]
    assert channels[:8] == [f"{mic}_magnitude_{c}" for mic in "AB" for c in "WYZX"]
    assert channels[8] == "A_phase_W" and channels[16] == "A_intensity_W" and len(channels) == 24


def test_checkpoints_of_the_per_mic_channel_order_are_refused(l3das21_root: Path, tmp_path: Path) -> None:
    """Two mics with phase: a state without the channel-order record (before issue 9) is refused, one mic is not."""
    dm = make_dm(l3das21_root, tmp_path, phase=True)
    dm.setup("fit")
    state = dm.state_dict()
    assert state["channel_order"] == "official"
    make_dm(l3das21_root, tmp_path, phase=True).load_state_dict(state)
    old = {k: v for k, v in state.items() if k != "channel_order"}
    with pytest.raises(ValueError, match="per-mic channel order.*retrain"):
        make_dm(l3das21_root, tmp_path, phase=True).load_state_dict(old)
    single = make_dm(l3das21_root, tmp_path, mics="A", phase=True)
    single.setup("fit")
    make_dm(l3das21_root, tmp_path, mics="A", phase=True).load_state_dict(
        {k: v for k, v in single.state_dict().items() if k != "channel_order"})
