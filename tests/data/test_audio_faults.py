"""Fault injection on the audio side: bad clips are named (never read silently), the cache rebuilds
what changed, synth does not overwrite, any sample rate resamples correctly, long clips stream."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from phnn.data.l3das21 import features as feat
from phnn.data.l3das21.audio import AudioFile, ClipAudio, Resampler, load_clip
from phnn.data.l3das21.datamodule import L3DAS21DataModule, PredictDataset
from phnn.data.l3das21.features import (
    ClipFeatures,
    FeatureCache,
    FeatureSettings,
    Normalizer,
    group_channels,
    stft_features,
)
from phnn.data.l3das21.labels import load_targets
from phnn.data.l3das21.layout import find_clips
from phnn.data.l3das21.synth import main as synth_main
from phnn.errors import DataFileError, UsageError


def write_float_wav(path: Path, data: np.ndarray, rate: int = 32000) -> Path:
    soundfile.write(path, data.T.astype(np.float32), rate, subtype="FLOAT")
    return path


def noise(channels: int = 4, samples: int = 16000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (channels, samples)).astype(np.float32)


@pytest.fixture
def dev_root(l3das21_root: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny dev split (2 clips of 4 s, mics A and B) to damage."""
    root = tmp_path / "root"
    shutil.copytree(l3das21_root / "L3DAS_Task2_dev", root / "L3DAS_Task2_dev")
    return root


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_truncated_wav_is_an_error_not_a_shorter_clip(tmp_path: Path, subtype: str) -> None:
    path = tmp_path / "cut.wav"
    soundfile.write(path, noise().T, 32000, subtype=subtype)
    path.write_bytes(path.read_bytes()[:-1000])  # the header still declares the full length
    assert soundfile.info(str(path)).frames < 16000  # libsndfile alone would read a shorter clip
    with pytest.raises(DataFileError, match=r"cut\.wav: truncated: its header declares \d+ bytes of samples but "
                                            r"the file holds \d+ .*download the file again"):
        load_clip(path)


def test_empty_clip_and_non_finite_samples_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"empty\.wav: the clip has 0 samples"):
        AudioFile(write_float_wav(tmp_path / "empty.wav", np.zeros((4, 0))))
    for value, shown in ((np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")):
        data = noise()
        data[2, 12345] = value
        path = write_float_wav(tmp_path / "bad.wav", data)
        with pytest.raises(DataFileError, match=rf"bad\.wav: sample 12345 \(t = 0\.386 s\) of channel 2 is {shown}; "
                                                r"audio must be finite"):
            load_clip(path)
        with pytest.raises(DataFileError, match="sample 12345"):
            ClipAudio(path).scan()  # the streamed check, used before a clip is predicted window by window


def test_samples_that_overflow_the_float16_cache_are_refused(tmp_path: Path) -> None:
    # a float wav far out of range: its linear magnitudes (|X| / Σ window, about half the amplitude of
    # a tone) would be inf in float16
    loud = np.repeat(2e5 * np.sin(2 * np.pi * 1000 * np.arange(16000) / 32000)[None], 4, 0)
    path = write_float_wav(tmp_path / "loud.wav", loud)
    linear = FeatureSettings()
    assert linear.max_sample == 65504 and FeatureSettings(magnitude_scale="div512").max_sample == 65504 * 512
    assert not torch.isfinite(stft_features(torch.from_numpy(loud)).half()).all()  # what the check prevents
    with pytest.raises(DataFileError, match=r"loud\.wav: sample \d+ .* beyond ±65504, where the float16 feature "
                                            r"cache overflows; scale the audio to \[-1, 1\]"):
        load_clip(path, max_abs=linear.max_sample)
    assert FeatureSettings(magnitude_scale="log1p").max_sample is None  # log1p cannot overflow: accepted
    features = stft_features(load_clip(path)[0], FeatureSettings(magnitude_scale="log1p"))
    assert torch.isfinite(features.half()).all()


def test_mics_of_different_lengths_are_an_error(tmp_path: Path) -> None:
    a = write_float_wav(tmp_path / "c_A.wav", noise(samples=16000))
    b = write_float_wav(tmp_path / "c_B.wav", noise(samples=15999))
    with pytest.raises(DataFileError, match=r"c_B\.wav: 15999 samples, but .*c_A\.wav has 16000; the mic files of "
                                            r"one clip must have the same length"):
        load_clip([a, b])


def test_event_past_the_clip_end_is_reported(dev_root: Path, tmp_path: Path) -> None:
    clip = find_clips(dev_root, "dev", mics="A")[0]
    with open(clip.labels, "a") as handle:
        handle.write(f"{clip.stem},4.2,4.9,Knock,1.0,0.5,0.0\n")  # the clip is 4 s long
    rows = len(clip.labels.read_text().splitlines()) - 1
    with pytest.raises(DataFileError, match=rf"label_{clip.stem}\.csv, row {rows}: event Knock starts at Start=4\.2 s, "
                                            r"at or past the end of its clip \(4 s\); fix the label file"):
        load_targets(clip.labels, 40)
    with pytest.raises(DataFileError, match=rf"label_{clip.stem}\.csv, row {rows}"):
        FeatureCache(tmp_path / "cache").build("dev", [clip], progress=False)


def test_bad_training_clip_stops_the_run_or_is_skipped_with_a_warning(dev_root: Path, tmp_path: Path) -> None:
    bad, good = find_clips(dev_root, "dev", mics="AB")
    data, rate = soundfile.read(bad.audio["B"], always_2d=True)
    data[100, 0] = np.nan
    soundfile.write(bad.audio["B"], data, rate, subtype="FLOAT")
    kwargs = dict(mics="AB", cache_dir=tmp_path / "cache", progress=False, segment_seconds=1)
    with pytest.raises(DataFileError, match=rf"{bad.stem}_B\.wav: sample 100 .* is nan"):
        L3DAS21DataModule(dev_root, **kwargs).setup("test")
    skipping = L3DAS21DataModule(dev_root, bad_clips="skip", **kwargs)
    with pytest.warns(UserWarning, match=rf"skipping a bad dev clip \(data.bad_clips=skip\): .*{bad.stem}_B\.wav: "
                                         r"sample 100"):
        skipping.setup("test")
    assert [c.stem for c in skipping.test_clips] == [good.stem]
    cache = FeatureCache(tmp_path / "cache")
    report = cache.build("dev", [bad, good], progress=False, bad_clips="skip")  # remembered: not read again
    assert list(report.bad) == [bad.stem] and not report.rebuilt
    with pytest.raises(ValueError, match="bad_clips='ignore'"):
        L3DAS21DataModule(dev_root, bad_clips="ignore")


def test_bad_clip_to_predict_is_reported_and_skipped(dev_root: Path, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(dev_root / "L3DAS_Task2_dev" / "data" / "split0_ov1_1_A.wav", clips / "good.wav")
    nan = noise(samples=8000)
    nan[0, 4000] = np.nan
    write_float_wav(clips / "nan.wav", nan)
    soundfile.write(clips / "cut.wav", noise().T, 32000, subtype="PCM_16")
    (clips / "cut.wav").write_bytes((clips / "cut.wav").read_bytes()[:-512])
    write_float_wav(clips / "empty.wav", np.zeros((4, 0)))
    groups = [(path.stem, [path], None) for path in sorted(clips.iterdir())]
    stats = Normalizer(torch.zeros(4, 256), torch.ones(4, 256))
    items = {item["stem"]: item for item in (PredictDataset(groups, FeatureSettings(), stats)[i]
                                              for i in range(len(groups)))}
    assert "nan.wav: sample 4000" in items["nan"]["error"]
    assert "cut.wav: truncated" in items["cut"]["error"]
    assert "empty.wav: the clip has 0 samples" in items["empty"]["error"]
    assert "error" not in items["good"] and items["good"]["features"].shape == (4, 256, 320)


def test_changed_source_files_are_rebuilt_and_said_so(dev_root: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    clips = find_clips(dev_root, "dev", mics="A")
    cache = FeatureCache(tmp_path / "cache")
    assert cache.build("dev", clips, progress=False).rebuilt == {}
    computed, said = [], []
    monkeypatch.setattr(feat, "stft_features", lambda w, s: computed.append(1) or stft_features(w, s))
    monkeypatch.setattr(feat, "_log", said.append)
    assert cache.build("dev", clips, progress=False).rebuilt == {} and computed == []  # unchanged: nothing read

    # a label CSV edited in place (same size: only the modification time tells)
    text, before = clips[0].labels.read_text(), clips[0].labels.stat().st_mtime_ns
    clips[0].labels.write_text(text)  # rewritten in place: same size, only the modification time tells
    os.utime(clips[0].labels, ns=(before, before + 10**9))
    # a wav re-rendered with other content and length
    soundfile.write(clips[1].audio["A"], noise(samples=32000 * 5).T, 32000, subtype="PCM_16")
    report = cache.build("dev", clips, progress=False)
    assert report.rebuilt == {clips[0].stem: f"label_{clips[0].stem}.csv modified (+1.000 s)",
                              clips[1].stem: f"{clips[1].stem}_A.wav changed size (1024044 → 1280044 bytes)"}
    assert said == [f"L3DAS21 feature cache: {change}; rebuilding dev/{stem}"
                    for stem, change in report.rebuilt.items()]
    fresh = stft_features(load_clip(clips[1].audio["A"])[0]).half().numpy()
    np.testing.assert_array_equal(np.load(cache.feature_path("dev", clips[1].stem, "A")), fresh)
    assert np.load(cache.target_paths("dev", clips[1].stem)[0]).shape == (50, 42)


def test_normalisation_statistics_follow_changed_training_clips(l3das21_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(l3das21_root / "L3DAS_Task2_train", root / "L3DAS_Task2_train")
    kwargs = dict(mics="A", cache_dir=tmp_path / "cache", progress=False, segment_seconds=1, val_fraction=0.0)
    first = L3DAS21DataModule(root, **kwargs)
    first.setup("fit")
    first_stats = first._stats_path()
    clip = first.train_clips[0]
    soundfile.write(clip.audio["A"], 0.01 * noise(samples=4 * 32000).T, 32000, subtype="PCM_16")  # much quieter
    second = L3DAS21DataModule(root, **kwargs)
    second.setup("fit")
    assert second._stats_path() != first_stats and first_stats.is_file()
    assert float(second.normalizer.mean.mean()) < float(first.normalizer.mean.mean())


def test_synth_does_not_overwrite_a_dataset_without_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    args = ["--out", str(out), "--train-clips", "1", "--dev-clips", "1", "--duration", "1"]
    assert synth_main(args + ["--train-clips", "2"]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(UsageError, match=r"L3DAS_Task2_train already exists \(6 files under L3DAS_Task2_train, "
                                         r"L3DAS_Task2_dev\); phnn synth does not write over a dataset: "
                                         r"pass --overwrite"):
        synth_main(args + ["--seed", "1"])
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing touched
    assert synth_main(args + ["--seed", "1", "--overwrite"]) == 0
    names = sorted(p.name for p in (out / "L3DAS_Task2_train" / "data").iterdir())
    assert names == ["split1_ov1_1_A.wav"]  # the old second clip is gone, not mixed into the new set


@pytest.mark.parametrize("rate", [8000, 11025, 16001, 22050, 44100, 95999, 96000])
def test_resampler_reproduces_tones_at_any_rate(rate: int) -> None:
    resampler = Resampler(rate, 32000)
    n = rate // 4
    out_length = resampler.output_length(n)
    assert out_length == -(-n * 32000 // rate)
    worst = 0.0
    for frequency in np.linspace(50.0, 0.4 * min(rate, 32000), 9):
        tone = np.sin(2 * np.pi * frequency * np.arange(n) / rate)[None].astype(np.float32)
        exact = np.sin(2 * np.pi * frequency * np.arange(out_length) / 32000)
        got = resampler(tone, 0, 0, out_length)[0].numpy()
        worst = max(worst, float(np.abs(got - exact)[200:-200].max()))  # away from the clip edges
    assert worst < 4e-3
    # any output range from only the input it needs == the same range of the whole output
    whole = resampler(np.random.default_rng(0).standard_normal((2, n)).astype(np.float32), 0, 0, out_length)
    a, b = resampler.input_range(1000, 3000)
    x = np.random.default_rng(0).standard_normal((2, n)).astype(np.float32)[:, max(a, 0) : b]
    torch.testing.assert_close(resampler(x, max(a, 0), 1000, 3000), whole[:, 1000:3000], rtol=0, atol=0)
    assert resampler.table.size <= 32000 * 61  # bounded whatever the rate (a dense kernel per phase is not)


@pytest.mark.parametrize("rate", [32000, 44100])
def test_long_clip_streams_window_by_window_equal_to_whole_clip(tmp_path: Path, rate: int) -> None:
    seconds = 9.37
    a = write_float_wav(tmp_path / "long_A.wav", noise(samples=int(rate * seconds), seed=1), rate)
    b = write_float_wav(tmp_path / "long_B.wav", noise(samples=int(rate * seconds), seed=2), rate)
    settings = FeatureSettings(phase=True)
    # per-mic features in the official order (all magnitudes, then all phases), as the cache is read
    whole = group_channels([stft_features(load_clip(p)[0], settings) for p in (a, b)], len(settings.kinds))
    lazy = ClipFeatures(ClipAudio([a, b]), settings)
    assert lazy.shape == whole.shape == (16, 256, 8 * 94)
    for start, stop in ((0, 80), (77, 600), (700, 752), (740, 5000)):
        torch.testing.assert_close(lazy[None, ..., start:stop], whole.half().float()[None, ..., start:stop],
                                   rtol=0, atol=0)


def test_predict_scores_of_a_lazy_clip_equal_the_whole_clip(tmp_path: Path) -> None:
    from phnn.models.sednet import SEDnetConfig
    from phnn.tasks.sed import SoundEventDetector

    path = write_float_wav(tmp_path / "long.wav", noise(samples=32000 * 13, seed=3))
    stats = Normalizer(torch.full((4, 256), 0.5), torch.full((4, 256), 2.0))
    lazy = ClipFeatures(ClipAudio(path), FeatureSettings(), stats)
    whole = stats(stft_features(load_clip(path)[0]).half().float())
    torch.manual_seed(0)
    task = SoundEventDetector(model=SEDnetConfig(widths=(8, 8, 8, 8), gru_hidden=8, gru_layers=1, fc_width=8,
                                                fc_layers=1),
                              predict_window_frames=40, predict_overlap_frames=10).eval()
    torch.testing.assert_close(task.clip_scores(lazy), task.clip_scores(whole), rtol=0, atol=0)
