"""Shared test fixtures."""

import pytest
import torch

# Devices every device-aware test runs on: the CPU, plus CUDA when a GPU is present.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Parametrises a test over :data:`DEVICES`."""
    return request.param


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny tensors: avoids oversubscribing a shared CPU.

    Use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
