"""Datasets and their loaders."""

from learnguide.data.toy import GaussianMixture, ring_mixture

__all__ = ["GaussianMixture", "ring_mixture"]
