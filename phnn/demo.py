"""`make demo` (`python -m phnn.demo`): the whole SED workflow on the CPU in a few minutes.

1. synthesise a small L3DAS21-style dataset (`phnn synth`: overlaps up to 3, SNR 6–30 dB, random
   positions, per-event timbre variation);
2. fit a small PH SELD network (SEDnet n = 4 with a DOA branch of its own, magnitude + intensity
   channels, mirrored training windows) with the shipped config sed/demo.yaml through the `phnn` CLI;
3. test the best checkpoint on the synthetic dev set;
4. predict on the dev clips (event CSVs with positions, the L3DAS21 Task 2 submission folder, PNG
   plots of activity and direction);

and print the test F-scores (one-to-one and the official L3DAS21 counting), the DCASE error rates,
the location-sensitive F (2 m, one-to-one and official counting), the mean localisation error
(metres and degrees), the DCASE joint SELD metrics, the data-loading share of the training step, and
where everything is (with the `phnn score` command that re-scores the prediction files). Each step
goes through `phnn.cli.main`, exactly like the commands it prints.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

from phnn.cli import main as phnn
from phnn.config_files import SHIPPED_CONFIGS
from phnn.data.l3das21.layout import SUBMISSION_FOLDER
from phnn.io import write_text_atomic

DEMO_CONFIG = SHIPPED_CONFIGS / "sed" / "demo.yaml"
# Dataset size: enough for an honest synthetic task, small enough for a demo of under 8 minutes on 2 CPU cores.
DATA = {"train_clips": 36, "dev_clips": 8, "duration": 20.0, "max_overlap": 3}


def _write_json(path: Path, content: object) -> None:
    """Atomically write `content` as JSON (also valid YAML, so usable as a `--config`)."""
    write_text_atomic(path, json.dumps(content, indent=2))


def synthesize_demo_data(root: Path, seed: int) -> None:
    """The demo dataset; skipped when the same one (same settings and seed) is already there."""
    from phnn.data.l3das21 import synthesize

    stamp = root / ".demo.json"
    settings = {**DATA, "seed": seed}
    if stamp.is_file() and json.loads(stamp.read_text()) == settings:
        print(f"[demo] dataset already in {root}")
        return
    print(f"[demo] synthesising {DATA['train_clips']} train + {DATA['dev_clips']} dev clips of "
          f"{DATA['duration']:.0f} s in {root}")
    synthesize(root, seed=seed, mic_b=False, progress=True, overwrite=True, **DATA)  # the demo's own folder
    _write_json(stamp, settings)


def _versions(folder: Path) -> set[Path]:
    return set(folder.glob("version_*"))


def _run(command: str, config: list[str], runs: Path, *extra: str) -> Path | None:
    """`phnn <command>` in-process; raises if it failed. Returns the new run folder of a fit (the
    other commands write inside the fit's run)."""
    before = _versions(runs)
    args = [command, *config, *extra]
    print(f"[demo] phnn {' '.join(args)}", flush=True)
    code = phnn(args)
    if code != 0:
        raise SystemExit(f"[demo] phnn {command} failed with exit code {code}")
    if command != "fit":
        return None
    new = sorted(_versions(runs) - before, key=lambda p: int(p.name.split("_")[1]))
    if not new:
        raise SystemExit(f"[demo] phnn {command} wrote no run folder under {runs}")
    return new[0]


def _last_logged(run: Path, names: list[str]) -> dict[str, float]:
    """The last value of each metric in a run's metrics.csv (CSVLogger)."""
    values: dict[str, float] = {}
    with open(run / "metrics.csv", newline="") as file:
        for row in csv.DictReader(file):
            values.update({name: float(row[name]) for name in names if row.get(name)})
    return values


def _parser() -> argparse.ArgumentParser:
    """The demo's options: where to write, the seed, and what the 9-minute default run may change."""
    parser = argparse.ArgumentParser(prog="python -m phnn.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default demo_output)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of the training run")
    parser.add_argument("--epochs", type=int, default=None, help="override trainer.max_epochs of demo.yaml")
    parser.add_argument("--label-grid", choices=("official", "nearest"), default="official",
                        help="label frames as the official csv_to_matrix_task2 (default) or round(t / 0.1)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                        help="torch CPU threads (default: 2, or 1 on a 1-core machine; on 2 cores a training step of "
                             "the demo network takes 0.6 of its 1-thread time)")
    return parser


def _demo_config(out: Path, seed: int, label_grid: str) -> list[str]:
    """`--config` arguments: the shipped demo config, then a file of this run's paths, seed and label grid."""
    paths = out / "demo_paths.yaml"
    loggers = [{"class_path": f"lightning.pytorch.loggers.{kind}", "init_args": {"save_dir": str(out / "runs"),
                                                                                 "name": "demo"}}
               for kind in ("CSVLogger", "TensorBoardLogger")]
    _write_json(paths, {
        "seed_everything": seed,
        "trainer": {"default_root_dir": str(out), "logger": loggers},
        "data": {"init_args": {"root": str(out / "data"), "cache_dir": str(out / "cache"),
                               "label_grid": label_grid}},
        "writer": {"init_args": {"output_dir": str(out / "predictions")}},
    })
    return ["--config", str(DEMO_CONFIG), "--config", str(paths)]


def _print_scores(scores: dict[str, float]) -> None:
    """The test scores: detection F (both countings), DCASE error rates, localisation."""
    nan = float("nan")
    for label, suffix in (("one-to-one", ""), ("L3DAS21", "_l3das21")):
        print(f"  test F ({label:<10}) {scores.get(f'test/f_score{suffix}', nan):.3f}   "
              f"(precision {scores.get(f'test/precision{suffix}', nan):.3f}, "
              f"recall {scores.get(f'test/recall{suffix}', nan):.3f})")
    print(f"  test DCASE ER     {scores.get('test/error_rate', nan):.3f} segment (1 s, F1 "
          f"{scores.get('test/segment_f1', nan):.3f}), {scores.get('test/event_error_rate', nan):.3f} event-based "
          f"(F1 {scores.get('test/event_f1', nan):.3f})")
    print(f"  location-sensitive F (2 m)  {scores.get('test/seld_f_score', nan):.3f} one-to-one, "
          f"{scores.get('test/seld_f_score_l3das21', nan):.3f} official counting")
    print(f"  localisation error          {scores.get('test/doa_error_m', nan):.2f} m, "
          f"{scores.get('test/doa_error_deg', nan):.1f}° "
          "(mean over detections matched to a true event of their class)")
    print(f"  DCASE joint (20°)           ER {scores.get('test/dcase_error_rate_20', nan):.3f}, "
          f"F {scores.get('test/dcase_f_score_20', nan):.3f}, "
          f"LE_CD {scores.get('test/dcase_localisation_error', nan):.1f}°, "
          f"LR_CD {scores.get('test/dcase_localisation_recall', nan):.3f}")


def _print_where(out: Path, fit_run: Path, label_grid: str) -> None:
    """The data-loading share of a training step, where every output is, and the commands to go on with."""
    timing = _last_logged(fit_run, ["timing/data_fraction", "timing/train_step_ms"])
    events = sorted((out / "predictions").glob("*.csv"))
    example = events[0] if events else None
    checkpoint = fit_run / "checkpoints" / "best.ckpt"
    if "timing/data_fraction" in timing:
        print(f"  data loading      {100 * timing['timing/data_fraction']:.1f}% of the training step "
              f"({timing.get('timing/train_step_ms', float('nan')):.0f} ms per step)")
    print(f"  checkpoint        {checkpoint}")
    print(f"  run folder        {fit_run}  (config.yaml, metrics.csv, TensorBoard events, test/metrics.json)")
    print(f"  predictions       {out / 'predictions'}  ({len(events)} clips"
          + (f", e.g. {example.name}, {example.stem}.png" if example else "") + ")")
    print(f"  submission folder {out / 'predictions' / SUBMISSION_FOLDER}  "
          "(L3DAS21 Task 2: one frame,class,x,y,z CSV per clip)")
    phnn_command = Path(sys.executable).parent / "phnn"  # the console script of this environment
    print(f"\n  score the prediction files (official L3DAS21, one-to-one, DCASE):\n    {phnn_command} score "
          f"{out / 'predictions'} --labels {out / 'data' / 'L3DAS_Task2_dev' / 'labels'} --label-grid {label_grid}")
    print(f"\n  again on your own clips:\n    {phnn_command} predict --config {fit_run / 'config.yaml'} "
          f"--ckpt_path {checkpoint} --data.predict_path YOUR_CLIPS --writer.output_dir OUT")


def main(argv: list[str] | None = None) -> int:
    """Synthesise, fit, test and predict through the `phnn` CLI, then print the scores and where things are."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    import torch

    torch.set_num_threads(args.threads)
    out = args.out.resolve()
    start = time.perf_counter()
    synthesize_demo_data(out / "data", args.seed)

    runs = out / "runs" / "demo"
    config = _demo_config(out, args.seed, args.label_grid)
    epochs = [f"--trainer.max_epochs={args.epochs}"] if args.epochs else []
    fit_start = time.perf_counter()
    fit_run = _run("fit", config, runs, *epochs)
    fit_seconds = time.perf_counter() - fit_start
    checkpoint = str(fit_run / "checkpoints" / "best.ckpt")
    run_config = ["--config", str(fit_run / "config.yaml")]
    _run("test", run_config, runs, "--ckpt_path", checkpoint)
    dev_clips = out / "data" / "L3DAS_Task2_dev" / "data"
    _run("predict", run_config, runs, "--ckpt_path", checkpoint,
         f"--data.predict_path={dev_clips}", f"--writer.output_dir={out / 'predictions'}")

    print(f"\n[demo] done in {time.perf_counter() - start:.0f} s (fit {fit_seconds:.0f} s)")
    _print_scores(json.loads((fit_run / "test" / "metrics.json").read_text())["metrics"])
    _print_where(out, fit_run, args.label_grid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
