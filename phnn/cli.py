"""The `phnn` command: LightningCLI subcommands (fit, validate, test, predict) plus phnn's own tools.

    phnn fit --config configs/experiment/cifar10_resnet18_large_phc4.yaml --data.root data/cifar10
    phnn test --config runs/phnn/version_0/config.yaml --ckpt_path runs/phnn/version_0/checkpoints/best.ckpt
    phnn fit --model ImageClassifier --data ImageFolderDataModule --data.root my_images --model.n 3

`main(args)` is what the console script and the tests call, in-process; it returns the exit code.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path
from typing import Any

from phnn.errors import EXIT_SIGTERM, report_failures

# Extra subcommands: name -> "module:function"; each function takes the remaining argv and returns
# an exit code. Imported lazily so that `phnn --help` stays fast.
EXTRA_COMMANDS: dict[str, str] = {
    "synth": "phnn.data.l3das21.synth:main",
    "download": "phnn.download:main",
    "inspect": "phnn.tools.commands:inspect_main",
    "export": "phnn.tools.commands:export_main",
    "score": "phnn.tools.score:main",
}

DESCRIPTION = "phnn: train and use Parameterized Hypercomplex Neural Networks (PyTorch Lightning)."

# Loggers of every run unless a config says otherwise. Both get the same version (see
# `_share_logger_versions`), so each run has one folder: runs/<name>/version_<k>/ with config.yaml,
# metrics.csv, TensorBoard events and checkpoints/{best,last}.ckpt.
DEFAULT_LOGGERS: list[dict[str, Any]] = [
    {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": "runs", "name": "phnn"}},
    {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs", "name": "phnn"}},
]


def _epilog() -> str:
    lines = ["Run `phnn <subcommand> --help` for the options of one subcommand."]
    if EXTRA_COMMANDS:
        lines.append("Other commands (`phnn <command> --help`): " + ", ".join(sorted(EXTRA_COMMANDS)) + ".")
    lines.append("Compose configs with several --config flags (model, data, trainer, experiment); see configs/README.md.")
    return "\n".join(lines)


def _next_version(root: Path) -> int:
    """One more than the highest `version_<k>` folder under `root` (0 when there is none)."""
    versions = [int(p.name[8:]) for p in root.glob("version_*") if p.is_dir() and p.name[8:].isdigit()]
    return max(versions, default=-1) + 1


def _build_cli_class() -> type:
    """Define the LightningCLI subclass; kept in a function so that `import phnn.cli` stays light."""
    from jsonargparse import Namespace
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

    import phnn.data  # noqa: F401  registers the DataModules' short names
    import phnn.tasks  # noqa: F401  registers the tasks' short names
    from phnn.callbacks import LastCheckpoint, Timing
    from phnn.checkpoint import SafeCheckpointIO, apply_checkpoint_hyperparameters, find_last_checkpoint
    from phnn.tasks.base import PHTask

    versioned_loggers = (TensorBoardLogger, CSVLogger)

    class PHNNCLI(LightningCLI):
        """LightningCLI with phnn's tasks and DataModules, default callbacks and one folder per run."""

        def __init__(self, args: list[str] | None, run: bool = True) -> None:
            self._argv = list(sys.argv[1:] if args is None else args)
            super().__init__(
                PHTask,
                LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_kwargs={"overwrite": True},
                trainer_defaults={"logger": DEFAULT_LOGGERS},
                parser_kwargs={"description": DESCRIPTION, "epilog": _epilog(), "env_prefix": "PHNN",
                               "prog": "phnn"},
                auto_configure_optimizers=False,
                args=args,
                run=run,
            )

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            for field in ("num_classes", "in_channels"):
                parser.link_arguments(f"data.{field}", f"model.init_args.{field}", apply_on="instantiate")
            parser.add_argument(
                "--writer", type=BasePredictionWriter | None, default=None,
                help="Prediction writer used by `predict` (e.g. SEDPredictionWriter with output_dir); "
                     "ignored by the other subcommands.",
            )

        def _parse_ckpt_path(self) -> None:
            """`--ckpt_path`: `last` is the newest last.ckpt of this run name; a file is read safely and
            checked before its hyperparameters are used, and the user's values win over them."""
            subcommand = self.config.get("subcommand")
            config = self.config.get(str(subcommand)) if subcommand else None
            if config is None or not config.get("ckpt_path"):
                return
            if config.ckpt_path == "last":
                config.ckpt_path = str(find_last_checkpoint(self._run_root(config.trainer)))
            if config.ckpt_path not in ("best", "last", "hpc", "registry"):
                self.config = apply_checkpoint_hyperparameters(self.parser, self.config, subcommand, self._argv)

        @staticmethod
        def _run_root(trainer: Namespace) -> Path:
            """runs/<name>: the folder of the first logger's versions (trainer.default_root_dir without one)."""
            loggers = trainer.get("logger")
            for logger in loggers if isinstance(loggers, list) else []:
                args = logger.get("init_args") if isinstance(logger, Namespace) else None
                if args is not None and args.get("save_dir") is not None:
                    return Path(args.save_dir) / (args.get("name") or "")
            return Path(trainer.get("default_root_dir") or ".")

        def before_instantiate_classes(self) -> None:
            config = self.config.get(str(self.subcommand), self.config)
            self._versioned = self._share_logger_versions(config.trainer)

        def after_instantiate_classes(self) -> None:
            # the saved config.yaml keeps `version: null`, so a run started from it gets a new folder
            for logger_args in self._versioned:
                logger_args.version = None

        @staticmethod
        def _share_logger_versions(trainer: Namespace) -> list[Namespace]:
            """Give TensorBoard/CSV loggers that share a folder and have no version the same new one;
            returns the init_args that were given a version."""
            loggers = trainer.get("logger")
            if not isinstance(loggers, list):
                return []
            from jsonargparse._util import import_object  # the importer jsonargparse resolves class_path with

            versions: dict[Path, int] = {}
            versioned: list[Namespace] = []
            for logger in loggers:
                if not isinstance(logger, Namespace) or "class_path" not in logger:
                    continue
                if not issubclass(import_object(logger.class_path), versioned_loggers):
                    continue
                args = logger.get("init_args") or Namespace()
                if args.get("version") is not None:
                    continue
                root = Path(args.get("save_dir") or ".") / (args.get("name") or "")
                args.version = versions.setdefault(root, _next_version(root))
                logger.init_args = args
                versioned.append(args)
            return versioned

        def instantiate_trainer(self, **kwargs: Any) -> Trainer:
            trainer_config = self._get(self.config_init, "trainer", default={})
            user = list(trainer_config.get("callbacks") or [])
            defaults = self._default_callbacks(trainer_config, user)
            writer = self._get(self.config_init, "writer")
            if self.subcommand == "predict" and writer is not None:
                defaults.append(writer)
            plugins = trainer_config.get("plugins") or []
            plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
            if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
                plugins.append(SafeCheckpointIO())
            return super().instantiate_trainer(callbacks=[*defaults, *user], plugins=plugins, **kwargs)

        def _default_callbacks(self, trainer_config: dict[str, Any], user: list[Callback]) -> list[Callback]:
            """Checkpoints (best by the task's metric; last after every epoch and on SIGTERM), LR monitor,
            rich progress bar, timing — each unless the config already has one of its kind or switched
            the feature off."""
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

    return PHNNCLI


def failures_of(trainer: Any) -> list[str]:
    """Failures that callbacks recorded (e.g. a prediction writer's unreadable clips), in order."""
    return [str(failure) for callback in getattr(trainer, "callbacks", []) for failure in getattr(callback, "failures", None) or []]


def run_cli(args: list[str] | None = None, run: bool = True) -> Any:
    """Parse `args` (None: sys.argv), run the subcommand and return the LightningCLI (its trainer, model).

    With `run=False` there is no subcommand: the classes are only built (e.g. `phnn inspect --config`)."""
    # TensorBoard and CSV share each run's folder on purpose; the CSV logger warns when it finds it in use.
    warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
    # main(args) runs in-process on purpose (tests, scripts): the host's own sys.argv is not ours
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")
    return _build_cli_class()(args, run=run)


def _run(argv: list[str]) -> int:
    if argv and argv[0] in EXTRA_COMMANDS:
        module_name, function_name = EXTRA_COMMANDS[argv[0]].split(":")
        return int(getattr(importlib.import_module(module_name), function_name)(argv[1:]) or 0)
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    try:
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
