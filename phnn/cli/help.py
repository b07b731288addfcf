"""The help texts of `phnn`: one line per subcommand, examples at the end of each subcommand's help.

The docs test runs every `phnn ...` line under "Examples:", so only show commands that run (RUN, PATH
and OUT stand for a run folder, input files and an output folder).
"""

from __future__ import annotations

from typing import Any

from jsonargparse import DefaultHelpFormatter

DESCRIPTION = "phnn: train and use Parameterized Hypercomplex Neural Networks (PyTorch Lightning)."

#: LightningCLI's subcommands: one line each in `phnn --help`, and the examples of `phnn <subcommand> --help`
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

EPILOG = ("Run `phnn <subcommand> --help` for the options of one subcommand. Compose configs with several\n"
          "--config flags (data, model, family, trainer; in any order); a --config that is not a file is the\n"
          "name of a config shipped with phnn (e.g. sed/demo.yaml); see phnn/configs/README.md.")


def first_line(text: str | None) -> str:
    """The first line of a docstring, ending in one full stop ('' for none)."""
    stripped = (text or "").strip()
    return stripped.splitlines()[0].rstrip(".") + "." if stripped else ""


def examples(subcommand: str) -> str:
    """The "Examples:" block of a LightningCLI subcommand's help."""
    return "Examples:\n" + "\n".join(f"  {line}" for line in SUBCOMMANDS[subcommand][1])


class Formatter(DefaultHelpFormatter):
    """Keep the examples and the command list in help texts as written (one command per line)."""

    def __init__(self, prog: str, **kwargs: Any) -> None:
        # wide enough that every subcommand's summary stays on one line
        super().__init__(prog, **{**kwargs, "width": max(kwargs.get("width") or 0, 110)})

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "".join(indent + line for line in text.splitlines(keepends=True))


def parser_kwargs() -> dict[str, Any]:
    """LightningCLI's `parser_kwargs`: phnn's description, epilog and formatter, and each subcommand's."""
    main = {"description": DESCRIPTION, "epilog": EPILOG, "env_prefix": "PHNN", "prog": "phnn",
            "formatter_class": Formatter}
    return main | {name: {"description": summary, "epilog": examples(name), "formatter_class": Formatter}
                   for name, (summary, _) in SUBCOMMANDS.items()}
