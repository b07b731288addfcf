"""Layer tests use tiny tensors: one torch thread avoids the synchronisation cost that dominates them
on a busy machine (measured: tens of ms per op with 2 threads on 2 shared cores)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
