"""STFT features (frame alignment, channels), audio checks, and the atomic, resumable feature cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from phnn.data.l3das21 import features as feat
from phnn.data.l3das21.features import FeatureCache, FeatureSettings, load_clip, stft_features
from phnn.data.l3das21.layout import find_clips


@pytest.mark.parametrize("samples", [32000 * 2, 32000 * 2 + 123, 3200 * 7 + 5, 1000])
def test_features_equal_the_official_scipy_framing(samples: int) -> None:
    """Frame for frame as the official spectrum_fast: scipy.signal.stft (Hamming 512, overlap 112, zero
    boundary, padded), DC bin and last frame dropped; phnn keeps 8 per label frame (zeros past the end)."""
    from scipy.signal import stft

    wave = np.random.default_rng(samples).standard_normal((4, samples)).astype(np.float32) * 0.1
    _, _, spectrum = stft(wave, window="hamming", nperseg=512, noverlap=112)
    official = spectrum[:, 1:, :-1]
    frames = official.shape[-1]
    assert frames == -(-samples // 400)
    ours = stft_features(torch.from_numpy(wave), FeatureSettings(phase=True)).numpy()
    assert ours.shape == (8, 256, 8 * -(-samples // 3200))
    np.testing.assert_allclose(ours[:4, :, :frames], np.abs(official), rtol=1e-5, atol=1e-7)
    phase_error = np.abs(ours[4:, :, :frames] - np.angle(official) / np.pi)
    assert np.minimum(phase_error, 2 - phase_error).max() < 1e-4  # ±π wrap; phase of tiny bins is noisy


def test_frame_j_is_centred_on_sample_400j() -> None:
    wave = torch.zeros(4, 3200 * 2)
    wave[1, 400 * 5] = 1.0  # an impulse at the centre of frame 5: flat spectrum of window[256] / Σ window
    x = stft_features(wave)
    window = np.hamming(513)[:512]
    np.testing.assert_allclose(x[1, :, 5].numpy(), window[256] / window.sum(), rtol=1e-5)
    assert x[1, :, 0].abs().max() == 0 and x[1, :, 7].abs().max() == 0  # frames 0 and 7 do not reach it


def test_phase_and_magnitude_scales() -> None:
    wave = torch.randn(4, 6400)
    linear = stft_features(wave, FeatureSettings())
    both = stft_features(wave, FeatureSettings(phase=True, magnitude_scale="div512"))
    assert both.shape == (8, 256, 16)
    torch.testing.assert_close(both[:4], linear / 512)
    assert both[4:].abs().max() <= 1.0 and both[4:].abs().max() > 0.9
    window_sum = float(torch.hamming_window(512).sum())
    torch.testing.assert_close(stft_features(wave, FeatureSettings(magnitude_scale="log1p")),
                               torch.log1p(linear * window_sum))
    with pytest.raises(ValueError, match="magnitude_scale='db'"):
        FeatureSettings(magnitude_scale="db")


def test_cache_key_follows_settings() -> None:
    assert FeatureSettings().key() == FeatureSettings().key()
    assert feat.FORMAT_VERSION == 2  # the official framing: caches of the old framing get a new key
    keys = {FeatureSettings().key(), FeatureSettings(phase=True).key(), FeatureSettings(magnitude_scale="log1p").key()}
    assert len(keys) == 3


def write_wav(path: Path, channels: int, rate: int, seconds: float = 0.5) -> Path:
    data = np.random.default_rng(1).uniform(-0.5, 0.5, (int(rate * seconds), channels))
    soundfile.write(path, data, rate, subtype="FLOAT")
    return path


def test_load_clip_checks_and_resamples(tmp_path: Path) -> None:
    a, b = write_wav(tmp_path / "c_A.wav", 4, 32000), write_wav(tmp_path / "c_B.wav", 4, 32000)
    wave, rate = load_clip([a, b])
    assert wave.shape == (8, 16000) and rate == 32000
    with pytest.raises(ValueError, match=r"two\.wav: 2 channel\(s\), expected 4"):
        load_clip(write_wav(tmp_path / "two.wav", 2, 32000))
    cd = write_wav(tmp_path / "cd.wav", 4, 44100)
    with pytest.raises(ValueError, match=r"cd\.wav: sample rate 44100 Hz, expected 32000 Hz"):
        load_clip(cd, resample=False)
    wave, rate = load_clip(cd)
    assert rate == 44100 and wave.shape == (4, 16000)
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    with pytest.raises(ValueError, match=r"junk\.wav: cannot read audio"):
        load_clip(tmp_path / "junk.wav")


def test_training_audio_with_wrong_rate_is_an_error(l3das21_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(l3das21_root / "L3DAS_Task2_dev", root / "L3DAS_Task2_dev")
    clip = find_clips(root, "dev")[0]
    write_wav(clip.audio["A"], 4, 48000)
    with pytest.raises(ValueError, match=rf"{clip.audio['A'].name}: sample rate 48000 Hz, expected 32000 Hz"):
        FeatureCache(tmp_path / "cache").build("dev", [clip], progress=False)


def test_killed_build_leaves_no_final_file_and_resumes_identically(
    l3das21_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clips = find_clips(l3das21_root, "train", mics="AB")
    reference = FeatureCache(tmp_path / "ref")
    reference.build("train", clips, progress=False)

    cache = FeatureCache(tmp_path / "cache")
    real_save, calls = np.save, {"n": 0}

    def dying_save(handle, array):  # the 5th file dies half-written, like a killed process
        calls["n"] += 1
        if calls["n"] == 5:
            handle.write(b"\x93NUMPY partial")
            raise KeyboardInterrupt
        real_save(handle, array)

    monkeypatch.setattr(feat.np, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        cache.build("train", clips, progress=False, workers=1)  # one worker: the 5th file is deterministic
    monkeypatch.setattr(feat.np, "save", real_save)
    written = sorted(p.name for p in (cache.folder / "train").iterdir())
    assert len(written) == 5 and not any(".tmp-" in name for name in written)  # clip 0: 4 arrays + its record
    assert cache.is_complete("train", clips[0]) and not cache.is_complete("train", clips[1])
    # A kill -9 leaves its temporary file behind: it must not count as a finished file.
    (cache.folder / "train" / f".{clips[1].stem}_B.npy.tmp-99999-1-00000000").write_bytes(b"junk")

    computed = []
    monkeypatch.setattr(feat, "stft_features", lambda w, s: computed.append(1) or stft_features(w, s))
    cache.build("train", clips, progress=False)
    assert len(computed) == 2 * len(clips) - 2  # clip 0 (A and B) was complete and skipped
    for clip in clips:
        for mic in "AB":
            new = np.load(cache.feature_path("train", clip.stem, mic))
            np.testing.assert_array_equal(new, np.load(reference.feature_path("train", clip.stem, mic)))
            assert new.dtype == np.float16 and new.shape[:2] == (4, 256)
        for new_path, ref_path in zip(cache.target_paths("train", clip.stem),
                                      reference.target_paths("train", clip.stem)):
            np.testing.assert_array_equal(np.load(new_path), np.load(ref_path))


def test_stats_are_per_channel_and_bin(l3das21_root: Path, tmp_path: Path) -> None:
    clips = find_clips(l3das21_root, "dev", mics="AB")
    cache = FeatureCache(tmp_path / "cache", FeatureSettings(phase=True))
    cache.build("dev", clips, progress=False)
    cache.STATS_CHUNK = 7  # exercise the chunked pass
    stats = cache.compute_stats("dev", clips)
    every = np.concatenate(
        [feat.group_channels([np.load(cache.feature_path("dev", c.stem, m)) for m in "AB"], 2) for c in clips], axis=-1
    ).astype(np.float64)
    assert stats.mean.shape == (16, 256)
    np.testing.assert_allclose(stats.mean.numpy(), every.mean(-1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.std.numpy(), np.maximum(every.std(-1), 1e-5), rtol=1e-3, atol=1e-5)


def test_targets_cached_before_the_rounding_change_are_rebuilt(l3das21_root: Path, tmp_path: Path) -> None:
    """Targets of the old round-half-up quantisation (``<stem>.sed.npy``) must not be read as current ones."""
    from phnn.data.l3das21.labels import load_targets

    clip = find_clips(l3das21_root, "dev", mics="A")[0]
    cache = FeatureCache(tmp_path / "cache")
    stale = cache.folder / "dev"
    stale.mkdir(parents=True)
    frames = 40  # 4 s clips
    np.save(stale / f"{clip.stem}.sed.npy", np.ones((frames, 42), np.uint8))
    np.save(stale / f"{clip.stem}.doa.npy", np.ones((frames, 126), np.float16))
    cache.build("dev", [clip], progress=False)
    sed_path, _ = cache.target_paths("dev", clip.stem)
    sed, _ = load_targets(clip.labels, frames)
    np.testing.assert_array_equal(np.load(sed_path), sed)
    assert sed_path.name == f"{clip.stem}.sed-official-v{feat.TARGET_VERSION}.npy"


def test_intensity_channels_are_the_signed_direction_of_a_plane_wave() -> None:
    """One source at azimuth 135°, elevation −30°: intensity (W, Y, Z, X) = its SN3D gains, signs included
    (the magnitudes of a source at the opposite direction are the same, the intensities flip)."""
    azimuth, elevation = np.radians(135.0), np.radians(-30.0)
    gains = np.array([1.0, np.sin(azimuth) * np.cos(elevation), np.sin(elevation), np.cos(azimuth) * np.cos(elevation)])
    source = np.random.default_rng(0).standard_normal(6400)
    wave = torch.from_numpy((gains[:, None] * source).astype(np.float32))
    x = stft_features(wave, FeatureSettings(intensity=True))
    assert x.shape == (8, 256, 16)
    intensity = x[4:, :, 1:-1]  # frames away from the zero padding
    torch.testing.assert_close(intensity, torch.from_numpy(gains).float()[:, None, None].expand_as(intensity),
                               atol=1e-4, rtol=0)
    opposite = stft_features(wave * torch.tensor([1.0, -1.0, -1.0, -1.0])[:, None], FeatureSettings(intensity=True))
    torch.testing.assert_close(opposite[:4], x[:4])
    torch.testing.assert_close(opposite[5:], -x[5:])


def test_channel_order_is_the_official_stacking() -> None:
    """Two mics with phase and intensity: A mag, B mag, A phase, B phase, A intensity, B intensity —
    what the official spectrum_fast gives for the stacked mics (magnitudes, then phases)."""
    torch.manual_seed(0)
    a, b = torch.randn(4, 3200), torch.randn(4, 3200)
    settings = FeatureSettings(phase=True, intensity=True)
    assert settings.kinds == ("magnitude", "phase", "intensity") and settings.channels_per_mic == 12
    per_mic = [stft_features(a, settings), stft_features(b, settings)]
    both = stft_features(torch.cat([a, b]), settings)
    torch.testing.assert_close(both, feat.group_channels(per_mic, 3))
    torch.testing.assert_close(both[4:8], per_mic[1][:4])  # B magnitudes right after A's
    torch.testing.assert_close(both[8:12], per_mic[0][4:8])  # then A phases
    assert FeatureSettings(intensity=True).key() != FeatureSettings().key()


def test_targets_of_each_label_grid_are_cached_apart(l3das21_root: Path, tmp_path: Path) -> None:
    from phnn.data.l3das21.labels import load_targets

    clip = find_clips(l3das21_root, "dev", mics="A")[0]
    for grid in ("official", "nearest"):
        cache = FeatureCache(tmp_path / "cache", label_grid=grid)
        cache.build("dev", [clip], progress=False)
        np.testing.assert_array_equal(np.load(cache.target_paths("dev", clip.stem)[0]),
                                      load_targets(clip.labels, 40, grid, 4.0)[0])
    official, nearest = (FeatureCache(tmp_path / "cache", label_grid=g).target_paths("dev", clip.stem)[0]
                         for g in ("official", "nearest"))
    assert official != nearest and not np.array_equal(np.load(official), np.load(nearest))
