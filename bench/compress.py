"""`phnn compress` on UCI digits: a real ResNet18-large teacher, PH students at n = 2, 3, 4, and what the
nearest start and the distillation each buy.

    python bench/compress.py --out bench_output/compress --ns 4 3 2 --epochs 5

Writes the digits (scikit-learn's `load_digits`, 1797 images of 8×8) as an ImageFolder, trains the teacher
(`phnn fit`, resnet18_large real, Adam lr 1e-3, `--epochs`), then for each n: `phnn compress` (nearest
start + distillation), the same network trained from scratch (`phnn fit`, `converted_n`), the nearest start
without training (compress.json's start), and `phnn compress --init random`. Also times one training step
of the n = 4 student with and without distillation on the same batch (ratio, median of `--repeats`).
Prints a markdown table and writes results.json in --out.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from phnn.cli import main as phnn
from phnn.io import write_text_atomic

KINDS = ("nearest", "scratch", "random")
#: set by --no-run: collect finished runs, start none
COLLECT_ONLY = False


def write_digits(root: Path) -> Path:
    """UCI digits as root/<digit>/<i>.png (8×8, grey levels 0..16 scaled to 0..255, as RGB)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    if root.is_dir() and sum(1 for _ in root.glob("*/*.png")) == len(digits.target):
        return root
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (image * (255 / 16)).round().astype(np.uint8)
        Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(folder / f"{index}.png")
    return root


def inside(folder: Path) -> contextlib.chdir:
    """Run with `folder`, made if missing, as the working directory (runs/ lands there)."""
    folder.mkdir(parents=True, exist_ok=True)
    return contextlib.chdir(folder)


def data_args(root: Path) -> list[str]:
    """The `phnn` options for the digits ImageFolder at `root`: no augmentation, fixed splits, CPU, seed 0."""
    return ["--data", "ImageFolderDataModule", f"--data.root={root}", "--data.image_size=8", "--data.batch_size=64",
            "--data.num_workers=0", "--data.augment=false", "--data.val_fraction=0.1", "--data.test_fraction=0.2",
            "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--seed_everything=0"]


def model_args(*extra: str) -> list[str]:
    """The `phnn` options of the teacher network (resnet18_large, real, Adam lr 1e-3) plus `extra`."""
    return ["--model", "ImageClassifier", "--model.backbone=resnet18_large", "--model.family=real",
            "--model.optimizer=Adam", "--model.optimizer.init_args.lr=0.001", *extra]


def run(argv: list[str]) -> None:
    """Run one `phnn` command in this process; stop the bench if it fails."""
    code = phnn(argv)
    if code != 0:
        raise SystemExit(f"phnn {' '.join(argv)} exited {code}")


def newest(pattern: str) -> Path:
    """The most recently modified path under the current folder matching the glob `pattern`."""
    return max(Path.cwd().glob(pattern), key=lambda path: path.stat().st_mtime)


def validation_curve(run_dir: Path, metric: str = "val/acc") -> list[float]:
    """`metric` after each epoch of the fit in `run_dir` (its metrics.csv)."""
    with (run_dir / "metrics.csv").open(newline="") as file:
        return [float(row[metric]) for row in csv.DictReader(file) if row.get(metric)]


def compress_report(teacher: Path, n: int, init: str, *fit_args: str) -> dict[str, Any]:
    """The compress.json report of `phnn compress` at `n` with `init`: reused from an earlier run, else run now
    with the teacher run's config and `fit_args`."""
    for done in sorted(Path.cwd().glob(f"runs/*_compress_n{n}/version_*/compress.json")):  # a rerun reuses it
        report = json.loads(done.read_text())
        if report["student"]["init"] == init:
            return report
    if COLLECT_ONLY:
        raise LookupError(f"no compress run with init {init} at n={n}")
    run(["compress", "--ckpt_path", str(teacher / "checkpoints/best.ckpt"), "--n", str(n), "--init", init,
         "-c", str(teacher / "config.yaml"), *fit_args])
    return json.loads(newest(f"runs/*_compress_n{n}/version_*/compress.json").read_text())


def scratch_run(n: int, *fit_args: str) -> Path:
    """The run folder of the network converted at `n` trained from scratch, tested: the fit reused from an
    earlier run (a run folder of that name without compress.json), else `phnn fit *fit_args` now; then
    `phnn test` on its best checkpoint unless done."""
    found = [folder for folder in sorted(Path.cwd().glob(f"runs/*_compress_n{n}/version_*"))
             if (folder / "checkpoints/best.ckpt").is_file() and not (folder / "compress.json").is_file()]
    if not found:
        if COLLECT_ONLY:
            raise LookupError(f"no from-scratch run at n={n}")
        run(["fit", *fit_args])
        found = [newest(f"runs/*_compress_n{n}/version_*")]
    folder = found[0]
    if not (folder / "test/metrics.json").is_file():
        run(["test", "--config", str(folder / "config.yaml"), "--ckpt_path", str(folder / "checkpoints/best.ckpt")])
    return folder


def test_scores(run_dir: Path) -> dict[str, float]:
    """The test metrics `phnn test` wrote in `run_dir`."""
    return json.loads((run_dir / "test/metrics.json").read_text())["metrics"]


def step_cost(n: int, repeats: int, size: int = 8) -> dict[str, float]:
    """Seconds of one training step (forward, backward, Adam step) of the student alone and with distillation."""
    from phnn.tasks import ImageClassifier
    from phnn.tasks.distill import distill

    torch.manual_seed(0)
    arguments = {"backbone": "resnet18_large", "family": "real", "num_classes": 10, "in_channels": 3}
    teacher = ImageClassifier(**arguments).model
    student = ImageClassifier(**arguments, model_kwargs={"converted_n": n}, optimizer=torch.optim.Adam)
    student.log = student.log_dict = lambda *args, **kwargs: None  # no Trainer: logging is not measured
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    batch = (torch.randn(64, 3, size, size), torch.randint(0, 10, (64,)))

    def one_step() -> float:
        started = time.perf_counter()
        optimizer.zero_grad()
        student.training_step(batch, 0).backward()
        optimizer.step()
        return time.perf_counter() - started

    times: dict[str, list[float]] = {"plain": [], "distill": []}
    for _ in range(repeats):  # interleaved, so that a busy machine slows both alike
        for kind in times:
            student.distillation = None
            if kind == "distill":
                distill(student, teacher)
            times[kind].append(one_step())
    plain, distilled = (statistics.median(values[1:]) for values in times.values())
    return {"image_size": size, "plain_s": plain, "distill_s": distilled, "ratio": distilled / plain}


def measure(kind: str, n: int, teacher_dir: Path, root: Path, epochs: int, results: dict[str, Any]) -> dict[str, Any]:
    """One cell group of the table: a compress run (and its start), a from-scratch run, or a random-start run."""
    if kind == "scratch":
        run_dir = scratch_run(n, *model_args(f'--model.model_kwargs={{"converted_n": {n}}}'), *data_args(root),
                              f"--trainer.max_epochs={epochs}")
        return {"scratch": float(test_scores(run_dir)["test/acc"]), "curves": {"scratch": validation_curve(run_dir)}}
    report = compress_report(teacher_dir, n, "nearest" if kind == "nearest" else "random",
                             f"--trainer.max_epochs={epochs}")
    metrics = report["metrics"]
    results["teacher"] = {"accuracy": metrics["teacher"]["test/acc"], "parameters": report["teacher"]["parameters"],
                          "curve": validation_curve(teacher_dir)}
    curve = validation_curve(Path(report["student"]["run"]))
    if kind == "random":
        return {"random_distill": metrics["student_end"]["test/acc"], "parameters": report["student"]["parameters"],
                "curves": {"random": curve}}
    return {"parameters": report["student"]["parameters"], "compress": metrics["student_end"]["test/acc"],
            "nearest_start": metrics["student_start"]["test/acc"], "seconds": report["seconds"]["total"],
            "curves": {"nearest": curve}}


def plan(ns: list[int], kinds: list[str]) -> list[tuple[int, str]]:
    """The runs in order: the first n with its baselines, then the other n's compress runs, then their baselines."""
    baselines = [kind for kind in ("scratch", "random") if kind in kinds]
    nearest = ["nearest"] if "nearest" in kinds else []
    first, *others = ns
    return ([(first, kind) for kind in [*nearest, *baselines]] + [(n, kind) for n in others for kind in nearest]
            + [(n, kind) for kind in baselines for n in others])


def table(rows: list[dict[str, Any]], teacher: dict[str, Any]) -> str:
    """The results as a markdown table: per n, parameters and the test accuracy of each way to get a student."""
    lines = [f"Teacher resnet18_large real: test accuracy {teacher['accuracy']:.3f}, "
             f"{teacher['parameters']:,} parameters.", "",
             "| n | parameters (share) | compress (nearest + distillation) | from scratch | nearest, no training "
             "| random + distillation |", "|---|---|---|---|---|---|"]
    for row in rows:
        if "parameters" not in row:  # only a from-scratch run
            continue
        share = row["parameters"] / teacher["parameters"]
        cells = [f"{row[key]:.3f}" if key in row else "not run"
                 for key in ("compress", "scratch", "nearest_start", "random_distill")]
        lines.append(f"| {row['n']} | {row['parameters']:,} ({share:.1%}) | {' | '.join(cells)} |")
    lines += ["", "Validation accuracy after each epoch:", "",
              "| run | " + " | ".join(f"epoch {epoch}" for epoch in range(1, len(teacher["curve"]) + 1)) + " |",
              "|---|" + "---|" * len(teacher["curve"]),
              "| teacher (real) | " + " | ".join(f"{value:.3f}" for value in teacher["curve"]) + " |"]
    names = {"nearest": "compress, nearest start", "random": "compress, `--init random`", "scratch": "from scratch"}
    for row in rows:
        for kind, name in names.items():
            if kind in row["curves"]:
                values = " | ".join(f"{value:.3f}" for value in row["curves"][kind])
                lines.append(f"| n = {row['n']}, {name} | {values} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the bench in `--out` (reusing finished runs), write the results JSON and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_output/compress"))
    parser.add_argument("--ns", type=int, nargs="+", default=[4, 3, 2])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per kind for the step cost")
    parser.add_argument("--step-cost-only", type=int, nargs="*", default=None, metavar="SIZE",
                        help="only time the distillation step against the plain one, at these image sizes")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS),
                        help="nearest: phnn compress; scratch: the same network by phnn fit; random: compress --init "
                             "random (the nearest start without training comes with nearest)")
    parser.add_argument("--results", default="results.json", help="file name of the results in --out")
    parser.add_argument("--no-run", action="store_true", help="only collect the runs already in --out")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); the sums' order, so the digits, depend on it")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    global COLLECT_ONLY
    COLLECT_ONLY = args.no_run
    out = args.out.resolve()
    if args.step_cost_only is not None:
        for size in args.step_cost_only or [8]:
            cost = step_cost(4, args.repeats, size)
            print(f"image {size}x{size}, batch 64, n=4: plain step {cost['plain_s']:.3f} s, distillation step "
                  f"{cost['distill_s']:.3f} s, ratio {cost['ratio']:.2f}", flush=True)
        return 0
    root = write_digits(out / "digits")
    results: dict[str, Any] = {"command": " ".join(["python", "bench/compress.py", *(argv or sys.argv[1:])])}
    with inside(out):
        previous = json.loads((out / args.results).read_text()) if (out / args.results).is_file() else {}
        results["step_cost_n4"] = previous.get("step_cost_n4") or step_cost(4, args.repeats)
        print(f"distillation step / plain step (n=4, batch 64): {results['step_cost_n4']['ratio']:.2f}", flush=True)
        teacher_dir = Path("runs/imagefolder_resnet18_large_real/version_0")
        if not (teacher_dir / "checkpoints/best.ckpt").is_file():
            run(["fit", *model_args(), *data_args(root), f"--trainer.max_epochs={args.epochs}"])
        rows: dict[int, dict[str, Any]] = {}
        for n, kind in plan(args.ns, args.kinds):  # one n whole first: a cut-short run still tells
            try:
                measured = measure(kind, n, teacher_dir, root, args.epochs, results)
                row = rows.setdefault(n, {"n": n, "curves": {}})
                row["curves"].update(measured.pop("curves"))
                row.update(measured)
            except LookupError as missing:  # --no-run
                print(f"not measured: {missing}")
            results["rows"] = [rows[n] for n in args.ns if n in rows]
            write_text_atomic(out / args.results, json.dumps(results, indent=2) + "\n")
    if "teacher" in results:
        results["table"] = table(results["rows"], results["teacher"])
        write_text_atomic(out / args.results, json.dumps(results, indent=2) + "\n")
        print(results["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
