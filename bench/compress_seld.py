"""`phnn compress` on SELD: the demo's network in the real family as the teacher, its PH n = 4 student by
distillation, and the same student network trained from scratch, on the demo's synthetic L3DAS21 data.

    python bench/compress_seld.py --out bench_output/compress_seld

Synthesises the demo's data (`phnn.demo`: the same clips for the same seed) unless `--data` names it,
fits the teacher (`-c sed/demo.yaml -c sed/model/real.yaml`: the demo's recipe, 40 epochs), runs
`phnn compress --n 4` with the teacher run's config (the same recipe), the same with `--init random`,
and fits the student's network from scratch (`--model.model.converted_n 4`). Runs already in --out are
reused. Prints markdown tables of the test scores and of the validation location-sensitive F along the
fits, and writes results.json in --out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from compress import compress_report, inside, newest, run, scratch_run, test_scores, validation_curve

from phnn.demo import synthesize_demo_data
from phnn.io import write_text_atomic

TEACHER = ["-c", "sed/demo.yaml", "-c", "sed/model/real.yaml"]
N = 4
#: the test scores in the table: (key in the metrics, column title, format)
COLUMNS = (("test/seld_f_score", "location-sensitive F (2 m), one-to-one", "{:.3f}"),
           ("test/seld_f_score_l3das21", "location-sensitive F, official counting", "{:.3f}"),
           ("test/doa_error_m", "localisation error (m)", "{:.2f}"),
           ("test/doa_error_deg", "localisation error (°)", "{:.1f}"),
           ("test/f_score", "detection F", "{:.3f}"))
#: epochs (1-based) at which the validation location-sensitive F of each run is shown; -1: the last
CURVE_EPOCHS = (3, 6, 11, 17, -1)
CURVE_METRIC = "val/seld_f_score"


def paths_config(out: Path, data: Path) -> list[str]:
    """`-c` of a config with the data, cache and label grid of this bench (no prediction writer)."""
    paths = out / "bench_paths.json"
    write_text_atomic(paths, json.dumps({
        "data": {"init_args": {"root": str(data), "cache_dir": str(out / "cache"), "label_grid": "official"}},
        "writer": None}, indent=2))
    return ["-c", str(paths)]


def teacher_run(paths: list[str], epochs: list[str]) -> Path:
    """The teacher's run folder: reused, else fitted now."""
    found = sorted(Path.cwd().glob("runs/l3das21_sednet_real/version_*/checkpoints/best.ckpt"))
    if not found:
        run(["fit", *TEACHER, *paths, *epochs])
        found = [newest("runs/l3das21_sednet_real/version_*/checkpoints/best.ckpt")]
    return found[0].parent.parent


Row = tuple[str, int, dict[str, float], Path | None]  # name, parameters, test scores, run folder (None: no fit)


def table(rows: list[Row]) -> str:
    """The rows' test scores as a markdown table ("-": not defined, e.g. no detections), then each fit's
    validation location-sensitive F at `CURVE_EPOCHS`."""
    lines = ["| network | parameters | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|---|---:|" + "---:|" * len(COLUMNS)]
    for name, parameters, scores, _ in rows:
        cells = [form.format(scores[key]) if not math.isnan(scores.get(key, math.nan)) else "-"
                 for key, _, form in COLUMNS]
        lines.append(f"| {name} | {parameters:,} | " + " | ".join(cells) + " |")
    curves = [(name, validation_curve(folder, CURVE_METRIC)) for name, _, _, folder in rows if folder]
    last = min(len(curve) for _, curve in curves)
    shown = [last if epoch == -1 else epoch for epoch in CURVE_EPOCHS if epoch <= last]
    lines += ["", f"Validation {CURVE_METRIC} after epoch:", "",
              "| network | " + " | ".join(str(epoch) for epoch in shown) + " |", "|---|" + "---:|" * len(shown)]
    for name, curve in curves:
        lines.append(f"| {name} | " + " | ".join(f"{curve[epoch - 1]:.3f}" for epoch in shown) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run (or collect) teacher, compress and from-scratch runs in --out; print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_output/compress_seld"))
    parser.add_argument("--data", type=Path, default=None,
                        help="the demo's data, if synthesised already (default: synthesise it in --out/data)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of every fit (default: the demo's 40)")
    parser.add_argument("--no-scratch", action="store_true", help="skip the student's network from scratch")
    parser.add_argument("--no-random", action="store_true", help="skip `phnn compress --init random`")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    data = args.data.resolve() if args.data else out / "data"
    if args.data is None:
        synthesize_demo_data(data, seed=0)
    epochs = [f"--trainer.max_epochs={args.epochs}"] if args.epochs else []
    with inside(out):
        paths = paths_config(out, data)
        teacher = teacher_run(paths, epochs)
        report = compress_report(teacher, N, "nearest", *epochs)
        metrics = report["metrics"]
        student = report["student"]["parameters"]
        rows: list[Row] = [
            ("teacher: the demo's network, real family", report["teacher"]["parameters"], metrics["teacher"], teacher),
            (f"PH n = {N}, nearest start, no training", student, metrics["student_start"], None),
            (f"PH n = {N} by `phnn compress`", student, metrics["student_end"], Path(report["student"]["run"]))]
        if not args.no_random:
            random = compress_report(teacher, N, "random", *epochs)
            rows.append((f"PH n = {N}, random start + distillation", student, random["metrics"]["student_end"],
                         Path(random["student"]["run"])))
        if not args.no_scratch:
            folder = scratch_run(N, *TEACHER, *paths, f"--model.model.converted_n={N}", *epochs)
            rows.append((f"PH n = {N}, the same network from scratch", student, test_scores(folder), folder))
        printed = table(rows)
    results = {"command": " ".join(["python", "bench/compress_seld.py", *(argv or sys.argv[1:])]),
               "rows": [{"network": name, "parameters": count, "test": scores} for name, count, scores, _ in rows],
               "compress_seconds": report["seconds"], "table": printed}
    write_text_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
    print(results["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
