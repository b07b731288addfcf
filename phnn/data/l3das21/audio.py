"""Reading clips safely: every sample checked, every length consistent, any sample rate in bounded memory.

A wav file is opened as an ``AudioFile``, which refuses, with a ``DataFileError`` (a ValueError) of
one line naming the file, the value and the fix:

* a file libsndfile cannot read, or with another channel count than expected;
* a truncated file: the WAV header declares more sample data than the file holds (libsndfile would
  silently read the shorter clip);
* a clip of 0 samples;
* non-finite samples (NaN, ±inf), or samples beyond ``max_abs`` (the range the float16 feature cache
  can hold, see ``FeatureSettings.max_sample``), found by ``check_samples`` as the audio is read.

A ``ClipAudio`` is the mic files of one clip (A, or A and B): same sample rate, same length, read
as one ``(channels, samples)`` float32 array at 32 kHz, whole or any sample range (zeros outside
the clip), so the features of a long clip can be computed window by window.

Resampling (`Resampler`): a polyphase windowed-sinc FIR for the exact ratio ``new/orig`` reduced by
their gcd (up to 32000/orig up, orig down for a rate sharing no factor with 32 kHz, e.g. 16001 Hz).
Only the ``up × taps`` polyphase table is stored (at most 61 taps per phase, a few MB), and output
is produced in blocks of ``BLOCK`` samples, so memory is bounded by the input read, the output and
one block, whatever the rate — unlike a dense kernel per output phase (torchaudio's ``resample``
needs gigabytes for 16001 Hz). The filter is scipy's ``resample_poly`` default (Kaiser β = 5,
half-length 10 · max(up, down) samples at the upsampled rate, cut-off at the lower Nyquist
frequency; each phase scaled to unit DC gain). Accuracy, measured and tested: a tone up to 0.4 ×
the lower of the two rates (80% of the lower Nyquist frequency) comes out within 4e-3 of full scale
of the exact 32 kHz tone, for any rate from 8 to 96 kHz; above that it is attenuated (-6 dB at the
lower Nyquist frequency), as with scipy. Output sample ``m`` only
depends on input samples ``(m·down ± half)/up``, so any output range is exactly the same numbers as
the same range of the whole-clip output.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile
import torch

from phnn.errors import DataFileError

READ_BLOCK = 1 << 16  # samples per read when a file is scanned


def _riff_data_shortfall(path: Path) -> tuple[int, int] | None:
    """``(declared, present)`` bytes of the ``data`` chunk of a RIFF/WAVE file when it is truncated,
    else None (also for non-WAV files and sizes left open by streaming writers)."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= size:
            handle.seek(offset)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):  # unknown length (streamed or RF64): nothing to compare
                    return None
                present = size - offset - 8
                return (chunk_size, present) if present < chunk_size else None
            offset += 8 + chunk_size + (chunk_size & 1)
    return None


def check_samples(block: np.ndarray, path: str | Path, first_sample: int, sample_rate: int,
                  max_abs: float | None = None) -> None:
    """Raise a ValueError naming the file, the first bad sample and the fix, for non-finite samples or
    samples beyond ``max_abs``; ``block`` is ``(channels, samples)`` starting at ``first_sample``."""
    finite = np.isfinite(block)
    if not finite.all():
        channel, index = (int(i[0]) for i in np.nonzero(~finite))
        sample = first_sample + index
        raise DataFileError(
            f"{path}: sample {sample} (t = {sample / sample_rate:.3f} s) of channel {channel} is "
            f"{block[channel, index]}; audio must be finite: repair or re-export the file, or leave it out")
    if max_abs is not None and block.size:
        peak = float(np.abs(block).max())
        if peak > max_abs:
            channel, index = (int(i[0]) for i in np.nonzero(np.abs(block) == peak))
            sample = first_sample + index
            raise DataFileError(
                f"{path}: sample {sample} (t = {sample / sample_rate:.3f} s) of channel {channel} is "
                f"{block[channel, index]:g}, beyond ±{max_abs:g}, where the float16 feature cache overflows; "
                f"scale the audio to [-1, 1] (or use data.magnitude_scale: log1p)")


class AudioFile:
    """One audio file, its header checked: ``channels``, ``frames``, ``sample_rate``; ``read`` any range."""

    def __init__(self, path: str | Path, expected_channels: int | None = None) -> None:
        self.path = Path(path)
        try:
            info = soundfile.info(str(self.path))
        except (RuntimeError, OSError, soundfile.LibsndfileError) as error:
            raise DataFileError(f"{self.path}: cannot read audio ({error})") from None
        self.channels, self.frames, self.sample_rate = int(info.channels), int(info.frames), int(info.samplerate)
        if expected_channels is not None and self.channels != expected_channels:
            raise DataFileError(f"{self.path}: {self.channels} channel(s), expected {expected_channels} "
                             f"(first-order Ambisonics per mic)")
        shortfall = _riff_data_shortfall(self.path)
        if shortfall is not None:
            declared, present = shortfall
            raise DataFileError(
                f"{self.path}: truncated: its header declares {declared} bytes of samples but the file holds "
                f"{present} ({present / max(declared, 1):.1%}); copy or download the file again")
        if self.frames == 0:
            raise DataFileError(f"{self.path}: the clip has 0 samples; a clip needs at least one sample")

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start … stop - 1`` as ``(channels, stop - start)`` float32, zeros outside the file."""
        out = np.zeros((self.channels, max(stop - start, 0)), dtype=np.float32)
        first, last = max(start, 0), min(stop, self.frames)
        if last > first:
            try:
                with soundfile.SoundFile(str(self.path)) as handle:
                    handle.seek(first)
                    data = handle.read(last - first, dtype="float32", always_2d=True)
            except (RuntimeError, OSError, soundfile.LibsndfileError) as error:
                raise DataFileError(f"{self.path}: cannot read audio ({error})") from None
            if data.shape[0] != last - first:
                raise DataFileError(f"{self.path}: truncated: read {first + data.shape[0]} of the "
                                    f"{self.frames} samples "
                                 f"its header declares; copy or download the file again")
            out[:, first - start : last - start] = data.T
        return out

    def scan(self, max_abs: float | None = None) -> None:
        """Read the whole file block by block (bounded memory) and ``check_samples`` every block."""
        for start in range(0, self.frames, READ_BLOCK):
            check_samples(self.read(start, min(start + READ_BLOCK, self.frames)), self.path, start,
                          self.sample_rate, max_abs)


@lru_cache(maxsize=8)
def _polyphase_table(up: int, down: int) -> tuple[np.ndarray, int]:
    """``(up, taps)`` float32 table of the resampling filter and its half-length (see the module docstring).

    Phase ``r`` holds ``h(r - half + k·up)`` for ``k = 0 … taps - 1``; ``h`` is the Kaiser-windowed
    sinc with cut-off ``1/max(up, down)`` of the upsampled Nyquist rate, each phase scaled to a DC
    gain of exactly 1 (a constant signal stays constant).
    """
    half = 10 * max(up, down)
    taps = math.ceil((2 * half + 1) / up)
    cutoff = 1.0 / max(up, down)
    beta = 5.0
    table = np.empty((up, taps), dtype=np.float32)
    for low in range(0, up, 4096):  # rows in blocks: the float64 temporaries stay small for any rate
        r = np.arange(low, min(low + 4096, up))[:, None]
        t = (r - half + np.arange(taps)[None, :] * up).astype(np.float64)
        inside = np.abs(t) <= half
        window = np.i0(beta * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, None))) / np.i0(beta)
        rows = np.where(inside, cutoff * np.sinc(cutoff * t) * window, 0.0)
        table[low : low + len(r)] = rows / rows.sum(axis=1, keepdims=True)  # unit DC gain in every phase
    return table, half


class Resampler:
    """Resample from ``orig`` to ``new`` Hz, whole or any output range (see the module docstring)."""

    BLOCK = 8192  # output samples per step: bounds the (block × taps) gather temporaries

    def __init__(self, orig: int, new: int) -> None:
        if orig <= 0 or new <= 0:
            raise ValueError(f"Resampler({orig}, {new}): sample rates must be positive")
        g = math.gcd(orig, new)
        self.orig, self.new, self.up, self.down = orig, new, new // g, orig // g
        self.table, self.half = _polyphase_table(self.up, self.down)

    def output_length(self, input_length: int) -> int:
        return math.ceil(input_length * self.up / self.down)

    def input_range(self, start: int, stop: int) -> tuple[int, int]:
        """Input samples that outputs ``start … stop - 1`` depend on."""
        taps = self.table.shape[1]
        first = (start * self.down + self.half) // self.up - taps + 1
        return first, ((stop - 1) * self.down + self.half) // self.up + 1

    def __call__(self, samples: np.ndarray | torch.Tensor, offset: int, start: int, stop: int) -> torch.Tensor:
        """Outputs ``start … stop - 1`` from ``samples``: ``(channels, n)``, the input samples from
        ``offset`` on; input samples outside them count as zeros."""
        x = np.asarray(samples, dtype=np.float32)
        need_first, need_stop = self.input_range(start, stop)
        before, after = max(offset - need_first, 0), max(need_stop - offset - x.shape[-1], 0)
        if before or after:
            x, offset = np.pad(x, ((0, 0), (before, after))), offset - before
        taps = self.table.shape[1]
        out = np.empty((x.shape[0], max(stop - start, 0)), dtype=np.float32)
        # numpy, single-threaded: torch's gather and sum spin their OpenMP threads on a busy machine (4x slower)
        for low in range(start, stop, self.BLOCK):
            m = np.arange(low, min(low + self.BLOCK, stop), dtype=np.int64)
            position = m * self.down + self.half
            newest = position // self.up - offset  # index in `x` of the newest input sample used
            index = newest[:, None] - np.arange(taps)[None, :]
            out[:, low - start : low - start + len(m)] = np.einsum("cbk,bk->cb", x[:, index],
                                                                   self.table[position % self.up])
        return torch.from_numpy(out)


class ClipAudio:
    """The mic files of one clip, checked together, read at ``sample_rate`` as one ``(channels, samples)`` array.

    ``resample=False`` (training data) makes another rate an error; otherwise it is resampled.
    ``max_abs`` bounds the samples (checked as they are read).
    """

    def __init__(self, paths: str | Path | Sequence[str | Path], expected_channels: int | None = 4,
                 sample_rate: int = 32000, resample: bool = True, max_abs: float | None = None) -> None:
        if isinstance(paths, (str, Path)):
            paths = [paths]
        if not paths:
            raise ValueError("load_clip: no audio file given")
        self.files = [AudioFile(p, expected_channels) for p in paths]
        first = self.files[0]
        for file in self.files[1:]:
            if file.sample_rate != first.sample_rate:
                raise DataFileError(f"{file.path}: sample rate {file.sample_rate} Hz differs from {first.path} "
                                 f"({first.sample_rate} Hz)")
            if file.frames != first.frames:
                raise DataFileError(f"{file.path}: {file.frames} samples, but {first.path} has {first.frames}; "
                                 f"the mic files of one clip must have the same length")
        if first.sample_rate != sample_rate and not resample:
            raise DataFileError(f"{first.path}: sample rate {first.sample_rate} Hz, expected {sample_rate} Hz")
        self.original_rate, self.sample_rate, self.max_abs = first.sample_rate, sample_rate, max_abs
        self.resampler = Resampler(first.sample_rate, sample_rate) if first.sample_rate != sample_rate else None
        self.channels = sum(f.channels for f in self.files)
        self.num_samples = self.resampler.output_length(first.frames) if self.resampler else first.frames

    @property
    def paths(self) -> list[Path]:
        return [f.path for f in self.files]

    def _read_original(self, start: int, stop: int) -> np.ndarray:
        parts = []
        for file in self.files:
            block = file.read(start, stop)
            check_samples(block, file.path, start, file.sample_rate, self.max_abs)
            parts.append(block)
        return np.concatenate(parts)

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Samples ``start … stop - 1`` at ``sample_rate`` as ``(channels, stop - start)``, zeros outside the clip."""
        if self.resampler is None:
            return torch.from_numpy(self._read_original(start, stop))
        first, last = max(start, 0), min(stop, self.num_samples)
        out = torch.zeros(self.channels, max(stop - start, 0))
        step = Resampler.BLOCK * 16  # output samples per read: input held is about one such stretch
        for low in range(first, last, step):
            high = min(low + step, last)
            a, b = self.resampler.input_range(low, high)
            out[:, low - start : high - start] = self.resampler(self._read_original(a, b), a, low, high)
        return out

    def scan(self) -> None:
        """Check every sample of every file (bounded memory), before a clip is processed window by window."""
        for file in self.files:
            file.scan(self.max_abs)

    def load(self) -> torch.Tensor:
        return self.read(0, self.num_samples)


def load_clip(paths: str | Path | Sequence[str | Path], expected_channels: int = 4, sample_rate: int = 32000,
              resample: bool = True, max_abs: float | None = None) -> tuple[torch.Tensor, int]:
    """Read one clip (one file per mic, channels concatenated in order) as ``(C, N)`` float32 at
    ``sample_rate``, every check above applied; returns the waveform and the files' original rate."""
    clip = ClipAudio(paths, expected_channels, sample_rate, resample, max_abs)
    return clip.load(), clip.original_rate
