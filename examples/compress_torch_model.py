"""Compress your own torch model (any nn.Module) with phnn: nearest-Kronecker start + distillation.

`SmallNet` below stands for the network you trained yourself (a torchvision-style CNN: conv-BN-ReLU blocks,
global pooling, a linear classifier). Registered under a name, it becomes a phnn backbone, so the same
`ImageClassifier` task trains it, and a phnn DataModule feeds it:

  1. the teacher: `ImageClassifier(backbone="small_net", family="real")` holding your trained weights
     (`teacher.model.load_state_dict(your_model.state_dict())`; here it is trained for --epochs first);
  2. the student: the same task with `model_kwargs={"converted_n": n}` (every conv/linear whose channels n
     divides becomes a PH layer), started at `convert(teacher, n, init="nearest")`;
  3. `distill(student, teacher)` and an ordinary `Trainer.fit`: the student's checkpoints are ordinary
     ImageClassifier checkpoints (they rebuild wherever `small_net` is registered).

Prints the parameters and test accuracy of the teacher, of the student at the start and after
distillation, and writes OUT/compress_torch_model.json and OUT/student.pt (the student's state dict).

    python examples/compress_torch_model.py --data PATH --out OUT --n 2 --epochs 3

PATH: an ImageFolder (one sub-folder of images per class).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from common import save_json
from lightning.pytorch import Trainer
from torch import Tensor, nn

from phnn.data import ImageFolderDataModule
from phnn.io import atomic_path
from phnn.models import LayerFamily, list_models, register_model
from phnn.nn import convert
from phnn.tasks import ImageClassifier
from phnn.tasks.distill import distill


class SmallNet(nn.Module):
    """A plain torch CNN: three conv-BN-ReLU blocks (the last two strided), average pooling, a linear layer."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        blocks = []
        for index, (cin, cout) in enumerate([(in_channels, width), (width, 2 * width), (2 * width, 2 * width)]):
            blocks += [nn.Conv2d(cin, cout, 3, stride=1 if index == 0 else 2, padding=1, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


if "small_net" not in list_models():
    @register_model("small_net")
    def small_net(family: LayerFamily, in_channels: int, num_classes: int) -> nn.Module:
        """Your network as a phnn backbone (a plain torch model: the family is not used)."""
        return SmallNet(in_channels, num_classes)


def fit(task: ImageClassifier, data: ImageFolderDataModule, epochs: int, out: Path) -> float:
    """Train `task` for `epochs` on the CPU and return its test accuracy."""
    trainer = Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=out)
    if epochs:
        trainer.fit(task, datamodule=data)
    return float(trainer.test(task, datamodule=data, verbose=False)[0]["test/acc"])


def count(module: nn.Module) -> int:
    """All parameters of a network."""
    return sum(p.numel() for p in module.parameters())


def main(argv: list[str] | None = None) -> int:
    """Train a small torch teacher on `--data`, compress it to a PH student with distillation, report both."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="an ImageFolder: one sub-folder per class")
    parser.add_argument("--out", type=Path, default=Path("examples_output"))
    parser.add_argument("--n", type=int, default=2, help="the PH dimension of the student")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the teacher and of the distillation")
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    data = ImageFolderDataModule(args.data, image_size=args.image_size, batch_size=16, num_workers=0, augment=False)
    options: dict[str, Any] = {"backbone": "small_net", "family": "real", "num_classes": data.num_classes,
                               "in_channels": data.in_channels, "optimizer": torch.optim.Adam, "lr_scheduler": None}
    teacher = ImageClassifier(**options)
    teacher_accuracy = fit(teacher, data, args.epochs, args.out)  # stands for your own trained model
    student = ImageClassifier(**options, model_kwargs={"converted_n": args.n})
    start = convert(teacher.model, args.n, init="nearest")
    student.model.load_state_dict(start.model.state_dict())
    start_accuracy = fit(student, data, 0, args.out)
    distill(student, teacher.model, alpha=0.5, temperature=4.0)
    end_accuracy = fit(student, data, args.epochs, args.out)
    result = {"n": args.n, "teacher": {"parameters": count(teacher.model), "test_acc": teacher_accuracy},
              "student": {"parameters": count(student.model), "test_acc_start": start_accuracy,
                          "test_acc_end": end_accuracy},
              "layers": {"converted": {name: start.errors[name] for name in start.converted},
                         "kept_dense": start.skipped}}
    print(f"teacher: {result['teacher']['parameters']:,} parameters, test accuracy {teacher_accuracy:.3f}")
    print(f"student n={args.n}: {result['student']['parameters']:,} parameters, test accuracy "
          f"{start_accuracy:.3f} at the nearest start, {end_accuracy:.3f} after distillation")
    save_json(result, args.out / "compress_torch_model.json")
    with atomic_path(args.out / "student.pt") as tmp:
        torch.save(student.model.state_dict(), tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
