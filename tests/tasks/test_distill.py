"""Distillation (`phnn.tasks.distill`) on tiny models: the loss falls, the teacher never changes and never
reaches the optimizer or the checkpoint, and the soft losses are the documented formulas."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from phnn.models import LayerFamily, list_models, register_model
from phnn.nn import PHLayer, convert
from phnn.tasks import ImageClassifier
from phnn.tasks.distill import (
    Distillation,
    classification_soft_loss,
    detection_soft_loss,
    distill,
)
from phnn.tasks.doa import DOAHead

if "tiny_distill_cnn" not in list_models():
    @register_model("tiny_distill_cnn")
    def tiny_distill_cnn(family: LayerFamily, in_channels: int, num_classes: int) -> nn.Module:
        """Two convs and a linear, all divisible by 2: milliseconds a step."""
        return nn.Sequential(family.conv(in_channels, 8, 3, padding=1), nn.ReLU(), family.conv(8, 8, 3, padding=1),
                             nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


ARGS = {"backbone": "tiny_distill_cnn", "family": "real", "num_classes": 4, "in_channels": 4,
        "optimizer": torch.optim.Adam, "lr_scheduler": None}


def loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(32, 4, 6, 6, generator=generator)
    return DataLoader(TensorDataset(images, torch.arange(32) % 4), batch_size=8)


def trained_teacher() -> ImageClassifier:
    torch.manual_seed(0)
    teacher = ImageClassifier(**ARGS)
    Trainer(accelerator="cpu", max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False).fit(teacher, loader())
    return teacher.eval()


class EpochLosses(Callback):
    """The epoch mean of `train/distill_loss` after each training epoch."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_epoch_end(self, trainer: Trainer, pl_module: ImageClassifier) -> None:
        self.values.append(float(trainer.callback_metrics["train/distill_loss"]))


def student_of(teacher: ImageClassifier, n: int = 2) -> ImageClassifier:
    student = ImageClassifier(**ARGS, model_kwargs={"converted_n": n})
    student.model.load_state_dict(convert(teacher.model, n, init="nearest").model.state_dict())
    return student


def test_distillation_lowers_the_loss_and_leaves_the_teacher_alone(tmp_path: Path) -> None:
    teacher = trained_teacher()
    before = {key: value.clone() for key, value in teacher.state_dict().items()}
    student = distill(student_of(teacher), teacher.model, alpha=0.5, temperature=2.0, feature_layers=["2"])
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.model.training
    checkpoints, losses = ModelCheckpoint(dirpath=tmp_path, filename="last"), EpochLosses()
    trainer = Trainer(accelerator="cpu", max_epochs=6, logger=False, callbacks=[checkpoints, losses],
                      enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(student, loader())
    assert losses.values[-1] < losses.values[0], losses.values
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), f"teacher's {key} changed"
    assert not teacher.model.training, "the teacher stays in eval mode"
    teacher_ids = {id(p) for p in teacher.parameters()}
    optimized = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert not optimized & teacher_ids, "no teacher parameter is in the optimizer"
    saved = torch.load(checkpoints.best_model_path, weights_only=True)
    assert set(saved["state_dict"]) == set(student.state_dict()), "the checkpoint is the student's alone"
    assert saved["phnn"]["task"] == "phnn.tasks.image.ImageClassifier"
    rebuilt = ImageClassifier.load_from_checkpoint(checkpoints.best_model_path, weights_only=True)
    assert any(isinstance(m, PHLayer) for m in rebuilt.model.modules())
    assert rebuilt.distillation is None


def test_classification_soft_loss_is_t_squared_kl() -> None:
    student, teacher = torch.randn(5, 4), torch.randn(5, 4)
    expected = (F.softmax(teacher / 3, 1) * (F.log_softmax(teacher / 3, 1) - F.log_softmax(student / 3, 1))).sum(1)
    assert torch.allclose(classification_soft_loss(None, student, teacher, 3.0), expected.mean() * 9)
    assert classification_soft_loss(None, teacher, teacher, 3.0).abs() < 1e-6


def test_detection_soft_loss_is_bce_to_teacher_probabilities_plus_weighted_distance() -> None:
    class Task:  # what the SED soft loss asks of the task
        sed_outputs, doa = 2, DOAHead(loss_weight=5.0)

        def split_outputs(self, outputs):
            return outputs[..., :2], outputs[..., 2:]

    student, teacher = torch.randn(1, 3, 8), torch.randn(1, 3, 8)
    loss = detection_soft_loss(Task(), student, teacher, 4.0)
    bce = F.binary_cross_entropy_with_logits(student[..., :2], torch.sigmoid(teacher[..., :2]))
    assert loss > bce
    same_positions = torch.cat([student[..., :2], teacher[..., 2:]], -1)
    assert torch.allclose(detection_soft_loss(Task(), same_positions, teacher, 4.0), bce)


def test_bad_settings_are_named() -> None:
    teacher = ImageClassifier(**ARGS).model
    with pytest.raises(ValueError, match="alpha must be in"):
        Distillation(teacher, alpha=1.5)
    with pytest.raises(ValueError, match=r"feature_layers \['nope'\] are not layers of the teacher"):
        Distillation(teacher, feature_layers=["nope"])


def test_seld_student_distils_from_a_real_teacher_without_touching_it() -> None:
    from phnn.tasks import SoundEventDetector

    tiny = {"widths": (4, 4, 4, 4), "gru_hidden": 4, "gru_layers": 1, "fc_width": 8, "fc_layers": 1,
            "family": "real"}
    torch.manual_seed(0)
    teacher = SoundEventDetector(14, 4, model=tiny, doa={}).eval()
    before = {key: value.clone() for key, value in teacher.state_dict().items()}
    student = SoundEventDetector(14, 4, model={**tiny, "converted_n": 2}, doa={})
    student.model.load_state_dict(convert(teacher.model, 2, init="nearest").model.state_dict())
    distill(student, teacher.model)
    features, sed = torch.randn(2, 4, 256, 80), (torch.rand(2, 10, 42) > 0.9).float()
    student.log = student.log_dict = lambda *args, **kwargs: None  # no Trainer here
    loss = student.training_step((features, sed, torch.rand(2, 10, 126) - 0.5), 0)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(value, before[key]) for key, value in teacher.state_dict().items())
