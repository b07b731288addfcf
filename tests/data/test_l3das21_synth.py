"""Synthetic L3DAS21 scenes: layout, seeded byte-identical output, overlaps, FOA encoding, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from phnn.cli import main as phnn_main
from phnn.data.l3das21.labels import load_targets, num_label_frames, read_events
from phnn.data.l3das21.layout import find_clips
from phnn.data.l3das21.synth import _foa_gains, synthesize


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(l3das21_root: Path, tmp_path: Path) -> None:
    synthesize(tmp_path / "again", train_clips=4, dev_clips=2, duration=4.0, max_overlap=3, mic_b=True, seed=0)
    original = {k: v for k, v in all_files(l3das21_root).items() if not k.startswith(".")}
    assert len(original) == 6 * 3 and original == all_files(tmp_path / "again")
    synthesize(tmp_path / "other", train_clips=1, dev_clips=0, duration=4.0, mic_b=False, seed=1)
    other = all_files(tmp_path / "other")
    key = "L3DAS_Task2_train/data/split1_ov1_1_A.wav"
    assert list(other) == [key, "L3DAS_Task2_train/labels/label_split1_ov1_1.csv"] and other[key] != original[key]


def test_layout_audio_and_labels(l3das21_root: Path) -> None:
    train = find_clips(l3das21_root, "train", mics="AB")
    dev = find_clips(l3das21_root, "dev", mics="AB")
    assert [c.ov for c in train] == [1, 1, 2, 3] and len(dev) == 2
    for clip in train + dev:
        info = soundfile.info(str(clip.audio["B"]))
        assert (info.samplerate, info.channels, info.frames) == (32000, 4, 128000)
        events = read_events(clip.labels)
        assert events, clip.stem
        positions = np.array([[e.x, e.y, e.z] for e in events])
        assert (np.abs(positions) <= [2.0, 1.5, 1.0]).all()
        sed, _ = load_targets(clip.labels, num_label_frames(info.frames, 32000))
        assert sed.sum(axis=1).max() <= clip.ov  # never more than K sounds at once in an ov<K> clip


def test_events_are_audible_where_labelled(l3das21_root: Path) -> None:
    clip = find_clips(l3das21_root, "train")[0]
    audio, rate = soundfile.read(str(clip.audio["A"]))
    sed, _ = load_targets(clip.labels, 40)
    frame_power = (audio[:, 0].reshape(40, 3200) ** 2).mean(axis=1)
    active = sed.sum(axis=1) > 0
    assert active.any() and (~active).any()
    assert np.median(frame_power[active]) > 2 * np.median(frame_power[~active])


def test_foa_gains_follow_direction() -> None:
    gains, distance = _foa_gains(np.array([0.0, 1.0, 0.0]))  # straight left: all in Y
    np.testing.assert_allclose(gains, [1.0, 1.0, 0.0, 0.0], atol=1e-12)
    gains, distance = _foa_gains(np.array([1.0, 1.0, 1.0]))
    assert distance == pytest.approx(np.sqrt(3))
    np.testing.assert_allclose(gains[1:], np.ones(3) / np.sqrt(3))  # (Y, Z, X) is the unit direction


def test_cli_and_bad_arguments(tmp_path: Path) -> None:
    assert phnn_main(["synth", "--out", str(tmp_path), "--train-clips", "2", "--dev-clips", "1", "--duration", "1",
                      "--max-overlap", "2", "--seed", "3"]) == 0
    assert sorted(p.name for p in (tmp_path / "L3DAS_Task2_train" / "data").iterdir()) == [
        "split1_ov1_1_A.wav", "split1_ov2_1_A.wav"]
    with pytest.raises(ValueError, match="max_overlap=4"):
        synthesize(tmp_path, max_overlap=4)
    with pytest.raises(ValueError, match="duration=0.1"):
        synthesize(tmp_path, duration=0.1)
