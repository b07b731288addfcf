"""`bench/layers.py --quick` runs and prints its three tables (timings are not asserted: see bench/)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "layers.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("phnn_bench_layers", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_quick_bench_prints_the_tables(capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    try:
        assert load_bench().main(["--quick", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    for title in ["Weight composition, forward+backward", "CIFAR ResNet18", "PHConv2d vs nn.Conv2d"]:
        assert title in out
    assert "train step, batch 2" in out and "eval forward, batch 2" in out
    assert out.count("16->16 8x8") == 2


def test_naive_composition_equals_ours() -> None:
    from phnn.nn import compose

    bench = load_bench()
    algebra, factors = torch.randn(4, 4, 4), torch.randn(4, 1, 3, 2, 3, 3)
    torch.testing.assert_close(bench.naive_compose(algebra, factors), compose(algebra, factors))


def test_quick_recurrent_bench_prints_its_tables(capsys: pytest.CaptureFixture[str]) -> None:
    path = BENCH.with_name("recurrent.py")
    spec = importlib.util.spec_from_file_location("phnn_bench_recurrent", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    threads = torch.get_num_threads()
    try:
        spec.loader.exec_module(module)
        assert module.main(["--quick", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "PHGRU/PHLSTM vs nn.GRU/nn.LSTM" in out and "PHMultiheadAttention vs nn.MultiheadAttention" in out
    assert out.count("train") == 3 and out.count("eval") == 3
