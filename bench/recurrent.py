"""Benchmark PH recurrent and attention layers against torch: PHGRU/PHLSTM vs nn.GRU/nn.LSTM, PHMultiheadAttention
vs nn.MultiheadAttention.

    python bench/recurrent.py            # full run (make bench); a few minutes on a laptop CPU
    python bench/recurrent.py --quick    # smoke run on tiny sizes

Recurrent sizes are SEDnet's (batch 16, 75 steps, input 1024 = 512 channels · 2 frequency bins, hidden 256,
3 layers, bidirectional, dropout 0.3); attention: embed 256, 8 heads, sequence 128, batch 16, self-attention.
Train = forward + backward + SGD step; eval = forward under no_grad in eval mode (need_weights=False for
attention, so torch may take its fused fast path). Candidates are timed interleaved (bench/layers.py's
`interleaved`) and compared by their medians. Ratios > 1 mean PH is slower.
Targets (issue 16): recurrent train <= 1.15x, eval <= 1.05x; attention <= 1.1x.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layers import eval_forward, interleaved, table, train_step

from phnn.nn import PHGRU, PHLSTM, PHMultiheadAttention


@dataclass(frozen=True)
class Sizes:
    """One run's shapes: recurrent (batch, steps, input, hidden, layers), attention (batch, seq, embed, heads)."""

    recurrent: tuple[int, int, int, int, int]
    attention: tuple[int, int, int, int]
    ns: tuple[int, ...]
    rounds: int
    min_time: float


FULL = Sizes(recurrent=(16, 75, 1024, 256, 3), attention=(16, 128, 256, 8), ns=(4, 16), rounds=7, min_time=0.3)
QUICK = Sizes(recurrent=(2, 5, 16, 8, 2), attention=(2, 6, 16, 2), ns=(4,), rounds=1, min_time=0.0)
TARGETS = {"recurrent": {"train": 1.15, "eval": 1.05}, "attention": {"train": 1.1, "eval": 1.1}}


def compare(pair: tuple[nn.Module, nn.Module], run: Callable[[nn.Module], Tensor], kind: str, sizes: Sizes,
            label: list[str]) -> list[list[str]]:
    """Rows (label, measure, dense ms, PH ms, ratio, target) for train and eval, each interleaved."""
    dense, ph = pair
    rows = []
    for measure, make in (("train", train_step), ("eval", eval_forward)):
        dense.train(measure == "train")
        ph.train(measure == "train")
        times = interleaved({"dense": make(dense, run), "ph": make(ph, run)}, sizes.rounds, sizes.min_time)
        ratio = times["ph"] / times["dense"]
        target = TARGETS[kind][measure]
        rows.append([*label, measure, f"{times['dense'] * 1e3:.1f}", f"{times['ph'] * 1e3:.1f}", f"{ratio:.3f}",
                     f"<= {target} {'ok' if ratio <= target else 'MISSED'}"])
    return rows


def bench_recurrent(sizes: Sizes, device: torch.device) -> list[list[str]]:
    """Time PHGRU/PHLSTM against nn.GRU/nn.LSTM at SEDnet's sizes, per n."""
    batch, steps, features, hidden, layers = sizes.recurrent
    x = torch.randn(batch, steps, features, device=device)
    rows = []
    for dense_cls, ph_cls in ((nn.GRU, PHGRU), (nn.LSTM, PHLSTM)):
        for n in sizes.ns:
            settings = {"num_layers": layers, "batch_first": True, "bidirectional": True, "dropout": 0.3,
                        "device": device}
            pair = (dense_cls(features, hidden, **settings), ph_cls(features, hidden, **settings, n=n))
            rows += compare(pair, lambda model: model(x)[0], "recurrent", sizes, [dense_cls.__name__, str(n)])
    return rows


def bench_attention(sizes: Sizes, device: torch.device) -> list[list[str]]:
    """Time PHMultiheadAttention against nn.MultiheadAttention (self-attention), per n."""
    batch, length, embed, heads = sizes.attention
    x = torch.randn(batch, length, embed, device=device)
    rows = []
    for n in sizes.ns:
        pair = (nn.MultiheadAttention(embed, heads, batch_first=True, device=device),
                PHMultiheadAttention(embed, heads, batch_first=True, device=device, n=n))
        rows += compare(pair, lambda model: model(x, x, x, need_weights=False)[0], "attention", sizes,
                        ["MultiheadAttention", str(n)])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the selected comparisons and print their tables; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--device", default="cpu", help="torch device to measure on (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per comparison")
    parser.add_argument("--ns", type=int, nargs="+", default=None, help="the n values (default: 4 16)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["recurrent", "attention"])
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = Sizes(**{**sizes.__dict__, "rounds": args.rounds})
    if args.ns:
        sizes = Sizes(**{**sizes.__dict__, "ns": tuple(args.ns)})
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    print(f"phnn recurrent/attention benchmark: torch {torch.__version__}, device {device}, "
          f"{torch.get_num_threads()} threads, {sizes.rounds} interleaved rounds, medians; ratio = PH / dense")
    header = ["layer", "n", "measure", "dense ms", "PH ms", "ratio", "target"]
    if "recurrent" not in args.skip:
        batch, steps, features, hidden, layers = sizes.recurrent
        print(table(f"PHGRU/PHLSTM vs nn.GRU/nn.LSTM: batch {batch}, {steps} steps, input {features}, hidden {hidden}, "
                    f"{layers} layers, bidirectional", header, bench_recurrent(sizes, device)), flush=True)
    if "attention" not in args.skip:
        batch, length, embed, heads = sizes.attention
        print(table(f"PHMultiheadAttention vs nn.MultiheadAttention: batch {batch}, sequence {length}, embed {embed}, "
                    f"{heads} heads, self-attention", header, bench_attention(sizes, device)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
