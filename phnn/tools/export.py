"""Export a PH model as a plain torch model (every PH layer turned dense) in a deployable format.

Each format has a writer and a loader; after writing, the file is loaded back and its outputs are
compared with the phnn model's on the same batch, so a user knows the export is faithful.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from phnn.io import atomic_path, write_text_atomic
from phnn.nn import to_dense


def _write_torchscript(model: nn.Module, example: Tensor, path: str) -> None:
    torch.jit.save(torch.jit.trace(model, example), path)


def _load_torchscript(path: str) -> Callable[[Tensor], Tensor]:
    return torch.jit.load(path)


def _batch_dynamic() -> tuple[dict[int, Any]]:
    """Any batch size in exported graphs (the other dims stay as in the example)."""
    return ({0: torch.export.Dim("batch", min=1, max=65536)},)


def _write_torch_export(model: nn.Module, example: Tensor, path: str) -> None:
    torch.export.save(torch.export.export(model, (example,), dynamic_shapes=_batch_dynamic()), path)


def _load_torch_export(path: str) -> Callable[[Tensor], Tensor]:
    return torch.export.load(path).module()


def _write_onnx(model: nn.Module, example: Tensor, path: str) -> None:
    program = torch.onnx.export(model, (example,), dynamo=True, input_names=["input"], output_names=["output"],
                                dynamic_shapes=_batch_dynamic(), verbose=False)
    program.save(path)


def _load_onnx(path: str) -> Callable[[Tensor], Tensor]:
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

    def run(example: Tensor) -> Tensor:
        (output,) = session.run(None, {session.get_inputs()[0].name: example.numpy()})
        return torch.from_numpy(output)

    return run


@dataclass(frozen=True)
class ExportFormat:
    """An export format: the file suffix, how to write a model to it and how to load it back to compare outputs."""
    suffix: str
    write: Callable[[nn.Module, Tensor, str], None]
    load: Callable[[str], Callable[[Tensor], Tensor]]


FORMATS: dict[str, ExportFormat] = {
    "torchscript": ExportFormat(".pt", _write_torchscript, _load_torchscript),
    "torch-export": ExportFormat(".pt2", _write_torch_export, _load_torch_export),
    "onnx": ExportFormat(".onnx", _write_onnx, _load_onnx),
}


@dataclass(frozen=True)
class ExportResult:
    """What `export_model` wrote (model and metadata files) and how closely the reloaded model matches."""
    path: Path
    metadata_path: Path
    max_abs_diff: float
    checked_shape: list[int]


def export_model(model: nn.Module, example: Tensor, fmt: str, out: Path, metadata: dict[str, Any]) -> ExportResult:
    """Write `out` (and `out`.json with what a user needs to feed it), reload it, compare outputs."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {sorted(FORMATS)}")
    spec = FORMATS[fmt]
    model = model.eval()
    dense = to_dense(model).eval()
    check = torch.cat([example, example[:1]])  # one more row: the file must not be tied to the example's batch
    with torch.no_grad():
        reference = model(check)
        with atomic_path(out, suffix=out.suffix) as tmp:  # writers may check the extension (.pt2)
            spec.write(dense, example, str(tmp))
        exported = spec.load(str(out))(check)
    max_abs_diff = float((exported - reference).abs().max())
    metadata_path = out.with_name(out.name + ".json")
    info = {"format": fmt, "input_shape": ["batch", *example.shape[1:]],
            "input_dtype": str(example.dtype).replace("torch.", ""),
            "output_shape": ["batch", *reference.shape[1:]], "max_abs_diff_vs_phnn": max_abs_diff, **metadata}
    write_text_atomic(metadata_path, json.dumps(info, indent=2) + "\n")
    return ExportResult(out, metadata_path, max_abs_diff, list(check.shape))
