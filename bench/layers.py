"""Benchmark phnn.nn against torch: PHConv2d vs nn.Conv2d, fused vs naive composition, whole ResNet18.

    python bench/layers.py            # full run (make bench); a few minutes on a laptop CPU
    python bench/layers.py --quick    # smoke run on tiny sizes

Candidates are timed interleaved (A, B, A, B, ...) over several rounds and compared by their medians,
so that a machine shared with other work slows them alike. Ratios > 1 mean PH is slower.
Targets (issue 2): composition >= 5x faster than naive at 512->512 k=3 n=4 (fwd+bwd); whole
ResNet18 training step <= 1.05x dense; eval forward at batch 8 <= 1.03x dense.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from phnn.nn import PHConv2d, compose


@dataclass(frozen=True)
class Sizes:
    """What one run measures: conv shapes (channels, map size), batches, n values, model batch sizes."""

    shapes: tuple[tuple[int, int], ...]
    batches: tuple[int, ...]
    ns: tuple[int, ...]
    composition: tuple[int, int]
    model_batches: tuple[int, int]
    model_widths: tuple[int, ...] | None
    rounds: int
    min_time: float


FULL = Sizes(shapes=((64, 32), (128, 16), (256, 8), (512, 4)), batches=(64, 8), ns=(2, 4, 8, 16),
             composition=(512, 3), model_batches=(64, 8), model_widths=None, rounds=5, min_time=0.05)
QUICK = Sizes(shapes=((16, 8),), batches=(2,), ns=(2, 4), composition=(32, 3), model_batches=(2, 2),
              model_widths=(8, 8, 16, 16), rounds=1, min_time=0.0)


def interleaved(candidates: dict[str, Callable[[], object]], rounds: int, min_time: float) -> dict[str, float]:
    """Median seconds per call of each candidate, alternating them round by round after one warm-up."""
    calls: dict[str, int] = {}
    for name, fn in candidates.items():
        fn()
        fn()
        start = time.perf_counter()
        fn()
        once = time.perf_counter() - start
        calls[name] = max(1, int(min_time / max(once, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / calls[name])
    return {name: statistics.median(times) for name, times in samples.items()}


def on(x: Tensor) -> Callable[[nn.Module], Tensor]:
    """`model(x)`, as the `run` of `train_step` / `eval_forward`."""
    return lambda model: model(x)


def train_step(model: nn.Module, run: Callable[[nn.Module], Tensor]) -> Callable[[], None]:
    """One forward (`run(model)`) + backward + SGD step, as a closure to time."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        run(model).float().mean().backward()
        optimizer.step()

    return step


def eval_forward(model: nn.Module, run: Callable[[nn.Module], Tensor]) -> Callable[[], None]:
    """A no-grad forward (`run(model)`) in eval mode, as a closure to time."""
    model.eval()

    def forward() -> None:
        with torch.no_grad():
            run(model)

    return forward


def naive_compose(algebra: Tensor, factors: Tensor) -> Tensor:
    """The original formulation: materialise the n Kronecker products, then sum them."""
    n = algebra.shape[0]
    kernel_dims = factors.dim() - 4
    kron = [torch.kron(algebra[i].reshape(n, n, *[1] * kernel_dims), factors[i, 0]) for i in range(n)]
    return torch.stack(kron).sum(0)


def backward_of(fn: Callable[[Tensor, Tensor], Tensor], algebra: Tensor, factors: Tensor,
                grad: Tensor) -> Callable[[], None]:
    """One call = composing the weight with `fn` and back-propagating `grad` through it (a training step's cost)."""
    return lambda: torch.autograd.backward(fn(algebra, factors), grad)


def bench_convs(sizes: Sizes, device: torch.device) -> list[list[str]]:
    """Train-step and inference time of PHConv2d relative to nn.Conv2d, per shape, batch and n."""
    rows = []
    for channels, size in sizes.shapes:
        for batch in sizes.batches:
            x = torch.randn(batch, channels, size, size, device=device)
            for n in sizes.ns:
                dense = nn.Conv2d(channels, channels, 3, padding=1, bias=False, device=device)
                ph = PHConv2d(channels, channels, 3, padding=1, bias=False, n=n, device=device)
                train = interleaved({"dense": train_step(dense, on(x)), "ph": train_step(ph, on(x))}, sizes.rounds,
                                    sizes.min_time)
                infer = interleaved({"dense": eval_forward(dense, on(x)), "ph": eval_forward(ph, on(x))}, sizes.rounds,
                                    sizes.min_time)
                rows.append([f"{channels}->{channels} {size}x{size}", str(batch), str(n),
                             f"{train['dense'] * 1e3:.2f}", f"{train['ph'] / train['dense']:.3f}",
                             f"{infer['dense'] * 1e3:.2f}", f"{infer['ph'] / infer['dense']:.3f}"])
                print("  " + " | ".join(rows[-1]), file=sys.stderr, flush=True)
    return rows


def bench_composition(sizes: Sizes, device: torch.device) -> list[list[str]]:
    """Forward + backward time of the naive (Kronecker) weight composition against the fused `compose`, per n."""
    channels, k = sizes.composition
    rows = []
    for n in sizes.ns:
        algebra = torch.randn(n, n, n, device=device, requires_grad=True)
        factors = torch.randn(n, 1, channels // n, channels // n, k, k, device=device, requires_grad=True)
        grad = torch.randn(channels, channels, k, k, device=device)
        torch.testing.assert_close(compose(algebra, factors), naive_compose(algebra, factors))
        naive, fused = (backward_of(fn, algebra, factors, grad) for fn in (naive_compose, compose))
        times = interleaved({"naive": naive, "fused": fused}, sizes.rounds, sizes.min_time)
        rows.append([f"{channels}->{channels} k={k}", str(n), f"{times['naive'] * 1e3:.2f}",
                     f"{times['fused'] * 1e3:.2f}", f"{times['naive'] / times['fused']:.1f}x"])
    return rows


def resnet18(family: str, widths: tuple[int, ...] | None) -> nn.Module:
    """CIFAR ResNet18 of phnn.models (4 input channels so that every conv is a PH conv for n=4)."""
    from phnn.models import create_model, make_family
    from phnn.models.resnet import ARCHITECTURES, ResNet

    if widths is None:
        return create_model("resnet18", family=family, n=4, in_channels=4, num_classes=10)
    block, layers, _ = ARCHITECTURES["resnet18"]
    return ResNet(make_family(family, 4), block, layers, in_channels=4, num_classes=10, widths=widths)


def bench_models(sizes: Sizes, device: torch.device) -> list[list[str]]:
    """Train-step and inference time of a PHC ResNet18 relative to the real one."""
    torch.manual_seed(0)
    dense, ph = (resnet18(family, sizes.model_widths).to(device) for family in ("real", "phc"))
    train_batch, eval_batch = sizes.model_batches
    x_train = torch.randn(train_batch, 4, 32, 32, device=device)
    x_eval = torch.randn(eval_batch, 4, 32, 32, device=device)
    dense.train(), ph.train()
    train = interleaved({"dense": train_step(dense, on(x_train)), "ph": train_step(ph, on(x_train))}, sizes.rounds,
                        sizes.min_time)
    infer = interleaved({"dense": eval_forward(dense, on(x_eval)), "ph": eval_forward(ph, on(x_eval))}, sizes.rounds,
                        sizes.min_time)
    params = [sum(p.numel() for p in model.parameters()) for model in (dense, ph)]
    return [
        [f"train step, batch {train_batch}", f"{train['dense'] * 1e3:.1f}", f"{train['ph'] * 1e3:.1f}",
         f"{train['ph'] / train['dense']:.3f}", "<= 1.05"],
        [f"eval forward, batch {eval_batch}", f"{infer['dense'] * 1e3:.1f}", f"{infer['ph'] * 1e3:.1f}",
         f"{infer['ph'] / infer['dense']:.3f}", "<= 1.03"],
        ["parameters", f"{params[0]:,}", f"{params[1]:,}", f"{params[1] / params[0]:.3f}", ""],
    ]


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    """A titled plain-text table with right-aligned columns."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = lambda row: "  ".join(cell.rjust(width) for cell, width in zip(row, widths))  # noqa: E731
    return "\n".join([f"\n{title}", line(header), line(["-" * w for w in widths]), *map(line, rows)])


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the selected comparisons and print their tables; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--device", default="cpu", help="torch device to measure on (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per comparison")
    parser.add_argument("--skip", nargs="*", default=[], choices=["convs", "composition", "models"])
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = Sizes(**{**sizes.__dict__, "rounds": args.rounds})
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"phnn layer benchmark: torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, "
          f"{sizes.rounds} interleaved rounds, medians; ratio = PH / dense (lower is better)")
    if "composition" not in args.skip:
        print(table("Weight composition, forward+backward: naive (n Kronecker products, then sum) vs fused",
                    ["shape", "n", "naive ms", "fused ms", "speed-up"], bench_composition(sizes, device)),
              flush=True)
    if "models" not in args.skip:
        print(table("CIFAR ResNet18, 4-channel 32x32 input: PHConv2d n=4 (phc) vs nn.Conv2d (real)",
                    ["measure", "dense ms", "PH ms", "ratio", "target"], bench_models(sizes, device)), flush=True)
    if "convs" not in args.skip:
        print(table("PHConv2d vs nn.Conv2d, 3x3, padding 1 (ResNet18 shapes)",
                    ["conv", "batch", "n", "dense train ms", "PH/dense train", "dense eval ms", "PH/dense eval"],
                    bench_convs(sizes, device)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
