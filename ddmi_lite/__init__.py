"""ddmi_lite: a small, readable implementation of DDMI (ICLR 2024).

Domain-Agnostic Latent Diffusion Models for Synthesizing High-Quality Implicit Neural
Representations: a D2C-VAE maps discrete data to a grid latent, a decoder turns it into
hierarchically decomposed basis fields (HDBF), a shared MLP reads any continuous coordinate
out with coarse-to-fine conditioning (CFC), and a latent diffusion model generates latents.
"""

from ddmi_lite.errors import DDMIError, NonFiniteLossError
from ddmi_lite.device import resolve_device, seed_everything

__version__ = "0.1.0"
__all__ = ["DDMIError", "NonFiniteLossError", "resolve_device", "seed_everything", "__version__"]
