"""`phnn inspect` and `phnn export`: look at what a trained PH model learned, and ship it without phnn.

(Part of the CLI package because `phnn inspect --config` builds a model through `phnn.cli.app.run_cli`.)

Both read a checkpoint written by `phnn fit` (it records its task class and input description);
`phnn inspect` can also build a fresh model from configs, before any training.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import torch

from phnn.bounds import Bound
from phnn.checkpoint import load_task
from phnn.cli.app import run_cli
from phnn.errors import UsageError
from phnn.io import check_output, protected_inputs, write_text_atomic
from phnn.nn import PHLayer
from phnn.runs import run_of_checkpoint

#: `phnn export` options: inputs per checked batch, the accepted output difference, one input dimension
EXPORT_BATCH = Bound("inputs per batch", 1, 4096, integer=True)
EXPORT_TOLERANCE = Bound("an absolute output difference", 0.0, 1e3)
INPUT_SIZE = Bound("an input dimension", 1, 65536, integer=True)


def build_task(configs: list[str], overrides: list[str]) -> Any:
    """A freshly initialised task from `phnn fit`-style configs (no training, no data read)."""
    return run_cli([arg for config in configs for arg in ("--config", config)] + overrides, run=False).model.eval()


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "root"


def inspect_main(argv: list[str]) -> int:
    """Parameter table and algebra heat maps of a PH model."""
    parser = argparse.ArgumentParser(
        prog="phnn inspect",
        description="Parameter report of a PH model (per layer: n, algebra, parameters, dense equivalent) and "
        "heat maps of its learned algebras.",
        epilog="Examples:\n"
        "  phnn inspect RUN/checkpoints/best.ckpt\n"
        "  phnn inspect --config model/resnet18_large.yaml --config model/family/phc3.yaml "
        "--config data/cifar10.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", nargs="?", type=Path, help="a checkpoint written by `phnn fit`")
    parser.add_argument("--config", action="append", default=[],
                        help="instead of a checkpoint: fit configs, files or shipped names (repeatable)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for report.json and the PNGs (default: <run>/inspect for a checkpoint of a run; "
                             "otherwise only the table is printed)")
    parser.add_argument("--layer", action="append", default=None,
                        help="plot only this layer (a module name from the table; repeatable); default: all PH layers")
    parser.add_argument("--no-plots", action="store_true", help="write only the table and report.json")
    args, overrides = parser.parse_known_args(argv)
    if (args.checkpoint is None) == (not args.config):
        parser.error("give either a checkpoint or --config files")
    if overrides and args.checkpoint is not None:
        parser.error(f"unrecognised arguments: {' '.join(overrides)}")

    from phnn.nn.report import parameter_report
    from phnn.tools.algebra_plot import plot_algebra

    task = load_task(args.checkpoint)[0] if args.checkpoint else build_task(args.config, overrides)
    report = parameter_report(task.model)
    print(report.format_table())
    run = run_of_checkpoint(args.checkpoint)
    out = args.out or (run / "inspect" if run is not None else None)
    if out is None:
        print("\n(give --out DIR to save report.json and the algebra plots)")
        return 0
    layers = {name: module for name, module in task.model.named_modules() if isinstance(module, PHLayer)}
    unknown = sorted(set(args.layer or []) - set(layers))
    if unknown:
        raise UsageError(f"--layer: no PH layer named {unknown}; PH layers: {sorted(layers)}")
    chosen = args.layer or ([] if args.no_plots else list(layers))
    plots = [str(plot_algebra(layers[name], name, out / f"algebra_{_safe_name(name)}.png")) for name in chosen]
    summary = report.to_dict() | {"source": str(args.checkpoint or args.config), "plots": plots}
    write_text_atomic(out / "report.json", json.dumps(summary, indent=2) + "\n")
    print(f"\nwrote {out / 'report.json'}" + (f" and {len(plots)} algebra plot(s) in {out}" if plots else ""))
    return 0


def export_main(argv: list[str]) -> int:
    """Export a model as plain torch layers (ONNX, ...)."""
    from phnn.tools.export import FORMATS

    parser = argparse.ArgumentParser(
        prog="phnn export",
        description="Export a trained model with every PH layer made dense (identical outputs), reload the file "
        "and compare its outputs with the phnn model's. A side-car <file>.json says how to build its input.",
    )
    parser.add_argument("checkpoint", type=Path, help="a checkpoint written by `phnn fit`")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS))
    parser.add_argument("--out", type=Path, default=None,
                        help="the file to write (e.g. model.onnx); default: <run>/export/model.<suffix> for a "
                             "checkpoint of a run")
    parser.add_argument("--input-shape", type=int, nargs="+", default=None,
                        help="one input's shape without the batch dim (default: as seen in training)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted output difference")
    args = parser.parse_args(argv)
    EXPORT_BATCH.check(args.batch_size, "--batch-size")
    EXPORT_TOLERANCE.check(args.tolerance, "--tolerance")
    for size in args.input_shape or []:
        INPUT_SIZE.check(size, "--input-shape")
    if args.out is None:
        run = run_of_checkpoint(args.checkpoint)
        if run is None:
            raise UsageError(f"{args.checkpoint} is not in a run folder (<run>/checkpoints/); give --out FILE")
        args.out = run / "export" / f"model{FORMATS[args.format].suffix}"
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; give the file to write, e.g. "
                         f"{args.out / ('model' + FORMATS[args.format].suffix)}")
    with protected_inputs([args.checkpoint], "the checkpoint phnn export reads"):
        check_output(args.out)  # before the slow part: the writer checks again
        return _export(args)


def _export(args: argparse.Namespace) -> int:
    """Load the checkpoint, export it to ``args.out``, compare the outputs; 1 when they differ too much."""
    from phnn.tools.export import export_model

    task, checkpoint = load_task(args.checkpoint)
    shape = args.input_shape or checkpoint["phnn"].get("input_shape")
    if not shape:
        raise ValueError(f"{args.checkpoint}: the input shape is not recorded; pass --input-shape C H W")
    metadata = {"source_checkpoint": str(args.checkpoint), "task": checkpoint["phnn"]["task"],
                "hyper_parameters": {k: v for k, v in task.hparams.items() if isinstance(v, (int, float, str, bool))},
                "input": checkpoint["phnn"].get("input")}
    example = torch.randn(args.batch_size, *shape)
    result = export_model(task.model, example, args.format, args.out, metadata)
    print(f"wrote {result.path} ({args.format}) and {result.metadata_path}")
    print(f"max |exported - phnn| on a random batch of shape {result.checked_shape}: {result.max_abs_diff:.3g}")
    if not result.max_abs_diff <= args.tolerance:
        print(f"phnn export: outputs differ by more than --tolerance {args.tolerance}", file=sys.stderr)
        return 1
    return 0
