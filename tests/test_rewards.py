"""Reward-tilted ω (Algorithm 4): the reward term, its gradient, and that only ω is trained by it."""

import copy
import json

import pytest
import torch
from torch import nn

from learnguide.core.banks import BankConfig, FitConfig, fit_omega_on_bank, generate_bank, load_bank
from learnguide.core.guidance import OmegaNet
from learnguide.core.objectives import reward_loss
from learnguide.core.online import OnlineConfig, train_omega_online
from learnguide.core.schedules import VPCosine
from learnguide.images.classifier import ImageClassifier
from learnguide.integrations.rewards import ClassifierLogProb, ClipScore
from tiny_models import tiny_clip, write_tiny_tokenizer


class LinearClassifier(nn.Module):
    """Logits of 2-d points: a fixed linear map (the toy mixture's 4 classes)."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Linear(2, 4).to(dtype)

    def forward(self, x):
        return self.net(x)


def toy_reward():
    return ClassifierLogProb(LinearClassifier())


def omega_net(seed=0):
    torch.manual_seed(seed)
    return OmegaNet(VPCosine(), num_classes=4, hidden=16, layers=2)


def test_zero_reward_weight_changes_nothing_online_and_on_a_bank(mixture, mlp_denoiser, tmp_path):
    config = OnlineConfig(iterations=5, batch_size=32, particles=2, reward_weight=0.0)
    plain, rewarded = omega_net(), omega_net()
    train_omega_online(plain, mlp_denoiser, mixture.data_sampler(), config, progress=False)
    record = train_omega_online(
        rewarded, mlp_denoiser, mixture.data_sampler(), config, progress=False, reward=toy_reward()
    )
    assert record.rewards == []  # γ_R = 0: the reward is never evaluated
    for a, b in zip(plain.state_dict().values(), rewarded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    bank_config = BankConfig(items=64, particles=2, shard_size=64, batch_size=64, store_predictions=True)
    generate_bank(mlp_denoiser, VPCosine(), mixture.data_sampler(), tmp_path, bank_config, progress=False)
    bank = load_bank(tmp_path)
    fits = []
    for reward in (None, toy_reward()):
        net = omega_net()
        fit_omega_on_bank(net, bank, FitConfig(epochs=3, batch_size=16), progress=False, reward=reward)
        fits.append(net.state_dict())
    for a, b in zip(*(f.values() for f in fits), strict=True):
        assert torch.equal(a, b)


def test_reward_gradient_matches_a_finite_difference():
    gen = torch.Generator().manual_seed(1)
    x0_cond, delta = (
        torch.randn(3, 2, 2, generator=gen, dtype=torch.float64),
        torch.randn(3, 2, 2, generator=gen),
    )
    cond = torch.tensor([0, 2, 3])
    reward = ClassifierLogProb(LinearClassifier(torch.float64))
    omega = torch.tensor([0.3, 1.2, -0.4], dtype=torch.float64, requires_grad=True)
    reward_loss(reward, x0_cond, delta.double(), omega, cond).backward()
    h = 1e-6
    for i in range(3):
        step = torch.zeros(3, dtype=torch.float64)
        step[i] = h
        with torch.no_grad():
            up = reward_loss(reward, x0_cond, delta.double(), omega + step, cond)
            down = reward_loss(reward, x0_cond, delta.double(), omega - step, cond)
        assert omega.grad[i].item() == pytest.approx(((up - down) / (2 * h)).item(), rel=1e-6, abs=1e-9)
    # the term is −mean log p(c | x̂_c + ωΔ) over items and particles
    x = (x0_cond + omega.detach()[:, None, None] * delta.double()).flatten(0, 1)
    expected = -torch.log_softmax(reward.classifier(x), -1)[torch.arange(6), cond.repeat_interleave(2)].mean()
    assert reward_loss(reward, x0_cond, delta.double(), omega.detach(), cond).item() == pytest.approx(
        expected.item()
    )


def test_no_gradient_reaches_the_denoiser_or_the_reward_model(mixture, mlp_denoiser):
    reward, before = toy_reward(), copy.deepcopy(mlp_denoiser.state_dict())
    net = omega_net()
    config = OnlineConfig(iterations=4, batch_size=32, particles=2, reward_weight=1.0)
    record = train_omega_online(
        net, mlp_denoiser, mixture.data_sampler(), config, progress=False, reward=reward
    )
    assert len(record.rewards) == 4 and all(r <= 0 for r in record.rewards)  # log-probabilities
    assert all(p.grad is None for p in mlp_denoiser.parameters())
    assert all(p.grad is None and not p.requires_grad for p in reward.parameters())
    assert all(torch.equal(v, before[k]) for k, v in mlp_denoiser.state_dict().items())
    assert any(p.grad is not None for p in net.parameters())


def test_a_large_reward_weight_raises_omega_and_the_reward_on_a_bank(mixture, exact, tmp_path):
    """On the toy, the class log-probability grows with guidance: the rewarded fit learns a larger ω."""
    torch.manual_seed(0)
    classifier = nn.Linear(2, 4)
    with torch.no_grad():  # logits = the class means' directions: log p(c | x) grows along x̂_c − x̂_∅
        classifier.weight.copy_((mixture.weights @ mixture.means).float() * 2.0)  # class means [C, d]
        classifier.bias.zero_()
    reward = ClassifierLogProb(classifier)
    bank_config = BankConfig(items=512, particles=2, shard_size=512, batch_size=512, store_predictions=True)
    generate_bank(exact, VPCosine(), mixture.data_sampler(), tmp_path, bank_config, progress=False)
    bank = load_bank(tmp_path)
    omegas, rewards = [], []
    for gamma in (0.0, 1.0):
        net = omega_net()
        fit = FitConfig(epochs=40, batch_size=128, lr=1e-2, reward_weight=gamma)
        fit_omega_on_bank(net, bank, fit, progress=False, reward=reward)
        with torch.no_grad():
            omega = net(bank.cond, bank.s, bank.t)
            rewards.append(
                -reward_loss(reward, bank.extras["x0_cond"], bank.extras["delta"], omega, bank.cond)
            )
            omegas.append(net.fit_omega(bank.cond, bank.s, bank.t).mean().item())  # before the clamp
    assert omegas[1] > omegas[0] + 0.3 and rewards[1] > rewards[0]


def test_reward_settings_are_validated(mixture, mlp_denoiser, tmp_path):
    bank_config = BankConfig(items=32, particles=2, shard_size=32, batch_size=32)
    generate_bank(mlp_denoiser, VPCosine(), mixture.data_sampler(), tmp_path, bank_config, progress=False)
    with pytest.raises(ValueError, match="--store-predictions"):
        fit_omega_on_bank(omega_net(), load_bank(tmp_path), FitConfig(reward_weight=1.0), reward=toy_reward())
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite number >= 0"):
            train_omega_online(
                omega_net(),
                mlp_denoiser,
                mixture.data_sampler(),
                OnlineConfig(reward_weight=bad),
                reward=toy_reward(),
            )
    with pytest.raises(ValueError, match="needs a reward"):
        train_omega_online(omega_net(), mlp_denoiser, mixture.data_sampler(), OnlineConfig(reward_weight=0.5))
    with pytest.raises(ValueError, match="class-id conditions"):
        toy_reward()(torch.zeros(2, 2), torch.zeros(2, 3))


def test_classifier_reward_loads_a_shipped_classifier_and_checks_its_data(tmp_path):
    from learnguide.checkpoints import CheckpointError
    from learnguide.images.classifier import ClassifierTrainingConfig, save_classifier

    model = ImageClassifier(1, 10, width=8)
    save_classifier(model, tmp_path, {"test_accuracy": 0.0}, ClassifierTrainingConfig(), "data-a")
    reward = ClassifierLogProb.from_checkpoint(tmp_path, data_id="data-a")
    values = reward(torch.zeros(3, 1, 8, 8), torch.tensor([0, 4, 9]))
    assert values.shape == (3,) and bool((values <= 0).all())
    with pytest.raises(CheckpointError, match="other data"):
        ClassifierLogProb.from_checkpoint(tmp_path, data_id="data-b")


def test_clip_score_from_a_local_folder_scores_prompts_by_index_or_by_condition(tmp_path):
    pytest.importorskip("transformers")
    from transformers import CLIPTokenizer

    size = write_tiny_tokenizer(tmp_path)
    model = tiny_clip()
    assert model.config.text_config.vocab_size >= size
    model.save_pretrained(tmp_path, safe_serialization=True)
    CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")).save_pretrained(tmp_path)
    prompts = ["a cat", "a dog", "sky"]
    conditions = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(2))  # the diffusion model's
    by_index = ClipScore.from_pretrained(tmp_path, prompts)
    by_condition = ClipScore.from_pretrained(tmp_path, prompts, conditions=conditions)
    x0 = (torch.rand(4, 1, 8, 8) * 2 - 1).requires_grad_(True)
    scores = by_index(x0, torch.tensor([0, 1, 2, 1]))
    assert scores.shape == (4,) and bool((scores.abs() <= 1 + 1e-6).all())
    same = by_condition(x0, conditions[torch.tensor([0, 1, 2, 1])])  # [B, L, D] as the trainer passes them
    pooled = by_condition(x0, conditions.mean(1)[torch.tensor([0, 1, 2, 1])])  # [B, D] as a bank stores them
    assert torch.allclose(scores, same) and torch.allclose(scores, pooled)
    scores.sum().backward()
    assert x0.grad is not None and x0.grad.abs().sum() > 0
    assert all(p.grad is None for p in by_index.parameters())
    with pytest.raises(ValueError, match="not among"):
        by_condition(x0[:1], torch.randn(1, 4, 6))
    with pytest.raises(ValueError, match="exactly one"):
        ClipScore(model)


def test_cli_fit_with_a_classifier_reward_on_an_image_bank(tmp_path, capsys):
    from learnguide.apps.cli import main

    den, clf, bank = tmp_path / "denoiser", tmp_path / "classifier", tmp_path / "bank"
    train = ["train-denoiser", "--dataset", "digits", "--out", str(den), "--steps", "2", "--width", "8"]
    assert main([*train, "--batch-size", "16", "--no-progress"]) == 0
    assert (
        main(["train-classifier", "--dataset", "digits", "--out", str(clf), "--epochs", "1", "--width", "8"])
        == 0
    )
    args = ["bank", "--denoiser", str(den), "--dataset", "digits", "--out", str(bank), "--items", "64"]
    assert (
        main([*args, "--particles", "2", "--batch-size", "64", "--store-predictions", "--no-progress"]) == 0
    )
    fit = ["fit", "--bank", str(bank), "--epochs", "2", "--no-progress", "--reward", "classifier"]
    assert main([*fit, "--reward-model", str(clf), "--gamma", "1", "--out", str(tmp_path / "omega")]) == 0
    config = json.loads((tmp_path / "omega" / "config.json").read_text())
    assert config["extra"]["fit"]["reward_weight"] == 1.0
    capsys.readouterr()
    assert main([*fit, "--gamma", "1", "--out", str(tmp_path / "bad")]) == 2
    assert "needs --reward-model" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["fit", "--bank", str(bank), "--gamma", "1", "--out", str(tmp_path / "bad")]) == 2
    assert "needs a reward" in capsys.readouterr().err and not (tmp_path / "bad").exists()
