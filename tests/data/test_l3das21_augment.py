"""Reflection augmentation: a mirrored window equals the features and targets of the mirrored scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from phnn.data import L3DAS21DataModule
from phnn.data.l3das21.augment import check_reflections, reflect
from phnn.data.l3das21.features import FeatureSettings, group_channels, stft_features
from phnn.data.l3das21.synth import MIC_B_OFFSET, _foa_gains

SETTINGS = FeatureSettings(phase=True, intensity=True)
MIRROR = {"x": np.array([-1.0, 1, 1]), "y": np.array([1.0, -1, 1]), "z": np.array([1.0, 1, -1])}


def scene_features(position: np.ndarray, mics: int) -> torch.Tensor:
    """Features (official channel order) of one broadband source at `position`, heard by mic A (and B)."""
    source = np.random.default_rng(0).standard_normal(8000)
    per_mic = []
    for offset in [np.zeros(3), MIC_B_OFFSET][:mics]:
        gains, distance = _foa_gains(position - offset)
        per_mic.append(stft_features(torch.from_numpy((gains[:, None] * source / distance).astype(np.float32)),
                                     SETTINGS))
    return group_channels(per_mic, len(SETTINGS.kinds))


def phase_angle(features: torch.Tensor) -> torch.Tensor:
    """Phase channels (angle / π) as unit vectors: equal angles compare equal across the ±π wrap."""
    return torch.polar(torch.ones_like(features), torch.pi * features)


@pytest.mark.parametrize(("axis", "mics"), [("x", 1), ("y", 1), ("z", 1), ("y", 2), ("z", 2)])
def test_a_reflected_window_is_the_mirrored_scene(axis: str, mics: int) -> None:
    position = np.array([1.2, -0.7, 0.4])
    features = scene_features(position, mics)
    expected = scene_features(position * MIRROR[axis], mics)
    # 2 slots: [x, x, y, y, z, z]
    doa = torch.tensor([[*position, *position]], dtype=torch.float32)[:, [0, 3, 1, 4, 2, 5]] / 2
    reflect(features, doa, axis, SETTINGS.kinds, mics)
    magnitude, phase, intensity = (slice(g * 4 * mics, (g + 1) * 4 * mics) for g in range(3))
    torch.testing.assert_close(features[magnitude], expected[magnitude])
    torch.testing.assert_close(features[intensity], expected[intensity], atol=1e-5, rtol=0)
    heard = expected[magnitude] > 0  # a zero spectrum (the padding) has no phase to turn
    torch.testing.assert_close(phase_angle(features[phase])[heard], phase_angle(expected[phase])[heard],
                               atol=1e-3, rtol=0)
    mirrored = torch.tensor(position * MIRROR[axis], dtype=torch.float32) / 2
    torch.testing.assert_close(doa[0], mirrored.repeat_interleave(2))


@pytest.mark.parametrize(("axes", "mics", "kinds", "message"), [
    (["w"], "A", ("magnitude", "intensity"), "distinct axes among"),
    (["y", "y"], "A", ("magnitude", "intensity"), "distinct axes among"),
    (["x"], "AB", ("magnitude", "intensity"), "use reflect: \\[y, z\\]"),
    (["y"], "A", ("magnitude",), "flip the DOA targets and not the input"),
])
def test_reflections_that_do_not_fit_are_refused(axes: list, mics: str, kinds: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_reflections(axes, mics, kinds)


def test_training_windows_are_reflected_at_random(l3das21_root: Path, tmp_path: Path) -> None:
    """Each window comes plain or mirrored (seeded); either way its features and DOA targets agree."""
    kwargs = dict(mics="AB", intensity=True, return_doa=True, val_fraction=0.25, segment_seconds=3, batch_size=3,
                  cache_dir=tmp_path / "cache", progress=False)
    plain = L3DAS21DataModule(l3das21_root, **kwargs)
    mirrored = L3DAS21DataModule(l3das21_root, reflect=["y", "z"], **kwargs)
    for dm in (plain, mirrored):
        dm.prepare_data()
        dm.setup("fit")
    reference, augmented = plain.train_dataloader().dataset, mirrored.train_dataloader().dataset
    torch.manual_seed(0)
    flips = set()
    raw = lambda x: x * plain.normalizer.std[..., None] + plain.normalizer.mean[..., None]  # noqa: E731
    for index in range(len(reference)):
        (x0, sed0, doa0), (x1, sed1, doa1) = reference[index], augmented[index]
        torch.testing.assert_close(sed1, sed0)
        active = sed0.bool()
        signs = tuple(int(torch.sign((doa1[:, 42 * a: 42 * (a + 1)] * doa0[:, 42 * a: 42 * (a + 1)])[active]).min())
                      for a in (1, 2))
        flips.add(signs)
        intensity_y, intensity_z = [8 + 1, 12 + 1], [8 + 2, 12 + 2]  # mic A, mic B
        for sign, channels in zip(signs, (intensity_y, intensity_z)):
            torch.testing.assert_close(raw(x1)[channels], sign * raw(x0)[channels], atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(x1[:8], x0[:8])  # magnitudes stay
    assert len(flips) > 1  # both plain and mirrored windows occur
