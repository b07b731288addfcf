"""Knowledge distillation for any phnn task: a frozen teacher network and the loss that pulls a student
task towards it. The student stays an ordinary task (its data, metrics, writers, validation, test,
predict and checkpoints are the task's own); only its training loss changes:

    loss = α · task loss + (1 − α) · soft loss + feature_weight · Σ_layers MSE(student, teacher features)

The soft loss depends on the task (`SOFT_LOSSES`): for image classification T² · KL(teacher ‖ student)
on the temperature-softened logits (Hinton et al.); for sound event detection the BCE of the student's
logits to the teacher's probabilities and, when localising, the distance to the teacher's positions.

    student = ImageClassifier(backbone="resnet18_large", family="real", model_kwargs={"converted_n": 4})
    student.model.load_state_dict(convert(teacher.model, 4, init="nearest").model.state_dict())
    distill(student, teacher.model, alpha=0.5, temperature=4.0)
    Trainer(max_epochs=5).fit(student, datamodule)     # best/last.ckpt are ImageClassifier checkpoints

The teacher is held outside the student's module tree: it stays in eval mode with requires_grad False,
runs under no_grad on the very inputs the student's network sees in the training step (a forward hook
records them, so the student's forward is not repeated), is never in the optimizer and never in a
checkpoint. It follows the student to its device on first use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from phnn.tasks.base import PHTask
from phnn.tasks.image import ImageClassifier
from phnn.tasks.sed import SoundEventDetector

#: defaults that work for a nearest-Kronecker student (see docs/compress.md for the measurements)
DEFAULT_ALPHA = 0.5
DEFAULT_TEMPERATURE = 4.0
DEFAULT_FEATURE_WEIGHT = 1.0
_OUTPUT = ""  # the key of the whole network's output among the recorded features

SoftLoss = Callable[[Any, Tensor, Tensor, float], Tensor]


def classification_soft_loss(task: Any, student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """T² · KL(softmax(teacher / T) ‖ softmax(student / T)), averaged over the batch; T² keeps its
    gradients on the scale of the task loss's whatever T (Hinton, Vinyals & Dean 2015)."""
    log_student = F.log_softmax(student.float() / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher.float() / temperature, dim=-1)
    kl = F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean")
    return kl * temperature**2


def detection_soft_loss(task: Any, student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """BCE of the student's SED logits to the teacher's probabilities; when localising, plus the task's DOA
    weight times the distance of the student's DOA outputs to the teacher's, weighted by the teacher's
    probability of each slot (positions of silent slots mean nothing). The temperature is not used."""
    student_sed, student_doa = task.split_outputs(student.float())
    teacher_sed, teacher_doa = task.split_outputs(teacher.float())
    teacher_probs = torch.sigmoid(teacher_sed)
    loss = F.binary_cross_entropy_with_logits(student_sed, teacher_probs)
    if student_doa is None or teacher_doa is None:
        return loss
    error = (student_doa - teacher_doa).unflatten(-1, (3, task.sed_outputs))  # [x of 42, y of 42, z of 42]
    distance = torch.linalg.vector_norm(error, dim=-2)
    weighted = (distance * teacher_probs).sum() / teacher_probs.sum().clamp_min(1e-6)
    return loss + task.doa.loss_weight * weighted


#: task class -> its soft loss (a task class not listed here cannot be distilled)
SOFT_LOSSES: dict[type, SoftLoss] = {
    ImageClassifier: classification_soft_loss,
    SoundEventDetector: detection_soft_loss,
}


def soft_loss_of(task: Any) -> SoftLoss:
    """The soft loss for `task`'s class (or its nearest listed base class)."""
    for cls in type(task).__mro__:
        if cls in SOFT_LOSSES:
            return SOFT_LOSSES[cls]
    raise ValueError(f"distillation: no soft loss for {type(task).__name__}; known tasks: "
                     f"{sorted(cls.__name__ for cls in SOFT_LOSSES)}")


@contextlib.contextmanager
def recording(network: nn.Module, layers: Sequence[str], into: dict[str, Any]) -> Iterator[None]:
    """While open, the first input and output of `network` (keys "input" / `_OUTPUT`) and the output of each
    named layer go into `into`."""

    def record(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            if name not in into:
                into[name] = output
                if name == _OUTPUT and args:
                    into["input"] = args[0]
        return hook

    handles = [network.register_forward_hook(record(_OUTPUT))]
    handles += [network.get_submodule(name).register_forward_hook(record(name)) for name in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class Distillation:
    """A frozen teacher network and the distillation loss of a student task (see the module doc).

    Args:
        teacher: the teacher's network (e.g. `teacher_task.model`, or any nn.Module with the student's
            inputs and outputs); it is put in eval mode with requires_grad False.
        alpha: weight of the task's own loss; 1 − alpha weighs the soft loss (default 0.5).
        temperature: softening of the logits in the classification soft loss (default 4).
        feature_layers: names of layers of the network (the same in teacher and student) whose outputs
            the student should match (MSE); shapes must match. Default: none.
        feature_weight: weight of the feature loss (default 1).
    """

    def __init__(self, teacher: nn.Module, alpha: float = DEFAULT_ALPHA, temperature: float = DEFAULT_TEMPERATURE,
                 feature_layers: Sequence[str] = (), feature_weight: float = DEFAULT_FEATURE_WEIGHT) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"distillation: alpha must be in [0, 1]; got {alpha!r}")
        if not temperature > 0.0:
            raise ValueError(f"distillation: temperature must be > 0; got {temperature!r}")
        if not feature_weight >= 0.0:
            raise ValueError(f"distillation: feature_weight must be >= 0; got {feature_weight!r}")
        known = dict(teacher.named_modules())
        unknown = [name for name in feature_layers if not name or name not in known]
        if unknown:
            raise ValueError(f"distillation: feature_layers {unknown} are not layers of the teacher; e.g. "
                             f"{[name for name in known if name][:8]}")
        self.teacher = teacher.eval().requires_grad_(False)
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.feature_layers, self.feature_weight = tuple(feature_layers), float(feature_weight)

    def settings(self) -> dict[str, Any]:
        """The options, as plain data (for reports)."""
        return {"alpha": self.alpha, "temperature": self.temperature, "feature_layers": list(self.feature_layers),
                "feature_weight": self.feature_weight}

    def check_student(self, student: PHTask) -> None:
        """A ValueError when the student's network lacks a feature layer or the task has no soft loss."""
        soft_loss_of(student)
        known = dict(student.model.named_modules())
        missing = [name for name in self.feature_layers if name not in known]
        if missing:
            raise ValueError(f"distillation: feature_layers {missing} are not layers of the student's network")

    @torch.no_grad()
    def teacher_outputs(self, inputs: Tensor) -> dict[str, Any]:
        """The teacher's output and feature-layer outputs for `inputs` (moved to their device on first use)."""
        parameter = next(self.teacher.parameters(), None)
        if parameter is not None and parameter.device != inputs.device:
            self.teacher.to(inputs.device)
        self.teacher.eval()
        recorded: dict[str, Any] = {}
        with recording(self.teacher, self.feature_layers, recorded):
            self.teacher(inputs)
        return recorded

    def feature_loss(self, student: dict[str, Any], teacher: dict[str, Any]) -> Tensor:
        """Mean over the feature layers of MSE(student output, teacher output)."""
        losses = []
        for name in self.feature_layers:
            if student[name].shape != teacher[name].shape:
                raise ValueError(f"distillation: feature layer {name!r} gives {tuple(student[name].shape)} in the "
                                 f"student and {tuple(teacher[name].shape)} in the teacher; name layers whose "
                                 "outputs have the same shape")
            losses.append(F.mse_loss(student[name].float(), teacher[name].float()))
        return torch.stack(losses).mean()

    def training_loss(self, task: PHTask, batch: Any) -> Tensor:
        """α · task loss + (1 − α) · soft loss (+ feature loss) of one training batch; logs the parts."""
        recorded: dict[str, Any] = {}
        with recording(task.model, self.feature_layers, recorded):
            task_loss = task.step(batch, "train")
        if _OUTPUT not in recorded:
            raise ValueError(f"distillation: {type(task).__name__}.step did not run its network `model`")
        teacher = self.teacher_outputs(recorded["input"])
        soft = soft_loss_of(task)(task, recorded[_OUTPUT], teacher[_OUTPUT], self.temperature)
        loss = self.alpha * task_loss + (1.0 - self.alpha) * soft
        parts = {"train/soft_loss": soft.detach()}
        if self.feature_layers and self.feature_weight > 0.0:
            features = self.feature_loss(recorded, teacher)
            loss = loss + self.feature_weight * features
            parts["train/feature_loss"] = features.detach()
        parts["train/distill_loss"] = loss.detach()
        task.log_dict(parts, on_step=False, on_epoch=True, batch_size=task.samples_in(batch))
        return loss


def distill(student: PHTask, teacher: nn.Module, **settings: Any) -> PHTask:
    """Make `student` train by distillation from the frozen `teacher` network (settings: see `Distillation`);
    returns the student. `student.distillation = None` turns it back into plain training."""
    distillation = Distillation(teacher, **settings)
    distillation.check_student(student)
    student.distillation = distillation
    return student
