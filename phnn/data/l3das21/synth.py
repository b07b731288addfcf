"""Synthetic L3DAS21 Task 2 scenes, written in exactly the official layout (for tests and the demo).

Per clip: events of the 14 classes, each rendered by its class recipe (harmonic voices, noise bands,
click trains, ring tones, chirps …) with per-event random parameters; placed at random positions
(|X| ≤ 2, |Y| ≤ 1.5, |Z| ≤ 1 m, at least 0.3 m away), encoded to first-order Ambisonics (ACN/SN3D:
W, Y, Z, X with gains 1, sin az·cos el, sin el, cos az·cos el) with a 1/r level; diffuse background
noise at a random SNR (6–30 dB by default); at most K sounds at once in an ``ov<K>`` clip (K cycles
through 1…max_overlap over the clips). Mic B (optional) sits 20 cm from A along +X and hears every
source from its own direction, distance and delay. Audio: 32 kHz, 16-bit WAV; labels: CSV
``File,Start,End,Class,X,Y,Z``. Every clip has its own random stream derived from (seed, split, index):
the same seed gives byte-identical files.

    phnn synth --out data/synth --train-clips 16 --dev-clips 8 --duration 10 --mic-b --seed 0
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from phnn.bounds import Bound
from phnn.data.l3das21.layout import CLASSES, SAMPLE_RATE, SPLIT_FOLDERS
from phnn.errors import UsageError
from phnn.io import write_bytes_atomic

SPEED_OF_SOUND = 343.0
MIC_B_OFFSET = np.array([0.2, 0.0, 0.0])
ROOM_HALF_SIZE = np.array([2.0, 1.5, 1.0])
MIN_DISTANCE = 0.3
SPLIT_IDS = {"train": 1, "dev": 0}

Recipe = Callable[[np.random.Generator, int, int], np.ndarray]


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _band_noise(rng: np.random.Generator, n: int, sr: int, low: float, high: float) -> np.ndarray:
    """White noise band-limited to [low, high] Hz (FFT mask: fast and exact)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.fft.irfft(spectrum, n)


def _am(t: np.ndarray, rate: float, depth: float, phase: float) -> np.ndarray:
    return 1.0 - depth * 0.5 * (1.0 + np.sin(2 * np.pi * rate * t + phase))


def _harmonic(f0: tuple[float, float], harmonics: int, vibrato: float, am_rate: tuple[float, float],
              am_depth: float, noise: float) -> Recipe:
    """A voiced, pitched sound: harmonics of a wobbling f0 with syllable-like amplitude modulation."""
    def render(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
        t = np.arange(n) / sr
        base = _u(rng, *f0)
        pitch = base * (1 + vibrato * np.sin(2 * np.pi * _u(rng, 3, 7) * t) + _u(rng, -0.1, 0.1) * t / max(t[-1], 1e-3))
        phase = 2 * np.pi * np.cumsum(pitch) / sr
        tilt = _u(rng, 0.6, 1.0)
        signal = sum(tilt**k / k * np.sin(k * phase) for k in range(1, harmonics + 1))
        signal = signal + noise * _band_noise(rng, n, sr, base, 8 * base)
        return signal * _am(t, _u(rng, *am_rate), am_depth, _u(rng, 0, 2 * np.pi))
    return render


def _noise(band: tuple[float, float], width: tuple[float, float], am_rate: tuple[float, float],
           am_depth: float) -> Recipe:
    """A noisy texture: a noise band with a jittered centre and width, slowly or quickly modulated."""
    def render(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
        centre, span = _u(rng, *band), _u(rng, *width)
        t = np.arange(n) / sr
        return _band_noise(rng, n, sr, max(20.0, centre - span / 2), centre + span / 2) * _am(
            t, _u(rng, *am_rate), am_depth, _u(rng, 0, 2 * np.pi)
        )
    return render


def _impulses(rate: tuple[float, float], decay_ms: tuple[float, float], band: tuple[float, float],
              partials: int, regular: bool) -> Recipe:
    """Trains of decaying hits (clicks, knocks, clinks): tonal partials in a band or a noise burst."""
    def render(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
        hits_per_s, decay = _u(rng, *rate), _u(rng, *decay_ms) / 1000
        length = min(n, int(6 * decay * sr) + 1)
        t = np.arange(length) / sr
        if partials:
            freqs = rng.uniform(*band, size=partials)
            grain = np.sin(2 * np.pi * freqs[:, None] * t).sum(axis=0)
        else:
            grain = _band_noise(rng, length, sr, *band)
        grain = grain * np.exp(-t / decay)
        out = np.zeros(n)
        step = sr / hits_per_s
        position = 0.0
        while position < n - 1:
            start = int(position)
            stop = min(n, start + length)
            out[start:stop] += grain[: stop - start] * _u(rng, 0.6, 1.0)
            position += step * (1.0 if regular else _u(rng, 0.4, 1.6))
        return out
    return render


def _ring(freq: tuple[float, float], on_s: tuple[float, float], off_s: tuple[float, float]) -> Recipe:
    """Telephone-like dual tone switched on and off."""
    def render(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
        t = np.arange(n) / sr
        f1 = _u(rng, *freq)
        tone = np.sin(2 * np.pi * f1 * t) + np.sin(2 * np.pi * f1 * _u(rng, 1.08, 1.2) * t)
        on, off = _u(rng, *on_s), _u(rng, *off_s)
        gate = (np.mod(t, on + off) < on).astype(float)
        gate[0] = 1.0
        return tone * gate
    return render


def _creak(f_start: tuple[float, float], f_end: tuple[float, float], thud_hz: tuple[float, float]) -> Recipe:
    """A sawtooth-ish chirp (a creaking hinge) ending in a low thud (door or drawer closing)."""
    def render(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
        t = np.arange(n) / sr
        freq = np.linspace(_u(rng, *f_start), _u(rng, *f_end), n)
        phase = 2 * np.pi * np.cumsum(freq) / sr
        creak = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 9 * t)))
        tail = max(1, n // 5)
        thud_t = np.arange(tail) / sr
        creak[-tail:] += 3 * np.sin(2 * np.pi * _u(rng, *thud_hz) * thud_t) * np.exp(-thud_t / 0.05)
        return creak
    return render


# Index = class index in CLASSES. Each entry renders one event; ranges give the per-event variation.
RECIPES: tuple[Recipe, ...] = (
    _impulses(rate=(3, 7), decay_ms=(30, 80), band=(2500, 6000), partials=4, regular=False),   # Chink_and_clink
    _impulses(rate=(8, 14), decay_ms=(3, 8), band=(1000, 4000), partials=0, regular=False),    # Computer_keyboard
    _creak(f_start=(250, 400), f_end=(450, 700), thud_hz=(60, 110)),                          # Cupboard
    _noise(band=(500, 1200), width=(400, 1000), am_rate=(0.5, 1.5), am_depth=0.5),             # Drawer
    _harmonic(f0=(180, 260), harmonics=8, vibrato=0.03, am_rate=(3, 5), am_depth=0.8, noise=0.05),   # Female speech
    _impulses(rate=(1.5, 3), decay_ms=(2, 5), band=(1500, 9000), partials=0, regular=True),    # Finger_snapping
    _impulses(rate=(20, 40), decay_ms=(10, 30), band=(4000, 9000), partials=3, regular=False), # Keys_jangling
    _impulses(rate=(3, 5), decay_ms=(20, 50), band=(80, 250), partials=2, regular=True),       # Knock
    _harmonic(f0=(280, 420), harmonics=5, vibrato=0.08, am_rate=(5, 8), am_depth=1.0, noise=0.4),    # Laughter
    _harmonic(f0=(90, 140), harmonics=12, vibrato=0.03, am_rate=(2.5, 4), am_depth=0.8, noise=0.05), # Male speech
    _noise(band=(1500, 2500), width=(300, 800), am_rate=(4, 8), am_depth=0.9),                 # Printer
    _impulses(rate=(1.5, 3), decay_ms=(40, 90), band=(3000, 7000), partials=0, regular=True),  # Scissors
    _ring(freq=(700, 1100), on_s=(0.15, 0.4), off_s=(0.1, 0.3)),                              # Telephone
    _noise(band=(2500, 4500), width=(1000, 3000), am_rate=(6, 12), am_depth=0.7),              # Writing
)
assert len(RECIPES) == len(CLASSES)


@dataclass(frozen=True)
class SynthEvent:
    """One synthetic sound event: onset and offset (s), class index and position (m)."""
    start: float
    end: float
    class_index: int
    position: np.ndarray


def _random_position(rng: np.random.Generator) -> np.ndarray:
    while True:
        position = rng.uniform(-ROOM_HALF_SIZE, ROOM_HALF_SIZE)
        if np.linalg.norm(position) >= MIN_DISTANCE:
            return position


def _schedule(rng: np.random.Generator, duration: float, overlap: int) -> list[SynthEvent]:
    """``overlap`` independent tracks of events separated by gaps: never more than ``overlap`` at once."""
    events = []
    for track in range(overlap):
        time = _u(rng, 0.0, 1.0 + 1.5 * track)
        while True:
            length = _u(rng, 0.5, 2.5)
            if time + 0.3 > duration:
                break
            end = min(time + length, duration)
            events.append(SynthEvent(round(time, 3), round(end, 3), int(rng.integers(len(CLASSES))),
                                     _random_position(rng)))
            time = end + (_u(rng, 0.3, 1.5) if track == 0 else _u(rng, 1.0, 4.0))
    return sorted(events, key=lambda e: (e.start, e.end, e.class_index))


def _foa_gains(relative: np.ndarray) -> tuple[np.ndarray, float]:
    """ACN/SN3D first-order gains (W, Y, Z, X) and distance of a source at ``relative`` metres."""
    x, y, z = relative
    distance = float(np.linalg.norm(relative))
    azimuth, elevation = np.arctan2(y, x), np.arctan2(z, np.hypot(x, y))
    gains = np.array([1.0, np.sin(azimuth) * np.cos(elevation), np.sin(elevation), np.cos(azimuth) * np.cos(elevation)])
    return gains, distance


def render_clip(rng: np.random.Generator, duration: float, overlap: int, mic_b: bool,
                snr_db: tuple[float, float], sample_rate: int = SAMPLE_RATE
                ) -> tuple[list[np.ndarray], list[SynthEvent]]:
    """One scene: the FOA signal per mic (``(samples, 4)`` float) and its events."""
    samples = int(round(duration * sample_rate))
    offsets = [np.zeros(3)] + ([MIC_B_OFFSET] if mic_b else [])
    mics = [np.zeros((4, samples)) for _ in offsets]
    events = _schedule(rng, duration, overlap)
    for event in events:
        first, last = int(round(event.start * sample_rate)), int(round(event.end * sample_rate))
        source = RECIPES[event.class_index](rng, last - first, sample_rate)
        source = source / (np.sqrt(np.mean(source**2)) + 1e-12) * 10 ** (_u(rng, -6, 0) / 20)
        for mic, offset in zip(mics, offsets):
            gains, distance = _foa_gains(event.position - offset)
            delay = int(round(distance / SPEED_OF_SOUND * sample_rate))
            stop = min(samples, last + delay)
            mic[:, first + delay : stop] += gains[:, None] * source[: stop - first - delay] / distance
    active = np.abs(mics[0][0]) > 0
    signal_power = float(np.mean(mics[0][0][active] ** 2)) if active.any() else 1e-4
    noise_rms = np.sqrt(signal_power / 10 ** (_u(rng, *snr_db) / 10))
    for mic in mics:
        mic += noise_rms * rng.standard_normal(mic.shape) * np.array([1.0, 0.58, 0.58, 0.58])[:, None]
    peak = max(float(np.abs(mic).max()) for mic in mics)
    scale = 0.9 / peak if peak > 0.9 else 1.0
    return [(mic * scale).T for mic in mics], events


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def _csv_bytes(stem: str, events: list[SynthEvent]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["File", "Start", "End", "Class", "X", "Y", "Z"])
    for e in events:
        writer.writerow([stem, f"{e.start:.3f}", f"{e.end:.3f}", CLASSES[e.class_index],
                         *(f"{v:.3f}" for v in e.position)])
    return buffer.getvalue().encode()


#: `phnn synth` options. A clip is rendered whole in memory (about 4 MB per second of clip with mic B,
#: measured), so its length is bounded by what memory allows: 5 minutes (1.2 GB), 5x a real L3DAS21 clip.
SYNTH_SECONDS = Bound("a clip length in seconds", 0.5, 300.0, low_open=True)
SYNTH_CLIPS = Bound("a number of clips", 0, 100_000, integer=True)
SEED = Bound("a random seed", 0, 2**63 - 1, integer=True)
SNR_DB = Bound("a signal-to-noise ratio in dB", 0.0, 120.0)


def synthesize(out: str | Path, train_clips: int = 8, dev_clips: int = 4, duration: float = 10.0,
               max_overlap: int = 3, mic_b: bool = False, seed: int = 0,
               snr_db: tuple[float, float] = (6.0, 30.0), progress: bool = False,
               overwrite: bool = False) -> list[Path]:
    """Write a synthetic dataset under ``out`` in the Task 2 layout; returns the written wav paths.

    A split folder that already holds files is a ``UsageError`` (nothing is written) unless
    ``overwrite``, which deletes ``L3DAS_Task2_train`` and ``L3DAS_Task2_dev`` under ``out`` first,
    so no clip of the old dataset is left among the new ones.
    """
    if not 1 <= max_overlap <= 3:
        raise ValueError(f"max_overlap={max_overlap}: expected 1, 2 or 3")
    SYNTH_SECONDS.check(duration, "--duration")
    SYNTH_CLIPS.check(train_clips, "--train-clips")
    SYNTH_CLIPS.check(dev_clips, "--dev-clips")
    SEED.check(seed, "--seed")
    for value in snr_db:
        SNR_DB.check(value, "--snr")
    if not snr_db[0] <= snr_db[1]:
        raise UsageError(f"--snr {snr_db[0]:g} {snr_db[1]:g}: expected LOW <= HIGH (dB)")
    folders = [Path(out) / SPLIT_FOLDERS[split] for split in ("train", "dev")]
    existing = [f for f in folders if f.is_dir() and any(f.iterdir())]
    if existing and not overwrite:
        files = sum(1 for f in existing for p in f.rglob("*") if p.is_file())
        raise UsageError(f"{existing[0]} already exists ({files} files under {', '.join(f.name for f in existing)}); "
                         "phnn synth does not write over a dataset: pass --overwrite to replace it, "
                         "or choose another --out")
    for folder in existing:
        shutil.rmtree(folder)
    created = [folder for folder in folders if not folder.exists()]
    try:
        return _write_splits(Path(out), train_clips, dev_clips, duration, max_overlap, mic_b, seed, snr_db, progress)
    except BaseException:
        for folder in created:  # a failed synth leaves no partial dataset that would block the next one
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _write_splits(out: Path, train_clips: int, dev_clips: int, duration: float, max_overlap: int, mic_b: bool,
                  seed: int, snr_db: tuple[float, float], progress: bool) -> list[Path]:
    """Render and write every clip and label file of both splits; returns the written wav paths."""
    written = []
    from tqdm.auto import tqdm

    bar = tqdm(total=train_clips + dev_clips, desc="synth", unit="clip", disable=not progress)
    for split, count in (("train", train_clips), ("dev", dev_clips)):
        folder = Path(out) / SPLIT_FOLDERS[split]
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "labels").mkdir(parents=True, exist_ok=True)
        for index in range(count):
            overlap = index % max_overlap + 1
            stem = f"split{SPLIT_IDS[split]}_ov{overlap}_{index // max_overlap + 1}"
            rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
            audio, events = render_clip(rng, duration, overlap, mic_b, snr_db)
            for mic, signal in zip("AB", audio):
                path = folder / "data" / f"{stem}_{mic}.wav"
                write_bytes_atomic(path, _wav_bytes(signal, SAMPLE_RATE))
                written.append(path)
            write_bytes_atomic(folder / "labels" / f"label_{stem}.csv", _csv_bytes(stem, events))
            bar.update(1)
    bar.close()
    return written


def main(argv: list[str] | None = None) -> int:
    """Write a synthetic L3DAS21 Task 2 dataset (offline)."""
    parser = argparse.ArgumentParser(prog="phnn synth", description="Write a synthetic L3DAS21 Task 2 dataset.")
    parser.add_argument("--out", required=True, type=Path,
                        help="dataset root (gets L3DAS_Task2_train/ and L3DAS_Task2_dev/)")
    parser.add_argument("--train-clips", type=int, default=8)
    parser.add_argument("--dev-clips", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per clip")
    parser.add_argument("--max-overlap", type=int, default=3, choices=(1, 2, 3))
    parser.add_argument("--mic-b", action="store_true", help="also write mic B (20 cm from A)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snr", type=float, nargs=2, default=(6.0, 30.0), metavar=("LOW", "HIGH"),
                        help="background noise SNR range in dB")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the L3DAS_Task2_train/dev folders already under --out (deleted first)")
    args = parser.parse_args(argv)
    written = synthesize(args.out, args.train_clips, args.dev_clips, args.duration, args.max_overlap,
                         args.mic_b, args.seed, tuple(args.snr), progress=True, overwrite=args.overwrite)
    print(f"wrote {len(written)} wav files under {args.out}")
    return 0
