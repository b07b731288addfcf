"""STFT features for L3DAS21 (one implementation for training, testing and prediction) and their cache.

Features of a clip with ``N`` samples at 32 kHz (``T = ceil(N / 3200)`` label frames):

* the official framing of ``spectrum_fast`` (``scipy.signal.stft`` with its defaults
  ``boundary="zeros"``, ``padded=True``; Hamming window of 512, overlap 112 = hop 400): STFT frame
  ``j`` is centred on sample ``400·j`` (the first starts 256 samples before the clip, in zeros);
  the official function drops the last frame, leaving ``ceil(N / 400)``: 4800 frames for a 60 s
  clip, 8 per label frame. phnn keeps ``8·T`` frames (the waveform is zero-padded at the end when
  ``N`` is not a multiple of 3200), so exactly 8 STFT frames belong to label frame ``t``; the frames
  the official function computes are equal to its own, frame for frame;
* the DC bin is dropped → 256 frequency bins;
* per channel: magnitude as scipy scales it (``|X| / Σ window``), then ``magnitude_scale``:
  ``linear`` as published, ``div512`` divides it by 512 (the original PHNN code), ``log1p`` =
  ``log(1 + |X|)`` of the unscaled magnitude; with ``phase=True``, then the phase / π; with
  ``intensity=True``, then the normalised active intensity of each Ambisonic component against W,
  ``2·Re(W̄·C) / (|W|² + |Y|² + |Z|² + |X|²)`` for C in (W, Y, Z, X): for one plane wave this is its
  SN3D gain (1, sin az·cos el, sin el, cos az·cos el), i.e. the direction cosines with their signs.
  Magnitudes alone lose those signs (|X| is the same for a source in front and behind), so
  localisation needs phase or intensity channels; intensity gives the direction directly per bin
  (and stays within [-1, 1]), which a small network learns much faster than phase differences.
* channel order, as the official ``spectrum_fast`` on the stacked mics: every mic's magnitudes
  (A then B, each W, Y, Z, X), then every mic's phases, then every mic's intensities
  (``group_channels``): 4, 8, 12 or 16 ... channels; a PH layer with n = 4 on the 4 magnitudes
  of mic A sees W, Y, Z, X as its components 1, i, j, k.

Cache: ``<cache_dir>/<key>/<split>/<stem>_<mic>.npy`` float16 ``(channels_per_mic, 256, 8T)``,
plus ``<stem>.sed-v<TARGET_VERSION>.npy`` (uint8, ``(T, 42)``) and ``<stem>.doa-v<TARGET_VERSION>.npy``
(float16, ``(T, 126)``); the key hashes the feature settings and ``FORMAT_VERSION``; ``TARGET_VERSION``
changes when the label quantisation does, and the target names carry the ``label_grid``
(``<stem>.sed-official-v3.npy``), so targets of another grid or version are never read as current
ones. ``FORMAT_VERSION`` 2 is the official (centred) framing: caches of the older framing are rebuilt.
``<stem>.source.json``, written last, records each source file's identity (`source_identity`: size,
modification and change times, inode, and a hash of sampled blocks of its content) and the counted
warnings its labels gave (replayed whenever the cached clip is used, so every run counts them): a
clip whose sources changed (or whose record is missing) is rebuilt, with a log line naming what
changed. Every file is written to a temporary name in the same folder, flushed to the
disk (fsync) and renamed, so a killed run or a power loss leaves no half-written file under a final
name and the next run skips what is complete. Clips are processed one at a time: memory does not grow with their
number.

Normalisation: z-score per channel × frequency bin (statistics over all frames of the training
clips, float64 streaming sums over the cached float16 features).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from phnn import notices
from phnn.data.l3das21.audio import ClipAudio, load_clip  # noqa: F401 - load_clip re-exported here: the one feature path
from phnn.data.l3das21.labels import LabelGrid, check_label_grid, load_targets, num_label_frames
from phnn.data.l3das21.layout import (
    CHANNELS_PER_MIC,
    LABEL_FRAMES_PER_SECOND,
    SAMPLE_RATE,
    STFT_FRAMES_PER_LABEL_FRAME,
    Clip,
)
from phnn.errors import DataFileError
from phnn.io import save_npy_atomic, write_text_atomic

FORMAT_VERSION = 2  # 2: the official centred framing of scipy.signal.stft (1: frames starting at 400·j)
TARGET_VERSION = 3  # label quantisation of the cached targets (3: named label grids, see labels.py)
FREQ_BINS = 256
FLOAT16_MAX = 65504.0

# (scipy-scaled magnitude |X| / Σ window, Σ window) → feature
MAGNITUDE_SCALES: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "linear": lambda m, window_sum: m,
    "div512": lambda m, window_sum: m / 512.0,
    "log1p": lambda m, window_sum: torch.log1p(m * window_sum),
}


@dataclass(frozen=True)
class FeatureSettings:
    """What decides the feature values; its hash is the cache key."""

    phase: bool = False
    magnitude_scale: str = "linear"
    intensity: bool = False
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 512
    hop_length: int = 400

    def __post_init__(self) -> None:
        if self.magnitude_scale not in MAGNITUDE_SCALES:
            raise ValueError(f"magnitude_scale={self.magnitude_scale!r}: expected one of {sorted(MAGNITUDE_SCALES)}")
        label_hop = self.sample_rate // LABEL_FRAMES_PER_SECOND
        if self.hop_length * STFT_FRAMES_PER_LABEL_FRAME != label_hop or self.n_fft // 2 != FREQ_BINS:
            raise ValueError(
                f"FeatureSettings(sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}): "
                f"expected 8 hops per 100 ms label frame and 256 bins (32000 Hz, 512, 400)"
            )

    @property
    def kinds(self) -> tuple[str, ...]:
        """The feature groups of 4 channels (W, Y, Z, X) per mic, in channel order."""
        return ("magnitude",) + (("phase",) if self.phase else ()) + (("intensity",) if self.intensity else ())

    @property
    def channels_per_mic(self) -> int:
        return CHANNELS_PER_MIC * len(self.kinds)

    @property
    def max_sample(self) -> float | None:
        """Largest |sample| whose features surely fit the float16 cache: the scipy-scaled magnitude
        ``|X| / Σ window`` is at most the largest |sample|; None when the scale cannot overflow (log1p)."""
        scale = {"linear": 1.0, "div512": 512.0}.get(self.magnitude_scale)
        return None if scale is None else FLOAT16_MAX * scale

    def key(self) -> str:
        fields = asdict(self)
        if not self.intensity:  # keys of caches and checkpoints made before the intensity option stay valid
            del fields["intensity"]
        text = json.dumps({"format": FORMAT_VERSION, **fields}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


def num_stft_frames(num_samples: int, settings: FeatureSettings = FeatureSettings()) -> int:
    """STFT frames of a clip of ``num_samples`` samples: 8 per label frame."""
    return STFT_FRAMES_PER_LABEL_FRAME * num_label_frames(num_samples, settings.sample_rate)


def first_sample(frame: int, settings: FeatureSettings = FeatureSettings()) -> int:
    """The first sample of STFT frame ``frame``, centred on sample ``hop · frame`` (negative or past the
    clip: zeros, scipy's ``boundary="zeros"``)."""
    return frame * settings.hop_length - settings.n_fft // 2


def group_channels(per_mic: Sequence[np.ndarray | torch.Tensor], groups: int) -> np.ndarray | torch.Tensor:
    """Per-mic features ``[(groups·4, ...), ...]`` → the official order: group 0 of every mic, then group 1, …"""
    parts = [mic[g * CHANNELS_PER_MIC : (g + 1) * CHANNELS_PER_MIC] for g in range(groups) for mic in per_mic]
    return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else np.concatenate(parts)


def _intensity(real: torch.Tensor, imag: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    """Normalised active intensity ``2·Re(W̄·C) / Σ|C|²`` of one mic's (W, Y, Z, X) spectra."""
    cross = real[:1] * real + imag[:1] * imag  # Re(conj(W) · C)
    return 2.0 * cross / (power.sum(0, keepdim=True) + 1e-10)


def stft_frames(read: Callable[[int, int], torch.Tensor], start: int, stop: int,
                settings: FeatureSettings = FeatureSettings()) -> torch.Tensor:
    """Features of STFT frames ``start … stop - 1``: ``(C·len(settings.kinds), 256, stop - start)`` float32.

    ``read(a, b)`` returns the samples ``a … b - 1`` of the clip, ``(C, b - a)``, zeros outside it.
    The whole-clip features and any window of them are this one function on different frame ranges,
    so a window computed alone equals the same frames of the whole clip. Channels are taken in groups
    of 4 (one mic each, A first); the output is in the official order: every mic's magnitudes, then
    every mic's phases, then every mic's intensities (see the module docstring).
    """
    with torch.no_grad():
        wave = read(first_sample(start, settings), first_sample(stop - 1, settings) + settings.n_fft).float()
        channels = wave.shape[0]
        if channels % CHANNELS_PER_MIC:
            raise ValueError(f"stft_features: {channels} channels; expected 4 per mic (W, Y, Z, X)")
        window = torch.hamming_window(settings.n_fft, dtype=wave.dtype, device=wave.device)
        spec = torch.stft(wave, settings.n_fft, settings.hop_length, window=window, center=False,
                          return_complex=True)[:, 1:, :]
        window_sum = float(window.sum())
        real, imag = torch.view_as_real(spec).unbind(-1)
        power = real * real + imag * imag
        # |z| as sqrt(re² + im²): 4x faster than complex abs (hypot), same values for audio ranges
        magnitude = power.sqrt().div_(window_sum)
        groups = [MAGNITUDE_SCALES[settings.magnitude_scale](magnitude, window_sum)]
        if settings.phase:
            groups.append(spec.angle() / math.pi)
        if settings.intensity:
            mics = range(0, channels, CHANNELS_PER_MIC)
            groups.append(torch.cat([_intensity(real[m : m + 4], imag[m : m + 4], power[m : m + 4]) for m in mics]))
        return torch.cat(groups)


def _zero_padded(waveform: torch.Tensor) -> Callable[[int, int], torch.Tensor]:
    def read(a: int, b: int) -> torch.Tensor:
        samples = waveform.shape[-1]
        part = waveform[:, max(a, 0) : max(min(b, samples), 0)]
        return torch.nn.functional.pad(part, (max(-a, 0), b - a - part.shape[-1] - max(-a, 0)))
    return read


def stft_features(waveform: torch.Tensor, settings: FeatureSettings = FeatureSettings()) -> torch.Tensor:
    """``(C, N)`` waveform → ``(C·(1+phase), 256, 8·T)`` float32 features (see the module docstring)."""
    return stft_frames(_zero_padded(waveform), 0, num_stft_frames(waveform.shape[-1], settings), settings)


class ClipFeatures:
    """The features of one clip, computed only for the frames asked for: ``.shape`` and ``[..., a:b]``.

    What ``SoundEventDetector.clip_scores`` needs to stream a clip of any length window by window:
    slicing the last (STFT frame) axis reads, resamples and transforms only the audio those frames
    cover, and gives exactly the same numbers as slicing ``stft_features`` of the whole clip. Values
    pass through float16 like the training cache, then ``transform`` (the normalisation), if given.
    """

    def __init__(self, audio: ClipAudio, settings: FeatureSettings = FeatureSettings(),
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.audio, self.settings, self.transform = audio, settings, transform
        channels = settings.channels_per_mic * (audio.channels // CHANNELS_PER_MIC)
        self.shape = torch.Size((channels, FREQ_BINS, num_stft_frames(audio.num_samples, settings)))

    def dim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key: Any) -> torch.Tensor:
        """Only ``[..., a:b]`` (optionally with leading ``None``s): a range of STFT frames."""
        key = key if isinstance(key, tuple) else (key,)
        new_axes = 0
        while key and key[0] is None:
            key, new_axes = key[1:], new_axes + 1
        if key and key[0] is Ellipsis:
            key = key[1:]
        if len(key) != 1 or not isinstance(key[0], slice) or key[0].step not in (None, 1):
            raise TypeError(f"ClipFeatures supports [..., a:b] along the STFT frame axis only, got {key!r}")
        start, stop, _ = key[0].indices(self.shape[-1])
        features = stft_frames(self.audio.read, start, max(stop, start + 1), self.settings)[..., : max(stop - start, 0)]
        features = features.half().float()
        if self.transform is not None:
            features = self.transform(features)
        return features[(None,) * new_axes]


#: content sampled by `file_identity`: this many blocks of this many bytes, spread evenly over the file
IDENTITY_BLOCKS, IDENTITY_BLOCK_BYTES = 16, 4096


def file_identity(path: str | Path) -> list[int | str]:
    """``[size, mtime_ns, ctime_ns, inode, digest]`` of a file: the digest hashes its first and last
    block and ``IDENTITY_BLOCKS`` blocks spread between (the whole file when it is smaller than those).

    A file rewritten in place with the same size and its modification time set back still changes
    (its change time and, almost always, the sampled bytes); reading 64 KiB per file keeps the check
    cheap next to the 15 MB of a 60 s clip (bench/features.py measures it).
    """
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        stat = os.fstat(handle.fileno())
        size = stat.st_size
        if size <= IDENTITY_BLOCKS * IDENTITY_BLOCK_BYTES:
            digest.update(handle.read())
        else:
            step = (size - IDENTITY_BLOCK_BYTES) / (IDENTITY_BLOCKS - 1)
            for index in range(IDENTITY_BLOCKS):
                handle.seek(round(index * step))
                digest.update(handle.read(IDENTITY_BLOCK_BYTES))
    return [size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, digest.hexdigest()]


def source_identity(clip: Clip) -> dict[str, list[int | str]]:
    """File name → `file_identity` of a clip's wavs and label CSV."""
    files = [*clip.audio.values(), *([clip.labels] if clip.labels is not None else [])]
    return {Path(path).name: file_identity(path) for path in files}


def _describe_change(old: dict[str, list[int]], new: dict[str, list[int]]) -> str:
    changes = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        if before is None or after is None:
            changes.append(f"{name} {'added' if before is None else 'gone'}")
        elif before[0] != after[0]:
            changes.append(f"{name} changed size ({before[0]} → {after[0]} bytes)")
        elif len(before) < 5 or before[1] != after[1]:
            changes.append(f"{name} modified ({(after[1] - before[1]) / 1e9:+.3f} s)")
        else:
            changes.append(f"{name} rewritten (same size and modification time, other content or file)")
    return ", ".join(changes)


@dataclass
class BuildReport:
    """What ``FeatureCache.build`` did: clips rebuilt because a source changed, and bad clips."""

    rebuilt: dict[str, str] = field(default_factory=dict)  # stem → what changed
    bad: dict[str, str] = field(default_factory=dict)  # stem → one-line error naming the file


class FeatureCache:
    """Per-clip feature and target files under ``<cache_dir>/<settings key>/<split>/``.

    Each clip's files are vouched for by ``<stem>.source.json``, written last: the size and
    modification time of the wavs and label CSV they were computed from (or the error that made the
    clip bad). A clip whose record is missing (new, or its build was killed) or whose sources changed
    since is rebuilt, with one log line saying which file changed.
    """

    STATS_CHUNK = 1024  # STFT frames per step of the statistics pass (bounds its memory)

    def __init__(self, cache_dir: str | Path, settings: FeatureSettings = FeatureSettings(),
                 label_grid: LabelGrid = "official") -> None:
        check_label_grid(label_grid)
        self.settings = settings
        self.label_grid = label_grid
        self.folder = Path(cache_dir) / settings.key()

    def feature_path(self, split: str, stem: str, mic: str) -> Path:
        return self.folder / split / f"{stem}_{mic}.npy"

    def target_paths(self, split: str, stem: str) -> tuple[Path, Path]:
        folder = self.folder / split
        tag = f"{self.label_grid}-v{TARGET_VERSION}"
        return folder / f"{stem}.sed-{tag}.npy", folder / f"{stem}.doa-{tag}.npy"

    def record_path(self, split: str, stem: str) -> Path:
        return self.folder / split / f"{stem}.source.json"

    def _record(self, split: str, clip: Clip) -> dict[str, Any] | None:
        try:
            return json.loads(self.record_path(split, clip.stem).read_text())
        except (OSError, ValueError):
            return None

    def _paths(self, split: str, clip: Clip) -> list[Path]:
        paths = [self.feature_path(split, clip.stem, mic) for mic in clip.audio]
        return paths + (list(self.target_paths(split, clip.stem)) if clip.labels is not None else [])

    def is_complete(self, split: str, clip: Clip) -> bool:
        record = self._record(split, clip)
        return (record is not None and record.get("error") is None and record.get("sources") == source_identity(clip)
                and all(p.is_file() for p in self._paths(split, clip)))

    def build(self, split: str, clips: Iterable[Clip], progress: bool = True, workers: int | None = None,
              bad_clips: str = "error") -> BuildReport:
        """Compute what is missing or stale (a killed run resumes; finished, unchanged clips are skipped).

        A bad clip (unreadable, truncated or non-finite audio, mics of different lengths, labels that
        do not fit the clip) raises its one-line ValueError with ``bad_clips="error"``; with
        ``"skip"`` it is listed in the report's ``bad`` and the others are built. A bad clip is
        remembered with its sources' identity, so it is not read again until its files change.

        Clips are processed by `workers` threads (default: one per CPU core), each with one clip in
        memory at a time: reading, the STFT and writing release the GIL, so threads scale without
        the start-up cost of processes, and peak memory stays independent of the number of clips.
        """
        if bad_clips not in ("error", "skip"):
            raise ValueError(f"bad_clips={bad_clips!r}: expected 'error' (stop at the first bad clip) or 'skip'")
        report = BuildReport()
        todo = []
        for clip in clips:
            record, identity = self._record(split, clip), source_identity(clip)
            if record is not None and record.get("sources") == identity:
                if record.get("error") is not None:
                    report.bad[clip.stem] = record["error"]
                    continue
                if all(p.is_file() for p in self._paths(split, clip)):
                    notices.replay(record.get("warnings", []))
                    continue
            elif record is not None:
                report.rebuilt[clip.stem] = _describe_change(record.get("sources", {}), identity)
            elif any(p.is_file() for p in self._paths(split, clip)):
                report.rebuilt[clip.stem] = "no record of the source files (an interrupted build, or an older phnn)"
            todo.append(clip)
        write_text_atomic(self.folder / "settings.json", json.dumps(asdict(self.settings), indent=2))
        for stem, change in report.rebuilt.items():
            _log(f"L3DAS21 feature cache: {change}; rebuilding {split}/{stem}")
        if todo:
            self._build_all(split, todo, progress, workers, report)
        if report.bad and bad_clips == "error":
            raise DataFileError(next(iter(report.bad.values())))
        return report

    def _build_all(self, split: str, todo: list[Clip], progress: bool, workers: int | None,
                   report: BuildReport) -> None:
        workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
        bar = _progress(len(todo), f"L3DAS21 {split} features", progress)
        threads = torch.get_num_threads()
        # One clip's STFT is memory-bound: extra OpenMP threads per clip only spin against other work
        # (measured 15x slower with 2 threads on a busy 2-core machine); parallelism is across clips.
        torch.set_num_threads(1)
        remaining = iter(todo)
        try:
            # at most `workers` clips in hand: a failure or Ctrl-C stops after those, starting no more
            with ThreadPoolExecutor(workers) as pool:
                running = {pool.submit(self._build_clip, split, clip) for clip in islice(remaining, workers)}
                while running:
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        stem, error = future.result()
                        if error is not None:
                            report.bad[stem] = error
                        bar.update(1)
                        running |= {pool.submit(self._build_clip, split, clip) for clip in islice(remaining, 1)}
        finally:
            torch.set_num_threads(threads)
            bar.close()

    def _build_clip(self, split: str, clip: Clip) -> tuple[str, str | None]:
        """Build every file of one clip, its source record last; ``(stem, error)`` for a bad clip."""
        identity = source_identity(clip)  # before reading: a file changed meanwhile is rebuilt next time
        record = self.record_path(split, clip.stem)
        record.unlink(missing_ok=True)  # the files below are not vouched for until the new record exists
        try:
            audio = ClipAudio([clip.audio[mic] for mic in clip.audio], CHANNELS_PER_MIC, self.settings.sample_rate,
                              resample=False, max_abs=self.settings.max_sample)
            wave = audio.load()
            arrays = {mic: stft_features(wave[i * CHANNELS_PER_MIC : (i + 1) * CHANNELS_PER_MIC], self.settings)
                      for i, mic in enumerate(clip.audio)}
            del wave
            samples, rate = audio.num_samples, self.settings.sample_rate
            with notices.capture() as said:
                targets = load_targets(clip.labels, num_label_frames(samples, rate), self.label_grid, samples / rate) \
                    if clip.labels is not None else None
        except ValueError as error:
            write_text_atomic(record, json.dumps({"sources": identity, "error": str(error)}))
            return clip.stem, str(error)
        for mic, features in arrays.items():
            save_npy_atomic(self.feature_path(split, clip.stem, mic), features.half().numpy(), sync=True)
        if targets is not None:
            sed_path, doa_path = self.target_paths(split, clip.stem)
            save_npy_atomic(doa_path, targets[1].astype(np.float16), sync=True)
            save_npy_atomic(sed_path, targets[0].astype(np.uint8), sync=True)
        write_text_atomic(record, json.dumps({"sources": identity, "error": None, "warnings": said}), sync=True)
        return clip.stem, None

    def num_frames(self, split: str, stem: str, mic: str = "A") -> int:
        """Label frames of a cached clip, read from the ``.npy`` header only."""
        array = np.load(self.feature_path(split, stem, mic), mmap_mode="r")
        return array.shape[-1] // STFT_FRAMES_PER_LABEL_FRAME

    def compute_stats(self, split: str, clips: Sequence[Clip]) -> Normalizer:
        """z-score statistics per channel × bin over every frame of ``clips`` (float64 streaming sums)."""
        total = total_sq = None
        count = 0
        for clip in clips:
            arrays = [np.load(self.feature_path(split, clip.stem, mic), mmap_mode="r") for mic in clip.audio]
            frames = arrays[0].shape[-1]
            for start in range(0, frames, self.STATS_CHUNK):
                chunk = group_channels([a[..., start : start + self.STATS_CHUNK] for a in arrays],
                                       len(self.settings.kinds)).astype(np.float64)
                sums, sums_sq = chunk.sum(axis=-1), np.square(chunk).sum(axis=-1)
                total = sums if total is None else total + sums
                total_sq = sums_sq if total_sq is None else total_sq + sums_sq
            count += frames
        if total is None or total_sq is None:
            raise ValueError("compute_stats: no training clips to compute normalisation statistics from")
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
        return Normalizer(torch.from_numpy(mean).float(), torch.from_numpy(std).float())


class Normalizer:
    """Per channel × bin z-score; shared by reference between the DataModule and its datasets, so that
    statistics restored from a checkpoint (after ``setup``) reach the datasets already built."""

    EPS = 1e-5

    def __init__(self, mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> None:
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        if mean is not None and std is not None:
            self.set(mean, std)

    @property
    def ready(self) -> bool:
        return self.mean is not None

    def set(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        if mean.ndim != 2 or mean.shape[1] != FREQ_BINS or std.shape != mean.shape:
            raise ValueError(
                f"normalisation statistics of shape {tuple(mean.shape)}/{tuple(std.shape)}: "
                f"expected (channels, {FREQ_BINS}) for both mean and std"
            )
        self.mean, self.std = mean, std.clamp_min(self.EPS)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        """Normalise ``(C, 256, T)`` or ``(B, C, 256, T)`` features."""
        if self.mean is None or self.std is None:
            raise RuntimeError(
                "L3DAS21 normalisation statistics are not set: they come from the training split (fit) or "
                "from the checkpoint (pass --ckpt_path to test/predict)"
            )
        if features.shape[-3] != self.mean.shape[0]:
            raise ValueError(
                f"features with {features.shape[-3]} channels, but the normalisation statistics have "
                f"{self.mean.shape[0]} (the model was trained on another mics/phase setting)"
            )
        return (features - self.mean[..., None]) / self.std[..., None]

    def to_dict(self) -> dict[str, list]:
        if self.mean is None or self.std is None:
            return {}
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    def save(self, path: Path) -> None:
        write_text_atomic(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: Path) -> Normalizer:
        data = json.loads(path.read_text())
        return cls(torch.tensor(data["mean"]), torch.tensor(data["std"]))


def _log(message: str) -> None:
    from lightning.pytorch.utilities import rank_zero_info

    rank_zero_info(message)


def _progress(total: int, description: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="clip", disable=not enabled)
