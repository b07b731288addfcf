"""Quality of PHGRU on a small sequence task: the most frequent symbol of a sequence (counting over time).

    python bench/recurrent_quality.py            # full run: a few minutes on 2 CPU cores
    python bench/recurrent_quality.py --quick    # smoke run

Each sequence holds `length` symbols drawn from `symbols` classes (one-hot input); the label is the symbol
that occurs most often (ties: the smallest). A chance guess is right 1/symbols of the time. Three models
are trained alike (Adam, same steps, batch and seed) and scored on the same held-out sequences: nn.GRU,
PHGRU n = 4 of the same hidden size, and a narrower nn.GRU with about PHGRU's parameter count.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import Tensor, nn

from phnn.nn import PHGRU


def make_batch(count: int, length: int, symbols: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(one-hot sequences (count, length, symbols), labels: the most frequent symbol of each)."""
    sequence = torch.randint(symbols, (count, length), generator=generator)
    counts = nn.functional.one_hot(sequence, symbols).sum(1)
    return nn.functional.one_hot(sequence, symbols).float(), counts.argmax(1)


class Classifier(nn.Module):
    """A recurrent layer read at its last step, then a linear classifier."""

    def __init__(self, recurrent: nn.Module, hidden: int, symbols: int) -> None:
        super().__init__()
        self.recurrent, self.out = recurrent, nn.Linear(hidden, symbols)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.recurrent(x)[0][:, -1])


def train_and_score(model: nn.Module, args: argparse.Namespace, test: tuple[Tensor, Tensor]) -> tuple[float, float]:
    """Accuracy on `test` after `args.steps` Adam steps, and the fit time in seconds."""
    generator = torch.Generator().manual_seed(args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    start = time.perf_counter()
    for _ in range(args.steps):
        x, y = make_batch(args.batch, args.length, args.symbols, generator)
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    fit = time.perf_counter() - start
    with torch.no_grad():
        accuracy = float((model.eval()(test[0]).argmax(1) == test[1]).float().mean())
    return accuracy, fit


def main(argv: list[str] | None = None) -> int:
    """Train nn.GRU, PHGRU (n=4) and a size-matched nn.GRU on the most-frequent-symbol task; print accuracies."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few steps, for a smoke test")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--symbols", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.hidden = 3, 8
    if args.threads:
        torch.set_num_threads(args.threads)
    test = make_batch(2000, args.length, args.symbols, torch.Generator().manual_seed(12345))
    ph_params = sum(p.numel() for p in PHGRU(args.symbols, args.hidden, n=4).parameters())
    # the nn.GRU hidden size whose parameter count is nearest PHGRU's (3·(h·s + h² + 2h))
    matched = min(range(1, args.hidden + 1),
                  key=lambda h: abs(3 * (h * args.symbols + h * h + 2 * h) - ph_params))
    candidates = {
        f"nn.GRU hidden {args.hidden}": (lambda: nn.GRU(args.symbols, args.hidden, batch_first=True), args.hidden),
        f"PHGRU n=4 hidden {args.hidden}": (lambda: PHGRU(args.symbols, args.hidden, batch_first=True, n=4),
                                            args.hidden),
        f"nn.GRU hidden {matched} (PHGRU's size)": (lambda: nn.GRU(args.symbols, matched, batch_first=True), matched),
    }
    print(f"most frequent of {args.length} symbols ({args.symbols} classes, chance {1 / args.symbols:.3f}); "
          f"{args.steps} Adam steps of batch {args.batch}, lr {args.lr}, seed {args.seed}; 2000 test sequences")
    print(f"{'model':<36}{'GRU params':>12}{'accuracy':>10}{'fit s':>8}")
    for name, (build, hidden) in candidates.items():
        torch.manual_seed(args.seed)
        model = Classifier(build(), hidden, args.symbols)
        accuracy, fit = train_and_score(model, args, test)
        print(f"{name:<36}{sum(p.numel() for p in model.recurrent.parameters()):>12,}{accuracy:>10.3f}{fit:>8.1f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
