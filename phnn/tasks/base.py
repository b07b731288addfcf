"""`PHTask`: what every phnn LightningModule shares — injectable optimisation, the algebra L1 penalty,
parameter reports — so that `ImageClassifier` and `SoundEventDetector` only say how to compute a loss.

A subclass sets the class attributes `monitor` / `monitor_mode` (the metric that picks the best
checkpoint), builds its network in `__init__`, and implements `step(batch, stage) -> loss`.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from phnn.errors import CheckpointError
from phnn.models.family import make_family
from phnn.nn import PHLayer
from phnn.nn.report import parameter_report
from phnn.tasks.registry import check_task
from phnn.tasks.spec import check_numbers, from_spec, to_plain, to_spec

SchedulerInterval = Literal["epoch", "step"]
_INTERVALS = ("epoch", "step")


class SGD(torch.optim.SGD):
    """torch SGD whose defaults are the published PHNN image settings (lr 0.1, momentum 0.9, wd 5e-4)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.1,
        momentum: float = 0.9,
        dampening: float = 0.0,
        weight_decay: float = 5e-4,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                         nesterov=nesterov)


class CosineAnnealingLR(torch.optim.lr_scheduler.CosineAnnealingLR):
    """Cosine annealing whose period follows the run: `T_max=None` anneals over the whole fit.

    With the scheduler stepped per epoch that is `trainer.max_epochs`; per step, the number of
    optimizer steps. `PHTask.configure_optimizers` fills it in, so `--trainer.max_epochs 30` alone
    gives a full cosine cycle, as the published 200-epoch runs had (T_max = epochs = 200).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, T_max: int | None = None, eta_min: float = 0.0) -> None:
        if T_max is not None and T_max < 1:
            raise ValueError("CosineAnnealingLR: T_max must be a positive integer or None (the run length); "
                             f"got {T_max}")
        self.follows_run = T_max is None
        super().__init__(optimizer, T_max=1 if T_max is None else T_max, eta_min=eta_min)


def collect_rng_states() -> dict[str, Any]:
    """The states of torch's, numpy's and Python's global random generators, as plain data."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position,
                                                      has_gauss, cached], "python": random.getstate()}


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set the generators to `collect_rng_states()`'s record, so a resumed fit draws what an
    uninterrupted one would have (shuffling, augmentation, dropout)."""
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


def learned_algebras(module: nn.Module) -> list[Tensor]:
    """Every trainable `algebra` of a PH layer in `module` (fixed algebras are buffers and are skipped)."""
    return [
        layer.algebra
        for layer in module.modules()
        if isinstance(layer, PHLayer) and isinstance(layer.algebra, nn.Parameter) and layer.algebra.requires_grad
    ]


def converted_n(init_args: Mapping[str, Any]) -> int | None:
    """The n a task's network is converted at (`converted_n` of `create_model`), from the task's
    arguments (a mapping or a jsonargparse Namespace): top-level, or inside the network's options
    (`model_kwargs`, `model`)."""
    for where in (init_args, init_args.get("model_kwargs"), init_args.get("model")):
        getter = getattr(where, "get", None)
        value = getter("converted_n") if callable(getter) else getattr(where, "converted_n", None)
        if value:
            return int(value)
    return None


def parameter_counts(module: nn.Module) -> tuple[int, int]:
    """(trainable parameters, parameters of the same network with every PH layer made dense)."""
    report = parameter_report(module, trainable_only=True)
    return report.total, report.dense_total


class PHTask(LightningModule, ABC):
    """Base LightningModule of phnn: optimizer/scheduler from YAML, algebra L1, parameter report.

    Abstract (subclasses implement `step`); besides being honest, that keeps jsonargparse from
    taking a subclass's defaults from this signature when the CLI resolves `--model <Subclass>`.

    Args:
        num_classes: outputs of the network (linked from `data.num_classes` by the CLI).
        in_channels: input channels (linked from `data.in_channels` by the CLI).
        optimizer: a callable `params -> Optimizer`; in YAML a `class_path` with `init_args`.
        lr_scheduler: a callable `optimizer -> LRScheduler`, or null for a constant rate.
        scheduler_interval: step the scheduler once per "epoch" or once per optimizer "step".
        algebra_l1: weight of the L1 penalty Σ|A| over every learned algebra, added to the training
            loss (the published runs used 0.001 when it was on); 0 turns it off.
    """

    #: what the task does, in words (error messages name tasks by it)
    kind: ClassVar[str] = "phnn task"
    #: the metric that selects the best checkpoint, and whether bigger is better
    monitor: ClassVar[str] = "val/loss"
    monitor_mode: ClassVar[Literal["min", "max"]] = "min"
    #: class path of the writer `phnn predict` uses when none is configured (None: the task has none)
    prediction_writer: ClassVar[str | None] = None
    #: what `samples_in` counts, in throughput summaries
    sample_unit: ClassVar[str] = "samples"
    #: the name of the backbone in run names (`runs/<data>_<backbone>_<family>/`)
    backbone_tag: ClassVar[str] = "model"

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: SchedulerInterval = "epoch",
        algebra_l1: float = 0.0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for field, value in (("num_classes", num_classes), ("in_channels", in_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: {field} must be a positive integer; got {value!r}")
        if scheduler_interval not in _INTERVALS:
            raise ValueError(f"{name}: scheduler_interval must be one of {_INTERVALS}; got {scheduler_interval!r}")
        if not algebra_l1 >= 0.0:
            raise ValueError(f"{name}: algebra_l1 must be >= 0; got {algebra_l1!r}")
        self.save_hyperparameters()
        # plain data in the checkpoint (class paths, not classes): it loads with weights_only=True
        for key in ("optimizer", "lr_scheduler"):
            self.hparams[key] = to_spec(self.hparams.get(key))
            check_numbers(self.hparams[key], f"{name}: {key}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.optimizer_factory = from_spec(optimizer, torch.optim.Optimizer, "optimizer")
        self.scheduler_factory = from_spec(lr_scheduler, torch.optim.lr_scheduler.LRScheduler, "lr_scheduler")
        self.scheduler_interval = scheduler_interval
        self.algebra_l1 = float(algebra_l1)
        self.example_input_shape: list[int] | None = None
        #: a `phnn.tasks.distill.Distillation` (frozen teacher + loss) while distilling, else None; a plain
        #: attribute, so the teacher is neither a submodule nor in the optimizer or the checkpoint
        self.distillation: Any = None

    @classmethod
    def upgrade_hparams(cls, hparams: Mapping[str, Any]) -> dict[str, Any]:
        """A checkpoint's hyperparameters in the shape of this task's signature today; a task whose
        signature changed maps its old keys here (see `phnn.tasks.legacy`)."""
        return dict(hparams)

    @classmethod
    def run_tag(cls, init_args: Mapping[str, Any]) -> str:
        """The model part of a run's name from the task's arguments: e.g. resnet18_large_phc4, sednet_real,
        resnet18_large_real_compress_n4 (a network converted at n = 4, see `converted_n`)."""
        backbone = init_args.get("backbone") or cls.backbone_tag
        family = init_args.get("family")
        tag = f"{backbone}_{make_family(family, init_args.get('n', 4)).tag}" if family else str(backbone)
        converted = converted_n(init_args)
        return f"{tag}_compress_n{converted}" if converted else tag

    def samples_in(self, batch: Any) -> int:
        """How many samples (images, clips) a batch holds, for throughput: the leading size of its inputs."""
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        if isinstance(inputs, Mapping):
            inputs = next((value for value in inputs.values() if isinstance(value, Tensor)), None)
        return int(inputs.shape[0]) if isinstance(inputs, Tensor) and inputs.ndim else 0

    # --- what a subclass implements -------------------------------------------------------------

    @abstractmethod
    def step(self, batch: Any, stage: str) -> Tensor:
        """Compute the data loss of `batch` and log `{stage}/...` metrics; stage is train|val|test."""

    # --- Lightning hooks ------------------------------------------------------------------------

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        loss = self.step(batch, "train") if self.distillation is None else self.distillation.training_loss(self, batch)
        if self.algebra_l1 > 0.0:
            penalty = self.algebra_penalty()
            self.log("train/algebra_l1", penalty.detach(), on_step=True, on_epoch=True)
            loss = loss + self.algebra_l1 * penalty
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.step(batch, "test")

    def algebra_penalty(self) -> Tensor:
        """Σ |A| over every learned algebra (0 when the network has none, e.g. real or quaternion)."""
        algebras = learned_algebras(self)
        if not algebras:
            return torch.zeros((), device=self.device)
        return torch.stack([a.abs().sum() for a in algebras]).sum()

    def on_fit_start(self) -> None:
        """Report the size of the network and of its dense equivalent, as the paper's tables do."""
        trainable, dense = parameter_counts(self)
        self.parameter_count, self.dense_parameter_count = trainable, dense
        metrics = {"params/trainable": float(trainable), "params/dense_equivalent": float(dense),
                   "params/ratio": trainable / dense if dense else 1.0}
        for logger in self.loggers:
            logger.log_metrics(metrics, step=0)
        rank_zero_info(f"{type(self).__name__}: {trainable:,} trainable parameters "
                       f"({dense:,} as a dense network, ratio {metrics['params/ratio']:.3f})")

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Remember one input's shape (batches are `(inputs, targets)`), so exports know what to expect."""
        if self.example_input_shape is None and isinstance(batch, (tuple, list)) and isinstance(batch[0], Tensor):
            self.example_input_shape = list(batch[0].shape[1:])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record which task and DataModule made this checkpoint, so `phnn inspect/export` can rebuild them."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        checkpoint["phnn"] = {
            "task": f"{type(self).__module__}.{type(self).__qualname__}",
            "datamodule": (None if datamodule is None
                           else f"{type(datamodule).__module__}.{type(datamodule).__qualname__}"),
            "input_shape": self.example_input_shape,
            "input": datamodule.describe_input() if hasattr(datamodule, "describe_input") else None,
            "rng": collect_rng_states(),
        }
        for key in ("hyper_parameters", "datamodule_hyper_parameters"):  # e.g. a root given as a Path
            if key in checkpoint:
                checkpoint[key] = to_plain(checkpoint[key])

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse another task's checkpoint (before its weights are looked at); when resuming a fit,
        continue the random streams where the checkpoint left them, so the next epoch draws (shuffles,
        augments) what it would have drawn without the interruption (Lightning isolates the sanity
        check's draws; the training loader's first draw comes after this hook)."""
        check_task("the checkpoint", checkpoint, type(self))
        self._check_weights_fit(checkpoint.get("state_dict") or {})
        record = checkpoint["phnn"]
        self.example_input_shape = record.get("input_shape")
        if record.get("rng") and self._trainer is not None and self.trainer.state.fn == "fit":
            restore_rng_states(record["rng"])

    def _check_weights_fit(self, saved: dict[str, Tensor]) -> None:
        """A `CheckpointError` (not torch's page of missing keys) when the checkpoint's weights do not
        fit this network, e.g. when a setting given with `--ckpt_path` changes its shape."""
        own = self.state_dict()
        problems = [f"{key}: {tuple(value.shape)} in the checkpoint, {tuple(own[key].shape)} here"
                    for key, value in saved.items() if key in own and own[key].shape != value.shape]
        problems += [f"{key}: only in the checkpoint" for key in saved if key not in own]
        problems += [f"{key}: missing from the checkpoint" for key in own if key not in saved]
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise CheckpointError(
                f"the checkpoint's weights do not fit this {type(self).__name__}: {'; '.join(problems[:3])}{more}. "
                "A setting that shapes the network differs from the run that wrote it: leave it out, or use that "
                "run's config.yaml")

    def on_train_start(self) -> None:
        """A resumed fit follows its own length: `CosineAnnealingLR(T_max=None)` restored from a
        checkpoint anneals over this run's `trainer.max_epochs`, not the one that wrote it."""
        for config in self.trainer.lr_scheduler_configs:
            if getattr(config.scheduler, "follows_run", False):
                config.scheduler.T_max = self._run_length()

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        if getattr(scheduler, "follows_run", False):
            scheduler.T_max = self._run_length()
        config: dict[str, Any] = {"scheduler": scheduler, "interval": self.scheduler_interval}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = getattr(scheduler, "monitor", None) or self.monitor
            if self.scheduler_interval != "epoch":
                raise ValueError(f"{type(self).__name__}: ReduceLROnPlateau watches {config['monitor']}, known once "
                                 f"per epoch; use scheduler_interval='epoch' (got {self.scheduler_interval!r})")
            if config["monitor"] == self.monitor and scheduler.mode != self.monitor_mode:
                rank_zero_warn(f"ReduceLROnPlateau(mode={scheduler.mode!r}) watches {self.monitor}, for which "
                               f"{self.monitor_mode!r} is better; set lr_scheduler.init_args.mode={self.monitor_mode}")
        return {"optimizer": optimizer, "lr_scheduler": config}

    def _run_length(self) -> int:
        """Scheduler steps in the whole fit: epochs or optimizer steps, by `scheduler_interval`."""
        trainer = self.trainer
        length = trainer.max_epochs if self.scheduler_interval == "epoch" else trainer.estimated_stepping_batches
        if length is None or length < 1 or math.isinf(length):
            raise ValueError(f"{type(self).__name__}: CosineAnnealingLR(T_max=None) follows the run length, but the "
                             f"run has no finite {self.scheduler_interval} count; set trainer.max_epochs or "
                             "lr_scheduler.init_args.T_max")
        return int(length)
