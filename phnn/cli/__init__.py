"""The `phnn` command: LightningCLI subcommands (fit, validate, test, predict) plus phnn's own commands.

    phnn fit --config experiment/cifar10_resnet18_large_phc4.yaml --data.root data/cifar10
    phnn test --config RUN/config.yaml --ckpt_path RUN/checkpoints/best.ckpt     # RUN: the fit's run folder
    phnn fit --model ImageClassifier --data ImageFolderDataModule --data.root data/my_images --model.n 3

`main(args)` is what the console script and the tests call, in-process; it returns the exit code.
Modules: `app` (the LightningCLI subclass, `run_cli`), `run_folders` (naming and versioning runs),
`commands` (the registry of extra commands), `help` (help texts), `quiet` (hidden library noise),
`model_commands` (inspect, export), `entry` (`main`). Imports go one way: entry → commands → app.
"""

from phnn.cli.app import run_cli
from phnn.cli.commands import EXTRA_COMMANDS
from phnn.cli.entry import main

__all__ = ["EXTRA_COMMANDS", "main", "run_cli"]
