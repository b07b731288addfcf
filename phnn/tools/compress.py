"""`phnn compress`: a trained model made about n times smaller — a nearest-Kronecker start, then distillation.

    phnn compress --ckpt_path TEACHER.ckpt --n 4 -c configs/data/imagefolder.yaml --trainer.max_epochs 5

The teacher is the task in the checkpoint (any family, any task). The student is the same network made
dense and converted at n (`create_model(..., converted_n=n)`): every layer `convert` handles (conv,
linear, recurrent, attention) whose sizes n divides becomes a PH layer, started at the Frobenius-nearest
Kronecker sum of the teacher's weight (`convert(..., init="nearest")`; `--init random` for comparison);
the others stay dense, listed with the reason. It trains by distillation (`phnn.tasks.distill`) in its own run folder,
`runs/<data>_<model>_compress_n<n>/version_<k>/`, whose best.ckpt / last.ckpt are ordinary checkpoints of
the teacher's task (`phnn test`, `predict`, `inspect`, `export` take them), and ends by printing and
writing `compress.json`: parameters, each layer's starting error, the test metric of the teacher and of
the student at the start and at the end, the time taken. Every other option is `phnn fit`'s (data,
trainer, optimizer: `--model.optimizer...`); the model comes from the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from phnn.config_files import CONFIG_FLAGS
from phnn.errors import UsageError

#: where each task keeps its network's options (None: at the top level of its arguments)
NETWORK_OPTIONS: dict[str, str | None] = {"ImageClassifier": "model_kwargs", "SoundEventDetector": "model"}
#: task arguments the CLI links from the DataModule (never taken from the teacher)
LINKED = ("num_classes", "in_channels")
REPORT = "compress.json"
#: config sections that `phnn compress` takes from given config files (the model comes from the teacher)
KEPT_SECTIONS = ("seed_everything", "trainer", "data")
DEFAULT_EPOCHS = 5


def build_parser() -> argparse.ArgumentParser:
    """The options of `phnn compress` (the rest go to the fit, as `phnn fit` options)."""
    from phnn.tasks.distill import (
        DEFAULT_ALPHA,
        DEFAULT_FEATURE_WEIGHT,
        DEFAULT_TEMPERATURE,
    )

    parser = argparse.ArgumentParser(
        prog="phnn compress", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Make a trained model about n times smaller: PH layers started at the nearest Kronecker "
                    "sum of its weights, then trained by distillation from it. Other options are `phnn fit`'s "
                    "(-c/--config data and trainer configs, --trainer.*, --data.*, --model.optimizer...).",
        epilog="Examples:\n  phnn compress --ckpt_path RUN/checkpoints/best.ckpt --n 2 -c RUN/config.yaml "
               "--trainer.max_epochs 1\n")
    parser.add_argument("--ckpt_path", type=Path, required=True, help="the teacher: a checkpoint of `phnn fit`")
    parser.add_argument("--n", type=int, required=True, help="the PH dimension of the student (about 1/n parameters)")
    parser.add_argument("--init", choices=("nearest", "random"), default="nearest",
                        help="start of the PH layers: the nearest Kronecker sum of the teacher's weights, or random")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help=f"weight of the task loss; 1 - alpha weighs the teacher's soft targets ({DEFAULT_ALPHA})")
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                        help=f"softening of the logits for classification ({DEFAULT_TEMPERATURE})")
    parser.add_argument("--feature_layers", nargs="*", default=[],
                        help="layers of the network whose outputs the student should match (MSE); default none")
    parser.add_argument("--feature_weight", type=float, default=DEFAULT_FEATURE_WEIGHT,
                        help=f"weight of the feature loss ({DEFAULT_FEATURE_WEIGHT})")
    return parser


def check_teacher(teacher: Any, n: int, path: Path) -> None:
    """A `UsageError` for an n below 2 or a teacher whose PH layers are all of this n already."""
    from phnn.nn import PHLayer

    if n < 2:
        raise UsageError(f"--n {n}: the student needs n >= 2 (n = 1 is the dense network itself)")
    layers = [module for module in teacher.model.modules() if isinstance(module, PHLayer)]
    if layers and all(layer.n == n for layer in layers):
        raise UsageError(f"{path}: the teacher is already PH at n={n}; compressing it at the same n changes "
                         "nothing: give a larger --n, or a checkpoint of the real family")


def student_arguments(checkpoint: dict[str, Any], task_name: str, n: int) -> dict[str, Any]:
    """The teacher's task arguments with its network converted at n (`converted_n`), minus the linked ones."""
    saved = checkpoint.get("hyper_parameters") or {}
    arguments = {key: value for key, value in saved.items() if not key.startswith("_") and key not in LINKED}
    where = NETWORK_OPTIONS.get(task_name)
    if where is None:
        return arguments | {"converted_n": n}
    return arguments | {where: dict(arguments.get(where) or {}) | {"converted_n": n}}


def check_data(teacher: Any, checkpoint: dict[str, Any], datamodule: Any, path: Path) -> None:
    """A `UsageError` when the data is not what the teacher was trained on (kind of input, classes, channels)."""
    recorded = (checkpoint["phnn"].get("input") or {}).get("kind")
    given = datamodule.describe_input().get("kind") if hasattr(datamodule, "describe_input") else None
    name = type(datamodule).__name__
    if recorded and given and recorded != given:
        raise UsageError(f"{path}: the teacher is a {teacher.kind} task trained on {recorded!r} inputs, but the data "
                         f"({name}) gives {given!r} inputs; give the data config of the teacher's run "
                         "(-c RUN/config.yaml)")
    for field in LINKED:
        mine, theirs = getattr(teacher, field), getattr(datamodule, field)
        if mine != theirs:
            raise UsageError(f"{path}: the teacher has {field}={mine}, the data ({name}) {theirs}; give the data "
                             "the teacher was trained on (-c RUN/config.yaml)")


def start_student(student: Any, teacher: Any, n: int, init: str, path: Path) -> Any:
    """Load `convert(teacher network, n, init)` into the student's network; returns the conversion report."""
    from phnn.nn.convert import convert, to_dense

    report = convert(to_dense(teacher.model), n, init=init)
    if not report.converted:
        reasons = "; ".join(f"{name}: {why}" for name, why in list(report.skipped.items())[:3])
        raise UsageError(f"{path}: n={n} divides no layer of the teacher ({reasons}); choose an n that divides the "
                         "layers' channels (e.g. 2, 3 or 4)")
    student.model.load_state_dict(report.model.state_dict())
    return report


def evaluate(task: Any, datamodule: Any, device: str, precision: str) -> dict[str, float]:
    """The task's test metrics on the data's test split (a quiet one-device Trainer of its own)."""
    from lightning.pytorch import Trainer

    trainer = Trainer(accelerator=device, devices=1, precision=precision, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)
    results = trainer.test(task, datamodule=datamodule, verbose=False)
    return {key: float(value) for key, value in results[0].items()}


def count(module: Any) -> int:
    """All parameters of a network."""
    return sum(p.numel() for p in module.parameters())


def layer_rows(report: Any) -> dict[str, Any]:
    """Each converted layer with its starting error and energy kept, each dense one with the reason."""
    converted = [{"name": name, "relative_error": report.errors.get(name), "energy_kept": report.energy.get(name)}
                 for name in report.converted]
    return {"converted": converted, "kept_dense": dict(report.skipped)}


def summary_lines(result: dict[str, Any]) -> list[str]:
    """What `phnn compress` prints: the numbers of compress.json, in words."""
    teacher, student, metric = result["teacher"], result["student"], result["metrics"]
    lines = [f"phnn compress: n={student['n']} ({student['init']} start): parameters {teacher['parameters']:,} -> "
             f"{student['parameters']:,} ({student['parameters'] / teacher['parameters']:.1%} of the teacher's)"]
    for row in result["layers"]["converted"]:
        error = "" if row["relative_error"] is None else \
            f": relative error {row['relative_error']:.3f}, energy kept {row['energy_kept']:.1%}"
        lines.append(f"  PH     {row['name']}{error}")
    lines += [f"  dense  {name}: {reason}" for name, reason in result["layers"]["kept_dense"].items()]
    key = metric["name"]
    lines.append(f"  {key}: teacher {metric['teacher'].get(key, float('nan')):.4f}; student "
                 f"{metric['student_start'].get(key, float('nan')):.4f} at the start, "
                 f"{metric['student_end'].get(key, float('nan')):.4f} at the end")
    lines.append(f"  time: {result['seconds']['total']:.0f} s (distillation {result['seconds']['fit']:.0f} s)")
    return lines


def main(argv: list[str]) -> int:
    """Make a trained model about n times smaller (nearest-Kronecker start + distillation)."""
    started = time.perf_counter()
    args, fit_args = build_parser().parse_known_args(argv)
    from phnn.checkpoint import load_task
    from phnn.cli.quiet import quiet_libraries  # the CLI's filter of harmless library warnings
    from phnn.nn.convert import to_dense
    from phnn.tasks.distill import distill

    teacher, checkpoint = load_task(args.ckpt_path)
    check_teacher(teacher, args.n, args.ckpt_path)
    cli = build_student_run(checkpoint, args.n, fit_args)
    check_data(teacher, checkpoint, cli.datamodule, args.ckpt_path)
    report = start_student(cli.model, teacher, args.n, args.init, args.ckpt_path)
    # a PH teacher made dense once: its weights are not composed again at every step
    distill(cli.model, to_dense(teacher.model), alpha=args.alpha, temperature=args.temperature,
            feature_layers=args.feature_layers, feature_weight=args.feature_weight)
    with quiet_libraries():
        return run_and_report(args, cli, teacher, checkpoint, report, started)


def build_student_run(checkpoint: dict[str, Any], n: int, fit_args: list[str]) -> Any:
    """The LightningCLI of the student's fit (task, data, trainer, run folder), built but not run."""
    from phnn.cli.app import run_cli

    task_path = checkpoint["phnn"]["task"]
    task_name = task_path.rpartition(".")[2]
    model = {"class_path": task_path, "init_args": student_arguments(checkpoint, task_name, n)}
    # the teacher's network wins over a model section of a config (e.g. the teacher run's config.yaml);
    # the user's --model.* options (e.g. the optimizer's learning rate) win over the teacher's
    overrides, rest = split_model_options(fit_args)
    with tempfile.TemporaryDirectory(prefix="phnn-compress-") as folder:  # read while the classes are built
        rest = [config_for_student(arg, Path(folder)) if previous in CONFIG_FLAGS else arg
                for previous, arg in zip(["", *rest], rest)]
        return run_cli([f"--trainer.max_epochs={DEFAULT_EPOCHS}", *rest, "--model", json.dumps(model), *overrides],
                       run=False)


def config_for_student(value: str, folder: Path) -> str:
    """A config file as given, or, when it holds other sections than `KEPT_SECTIONS` (e.g. the teacher run's
    config.yaml: its model and fit options), a copy in `folder` with only those, without the loggers' names."""
    import yaml

    from phnn.config_files import check_config_file, find_config

    path = find_config(value)
    check_config_file(path)
    content = yaml.safe_load(path.read_text())
    if not isinstance(content, dict) or set(content) <= set(KEPT_SECTIONS):
        return value
    kept = {key: item for key, item in content.items() if key in KEPT_SECTIONS}
    loggers = (kept.get("trainer") or {}).get("logger")
    for logger in loggers if isinstance(loggers, list) else []:
        if isinstance(logger, dict) and isinstance(logger.get("init_args"), dict):
            logger["init_args"].pop("name", None)  # the run's own name: the student's run is named afresh
    copy = folder / f"{len(list(folder.iterdir()))}_{path.name}"
    copy.write_text(yaml.safe_dump(kept))
    return str(copy)


def split_model_options(args: list[str]) -> tuple[list[str], list[str]]:
    """(the --model.* options with their values, every other argument), each in the given order."""
    model: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        takes_value = arg.startswith("--model.") and "=" not in arg and index + 1 < len(args)
        (model if arg.startswith("--model.") else rest).extend(args[index:index + 1 + takes_value])
        index += 1 + takes_value
    return model, rest


def run_and_report(args: argparse.Namespace, cli: Any, teacher: Any, checkpoint: dict[str, Any], report: Any,
                   started: float) -> int:
    """Score teacher and student, distil, score the best checkpoint, print and write compress.json."""
    from phnn import runs
    from phnn.checkpoint import load_task
    from phnn.io import write_text_atomic

    datamodule, trainer, student = cli.datamodule, cli.trainer, cli.model
    state = checkpoint.get(type(datamodule).__qualname__)
    if state:  # e.g. L3DAS21's normalisation statistics, as the teacher was trained with
        datamodule.load_state_dict(state)
    device, precision = trainer.strategy.root_device.type, str(trainer.precision)
    metric_name = student.monitor.replace("val/", "test/", 1)
    teacher_scores = evaluate(teacher, datamodule, device, precision)
    start_scores = evaluate(student, datamodule, device, precision)
    run = Path(trainer.log_dir or trainer.default_root_dir)
    existed = run.exists()
    fit_started = time.perf_counter()
    try:
        trainer.fit(student, datamodule=datamodule)
    except BaseException:
        if trainer.is_global_zero:
            runs.discard_unstarted(run, existed)
        raise
    fit_seconds = time.perf_counter() - fit_started
    if not trainer.is_global_zero:
        return 0
    callback = trainer.checkpoint_callback
    best = Path(callback.best_model_path or callback.last_model_path)
    end_scores = evaluate(load_task(best)[0], datamodule, device, precision)
    result = {
        "teacher": {"checkpoint": str(args.ckpt_path), "task": checkpoint["phnn"]["task"],
                    "parameters": count(teacher.model)},
        "student": {"n": args.n, "init": args.init, "parameters": count(student.model), "checkpoint": str(best),
                    "run": str(run)},
        "distillation": student.distillation.settings(),
        "layers": layer_rows(report),
        "metrics": {"name": metric_name, "split": "test", "teacher": teacher_scores, "student_start": start_scores,
                    "student_end": end_scores},
        "seconds": {"fit": fit_seconds, "total": time.perf_counter() - started},
    }
    print("\n".join(summary_lines(result)))
    write_text_atomic(run / REPORT, json.dumps(result, indent=2) + "\n")
    print(f"wrote {run / REPORT}")
    if (run / runs.CONFIG).is_file():
        print(runs.next_steps(run, best, "--data.predict_path PATH"))
    return 0
