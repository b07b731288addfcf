"""The `phnn` command: LightningCLI subcommands (fit, validate, test, predict) plus phnn's own tools.

    phnn fit --config experiment/cifar10_resnet18_large_phc4.yaml --data.root data/cifar10
    phnn test --config RUN/config.yaml --ckpt_path RUN/checkpoints/best.ckpt     # RUN: the fit's run folder
    phnn fit --model ImageClassifier --data ImageFolderDataModule --data.root data/my_images --model.n 3

`main(args)` is what the console script and the tests call, in-process; it returns the exit code.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from phnn.errors import EXIT_SIGTERM, report_failures

# Extra subcommands: name -> "module:function"; each function takes the remaining argv and returns
# an exit code. Imported lazily so that `phnn <subcommand>` stays fast; `phnn --help` lists each with
# the first line of its function's (or module's) docstring.
EXTRA_COMMANDS: dict[str, str] = {
    "synth": "phnn.data.l3das21.synth:main",
    "download": "phnn.download:main",
    "inspect": "phnn.tools.commands:inspect_main",
    "export": "phnn.tools.commands:export_main",
    "score": "phnn.tools.score:main",
    "compress": "phnn.tools.compress:main",
}

DESCRIPTION = "phnn: train and use Parameterized Hypercomplex Neural Networks (PyTorch Lightning)."

# One line each in `phnn --help`, and examples at the end of `phnn <subcommand> --help` (the docs
# test runs every `phnn ...` line under "Examples:").
SUBCOMMANDS: dict[str, tuple[str, list[str]]] = {
    "fit": ("Train a model (one run folder per fit).", [
        "phnn fit --config experiment/cifar10_resnet18_large_phc4.yaml --data.root data/cifar10",
        "phnn fit --data ImageFolderDataModule --data.root data/my_images --model ImageClassifier --model.n 3 "
        "--model.backbone resnet18_large --trainer.max_epochs 1",
    ]),
    "validate": ("Score a checkpoint on the validation split.", [
        "phnn validate --config RUN/config.yaml --ckpt_path RUN/checkpoints/best.ckpt",
    ]),
    "test": ("Score a checkpoint on the test split.", [
        "phnn test --config RUN/config.yaml --ckpt_path RUN/checkpoints/best.ckpt",
    ]),
    "predict": ("Predict on files (--data.predict_path).", [
        "phnn predict --config RUN/config.yaml --ckpt_path RUN/checkpoints/best.ckpt --data.predict_path PATH",
    ]),
}

# Loggers of every fit unless a config says otherwise. A logger without a name is named after the
# run (`phnn.runs.run_name`), and both get the same version, so each run has one folder:
# runs/<name>/version_<k>/ with config.yaml, metrics.csv, TensorBoard events and checkpoints/.
DEFAULT_LOGGERS: list[dict[str, Any]] = [
    {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": "runs", "name": None}},
    {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs", "name": None}},
]

# Library warnings known to be harmless here; filtered while the CLI runs (never on `import phnn`).
HARMLESS_WARNINGS: tuple[str, ...] = (
    # TensorBoard and CSV share each run's folder on purpose; the CSV logger warns when it finds it in use
    r"Experiment logs directory .* exists and is not empty",
    # main(args) runs in-process on purpose (tests, scripts): the host's own sys.argv is not ours
    r"LightningCLI's args parameter is intended to run from within Python",
    # Lightning 2.6 on torch 2.11 uses a deprecated pytree class internally
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)
# validate/test/predict restore only the weights: the fit's ModelCheckpoint is not needed, not missing
CHECKPOINT_CALLBACKS_WARNING = r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint"
# Lightning's info lines that are advertisements rather than information.
HIDDEN_INFO: tuple[str, ...] = ("💡 Tip:",)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0].rstrip(".") + "." if (text or "").strip() else ""


def command_summaries() -> dict[str, str]:
    """Every subcommand with one line: fit/validate/test/predict, then each of `EXTRA_COMMANDS`."""
    lines = {name: summary for name, (summary, _) in SUBCOMMANDS.items()}
    for name, target in EXTRA_COMMANDS.items():
        module_name, function_name = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:  # an optional extra that is not installed: still listed
            lines[name] = f"(unavailable: {error})"
            continue
        function = getattr(module, function_name, None)
        lines[name] = _first_line(getattr(function, "__doc__", None)) or _first_line(module.__doc__)
    return lines


def _epilog() -> str:
    return ("Run `phnn <subcommand> --help` for the options of one subcommand. Compose configs with several\n"
            "--config flags (data, model, family, trainer; in any order); see phnn/configs/README.md.")


def _examples(subcommand: str) -> str:
    return "Examples:\n" + "\n".join(f"  {line}" for line in SUBCOMMANDS[subcommand][1])


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(HIDDEN_INFO)


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Filter `HARMLESS_WARNINGS` and `HIDDEN_INFO` for the duration of one CLI run."""
    quiet = _Quiet()
    loggers = [logging.getLogger(f"lightning.{part}.utilities.rank_zero") for part in ("pytorch", "fabric")]
    with warnings.catch_warnings():
        for message in HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        for logger in loggers:
            logger.addFilter(quiet)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeFilter(quiet)


def _build_cli_class() -> type:
    """Define the LightningCLI subclass; kept in a function so that `import phnn.cli` stays light."""
    from jsonargparse import Namespace
    from jsonargparse._util import import_object  # the importer jsonargparse resolves class_path with
    from lightning.pytorch import LightningDataModule, Trainer
    from lightning.pytorch.callbacks import (
        BasePredictionWriter,
        Callback,
        LearningRateMonitor,
        ModelCheckpoint,
        ProgressBar,
        RichProgressBar,
    )
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
    from lightning.pytorch.plugins.io import CheckpointIO
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    import phnn.callbacks  # noqa: F401  registers the writers' short names
    import phnn.data  # noqa: F401  registers the DataModules' short names
    import phnn.tasks  # noqa: F401  registers the tasks' short names
    from phnn import runs
    from phnn.callbacks import LastCheckpoint, Timing
    from phnn.checkpoint import SafeCheckpointIO, apply_checkpoint_hyperparameters, find_last_checkpoint
    from phnn.tasks.base import PHTask

    versioned_loggers = (TensorBoardLogger, CSVLogger)

    def class_of(group: Any) -> type | None:
        path = group.get("class_path") if isinstance(group, Namespace) else None
        return import_object(path) if path else None

    def default_run_name(config: Namespace) -> str:
        """The name of a run whose logger has none: `<data>_<model>` (see `phnn.runs.run_name`)."""
        task, data = class_of(config.get("model")), class_of(config.get("data"))
        return runs.run_name(task, config.model.get("init_args") or {}, data) if task else "phnn"

    class PHNNCLI(LightningCLI):
        """LightningCLI with phnn's tasks and DataModules, default callbacks and one folder per run."""

        def __init__(self, args: list[str] | None, run: bool = True) -> None:
            self.run_dir: Path | None = None  # the folder this fit writes (None: no versioned logger)
            self._run_dir_existed = False
            self._argv = list(sys.argv[1:] if args is None else args)
            super().__init__(
                PHTask,
                LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_kwargs={"overwrite": True},
                trainer_defaults={"logger": DEFAULT_LOGGERS},
                seed_everything_default=0,
                parser_kwargs={"description": DESCRIPTION, "epilog": _epilog(), "env_prefix": "PHNN", "prog": "phnn",
                               "formatter_class": _formatter()}
                | {name: {"description": summary, "epilog": _examples(name), "formatter_class": _formatter()}
                   for name, (summary, _) in SUBCOMMANDS.items()},
                auto_configure_optimizers=False,
                args=args,
                run=run,
            )

        def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
            """As LightningCLI's, with phnn's one-line help per subcommand and the extra commands listed
            (they are dispatched by `main` before LightningCLI parses anything)."""
            self._subcommand_parsers: dict[str, LightningArgumentParser] = {}
            subcommands = parser.add_subcommands(title="subcommands", metavar="SUBCOMMAND")
            for name, summary in command_summaries().items():
                if name in SUBCOMMANDS:
                    sub = self._prepare_subcommand_parser(Trainer, name, **kwargs.get(name, {}))
                    self._subcommand_parsers[name] = sub
                else:
                    sub = LightningArgumentParser(prog=f"phnn {name}", description=summary)
                subcommands.add_subcommand(name, sub, help=summary)

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            for field in ("num_classes", "in_channels"):
                parser.link_arguments(f"data.{field}", f"model.init_args.{field}", apply_on="instantiate")
            parser.add_argument(
                "--writer", type=BasePredictionWriter | None, default=None,
                help="Prediction writer used by `predict` (default: the task's, e.g. ImagePredictionWriter or "
                     "SEDPredictionWriter); output_dir defaults to <run>/predictions. Ignored by the others.",
            )
            parser.add_argument(
                "--out", type=str | None, default=None,
                help="validate/test/predict: folder for the results (<out>/test/metrics.json, <out>/predictions/); "
                     "default: the run folder of --ckpt_path. Ignored by fit.",
            )

        # --- before anything is built: name the run, or point later commands at it -----------------

        def _parse_ckpt_path(self) -> None:
            """`--ckpt_path`: `last` is the newest last.ckpt of this run name; a file is read safely and
            checked before its hyperparameters are used, and the user's values win over them."""
            subcommand = self.config.get("subcommand")
            config = self.config.get(str(subcommand)) if subcommand else None
            if config is None or not config.get("ckpt_path"):
                return
            if config.ckpt_path == "last":
                config.ckpt_path = str(find_last_checkpoint(self._run_root(config)))
            if config.ckpt_path not in ("best", "last", "hpc", "registry"):
                self.config = apply_checkpoint_hyperparameters(self.parser, self.config, subcommand, self._argv)

        @staticmethod
        def _run_root(config: Namespace) -> Path:
            """runs/<name>: the folder of the first logger's versions (trainer.default_root_dir without one)."""
            trainer = config.trainer
            loggers = trainer.get("logger")
            for logger in loggers if isinstance(loggers, list) else []:
                args = logger.get("init_args") if isinstance(logger, Namespace) else None
                if args is not None and args.get("save_dir") is not None:
                    return Path(args.save_dir) / (args.get("name") or default_run_name(config))
            return Path(trainer.get("default_root_dir") or ".")

        def before_instantiate_classes(self) -> None:
            config = self.config.get(str(self.subcommand), self.config)
            if self.subcommand in (None, "fit"):
                self._versioned = self._name_and_version_loggers(config)
                return
            self._versioned = []
            # validate/test/predict make no run of their own: no loggers, checkpoints or config.yaml
            self.save_config_callback = None
            config.trainer.logger = False
            config.trainer.enable_checkpointing = False
            config.trainer.callbacks = [c for c in config.trainer.get("callbacks") or []
                                        if not (isinstance(c, Namespace) and issubclass(class_of(c) or object,
                                                                                       ModelCheckpoint))] or None

        def after_instantiate_classes(self) -> None:
            # the saved config.yaml keeps `version: null`, so a run started from it gets a new folder
            for logger_args in self._versioned:
                logger_args.version = None
            if self.subcommand == "fit" and self.trainer.log_dir is not None:
                self.run_dir = Path(self.trainer.log_dir)
                self._run_dir_existed = self.run_dir.exists()

        def _name_and_version_loggers(self, config: Namespace) -> list[Namespace]:
            """Name unnamed TensorBoard/CSV loggers after the run and give loggers that share a folder and
            have no version the same new one; returns the init_args that were given a version."""
            loggers = config.trainer.get("logger")
            if not isinstance(loggers, list):
                return []
            name = default_run_name(config)
            versions: dict[Path, int] = {}
            versioned: list[Namespace] = []
            for logger in loggers:
                if not isinstance(logger, Namespace) or not issubclass(class_of(logger) or object, versioned_loggers):
                    continue
                args = logger.get("init_args") or Namespace()
                if args.get("name") is None:
                    args.name = name
                if args.get("version") is None:
                    root = Path(args.get("save_dir") or ".") / args.name
                    args.version = versions.setdefault(root, runs.next_version(root))
                    versioned.append(args)
                logger.init_args = args
            return versioned

        def results_dir(self) -> Path | None:
            """Where validate/test/predict write: --out, else the run folder of --ckpt_path."""
            config = self.config.get(str(self.subcommand), self.config)
            if config.get("out"):
                return Path(config.out)
            return runs.run_of_checkpoint(config.get("ckpt_path"))

        # --- the trainer and its callbacks ----------------------------------------------------------

        def instantiate_trainer(self, **kwargs: Any) -> Trainer:
            trainer_config = self._get(self.config_init, "trainer", default={})
            user = list(trainer_config.get("callbacks") or [])
            defaults = self._default_callbacks(trainer_config, user)
            if self.subcommand == "predict":
                defaults.append(self._prediction_writer())
            plugins = trainer_config.get("plugins") or []
            plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
            if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
                plugins.append(SafeCheckpointIO())
            return super().instantiate_trainer(callbacks=[*defaults, *user], plugins=plugins, **kwargs)

        def _prediction_writer(self) -> BasePredictionWriter:
            """The configured writer, else the task's default; its output_dir defaults to <run>/predictions."""
            writer = self._get(self.config_init, "writer")
            if writer is None:
                default = getattr(self.model, "prediction_writer", None)
                if default is None:
                    raise ValueError(f"{type(self.model).__name__} has no prediction writer, so `phnn predict` would "
                                     "write nothing; give one with --writer CLASS (a BasePredictionWriter)")
                writer = import_object(default)()
            if getattr(writer, "output_dir", "") is None:
                folder = self.results_dir()
                if folder is None:
                    raise ValueError("where should the predictions go? The checkpoint is not in a run folder "
                                     "(<run>/checkpoints/); give --out DIR or --writer.output_dir DIR")
                writer.output_dir = folder / "predictions"
            return writer

        def _default_callbacks(self, trainer_config: dict[str, Any], user: list[Callback]) -> list[Callback]:
            """Checkpoints (fit: best by the task's metric; last after every epoch and on SIGTERM), LR
            monitor, rich progress bar, timing — each unless the config already has one of its kind or
            switched the feature off."""
            model = self.model
            checkpointing = trainer_config.get("enable_checkpointing") is not False
            wanted: list[tuple[type[Callback], bool, Any]] = [
                (ModelCheckpoint, checkpointing,
                 lambda: ModelCheckpoint(monitor=model.monitor, mode=model.monitor_mode, filename="best",
                                         auto_insert_metric_name=False)),
                (LastCheckpoint, checkpointing and not any(getattr(c, "save_last", None) for c in user), LastCheckpoint),
                (LearningRateMonitor, self.subcommand == "fit" and trainer_config.get("logger") not in (False, None),
                 LearningRateMonitor),
                (ProgressBar, trainer_config.get("enable_progress_bar") is not False, RichProgressBar),
                (Timing, True, Timing),
            ]
            return [make() for kind, enabled, make in wanted if enabled and not any(isinstance(c, kind) for c in user)]

        # --- running: a fit that fails before saving anything leaves no folder behind ---------------

        def _run_subcommand(self, subcommand: str) -> None:
            try:
                super()._run_subcommand(subcommand)
            except BaseException:
                if self.run_dir is not None and self.trainer.is_global_zero:
                    runs.discard_unstarted(self.run_dir, self._run_dir_existed)
                raise

        def _score(self, stage: str, run: Any, **kwargs: Any) -> list[dict[str, float]]:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=CHECKPOINT_CALLBACKS_WARNING)
                results = run(**kwargs)
            folder = self.results_dir()
            if not self.trainer.is_global_zero:
                return results
            if folder is None:
                print(f"phnn {stage}: results not saved (the checkpoint is not in a run folder); "
                      "give --out DIR to keep them")
            else:
                print(f"phnn {stage}: wrote {runs.write_results(folder, stage, results, kwargs.get('ckpt_path'))}")
            return results

        def validate(self, **kwargs: Any) -> list[dict[str, float]]:
            return self._score("validate", self.trainer.validate, **kwargs)

        def test(self, **kwargs: Any) -> list[dict[str, float]]:
            return self._score("test", self.trainer.test, **kwargs)

        def predict(self, **kwargs: Any) -> None:
            # the writer writes as batches end; keeping every prediction in memory too would only cost
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=CHECKPOINT_CALLBACKS_WARNING)
                self.trainer.predict(**{**kwargs, "return_predictions": False})
            writer = next(c for c in self.trainer.callbacks if isinstance(c, BasePredictionWriter))
            folder = getattr(writer, "output_dir", None)
            if self.trainer.is_global_zero and folder is not None:
                print(f"phnn predict: wrote predictions to {folder}")

        def after_fit(self) -> None:
            checkpoint = self.trainer.checkpoint_callback
            if self.run_dir is None or checkpoint is None or not self.trainer.is_global_zero:
                return
            best = checkpoint.best_model_path or checkpoint.last_model_path
            if best:
                print(runs.next_steps(self.run_dir, Path(best), "--data.predict_path PATH"))

    return PHNNCLI


def _formatter() -> type:
    """Keep the examples and the command list in help texts as written (one command per line)."""
    from jsonargparse import DefaultHelpFormatter

    class Formatter(DefaultHelpFormatter):
        def __init__(self, prog: str, **kwargs: Any) -> None:
            # wide enough that every subcommand's summary stays on one line
            super().__init__(prog, **{**kwargs, "width": max(kwargs.get("width") or 0, 110)})

        def _fill_text(self, text: str, width: int, indent: str) -> str:
            return "".join(indent + line for line in text.splitlines(keepends=True))

    return Formatter


def failures_of(trainer: Any) -> list[str]:
    """Failures that callbacks recorded (e.g. a prediction writer's unreadable clips), in order."""
    return [str(failure) for callback in getattr(trainer, "callbacks", []) for failure in getattr(callback, "failures", None) or []]


def run_cli(args: list[str] | None = None, run: bool = True) -> Any:
    """Parse `args` (None: sys.argv), run the subcommand and return the LightningCLI (its trainer, model).

    With `run=False` there is no subcommand: the classes are only built (e.g. `phnn inspect --config`).
    Config files may come in any order (`phnn.config_order`)."""
    from phnn.config_files import resolve_config_args
    from phnn.config_order import order_configs

    argv = order_configs(resolve_config_args(list(sys.argv[1:] if args is None else args)))
    with _quiet_libraries():
        return _build_cli_class()(argv, run=run)


def _run(argv: list[str]) -> int:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    try:
        if argv and argv[0] in EXTRA_COMMANDS:
            module_name, function_name = EXTRA_COMMANDS[argv[0]].split(":")
            return int(getattr(importlib.import_module(module_name), function_name)(argv[1:]) or 0)
        cli = run_cli(argv)
    except SIGTERMException:
        saved = "; the state was saved in the run's checkpoints/last.ckpt (resume with --ckpt_path last)"
        print(f"phnn {argv[0]}: stopped by SIGTERM{saved if argv[0] == 'fit' else ''}", file=sys.stderr)
        return EXIT_SIGTERM
    except SystemExit as exit_:  # --help, --print_config and parse errors end here
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    failures = failures_of(cli.trainer)
    if failures:
        print(f"phnn {cli.subcommand}: {len(failures)} failure(s):", *failures, sep="\n  ", file=sys.stderr)
        return 1
    return 0


def main(args: list[str] | None = None) -> int:
    """Run `phnn <subcommand> ...`; returns the exit code: 0, 1 when a callback reported failures,
    2 for a user-facing error (one message; see `phnn.errors`), 143 after SIGTERM."""
    argv = list(sys.argv[1:] if args is None else args)
    return report_failures(argv[0] if argv else "", lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
