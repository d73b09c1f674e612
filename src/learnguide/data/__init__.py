"""Datasets and their loaders."""

from .toy import GaussianMixture, ring_mixture

__all__ = ["GaussianMixture", "ring_mixture"]
