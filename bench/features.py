"""Feature extraction benchmark: phnn's cached STFT features vs the published L3DAS21 pipeline.

    python bench/features.py            # 32 and 8 clips of 60 s (4 channels, 32 kHz), about 2-4 minutes
    python bench/features.py --quick    # smoke test: 4 and 2 clips of 10 s

Both pipelines run on the same synthetic clips (``phnn synth``), each configuration in its own
subprocess so that its peak RSS (``VmHWM``) is its own:

* phnn: ``FeatureCache.build`` — soundfile read, torch STFT, float16 memmap per clip written
  atomically (and the label targets), one clip at a time.
* published: the original preprocessing: ``librosa.load(sr=32000, mono=False)``,
  ``scipy.signal.stft`` (Hamming 512, overlap 112) per clip, magnitude without DC and last frame,
  every clip kept in one list, pickled at the end. librosa comes with the ``bench`` extra
  (``make bench`` installs it); its one-time start-up (lazy imports, JIT) is done before the clock.

Targets (issue 4): throughput ≥ 10× the published pipeline; phnn's peak RSS for 32 clips within 10%
of that for 8 clips.

It also times the check every run makes of a complete cache, per clip (``source_identity``: size,
times, inode and a hash of 16 sampled 4 KiB blocks of each file), against a stat alone and against
hashing every byte, and as a share of computing the clip's features (files in the page cache; a
cold disk adds 16 reads per file).
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_phnn(root: Path, count: int, out: Path) -> None:
    """Extract the features of the first `count` mic-A train clips with phnn's FeatureCache into `out`."""
    from phnn.data.l3das21.features import FeatureCache
    from phnn.data.l3das21.layout import find_clips

    clips = find_clips(root, "train", mics="A")[:count]
    FeatureCache(out).build("train", clips, progress=False)


def run_published(root: Path, count: int, out: Path) -> None:
    """Extract the same features the way the published L3DAS21 code does (librosa load, scipy STFT)."""
    import librosa
    import numpy as np
    from scipy.signal import stft

    predictors = []
    for path in sorted((root / "L3DAS_Task2_train" / "data").glob("*_A.wav"))[:count]:
        samples, _ = librosa.load(str(path), sr=32000, mono=False)
        _, _, spectrum = stft(samples, window="hamming", nperseg=512, noverlap=112)
        predictors.append(np.abs(spectrum)[:, 1:, :-1])
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "task2_predictors_train.pkl", "wb") as handle:
        pickle.dump(predictors, handle, protocol=4)


PIPELINES = {"phnn": run_phnn, "published": run_published}
# Imported before the clock starts: start-up cost is not feature extraction (the published worker
# imports no torch, so its RSS is its own).
IMPORTS = {
    "phnn": ("phnn.data.l3das21.features", "phnn.data.l3das21.layout"),
    "published": ("numpy", "librosa", "scipy.signal"),
}


def warm_up(pipeline: str, root: Path) -> None:
    """First calls pay for lazy imports, JIT compilation and FFT plans: not feature extraction."""
    first = next((root / "L3DAS_Task2_train" / "data").glob("*_A.wav"))
    if pipeline == "published":
        import librosa

        librosa.load(str(first), sr=32000, mono=False)
    else:
        from phnn.data.l3das21.features import load_clip, stft_features

        stft_features(load_clip(first)[0])


def peak_rss_mb() -> float:
    """VmHWM of this process: unlike ru_maxrss it does not inherit the parent's peak across fork+exec."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(pipeline: str, root: Path, count: int, out: Path) -> None:
    """In a fresh process: import, warm up, time one pipeline on `count` clips, print seconds and peak RSS as JSON."""
    import importlib

    for module in IMPORTS[pipeline]:
        importlib.import_module(module)
    warm_up(pipeline, root)
    start = time.perf_counter()
    PIPELINES[pipeline](root, count, out)
    seconds = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb}))


def measure(pipeline: str, root: Path, count: int, scratch: Path) -> dict[str, float]:
    """Run one pipeline in its own worker process (so peak RSS is its own) and return its JSON result."""
    out = Path(tempfile.mkdtemp(dir=scratch, prefix=f"{pipeline}{count}-"))
    command = [sys.executable, __file__, "--worker", pipeline, "--root", str(root), "--count", str(count), "--out",
               str(out)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_identity(root: Path, count: int, extraction_seconds: float, repeats: int = 5) -> None:
    """Seconds per clip of the cache's source check, a stat alone, and a hash of every byte."""
    import hashlib
    import os

    from phnn.data.l3das21.features import source_identity
    from phnn.data.l3das21.layout import find_clips

    clips = find_clips(root, "train", mics="A")[:count]
    files = [path for clip in clips for path in [*clip.audio.values(), clip.labels] if path is not None]

    def full_hash() -> None:
        for path in files:
            hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()

    checks = {"stat (size, mtime)": lambda: [os.stat(path) for path in files],
              "source_identity (sampled)": lambda: [source_identity(clip) for clip in clips],
              "blake2b of every byte": full_hash}
    stat_seconds = None
    print(f"{'cache check':<28} {'ms/clip':>8} {'x stat':>8} {'% of extraction':>16}")
    for name, check in checks.items():
        check()  # warm: the files are in the page cache, as after synthesis
        start = time.perf_counter()
        for _ in range(repeats):
            check()
        per_clip = (time.perf_counter() - start) / repeats / len(clips)
        stat_seconds = stat_seconds or per_clip
        print(f"{name:<28} {per_clip * 1e3:>8.3f} {per_clip / stat_seconds:>8.1f} "
              f"{per_clip / (extraction_seconds / count):>15.3%}")


def main(argv: list[str] | None = None) -> int:
    """Synthesise clips, time both pipelines at two clip counts and print the comparison (--worker: run one)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 4 and 2 clips of 10 s")
    parser.add_argument("--clips", type=int, nargs=2, default=(32, 8), metavar=("MANY", "FEW"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--worker", choices=sorted(PIPELINES), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.root, args.count, args.out)
        return 0
    many, few = (4, 2) if args.quick else args.clips
    seconds = 10.0 if args.quick else args.seconds

    from phnn.data.l3das21.synth import synthesize

    with tempfile.TemporaryDirectory(prefix="phnn-bench-features-") as scratch:
        root = Path(scratch) / "data"
        start = time.perf_counter()
        synthesize(root, train_clips=many, dev_clips=0, duration=seconds, max_overlap=3, seed=0)
        print(f"synthesised {many} clips of {seconds:g} s in {time.perf_counter() - start:.1f} s")
        results = {(p, n): measure(p, root, n, Path(scratch)) for n in (few, many) for p in PIPELINES}
        measure_identity(root, many, results[("phnn", many)]["seconds"])
    print(f"{'pipeline':<10} {'clips':>5} {'seconds':>8} {'audio s/s':>10} {'peak RSS MB':>12}")
    for (pipeline, count), r in results.items():
        print(f"{pipeline:<10} {count:>5} {r['seconds']:>8.2f} {count * seconds / r['seconds']:>10.0f} "
              f"{r['peak_rss_mb']:>12.0f}")
    speedup = results[("published", many)]["seconds"] / results[("phnn", many)]["seconds"]
    growth = results[("phnn", many)]["peak_rss_mb"] / results[("phnn", few)]["peak_rss_mb"] - 1
    published_growth = results[("published", many)]["peak_rss_mb"] / results[("published", few)]["peak_rss_mb"] - 1
    print(f"throughput phnn / published ({many} clips): {speedup:.1f}x  (target >= 10x)")
    print(f"peak RSS {many} vs {few} clips: phnn {growth:+.1%} (target within 10%), published {published_growth:+.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
