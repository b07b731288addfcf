"""ImageClassifier and the PHTask machinery it inherits: loss, metrics, predictions, algebra L1,
parameter counts, optimizer and scheduler wiring, input checks."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.cli import ReduceLROnPlateau
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from phnn.models import LayerFamily, list_models, register_model
from phnn.tasks import SGD, CosineAnnealingLR, ImageClassifier
from phnn.tasks.base import learned_algebras, parameter_counts

if "tiny_task_cnn" not in list_models():
    @register_model("tiny_task_cnn")
    def tiny_task_cnn(family: LayerFamily, in_channels: int, num_classes: int) -> nn.Module:
        """A one-conv network, so that the Trainer tests below take a fraction of a second."""
        return nn.Sequential(family.conv(in_channels, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             family.linear(8, 4), nn.ReLU(), nn.Linear(4, num_classes))


def classifier(**kwargs) -> ImageClassifier:
    return ImageClassifier(**{"backbone": "vgg11", "family": "phc", "n": 2, "num_classes": 3, "in_channels": 4,
                              **kwargs})


def loader(samples: int = 8, classes: int = 3) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(samples, 4, 8, 8, generator=generator)
    return DataLoader(TensorDataset(images, torch.arange(samples) % classes), batch_size=4)


def trainer(**kwargs) -> Trainer:
    return Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, **kwargs)


def test_defaults_are_the_published_recipe() -> None:
    model = classifier()
    fitted = trainer(max_epochs=7)
    fitted.strategy.connect(model)
    model.trainer = fitted
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert isinstance(optimizer, SGD)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.1, 0.9, 5e-4)
    assert isinstance(scheduler, CosineAnnealingLR) and scheduler.T_max == 7  # follows trainer.max_epochs
    assert config["lr_scheduler"]["interval"] == "epoch"


def test_plateau_scheduler_watches_the_task_metric() -> None:
    model = classifier(lr_scheduler=lambda optimizer: torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max"))
    assert model.configure_optimizers()["lr_scheduler"]["monitor"] == "val/acc"
    own = classifier(lr_scheduler=lambda optimizer: ReduceLROnPlateau(optimizer, monitor="val/loss"))
    assert own.configure_optimizers()["lr_scheduler"]["monitor"] == "val/loss"
    per_step = classifier(lr_scheduler=lambda o: ReduceLROnPlateau(o, monitor="val/loss"), scheduler_interval="step")
    with pytest.raises(ValueError) as error:
        per_step.configure_optimizers()
    assert "scheduler_interval='epoch'" in str(error.value)


def test_no_scheduler_gives_a_bare_optimizer() -> None:
    model = classifier(lr_scheduler=None, optimizer=lambda params: torch.optim.Adam(params, lr=1e-3))
    assert isinstance(model.configure_optimizers(), torch.optim.Adam)


def test_test_metrics_and_top_k() -> None:
    model = classifier(backbone="tiny_task_cnn", lr_scheduler=None)
    results = trainer(max_epochs=1).test(model, loader(), verbose=False)[0]
    assert set(results) == {"test/loss", "test/acc", "test/acc_top5"}
    assert results["test/acc_top5"] == 1.0  # k = num_classes = 3: the true class is always in the top k
    assert 0.0 <= results["test/acc"] <= 1.0


def test_fit_logs_train_and_val_under_stable_names() -> None:
    model = classifier(backbone="tiny_task_cnn")
    fitted = trainer(max_epochs=1, num_sanity_val_steps=0)
    fitted.fit(model, loader(), loader())
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= set(fitted.callback_metrics)
    assert fitted.lr_scheduler_configs[0].scheduler.T_max == 1


def test_predict_step_returns_probabilities_and_labels() -> None:
    model = classifier(backbone="tiny_task_cnn").eval()
    images = torch.rand(5, 4, 8, 8)
    for batch in (images, (images, torch.zeros(5, dtype=torch.long))):
        out = model.predict_step(batch, 0)
        torch.testing.assert_close(out["probs"].sum(1), torch.ones(5))
        assert out["probs"].shape == (5, 3) and torch.equal(out["labels"], out["probs"].argmax(1))


def test_algebra_l1_is_added_to_the_training_loss() -> None:
    torch.manual_seed(0)
    plain, penalised = classifier(backbone="tiny_task_cnn"), classifier(backbone="tiny_task_cnn", algebra_l1=0.01)
    penalised.load_state_dict(plain.state_dict())
    penalised.log = plain.log = lambda *args, **kwargs: None
    batch = next(iter(loader()))
    torch.manual_seed(1)
    base = plain.training_step(batch, 0)
    torch.manual_seed(1)
    total = penalised.training_step(batch, 0)
    penalty = sum(a.abs().sum() for a in learned_algebras(penalised))
    assert len(learned_algebras(penalised)) == 2  # one PH conv, one PHM linear
    torch.testing.assert_close(total, base + 0.01 * penalty)
    total.backward()
    assert all(a.grad is not None for a in learned_algebras(penalised))


def test_fixed_algebras_are_not_penalised() -> None:
    model = classifier(family="quaternion", n=4, algebra_l1=0.1)
    assert learned_algebras(model) == [] and model.algebra_penalty().item() == 0.0


def test_parameter_counts() -> None:
    real = ImageClassifier("vgg11", "real", num_classes=3, in_channels=4)
    phc = ImageClassifier("vgg11", "phc", n=4, num_classes=3, in_channels=4)
    real_count, real_dense = parameter_counts(real)
    phc_count, phc_dense = parameter_counts(phc)
    assert real_count == real_dense == sum(p.numel() for p in real.parameters())
    assert phc_dense == real_dense  # the dense equivalent of a PH network is the real one
    assert 0.24 < phc_count / real_count < 0.27


@pytest.mark.parametrize(("field", "value"), [("num_classes", 0), ("in_channels", -1), ("algebra_l1", -0.1),
                                              ("label_smoothing", 1.0), ("scheduler_interval", "batch")])
def test_bad_arguments_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError) as error:
        classifier(**{field: value})
    assert field in str(error.value)


def test_cosine_needs_a_finite_run() -> None:
    model = classifier()
    endless = trainer(max_epochs=-1)
    endless.strategy.connect(model)
    model.trainer = endless
    with pytest.raises(ValueError) as error:
        model.configure_optimizers()
    assert "T_max" in str(error.value)
