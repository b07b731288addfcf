"""Memory benchmark: resampling any rate, and prediction on long clips, stay bounded.

    python bench/memory.py            # 60 s clips at 8 rates; prediction on 1- and 10-minute clips (3-6 minutes)
    python bench/memory.py --quick    # smoke test: 10 s clips at 3 rates; 10 s and 100 s clips

Every measurement runs in its own subprocess and reports its peak RSS (``VmHWM``) and its baseline
(the RSS after importing phnn, before the clip is touched); ratios compare total peaks measured in
the same run.

* Resampling: a 4-channel 16-bit wav of the same length at each rate, read with ``load_clip`` (the
  polyphase resampler of ``phnn.data.l3das21.audio``) and turned into features (``stft_features``).
  Target (issue 10): every rate from 8 to 96 kHz within 1.5x of the 32 kHz clip's peak.
  ``--torchaudio`` adds torchaudio's ``resample`` at 16001 Hz for comparison (it needs several GB:
  off by default).
* Prediction: a 4-channel 32 kHz clip through ``PredictDataset`` (audio checks, lazy ``ClipFeatures``)
  and ``SoundEventDetector.predict_clip`` (60 s windows, a small SEDnet), as ``phnn predict`` runs it;
  and, for reference, the whole-clip features a non-streaming prediction would hold. Target: the
  10-minute clip within 1.3x of the 1-minute clip's peak. (What still grows with the clip is glibc's
  heap, not phnn's data: with ``MALLOC_MMAP_THRESHOLD_=131072`` in the environment, which stops glibc
  from raising its mmap threshold after large frees, a 1- and a 5-minute clip peak at 1216 and 1223 MB.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from features import peak_rss_mb  # noqa: E402  (bench/features.py: VmHWM of this process)

RATES = (8000, 11025, 16001, 22050, 44100, 48000, 95999, 96000)
QUICK_RATES = (16001, 44100, 96000)


def write_clip(path: Path, rate: int, seconds: float, seed: int = 0) -> Path:
    """A 4-channel 16-bit noise clip, written in blocks (the bench itself stays small)."""
    import soundfile

    rng = np.random.default_rng(seed)
    total, block = int(rate * seconds), rate * 10
    with soundfile.SoundFile(str(path), "w", rate, 4, "PCM_16") as handle:
        for start in range(0, total, block):
            handle.write(rng.uniform(-0.3, 0.3, (min(block, total - start), 4)))
    return path


def work(kind: str, path: Path) -> dict[str, float]:
    """One measurement (in a subprocess): returns the baseline and peak RSS in MB."""
    import torch

    from phnn.data.l3das21.audio import load_clip
    from phnn.data.l3das21.datamodule import PredictDataset
    from phnn.data.l3das21.features import FeatureSettings, Normalizer, stft_features
    from phnn.models.sednet import SEDnetConfig
    from phnn.tasks.sed import SoundEventDetector

    torch.set_num_threads(1)
    task = SoundEventDetector(model=SEDnetConfig(widths=(16, 16, 32, 32), gru_hidden=32, gru_layers=1, fc_width=64,
                                                fc_layers=1), predict_window_frames=600).eval()
    baseline = peak_rss_mb()
    if kind == "resample":
        stft_features(load_clip(path)[0])
    elif kind == "torchaudio":
        import soundfile
        import torchaudio.functional

        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        stft_features(torchaudio.functional.resample(torch.from_numpy(data.T.copy()), rate, 32000))
    elif kind == "predict":
        stats = Normalizer(torch.zeros(4, 256), torch.ones(4, 256))
        item = PredictDataset([(path.stem, [path], None)], FeatureSettings(), stats)[0]
        result = task.predict_clip(item)
        assert result["error"] is None, result["error"]
    elif kind == "whole":
        stft_features(load_clip(path)[0])
    return {"baseline_mb": baseline, "peak_mb": peak_rss_mb()}


def measure(kind: str, path: Path) -> dict[str, float]:
    """Run one measurement in its own worker process (so peak RSS is its own) and return its JSON result."""
    command = [sys.executable, __file__, "--worker", kind, "--path", str(path)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Print peak RSS of resampling + features per rate and of predict per clip length (--worker: measure one)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: shorter clips, fewer rates")
    parser.add_argument("--torchaudio", action="store_true", help="also torchaudio's resample at 16001 Hz (GBs)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(work(args.worker, args.path)))
        return 0
    seconds, rates = (10.0, QUICK_RATES) if args.quick else (60.0, RATES)
    short, long = (10.0, 100.0) if args.quick else (60.0, 600.0)
    with tempfile.TemporaryDirectory(prefix="phnn-bench-memory-") as scratch:
        folder = Path(scratch)
        print(f"resampling a {seconds:g} s 4-channel clip to 32 kHz + features "
              "(peak RSS, MB; baseline = after imports)")
        reference = measure("resample", write_clip(folder / "r32000.wav", 32000, seconds))
        print(f"{'rate Hz':>8} {'baseline':>9} {'peak':>7} {'peak / 32 kHz':>14} {'above baseline':>15}")
        print(f"{32000:>8} {reference['baseline_mb']:>9.0f} {reference['peak_mb']:>7.0f} {1.0:>14.2f} "
              f"{reference['peak_mb'] - reference['baseline_mb']:>15.0f}")
        worst = 0.0
        for rate in rates:
            path = write_clip(folder / f"r{rate}.wav", rate, seconds)
            r = measure("resample", path)
            worst = max(worst, r["peak_mb"] / reference["peak_mb"])
            print(f"{rate:>8} {r['baseline_mb']:>9.0f} {r['peak_mb']:>7.0f} "
                  f"{r['peak_mb'] / reference['peak_mb']:>14.2f} "
                  f"{r['peak_mb'] - r['baseline_mb']:>15.0f}")
            path.unlink()
        print(f"worst rate: {worst:.2f}x the 32 kHz peak (target <= 1.5x)")
        if args.torchaudio:
            r = measure("torchaudio", write_clip(folder / "t16001.wav", 16001, 1.0))
            print(f"torchaudio.functional.resample, 1 s at 16001 Hz: peak {r['peak_mb']:.0f} MB")

        print("\nprediction, 4-channel 32 kHz clip (peak RSS, MB)")
        results = {}
        for length in (short, long):
            path = write_clip(folder / f"p{length:g}.wav", 32000, length)
            results[length] = {kind: measure(kind, path) for kind in ("predict", "whole")}
            path.unlink()
        print(f"{'clip':>8} {'streamed predict':>17} {'above baseline':>15} {'whole-clip features':>20}")
        for length, r in results.items():
            print(f"{length:>7g}s {r['predict']['peak_mb']:>17.0f} "
                  f"{r['predict']['peak_mb'] - r['predict']['baseline_mb']:>15.0f} "
                  f"{r['whole']['peak_mb']:>20.0f}")
        ratio = results[long]["predict"]["peak_mb"] / results[short]["predict"]["peak_mb"]
        whole = results[long]["whole"]["peak_mb"] / results[short]["whole"]["peak_mb"]
        print(f"{long:g} s vs {short:g} s clip: streamed predict {ratio:.2f}x (target <= 1.3x); "
              f"whole-clip features {whole:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
