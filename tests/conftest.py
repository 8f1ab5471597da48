"""Shared test fixtures."""

import pytest
import torch

# Devices every device-aware test runs on: the CPU, plus CUDA when a GPU is present.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Parametrises a test over :data:`DEVICES`."""
    return request.param
