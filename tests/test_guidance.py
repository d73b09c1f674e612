import json

import pytest
import torch

from learnguide.checkpoints import CheckpointError
from learnguide.core.guidance import (
    OUTPUT_MAPS,
    ConstantGuidance,
    IncreasingGuidance,
    IntervalGuidance,
    OmegaNet,
    PerStepGuidance,
    guidance_from_config,
    omega_to_scale,
    scale_to_omega,
)
from learnguide.core.schedules import RectifiedFlow, VPCosine, step_grid

COND = torch.tensor([0, 1, 2])


def _times(t):
    t = torch.full((3,), t, dtype=torch.float64)
    return t - 0.05, t


def test_scale_conversions_round_trip():
    assert omega_to_scale(0.0) == 1.0 and scale_to_omega(7.5) == 6.5
    w = torch.tensor([1.0, 2.5])
    assert torch.equal(omega_to_scale(scale_to_omega(w)), w)


def test_constant_and_interval():
    assert ConstantGuidance(1.5).omega(COND, *_times(0.5)).tolist() == [1.5] * 3
    interval = IntervalGuidance(2.0, 0.2, 0.6)
    assert interval.omega(COND, *_times(0.5)).tolist() == [2.0] * 3
    assert interval.omega(COND, *_times(0.8)).tolist() == [0.0] * 3
    with pytest.raises(ValueError):
        IntervalGuidance(1.0, 0.7, 0.3)


def test_increasing_schedules_rise_as_t_falls():
    for shape in ("linear", "cosine"):
        g = IncreasingGuidance(3.0, shape)
        values = [g.omega(COND, *_times(t))[0].item() for t in (0.99, 0.7, 0.4, 0.1)]
        assert values == sorted(values) and values[-1] <= 3.0 and values[0] < 0.1
    assert IncreasingGuidance(2.0, "linear").omega(COND, *_times(0.25))[0].item() == pytest.approx(1.5)
    with pytest.raises(ValueError):
        IncreasingGuidance(1.0, "quadratic")


def test_per_step_list_and_omega_table():
    grid = step_grid(4)
    per_step = PerStepGuidance([0.1, 0.2, 0.3, 0.4], grid)
    table = per_step.omega_table(COND, grid)
    assert table.shape == (4, 3) and table[:, 0].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="not on its grid"):
        per_step.omega(COND, *_times(0.5))
    with pytest.raises(ValueError):
        PerStepGuidance([0.1], grid)


@pytest.mark.parametrize(
    "guidance",
    [
        ConstantGuidance(0.5),
        IntervalGuidance(1.0, 0.1, 0.5),
        IncreasingGuidance(2.0, "cosine"),
        PerStepGuidance([1, 2], step_grid(2)),
    ],
)
def test_baselines_rebuild_from_config(guidance):
    grid = step_grid(2)
    rebuilt = guidance_from_config(json.loads(json.dumps(guidance.config())))
    assert torch.equal(rebuilt.omega_table(COND, grid), guidance.omega_table(COND, grid))


@pytest.mark.parametrize("output", OUTPUT_MAPS)
def test_omega_net_starts_at_init_omega(output):
    net = OmegaNet(VPCosine(), num_classes=3, init_omega=0.7, output=output)
    assert torch.allclose(net(COND, *_times(0.5)), torch.full((3,), 0.7), atol=1e-6)


@pytest.mark.parametrize("output, used", [("relu", 0.0), ("softplus", 0.1269), ("identity", -2.0)])
def test_the_fit_sees_an_unconstrained_relu_and_sampling_the_clamped_one(output, used):
    net = OmegaNet(VPCosine(), num_classes=3, output=output)
    torch.nn.init.constant_(net.body[-1].bias, -2.0)  # the last layer's weight starts at 0: ω is its bias
    fit = {"relu": -2.0, "softplus": 0.1269, "identity": -2.0}[output]
    assert torch.allclose(net.fit_omega(COND, *_times(0.3)), torch.full((3,), fit), atol=1e-4)
    assert torch.allclose(net(COND, *_times(0.3)), torch.full((3,), used), atol=1e-4)
    net.fit_omega(COND, *_times(0.3)).sum().backward()
    assert net.body[-1].bias.grad.abs().item() > 0.1  # a gradient flows where the clamp would block it


@pytest.mark.parametrize(
    "output, target, gradient",
    [("relu", 0.5, -5.0), ("relu-st", 0.5, -1.0), ("relu", -0.5, -3.0), ("relu-st", -0.5, 0.0)],
)
def test_a_straight_through_relu_fit_gets_the_gradient_at_the_clamp_only_towards_more_guidance(
    output, target, gradient
):
    net = OmegaNet(VPCosine(), num_classes=3, output=output)
    torch.nn.init.constant_(net.body[-1].bias, -2.0)
    loss = ((net.fit_omega(COND, *_times(0.3)) - target) ** 2).mean()  # summed d/dω = 2(ω − target)
    loss.backward()  # relu: at ω = −2; relu-st: at ω = 0, passed on only if it raises ω (target 0.5)
    assert net.fit_omega(COND, *_times(0.3)).min().item() == (-2.0 if output == "relu" else 0.0)
    assert net.body[-1].bias.grad.item() == pytest.approx(gradient, abs=1e-5)


def test_omega_net_with_embeddings_and_bad_inputs():
    net = OmegaNet(VPCosine(), cond_dim=5)
    assert net(torch.randn(3, 5), *_times(0.4)).shape == (3,)
    with pytest.raises(ValueError, match="class ids"):
        OmegaNet(VPCosine(), num_classes=3)(torch.tensor([0, 3, 1]), *_times(0.4))
    with pytest.raises(ValueError):
        OmegaNet(VPCosine())
    with pytest.raises(ValueError):
        OmegaNet(VPCosine(), num_classes=3, output="tanh")
    with pytest.raises(ValueError):
        OmegaNet(VPCosine(), num_classes=3, output="softplus", init_omega=0.0)
    unguided = OmegaNet(VPCosine(), num_classes=3, output="identity", init_omega=0.0)
    assert unguided(COND, *_times(0.3)).abs().max() == 0


@pytest.mark.parametrize(
    "net, cond, message",
    [
        (OmegaNet(VPCosine(), num_classes=3), torch.randn(3, 5), "learned on class ids"),
        (OmegaNet(VPCosine(), num_classes=3), torch.tensor([0.0, 1.0, 2.0]), "learned on class ids"),
        (OmegaNet(VPCosine(), cond_dim=5), torch.tensor([0, 1, 2]), "learned on 5-wide condition embeddings"),
        (OmegaNet(VPCosine(), cond_dim=5), torch.randn(3, 2, 6), "got float32 conditions of shape (3, 2, 6)"),
    ],
)
def test_omega_net_refuses_conditions_of_another_kind_or_width(net, cond, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        net(cond, *_times(0.4))
    net.check_condition(torch.tensor([0, 2]) if net.hparams["num_classes"] else torch.randn(2, 4, 5))


def _trained_net():
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=3, hidden=32, layers=3)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return net


def test_save_load_gives_identical_omega(tmp_path):
    net = _trained_net()
    net.save(tmp_path / "w", extra={"note": "test"})
    loaded = OmegaNet.load(tmp_path / "w", VPCosine())
    grid = step_grid(10)
    assert torch.equal(loaded.omega_table(COND, grid), net.omega_table(COND, grid))
    assert json.loads((tmp_path / "w" / "config.json").read_text())["extra"] == {"note": "test"}


def test_corrupted_or_mismatched_checkpoints_give_clear_errors(tmp_path):
    net = _trained_net()
    net.save(tmp_path / "w")
    weights, config = tmp_path / "w" / "model.safetensors", tmp_path / "w" / "config.json"
    with pytest.raises(CheckpointError, match="schedule"):
        OmegaNet.load(tmp_path / "w", RectifiedFlow())

    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        OmegaNet.load(tmp_path / "w")
    weights.write_bytes(data)

    cfg = json.loads(config.read_text())
    config.write_text(json.dumps({**cfg, "hidden": 64}))
    with pytest.raises(CheckpointError, match="does not match"):
        OmegaNet.load(tmp_path / "w")
    config.write_text(json.dumps({**cfg, "kind": "learnguide.mlp_denoiser"}))
    with pytest.raises(CheckpointError, match="expected 'learnguide.omega_net'"):
        OmegaNet.load(tmp_path / "w")
    config.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        OmegaNet.load(tmp_path / "w")
    with pytest.raises(CheckpointError, match="missing"):
        OmegaNet.load(tmp_path / "nowhere")


def test_loading_checks_the_denoiser_an_omega_network_was_learned_with(tmp_path):
    net = _trained_net()
    net.save(tmp_path / "w", extra={"denoiser_id": "aaaa"})
    net.save(tmp_path / "unrecorded")
    assert OmegaNet.load(tmp_path / "w", denoiser_id="aaaa").hparams == net.hparams
    with pytest.raises(CheckpointError, match="learned with denoiser aaaa, not this one \\(bbbb\\)"):
        OmegaNet.load(tmp_path / "w", denoiser_id="bbbb")
    OmegaNet.load(tmp_path / "w")  # no id given: not checked
    OmegaNet.load(tmp_path / "unrecorded", denoiser_id="bbbb")  # nothing recorded: nothing to check


def test_omega_table_evaluates_distinct_conditions_once_and_matches_per_item_omega():
    net = _trained_net()
    cond, grid = torch.tensor([2, 0, 2, 1, 0]), step_grid(6)
    table = net.omega_table(cond, grid)
    for i in range(6):
        s, t = grid[i + 1].expand(5), grid[i].expand(5)
        assert torch.allclose(table[i], net(cond, s, t).double(), atol=1e-6)
    emb = torch.randn(3, 4)[torch.tensor([0, 1, 0, 2])]
    net_e = OmegaNet(VPCosine(), cond_dim=4, init_omega=0.5)
    torch.nn.init.normal_(net_e.body[-1].weight)
    table_e = net_e.omega_table(emb, grid)
    assert torch.equal(table_e[:, 0], table_e[:, 2]) and not torch.equal(table_e[:, 0], table_e[:, 1])


def test_weights_holding_nan_are_refused_before_anything_is_written(tmp_path):
    net = OmegaNet(VPCosine(), num_classes=3)
    torch.nn.init.constant_(net.body[-1].bias, float("nan"))
    with pytest.raises(ValueError, match=r"omega .*body\.\d+\.bias holds NaN or Inf"):
        net.save(tmp_path / "omega")
    assert not (tmp_path / "omega").exists()


def test_a_shared_network_learns_one_omega_of_time_for_every_class(tmp_path):
    torch.manual_seed(0)
    net = OmegaNet(VPCosine(), num_classes=3, hidden=16, layers=2, shared=True)
    assert net.cond_proj is None
    for p in net.parameters():  # move it off its constant start
        p.data.add_(0.3 * torch.randn_like(p))
    grid = step_grid(6)
    table = net.omega_table(torch.arange(3), grid)  # [K, 3]
    assert torch.allclose(table[:, :1], table, rtol=0, atol=1e-6)
    assert float(table.std()) > 0  # it still varies over time
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 3\)"):
        net(torch.tensor([3]), torch.tensor([0.1]), torch.tensor([0.2]))
    net.save(tmp_path / "w")
    assert torch.equal(OmegaNet.load(tmp_path / "w").omega_table(torch.arange(3), grid), table)
    assert json.loads((tmp_path / "w" / "config.json").read_text())["shared"] is True
    old = _trained_net()  # a network saved before `shared` existed loads as one per condition
    old.save(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    (tmp_path / "old" / "config.json").write_text(
        json.dumps({k: v for k, v in config.items() if k != "shared"})
    )
    loaded = OmegaNet.load(tmp_path / "old")
    assert loaded.cond_proj is not None and loaded.hparams["shared"] is False
    assert torch.equal(loaded.omega_table(COND, grid), old.omega_table(COND, grid))
