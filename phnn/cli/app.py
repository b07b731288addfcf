"""`PHNNCLI`: LightningCLI with phnn's tasks and DataModules, default callbacks and one folder per run;
`run_cli` parses a command line with it (config files found by name, checked and put in order first)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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

import phnn.callbacks  # noqa: F401  registers the writers' short names
import phnn.data  # noqa: F401  registers the DataModules' short names
from phnn import runs
from phnn.callbacks import LastCheckpoint, Timing
from phnn.checkpoint import SafeCheckpointIO, apply_checkpoint_hyperparameters, find_last_checkpoint
from phnn.cli import run_folders
from phnn.cli.help import SUBCOMMANDS, parser_kwargs
from phnn.cli.quiet import quiet_libraries, without_checkpoint_callbacks_warning
from phnn.config_files import resolve_config_args
from phnn.config_order import order_configs
from phnn.tasks import PHTask

#: `--ckpt_path` values that Lightning resolves itself (not a file phnn reads)
LIGHTNING_CKPT_NAMES = ("best", "last", "hpc", "registry")


class PHNNCLI(LightningCLI):
    """LightningCLI with phnn's tasks and DataModules, default callbacks and one folder per run.

    `extra_commands` (name → one-line summary) are listed in `phnn --help`; `phnn.cli.main`
    dispatches them before LightningCLI parses anything."""

    def __init__(self, args: list[str] | None, run: bool = True, extra_commands: Mapping[str, str] = {}) -> None:
        self.run_dir: Path | None = None  # the folder this fit writes (None: no versioned logger)
        self._run_dir_existed = False
        self._argv = list(sys.argv[1:] if args is None else args)
        self._extra_commands = dict(extra_commands)
        super().__init__(
            PHTask,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"logger": run_folders.DEFAULT_LOGGERS},
            seed_everything_default=0,
            parser_kwargs=parser_kwargs(),
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """LightningCLI's parser, raising its errors (one line, `phnn.errors`) instead of printing a page."""
        parser = super().init_parser(**kwargs)
        parser.exit_on_error = False
        return parser

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        """As LightningCLI's, with phnn's one-line help per subcommand and the extra commands listed."""
        self._subcommand_parsers: dict[str, LightningArgumentParser] = {}
        subcommands = parser.add_subcommands(title="subcommands", metavar="SUBCOMMAND")
        for name, (summary, _) in SUBCOMMANDS.items():
            sub = self._prepare_subcommand_parser(Trainer, name, **kwargs.get(name, {}))
            self._subcommand_parsers[name] = sub
            subcommands.add_subcommand(name, sub, help=summary)
        for name, summary in self._extra_commands.items():
            subcommands.add_subcommand(name, LightningArgumentParser(prog=f"phnn {name}", description=summary),
                                       help=summary)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the data's class count and channels into the task; add --writer and --out."""
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
            config.ckpt_path = str(find_last_checkpoint(run_folders.run_root(config)))
        if config.ckpt_path not in LIGHTNING_CKPT_NAMES:
            self.config = apply_checkpoint_hyperparameters(self.parser, self.config, subcommand, self._argv)

    def before_instantiate_classes(self) -> None:
        """fit: name and version the loggers (one run folder); the others: make no run of their own."""
        config = self.config.get(str(self.subcommand), self.config)
        if self.subcommand in (None, "fit"):
            self._versioned = run_folders.name_and_version_loggers(config)
            return
        self._versioned = []
        self.save_config_callback = None
        run_folders.make_no_run(config)

    def after_instantiate_classes(self) -> None:
        """Remember the fit's run folder; config.yaml keeps `version: null` (a new run gets a new folder)."""
        for logger_args in self._versioned:
            logger_args.version = None
        if self.subcommand == "fit" and self.trainer.log_dir is not None:
            self.run_dir = Path(self.trainer.log_dir)
            self._run_dir_existed = self.run_dir.exists()

    def results_dir(self) -> Path | None:
        """Where validate/test/predict write: --out, else the run folder of --ckpt_path."""
        config = self.config.get(str(self.subcommand), self.config)
        if config.get("out"):
            return Path(config.out)
        return runs.run_of_checkpoint(config.get("ckpt_path"))

    # --- the trainer and its callbacks ----------------------------------------------------------

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The Trainer with phnn's default callbacks, the prediction writer and `SafeCheckpointIO`."""
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
        with without_checkpoint_callbacks_warning():
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
        """`phnn validate`: Trainer.validate, the metrics written to <run>/validate/metrics.json."""
        return self._score("validate", self.trainer.validate, **kwargs)

    def test(self, **kwargs: Any) -> list[dict[str, float]]:
        """`phnn test`: Trainer.test, the metrics written to <run>/test/metrics.json."""
        return self._score("test", self.trainer.test, **kwargs)

    def predict(self, **kwargs: Any) -> None:
        """`phnn predict`: the writer writes as batches end (nothing is kept in memory)."""
        with without_checkpoint_callbacks_warning():
            self.trainer.predict(**{**kwargs, "return_predictions": False})
        writer = next(c for c in self.trainer.callbacks if isinstance(c, BasePredictionWriter))
        folder = getattr(writer, "output_dir", None)
        if self.trainer.is_global_zero and folder is not None:
            print(f"phnn predict: wrote predictions to {folder}")

    def after_fit(self) -> None:
        """Print the commands that use the fit's best checkpoint next."""
        checkpoint = self.trainer.checkpoint_callback
        if self.run_dir is None or checkpoint is None or not self.trainer.is_global_zero:
            return
        best = checkpoint.best_model_path or checkpoint.last_model_path
        if best:
            print(runs.next_steps(self.run_dir, Path(best), "--data.predict_path PATH"))


def run_cli(args: list[str] | None = None, run: bool = True, extra_commands: Mapping[str, str] = {}) -> PHNNCLI:
    """Parse `args` (None: sys.argv), run the subcommand and return the LightningCLI (its trainer, model).

    With `run=False` there is no subcommand: the classes are only built (e.g. `phnn inspect --config`).
    Config files are found by path or shipped name and checked (`phnn.config_files`), and may come in
    any order (`phnn.config_order`)."""
    argv = order_configs(resolve_config_args(list(sys.argv[1:] if args is None else args)))
    with quiet_libraries():
        return PHNNCLI(argv, run=run, extra_commands=extra_commands)
