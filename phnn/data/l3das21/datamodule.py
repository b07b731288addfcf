"""``L3DAS21DataModule``: L3DAS21 Task 2 (3D sound event detection) for Lightning.

Splits: train = ``L3DAS_Task2_train`` minus a seeded by-clip validation split (``val_fraction``);
test = ``L3DAS_Task2_dev``; predict = ``predict_path`` (one wav, a folder, a glob, or a clip stem).

Batches (fit / validate / test)::

    (features [B, C, 256, 8·T] float32, normalised,   sed [B, T, 42] float32)
    (features, sed, doa [B, T, 126] float32)            with return_doa=True

``C`` = ``in_channels`` = 4 per mic (A or A+B) × (1 + ``phase`` + ``intensity``), in the official
order (all mics' magnitudes, then their phases, then their intensities; each group W, Y, Z, X per mic,
A before B; see ``features.group_channels``). Training items are windows of ``segment_seconds`` (``T`` label
frames of 100 ms) taken every ``segment_seconds·(1 − segment_overlap)``; a clip shorter than a
window is zero-padded (features at the mean, no events).

Validation and test items are whole clips, one per batch (``predict_collate`` keeps the dict), which
the task scores exactly as ``predict`` does (same windows, same stitching, `clip_scores`)::

    {"stem": str, "features": CachedClipFeatures (lazy (C, 256, 8·T), normalised on slicing),
     "sed": (T, 42) float32, ["doa": (T, 126) float32 with return_doa,] "events": [(onset s, offset s,
     class index), ...] from the label CSV, "duration": seconds, "num_frames": T, "label_grid": str}

Under DDP each clip goes to exactly one rank (`UnrepeatedDistributedSampler`: no padding, so no
clip is scored twice).

Predict items, one clip per batch (``predict_collate`` keeps the dict)::

    {"stem": str, "paths": [str, ...], "features": ClipFeatures (C, 256, 8·T), normalised windows,
     "num_frames": T, "duration": seconds, "sample_rate": original Hz, "label_grid": str}
    {"stem": str, "paths": [str, ...], "error": "<file>: <what was wrong>"}    unreadable / invalid clip

Other sample rates are resampled to 32 kHz; a clip that fails the audio checks (``audio.py``: channel
count, truncation, 0 samples, non-finite samples, mics of different lengths) is an ``error`` item.

Training and test clips pass the same checks when their features are cached; a bad one stops the
run with its one-line error, or with ``bad_clips: skip`` is left out with a warning naming it.

Normalisation statistics (z-score per channel × frequency bin) come from the training split only;
``state_dict()`` holds them so that Lightning stores them in checkpoints. Lightning restores the
DataModule state *after* ``setup()`` (``trainer._run``: setup hook → ``_restore_modules_and_callbacks``
→ ``restore_datamodule`` → ``load_state_dict``), so the datasets share one ``Normalizer`` object that
``load_state_dict`` fills in place, and the test/predict loaders check for statistics only when
they are built (after the restore).
"""

from __future__ import annotations

import glob
import hashlib
import json
import random
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import soundfile
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from phnn.data.l3das21.audio import ClipAudio
from phnn.data.l3das21.augment import Axis, check_reflections, reflect
from phnn.data.l3das21.features import (
    ClipFeatures,
    FeatureCache,
    FeatureSettings,
    Normalizer,
    group_channels,
    source_identity,
)
from phnn.data.l3das21.labels import LabelGrid, read_events
from phnn.data.l3das21.layout import (
    CHANNELS_PER_MIC,
    CLASSES,
    LABEL_FRAMES_PER_SECOND,
    NUM_CLASSES,
    STFT_FRAMES_PER_LABEL_FRAME,
    Clip,
    find_clips,
    mic_set,
    parse_audio_name,
)
from phnn.data.listing import regular_files
from phnn.data.workers import resolve_num_workers

# Recorded in checkpoints: models of two mics with several feature kinds whose checkpoint records no channel
# order saw the channels per mic (A magnitude, A phase, B magnitude, B phase) and are refused.
CHANNEL_ORDER = "official"

# Which cached splits each Lightning stage reads (predict reads raw audio only).
_STAGE_SPLITS: dict[str | None, tuple[str, ...]] = {
    "fit": ("train",),
    "validate": ("train",),
    "test": ("dev",),
    "predict": (),
    None: ("train", "dev"),
}


class WindowDataset(Dataset):
    """Windows ``(clip, first label frame, length)`` read from the cached memmaps, normalised;
    shorter windows are zero-padded to ``window_frames``."""

    def __init__(self, cache: FeatureCache, split: str, clips: list[Clip], windows: list[tuple[int, int, int]],
                 window_frames: int, normalizer: Normalizer, return_doa: bool = False,
                 reflections: tuple[Axis, ...] = ()) -> None:
        self.cache, self.split, self.clips, self.windows = cache, split, clips, windows
        self.reflections = reflections
        self.window_frames, self.normalizer, self.return_doa = window_frames, normalizer, return_doa
        self._arrays: dict[int, tuple[list[np.ndarray], np.ndarray, np.ndarray]] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Worker processes reopen the memmaps: pickling an np.memmap would copy its data.
        return {**self.__dict__, "_arrays": {}}

    def __len__(self) -> int:
        return len(self.windows)

    def _open(self, clip_index: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        if clip_index not in self._arrays:
            clip = self.clips[clip_index]
            features = [np.load(self.cache.feature_path(self.split, clip.stem, m), mmap_mode="r") for m in clip.audio]
            sed_path, doa_path = self.cache.target_paths(self.split, clip.stem)
            self._arrays[clip_index] = (features, np.load(sed_path, mmap_mode="r"), np.load(doa_path, mmap_mode="r"))
        return self._arrays[clip_index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        clip_index, start, length = self.windows[index]
        features, sed, doa = self._open(clip_index)
        stft = slice(start * STFT_FRAMES_PER_LABEL_FRAME, (start + length) * STFT_FRAMES_PER_LABEL_FRAME)
        groups = len(self.cache.settings.kinds)
        x = torch.from_numpy(group_channels([f[:, :, stft] for f in features], groups).astype(np.float32))
        targets = [torch.from_numpy(sed[start : start + length].astype(np.float32))]
        if self.return_doa:
            targets.append(torch.from_numpy(doa[start : start + length].astype(np.float32)))
        for axis in self.reflections:  # before normalising: the statistics belong to the unreflected features
            if torch.rand(()) < 0.5:
                reflect(x, targets[1] if self.return_doa else None, axis, self.cache.settings.kinds, len(features))
        x = self.normalizer(x)
        pad = self.window_frames - length
        if pad > 0:
            x = torch.nn.functional.pad(x, (0, pad * STFT_FRAMES_PER_LABEL_FRAME))
            targets = [torch.nn.functional.pad(t, (0, 0, 0, pad)) for t in targets]
        return (x, *targets)


class CachedClipFeatures:
    """A cached clip's normalised features, read lazily: ``.shape`` and slicing ``[..., a:b]`` along the
    last (STFT frame) axis, which is all `SoundEventDetector.clip_scores` uses; memory: one window."""

    def __init__(self, paths: list[Path], normalizer: Normalizer, groups: int = 1) -> None:
        self.paths, self.normalizer, self.groups = paths, normalizer, groups  # groups: feature kinds per mic
        self._arrays: list[np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None}  # worker processes reopen the memmaps

    def _open(self) -> list[np.ndarray]:
        if self._arrays is None:
            self._arrays = [np.load(path, mmap_mode="r") for path in self.paths]
        return self._arrays

    @property
    def shape(self) -> tuple[int, int, int]:
        arrays = self._open()
        return (sum(a.shape[0] for a in arrays), *arrays[0].shape[1:])

    def __getitem__(self, key: Any) -> torch.Tensor:
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] is Ellipsis and isinstance(key[1], slice)):
            raise TypeError(f"CachedClipFeatures supports [..., a:b] along the frame axis only; got {key!r}")
        chunk = group_channels([a[..., key[1]] for a in self._open()], self.groups).astype(np.float32)
        return self.normalizer(torch.from_numpy(chunk))


class ClipDataset(Dataset):
    """Whole cached clips for validation and test (see the module docstring)."""

    def __init__(self, cache: FeatureCache, split: str, clips: list[Clip], normalizer: Normalizer,
                 return_doa: bool = False) -> None:
        self.cache, self.split, self.clips = cache, split, clips
        self.normalizer, self.return_doa = normalizer, return_doa

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = self.clips[index]
        sed_path, doa_path = self.cache.target_paths(self.split, clip.stem)
        sed = torch.from_numpy(np.load(sed_path).astype(np.float32))
        info = soundfile.info(str(next(iter(clip.audio.values()))))
        item = {"stem": clip.stem,
                "features": CachedClipFeatures([self.cache.feature_path(self.split, clip.stem, m) for m in clip.audio],
                                               self.normalizer, len(self.cache.settings.kinds)),
                "sed": sed, "num_frames": sed.shape[0], "duration": info.frames / info.samplerate,
                "events": [(e.start, e.end, e.class_index) for e in read_events(clip.labels)] if clip.labels else [],
                "label_grid": self.cache.label_grid}
        if self.return_doa:
            item["doa"] = torch.from_numpy(np.load(doa_path).astype(np.float32))
        return item


class PredictDataset(Dataset):
    """One clip per item: its files checked (every sample, streamed), its features a ``ClipFeatures``
    that reads, resamples and transforms only the window the model asks for, so memory does not grow
    with the clip's length."""

    def __init__(self, groups: list[tuple[str, list[Path], str | None]], settings: FeatureSettings,
                 normalizer: Normalizer, label_grid: LabelGrid = "official") -> None:
        self.groups, self.settings, self.normalizer, self.label_grid = groups, settings, normalizer, label_grid

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> dict[str, Any]:
        stem, paths, problem = self.groups[index]
        item: dict[str, Any] = {"stem": stem, "paths": [str(p) for p in paths]}
        if problem is not None:
            return {**item, "error": problem}
        try:
            audio = ClipAudio(paths, CHANNELS_PER_MIC, self.settings.sample_rate, resample=True,
                              max_abs=self.settings.max_sample)
            audio.scan()
        except ValueError as error:
            return {**item, "error": str(error)}
        # Windows pass through float16 like the training cache, so both paths see the same values.
        features = ClipFeatures(audio, self.settings, self.normalizer)
        return {
            **item,
            "features": features,
            "num_frames": features.shape[-1] // STFT_FRAMES_PER_LABEL_FRAME,
            "duration": audio.num_samples / self.settings.sample_rate,
            "sample_rate": audio.original_rate,
            "label_grid": self.label_grid,
        }


def predict_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Clip loaders (predict, validation, test) use batch_size 1: the batch is the clip's dict itself."""
    if len(items) != 1:
        raise ValueError(f"L3DAS21 clip batches hold one clip, got {len(items)}")
    return items[0]


def find_predict_groups(predict_path: str | Path, mics: str) -> list[tuple[str, list[Path], str | None]]:
    """``(stem, files, problem)`` per clip for a wav file, a folder, a glob or a clip stem.

    Files named like the official layout (``split<S>_ov<K>_<I>_<A|B>.wav``) use the clip stem
    (``split0_ov1_1``) in both modes. With ``mics="A"`` their ``_B.wav`` files are skipped (a folder
    of the official layout holds both mics) and every other wav is a clip of its own (stem = file
    stem, e.g. ``kitchen``). With ``mics="AB"`` files pair as ``<stem>_A.wav`` + ``<stem>_B.wav``
    (naming either file or the stem selects the pair); a file without its partner is reported as a
    problem, not dropped silently.
    """
    path = Path(predict_path)
    wanted = mic_set(mics)
    context = f"predict_path={str(predict_path)!r}"
    if path.is_dir():
        files = regular_files(sorted(p for p in path.iterdir() if p.suffix.lower() == ".wav"), context)
    elif path.is_file():
        files = [path]
    elif any(ch in str(predict_path) for ch in "*?["):
        files = regular_files(sorted(Path(p) for p in glob.glob(str(predict_path))), context)
    else:
        files = sorted(p for m in wanted for p in [path.with_name(f"{path.name}_{m}.wav")] if p.is_file())
    if not files:
        raise ValueError(f"predict_path={str(predict_path)!r}: no .wav file found "
                         "(expected a wav, a folder, a glob or a clip stem)")
    if wanted == ("A",):
        return _mic_a_groups(files, predict_path)
    pairs: dict[str, dict[str, Path]] = defaultdict(dict)
    groups = []
    for file in files:
        stem_mic = _stem_and_mic(file)
        if stem_mic is None:
            groups.append((file.stem, [file], f"{file}: mics='AB' needs files named <stem>_A.wav and <stem>_B.wav"))
            continue
        pairs[stem_mic[0]][stem_mic[1]] = file
    for stem, found in sorted(pairs.items()):
        folder = next(iter(found.values())).parent
        for mic in wanted:
            found.setdefault(mic, folder / f"{stem}_{mic}.wav")
        paths = [found[m] for m in wanted]
        missing = [p for p in paths if not p.is_file()]
        problem = (f"{missing[0]}: not found (mics='AB' needs both {paths[0].name} and {paths[1].name})"
                   if missing else None)
        groups.append((stem, paths, problem))
    return sorted(groups, key=lambda g: g[0])


def _mic_a_groups(files: list[Path], predict_path: str | Path) -> list[tuple[str, list[Path], str | None]]:
    """``mics="A"``: one clip per wav, official mic-B files skipped, official names as clip stems."""
    groups: dict[str, tuple[str, list[Path], str | None]] = {}
    for file in files:
        parsed = parse_audio_name(file.name)
        if parsed is not None and parsed[2] == "B":
            continue
        stem = parsed[0] if parsed is not None else file.stem
        if stem in groups:  # e.g. split0_ov1_1.wav next to split0_ov1_1_A.wav: one output name for two files
            first = groups[stem][1][0]
            groups[f"{stem} ({file.name})"] = (stem, [file],
                                               f"{file}: same output stem {stem!r} as {first}; rename one")
            continue
        groups[stem] = (stem, [file], None)
    if not groups:
        raise ValueError(f"predict_path={str(predict_path)!r}: only mic B files (<stem>_B.wav) found; mics='A' "
                         f"reads <stem>_A.wav (use mics='AB' for both)")
    return [groups[key] for key in sorted(groups)]


def _stem_and_mic(file: Path) -> tuple[str, str] | None:
    parsed = parse_audio_name(file.name)
    if parsed is not None:
        return parsed[0], parsed[2]
    stem, _, mic = file.stem.rpartition("_")
    return (stem, mic.upper()) if stem and mic.upper() in ("A", "B") else None


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class L3DAS21DataModule(pl.LightningDataModule):
    """L3DAS21 Task 2 SED data: cached STFT features, 100 ms slot targets, train-only statistics.

    Args:
        root: folder holding ``L3DAS_Task2_train`` / ``L3DAS_Task2_dev``.
        mics: ``A`` (mic A: 4 channels) or ``AB`` (mics A and B: 8 channels).
        phase: add the phase channels (4 per mic).
        intensity: add the normalised intensity channels (4 per mic: the signed direction cosines of
            the dominant sound per bin; what localisation needs, see ``features``).
        ov_subsets: which overlap subsets (1, 2, 3) to use.
        val_fraction: share of training clips held out for validation (seeded by ``seed``, by clip).
        segment_seconds: window length of the items, a positive whole number of seconds (evaluation
            windows must hold whole DCASE 1 s segments).
        segment_overlap: overlap of training windows, a fraction in [0, 1).
        seed: seed of the train/validation split of the clips.
        batch_size: windows per training batch.
        num_workers: DataLoader worker processes; null: one per CPU core, at most 4.
        cache_dir: feature cache (default ``<root>/.phnn_cache``).
        predict_path: wav file, folder, glob or clip stem for ``predict``.
        magnitude_scale: ``linear`` (published), ``div512`` or ``log1p``.
        label_grid: which label frames a sound covers: ``official`` (``csv_to_matrix_task2`` bit for bit,
            one frame ahead of ``round(t / 0.1)``; the default, as the targets models are scored on) or
            ``nearest`` (``round(t / 0.1)``); see ``labels.py``. Kept in the checkpoint.
        return_doa: add the DOA target ``(T, 126)`` as a third batch element.
        progress: show a progress bar while features are computed and cached.
        reflect: axes (``x``, ``y``, ``z``) to mirror training windows in, each with probability 1/2
            per window: the sign-carrying channels and the DOA targets flip together, an exact new
            scene for localisation (see ``augment``); needs intensity or phase features; no ``x`` with mics AB.
        bad_clips: a training/test clip that fails the audio or label checks stops the run
            (``error``) or is left out with a warning naming the file (``skip``).
    """

    def __init__(self, root: str | Path = "data/l3das21", mics: Literal["A", "AB"] = "A", phase: bool = False,
                 ov_subsets: tuple[int, ...] | list[int] = (1, 2, 3), val_fraction: float = 0.1, seed: int = 0,
                 segment_seconds: float = 5.0, segment_overlap: float = 0.5, batch_size: int = 16,
                 num_workers: int | None = 0, cache_dir: str | Path | None = None, predict_path: str | None = None,
                 magnitude_scale: Literal["linear", "div512", "log1p"] = "linear", return_doa: bool = False,
                 progress: bool = True, label_grid: LabelGrid = "official",
                 bad_clips: Literal["error", "skip"] = "error", intensity: bool = False,
                 reflect: list[Axis] | tuple[Axis, ...] = ()) -> None:
        super().__init__()
        self.save_hyperparameters()
        for name, value in self.hparams.items():  # paths as text: checkpoints stay loadable with weights_only
            if isinstance(value, Path):
                self.hparams[name] = str(value)
        self.mics = mic_set(mics)
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction={val_fraction}: expected 0 <= val_fraction < 1")
        if not 0.0 <= segment_overlap < 1.0:
            raise ValueError(f"segment_overlap={segment_overlap}: expected a fraction 0 <= overlap < 1")
        if not (segment_seconds > 0 and float(segment_seconds).is_integer()):
            raise ValueError(
                f"segment_seconds={segment_seconds}: expected a positive whole number of seconds (1, 2, 5, ...): "
                f"DCASE 1 s segments restart at each validation/test window, so windows must hold whole 1 s segments"
            )
        self.window_frames = round(segment_seconds * LABEL_FRAMES_PER_SECOND)
        if bad_clips not in ("error", "skip"):
            raise ValueError(f"bad_clips={bad_clips!r}: expected 'error' (stop at a bad clip) or 'skip' (leave it out "
                             f"with a warning)")
        self.bad_clips = bad_clips
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: expected >= 1")
        self.settings = FeatureSettings(phase=phase, magnitude_scale=magnitude_scale, intensity=intensity)
        self.reflections = check_reflections(list(reflect), self.mics, self.settings.kinds)
        self.root = Path(root)
        self.label_grid = label_grid
        self.cache = FeatureCache(Path(cache_dir) if cache_dir is not None else self.root / ".phnn_cache",
                                  self.settings, label_grid)
        self.ov_subsets = tuple(ov_subsets)
        self.val_fraction, self.seed, self.segment_overlap = val_fraction, seed, segment_overlap
        self.num_workers = resolve_num_workers(num_workers, "L3DAS21DataModule")
        self.batch_size, self.return_doa = batch_size, return_doa
        self.predict_path, self.progress = predict_path, progress
        self.num_classes = NUM_CLASSES
        self.in_channels = self.settings.channels_per_mic * len(self.mics)
        self.normalizer = Normalizer()
        self.train_clips: list[Clip] = []
        self.val_clips: list[Clip] = []
        self.test_clips: list[Clip] = []

    # -- preparation -----------------------------------------------------------------------------
    def _clips(self, split: str) -> list[Clip]:
        return find_clips(self.root, split, "".join(self.mics), self.ov_subsets)

    def _stage(self) -> str | None:
        trainer = self.trainer
        return trainer.state.fn.value if trainer is not None and trainer.state.fn is not None else None

    def prepare_data(self) -> None:
        """Build the feature cache of the splits this stage reads (rank 0 only; resumable)."""
        for split in _STAGE_SPLITS[self._stage()]:
            if split == "dev" and self._stage() is None and not (self.root / "L3DAS_Task2_dev").is_dir():
                continue
            self.cache.build(split, self._clips(split), progress=self.progress, bad_clips=self.bad_clips)

    def _usable_clips(self, split: str) -> list[Clip]:
        """The split's clips with their features cached; bad clips stop here or are skipped, each named."""
        clips = self._clips(split)
        report = self.cache.build(split, clips, progress=self.progress, bad_clips=self.bad_clips)
        for error in report.bad.values():
            rank_zero_warn(f"skipping a bad {split} clip (data.bad_clips=skip): {error}")
        usable = [clip for clip in clips if clip.stem not in report.bad]
        if not usable:
            raise ValueError(f"{self.root}: every {split} clip is bad ({len(report.bad)} skipped); see the warnings")
        return usable

    def split_train_val(self, clips: list[Clip]) -> tuple[list[Clip], list[Clip]]:
        """Seeded hold-out by clip: no window of a validation clip is ever trained on."""
        order = sorted(range(len(clips)), key=lambda i: clips[i].stem)
        random.Random(self.seed).shuffle(order)
        n_val = round(self.val_fraction * len(clips))
        if self.val_fraction > 0 and len(clips) >= 2:
            n_val = min(max(n_val, 1), len(clips) - 1)
        val = sorted(order[:n_val])
        return [c for i, c in enumerate(clips) if i not in set(val)], [clips[i] for i in val]

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", "validate", None):
            self.train_clips, self.val_clips = self.split_train_val(self._usable_clips("train"))
        if stage == "fit":
            self._ensure_stats()
        if stage in ("test", None) and (stage == "test" or (self.root / "L3DAS_Task2_dev").is_dir()):
            self.test_clips = self._usable_clips("dev")

    def _stats_path(self) -> Path:
        # the sources' identities too: statistics of a clip changed since are recomputed
        text = "\n".join(["".join(self.mics), *sorted(f"{c.stem} {json.dumps(source_identity(c), sort_keys=True)}"
                                                      for c in self.train_clips)])
        return self.cache.folder / f"stats-{hashlib.sha1(text.encode()).hexdigest()[:12]}.json"

    def _ensure_stats(self) -> None:
        """Training-split statistics, unless set already (e.g. from a checkpoint): cached as JSON."""
        if self.normalizer.ready:
            return
        if not self.train_clips:
            self.train_clips, self.val_clips = self.split_train_val(self._usable_clips("train"))
        path = self._stats_path()
        stats = Normalizer.load(path) if path.is_file() else self.cache.compute_stats("train", self.train_clips)
        if not path.is_file():
            stats.save(path)
        self.normalizer.set(stats.mean, stats.std)

    # -- windows and loaders --------------------------------------------------------------------
    def _windows(self, split: str, clips: list[Clip], stride: int) -> list[tuple[int, int, int]]:
        """Training windows ``(clip, start, length)`` every ``stride`` frames, the last one ending on the clip end."""
        windows = []
        size = self.window_frames
        for index, clip in enumerate(clips):
            frames = self.cache.num_frames(split, clip.stem, self.mics[0])
            starts = list(range(0, max(frames - size, 0) + 1, stride))
            if frames > size and starts[-1] != frames - size:
                starts.append(frames - size)
            windows += [(index, s, min(size, frames - s)) for s in starts]
        return windows

    def _loader(self, dataset: Dataset, **kwargs: Any) -> DataLoader:
        return DataLoader(dataset, num_workers=self.num_workers, persistent_workers=self.num_workers > 0, **kwargs)

    def train_dataloader(self) -> DataLoader:
        self._ensure_stats()
        stride = max(1, round(self.window_frames * (1 - self.segment_overlap)))
        windows = self._windows("train", self.train_clips, stride)
        dataset = WindowDataset(self.cache, "train", self.train_clips, windows, self.window_frames, self.normalizer,
                                self.return_doa, self.reflections)
        return self._loader(dataset, batch_size=self.batch_size, shuffle=True, drop_last=False)

    def _eval_loader(self, split: str, clips: list[Clip]) -> DataLoader | list:
        if not clips:
            return []
        self._ensure_stats()
        dataset = ClipDataset(self.cache, split, clips, self.normalizer, self.return_doa)
        # Lightning keeps a DistributedSampler it is given; its default one would pad the clip list
        # so that every rank gets as many, scoring some clips twice.
        sampler = UnrepeatedDistributedSampler(dataset, shuffle=False) if _distributed() else None
        return self._loader(dataset, batch_size=1, shuffle=False, sampler=sampler, collate_fn=predict_collate)

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader("train", self.val_clips)

    def test_dataloader(self) -> DataLoader | list:
        return self._eval_loader("dev", self.test_clips)

    def predict_dataloader(self) -> DataLoader:
        if self.predict_path is None:
            raise ValueError("L3DAS21DataModule: predict needs data.predict_path "
                             "(a wav file, a folder, a glob or a clip stem)")
        if not self.normalizer.ready:
            raise RuntimeError(
                "L3DAS21DataModule: no normalisation statistics for predict; pass the trained checkpoint "
                "(--ckpt_path), whose DataModule state holds the training-split statistics"
            )
        groups = find_predict_groups(self.predict_path, "".join(self.mics))
        dataset = PredictDataset(groups, self.settings, self.normalizer, self.label_grid)
        return self._loader(dataset, batch_size=1, shuffle=False, collate_fn=predict_collate)

    def describe_input(self) -> dict[str, Any]:
        """What a deployed model needs to build its input from audio (stored in checkpoints/exports)."""
        channels = [f"{mic}_{kind}_{acn}" for kind in self.settings.kinds for mic in self.mics
                    for acn in ("W", "Y", "Z", "X")]
        return {
            "kind": "l3das21_stft",
            "layout": "N, C, frequency bins (256, DC dropped), STFT frames (8 per 100 ms label frame)",
            "channels": channels,
            "features": asdict(self.settings),
            "window": "hamming",
            "label_frame_seconds": 1 / LABEL_FRAMES_PER_SECOND,
            "label_grid": self.label_grid,
            "classes": list(CLASSES),
            "outputs": "logits (sigmoid for scores) of shape (N, frames, classes × 3 slots)" + (
                "; a localising model (SELD) follows them with 3 × as many DOA outputs (tanh, metres / 2): "
                "x of every class slot, then y, then z" if self.return_doa else ""),
            "normalization": None if not self.normalizer.ready else {
                "mean": self.normalizer.mean.tolist(), "std": self.normalizer.std.tolist(),
                "formula": "(features - mean) / std per channel × frequency bin"},
        }

    # -- checkpoint state -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if not self.normalizer.ready:
            return {}
        return {
            "mean": self.normalizer.mean,
            "std": self.normalizer.std,
            "in_channels": self.in_channels,
            "feature_key": self.settings.key(),
            "mics": "".join(self.mics),
            "label_grid": self.label_grid,
            "channel_order": CHANNEL_ORDER,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        if state_dict.get("in_channels") != self.in_channels or state_dict.get("feature_key") != self.settings.key():
            raise ValueError(
                f"checkpoint statistics are for in_channels={state_dict.get('in_channels')} "
                f"(mics={state_dict.get('mics')!r}, feature key {state_dict.get('feature_key')}), but this DataModule "
                f"has in_channels={self.in_channels} (mics={''.join(self.mics)!r}, features "
                f"{list(self.settings.kinds)}, "
                f"magnitude_scale={self.settings.magnitude_scale!r}, key {self.settings.key()}); use the run's config"
            )
        if len(self.mics) > 1 and len(self.settings.kinds) > 1 and state_dict.get("channel_order") != CHANNEL_ORDER:
            raise ValueError(
                f"the checkpoint's model was trained with mics {state_dict.get('mics')!r} in the per-mic channel order "
                "(A magnitude, A phase, B magnitude, B phase) of checkpoints that record no channel order; "
                "features now come in the official order (all magnitudes, then all phases), "
                "which these weights do not expect: retrain the model")
        trained_grid = state_dict.get("label_grid", "nearest")  # checkpoints before label_grid used round(t / 0.1)
        if trained_grid != self.label_grid:
            raise ValueError(
                f"the checkpoint's model was trained on label_grid={trained_grid!r}, but this DataModule has "
                f"label_grid={self.label_grid!r}: its frames would sit one frame off; set --data.label_grid "
                f"{trained_grid} (or use the run's config)")
        self.normalizer.set(state_dict["mean"], state_dict["std"])
