"""Shared fixtures. Tests never touch a model hub."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from learnguide.core.denoisers import ExactMixtureDenoiser, PredictionAdapter  # noqa: E402
from learnguide.core.networks import MLPDenoiserNet  # noqa: E402
from learnguide.core.schedules import VPCosine  # noqa: E402
from learnguide.data.toy import ring_mixture  # noqa: E402


@pytest.fixture
def mixture():
    return ring_mixture()


@pytest.fixture
def exact(mixture):
    return ExactMixtureDenoiser(mixture, VPCosine())


@pytest.fixture
def mlp_denoiser():
    """A small randomly initialised v-predicting MLP denoiser with a non-trivial class embedding."""
    torch.manual_seed(0)
    net = MLPDenoiserNet(2, 4, hidden=32, layers=3, fourier_features=4)
    torch.nn.init.normal_(net.class_embedding.weight)
    return PredictionAdapter(net, VPCosine(), "v", null_id=4).eval()
