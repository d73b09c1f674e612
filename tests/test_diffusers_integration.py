"""The diffusers adapter: schedules from schedulers, the time grid, and parity with diffusers' own guided
sampling loop (scheduler + ``diffusers.guiders.ClassifierFreeGuidance``) on tiny random models."""

import json

import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DiTTransformer2DModel,
    FlowMatchEulerDiscreteScheduler,
    SD3Transformer2DModel,
    UNet2DModel,
)
from diffusers.guiders import ClassifierFreeGuidance
from safetensors.torch import load_file

from learnguide.apps.cli import main
from learnguide.core.guidance import ConstantGuidance, GuidanceSchedule, OmegaNet, omega_to_scale
from learnguide.core.sampling import sample
from learnguide.core.schedules import DiscreteVP, RectifiedFlow, get_schedule
from learnguide.data.prompts import pack_prompt_condition
from learnguide.integrations.diffusers_guidance import (
    LearnedGuidance,
    guidance_scale_callback,
    per_step_scales,
)
from learnguide.integrations.diffusers_models import (
    DiffusersDenoiser,
    load_scheduler,
    schedule_from_scheduler,
    scheduler_grid,
)
from learnguide.integrations.published_configs import (
    DIT_SCHEDULER,
    DIT_XL_2_256,
    SD3_MEDIUM_TRANSFORMER,
    SD3_SCHEDULER,
    SD15_SCHEDULER,
    SD15_UNET,
    SD21_SCHEDULER,
)
from tiny_models import digits_unet, text_unet

OMEGA = 1.5  # paper convention; diffusers' guidance_scale is 1 + ω


def ddim(**overrides) -> DDIMScheduler:
    config = {"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "beta_start": 0.00085}
    config |= {"beta_end": 0.012, "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}
    return DDIMScheduler(**(config | overrides))


def tiny_class_unet(num_classes: int = 3, out_channels: int = 2) -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=8,
        in_channels=2,
        out_channels=out_channels,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        norm_num_groups=4,
        num_class_embeds=num_classes + 1,
    )


def tiny_dit() -> DiTTransformer2DModel:
    torch.manual_seed(0)
    model = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,  # learned variance: the adapter keeps the first 4 channels
        num_layers=1,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=5,
    )
    for p in model.parameters():  # DiT zero-initialises its output layers: make the output non-trivial
        torch.nn.init.normal_(p, std=0.05)
    return model


def diffusers_loop(model, scheduler, cond, null, latents, steps, guidance_scale, keyword):
    """diffusers' classifier-free-guided sampling: the scheduler loop with the guider, as pipelines do.
    ``keyword`` names the model's condition argument, or maps a batch of conditions to its arguments."""
    conditioning = keyword if callable(keyword) else lambda both: {keyword: both}
    guider = ClassifierFreeGuidance(guidance_scale=guidance_scale)
    scheduler.set_timesteps(steps)
    x = latents * getattr(scheduler, "init_noise_sigma", 1.0)
    for i, timestep in enumerate(scheduler.timesteps):
        guider.set_state(step=i, num_inference_steps=steps, timestep=timestep)
        both = torch.cat([cond, null])
        ts = timestep.expand(2 * x.shape[0])
        out = model(torch.cat([x, x]), timestep=ts, **conditioning(both), return_dict=False)[0]
        pred_cond, pred_uncond = out[:, : x.shape[1]].chunk(2)
        x = scheduler.step(guider.forward(pred_cond, pred_uncond).pred, timestep, x, return_dict=False)[0]
    return x


def ours(denoiser, scheduler, cond, latents_seed, shape, steps, omega, guidance=None):
    grid = scheduler_grid(scheduler, steps)
    gen = torch.Generator().manual_seed(latents_seed)
    guidance = guidance or ConstantGuidance(omega)
    return sample(denoiser, denoiser.schedule, guidance, cond, shape, grid=grid, generator=gen)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def assert_parity(model, make_scheduler, denoiser, cond, null, seed, shape, steps, keyword):
    """Our sampler with constant ω vs diffusers' guided loop, from the same latents (seed), to ≤ 1e-5."""
    latents = torch.randn(cond.shape[0], *shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        theirs = diffusers_loop(
            model, make_scheduler(), cond, null, latents, steps, omega_to_scale(OMEGA), keyword=keyword
        )
    mine = ours(denoiser, make_scheduler(), cond, seed, shape, steps, OMEGA)
    assert relative_error(mine, theirs) <= 1e-5


def test_discrete_vp_hits_alphas_cumprod_at_the_timesteps_and_round_trips():
    scheduler = ddim()
    schedule = schedule_from_scheduler(scheduler)
    assert isinstance(schedule, DiscreteVP) and schedule.num_timesteps == 1000
    k = torch.tensor([0, 10, 500, 999])
    t = (k + 1).double() / 1000
    expected = scheduler.alphas_cumprod[k].double()
    assert torch.allclose(schedule.alpha(t) ** 2, expected, rtol=1e-6)
    assert torch.allclose(schedule.alpha(t) ** 2 + schedule.sigma(t) ** 2, torch.ones(4, dtype=torch.float64))
    assert float(schedule.alpha(torch.zeros(1, dtype=torch.float64))) == 1.0
    assert torch.allclose(schedule.timestep(t), k.double())
    # derivatives agree with finite differences inside a segment
    t_mid = torch.tensor([0.3005, 0.7005], dtype=torch.float64)
    h = 1e-7
    for value, slope in ((schedule.alpha, schedule.d_alpha), (schedule.sigma, schedule.d_sigma)):
        fd = (value(t_mid + h) - value(t_mid - h)) / (2 * h)
        assert torch.allclose(slope(t_mid), fd, rtol=1e-5)
    assert get_schedule(schedule.config()) == schedule


def test_discrete_vp_rejects_invalid_tables():
    with pytest.raises(ValueError, match="non-increasing"):
        DiscreteVP((0.5, 0.9))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        DiscreteVP(())


@pytest.mark.parametrize("offset, last", [(1, 1e-3), (0, 1e-3)])
def test_scheduler_grid_follows_the_ddim_timesteps(offset, last):
    scheduler = ddim(steps_offset=offset)
    grid = scheduler_grid(scheduler, 10)
    assert torch.allclose(grid[:-1], (scheduler.timesteps.double() + 1) / 1000)
    assert grid[-1].item() == pytest.approx(last)  # set_alpha_to_one=False: ends at ᾱ_0
    assert scheduler_grid(ddim(set_alpha_to_one=True), 10)[-1].item() == 0.0


def test_scheduler_grid_refuses_unevenly_spaced_timesteps():
    with pytest.raises(ValueError, match="evenly spaced"):
        scheduler_grid(ddim(timestep_spacing="trailing"), 7)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_parity_with_diffusers_ddim_and_cfg_guider_class_unet(prediction_type):
    model, k, steps = tiny_class_unet(), 3, 12
    scheduler = ddim(prediction_type=prediction_type)
    denoiser = DiffusersDenoiser(model, scheduler, null_class=k)
    cond = torch.tensor([0, 1, 2, 1])
    make = lambda: ddim(prediction_type=prediction_type)  # noqa: E731
    assert_parity(model, make, denoiser, cond, torch.full_like(cond, k), 3, (2, 8, 8), steps, "class_labels")


def test_parity_dit_with_learned_variance_channels_and_its_own_null_class():
    model, steps = tiny_dit(), 10
    scheduler = ddim(beta_schedule="linear", beta_start=0.0001, beta_end=0.02)
    denoiser = DiffusersDenoiser(model, scheduler)  # null class = num_embeds_ada_norm
    assert denoiser.null_class == 5
    cond = torch.tensor([0, 4, 2])
    make = lambda: ddim(beta_schedule="linear", beta_start=0.0001, beta_end=0.02)  # noqa: E731
    assert_parity(model, make, denoiser, cond, torch.full_like(cond, 5), 5, (4, 8, 8), steps, "class_labels")


def test_parity_text_unet_with_prompt_embeddings():
    model, steps = text_unet(), 10
    gen = torch.Generator().manual_seed(7)
    prompts, empty = torch.randn(2, 5, 12, generator=gen), torch.randn(5, 12, generator=gen)
    denoiser = DiffusersDenoiser(model, ddim(), null_embedding=empty)
    null = empty.expand(2, 5, 12)
    assert_parity(model, ddim, denoiser, prompts, null, 9, (4, 8, 8), steps, "encoder_hidden_states")


def test_parity_flow_matching_euler():
    model, steps = text_unet(), 8
    gen = torch.Generator().manual_seed(11)
    prompts, empty = torch.randn(2, 5, 12, generator=gen), torch.randn(5, 12, generator=gen)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    denoiser = DiffusersDenoiser(model, scheduler, null_embedding=empty)
    assert isinstance(denoiser.schedule, RectifiedFlow) and denoiser.prediction == "flow"
    make = lambda: FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)  # noqa: E731
    null = empty.expand(2, 5, 12)
    assert_parity(model, make, denoiser, prompts, null, 13, (4, 8, 8), steps, "encoder_hidden_states")


def test_parity_flow_matching_sd3_transformer_with_pooled_projections():
    torch.manual_seed(0)
    model = SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=12,
        caption_projection_dim=16,
        pooled_projection_dim=20,  # wider than the prompt embeddings: packing pads the prompt rows
        pos_embed_max_size=8,
    )
    for p in model.parameters():  # zero-initialised output layers: make the output non-trivial
        torch.nn.init.normal_(p, std=0.05)
    gen = torch.Generator().manual_seed(5)
    prompts, pooled = torch.randn(2, 5, 12, generator=gen), torch.randn(2, 20, generator=gen)
    empty, empty_pooled = torch.randn(1, 5, 12, generator=gen), torch.randn(1, 20, generator=gen)
    cond, null = pack_prompt_condition(prompts, pooled), pack_prompt_condition(empty, empty_pooled)
    assert cond.shape == (2, 6, 20) and torch.equal(cond[:, :5, :12], prompts) and not cond[:, :5, 12:].any()
    make = lambda: FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)  # noqa: E731
    denoiser = DiffusersDenoiser(model, make(), null_embedding=null[0])
    assert denoiser.prediction == "flow" and denoiser.pooled_dims == (12, 20)
    sd3_kwargs = lambda both: {  # noqa: E731
        "encoder_hidden_states": torch.cat([prompts, empty.expand(2, 5, 12)]),
        "pooled_projections": torch.cat([pooled, empty_pooled.expand(2, 20)]),
    }
    assert_parity(model, make, denoiser, cond, null.expand(2, 6, 20), 17, (4, 8, 8), 6, sd3_kwargs)
    with pytest.raises(ValueError, match="pack_prompt_condition"):
        DiffusersDenoiser(model, make(), null_embedding=empty[0])
    with pytest.raises(ValueError, match="pooled embeddings"):
        pack_prompt_condition(prompts, pooled[:1])


def test_adapter_errors_name_the_fix():
    with pytest.raises(ValueError, match="give --null-class"):
        DiffusersDenoiser(tiny_class_unet(), ddim())
    with pytest.raises(ValueError, match="has no class embedding"):
        DiffusersDenoiser(text_unet(), ddim(), null_class=0)
    with pytest.raises(ValueError, match="not a diffusers scheduler"):
        load_scheduler({"_class_name": "os.system"})
    with pytest.raises(ValueError, match="prediction_type"):
        DiffusersDenoiser(tiny_class_unet(), ddim(prediction_type="unknown"), null_class=3)


def learned_omega_net(schedule) -> OmegaNet:
    """A random ω-network with ω varying over classes and time, zero for class 2."""
    torch.manual_seed(1)
    net = OmegaNet(schedule, num_classes=3, hidden=16, layers=2, output="relu", init_omega=0.5)
    torch.nn.init.normal_(net.body[-1].weight, std=0.3)
    return net


class ZeroForClass2(torch.nn.Module, GuidanceSchedule):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def omega(self, cond, s, t):
        return self.inner.omega(cond, s, t) * (cond != 2)


def guider_loop(model, scheduler, guider, cond, null, latents, steps):
    """diffusers' loop driven by a guider that may skip the unconditional pass (modular-pipeline style)."""
    scheduler.set_timesteps(steps)
    x, passes = latents.clone(), []
    for i, timestep in enumerate(scheduler.timesteps):
        guider.set_state(step=i, num_inference_steps=steps, timestep=timestep)
        passes.append(guider.num_conditions)
        pred_cond = model(x, timestep, class_labels=cond, return_dict=False)[0]
        pred_uncond = model(x, timestep, class_labels=null, return_dict=False)[0] if passes[-1] == 2 else None
        x = scheduler.step(guider.forward(pred_cond, pred_uncond).pred, timestep, x, return_dict=False)[0]
    return x, passes


def test_learned_guider_gives_our_samples_and_skips_the_unconditional_pass_where_omega_is_zero(tmp_path):
    model, steps, k = tiny_class_unet(), 10, 3
    scheduler = ddim(prediction_type="v_prediction")
    denoiser = DiffusersDenoiser(model, scheduler, null_class=k)
    omega = learned_omega_net(denoiser.schedule)
    cond = torch.tensor([0, 1, 1, 0])
    guider = LearnedGuidance.from_schedule(omega, cond, scheduler, steps)
    table = torch.tensor(guider.config.omegas)
    assert table.shape == (steps, 4) and bool((table > 0).any()) and table[:, 0].std() > 0
    latents = torch.randn(4, 2, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        theirs, passes = guider_loop(
            model, ddim(prediction_type="v_prediction"), guider, cond, cond * 0 + k, latents, steps
        )
    mine = ours(denoiser, scheduler, cond, 3, (2, 8, 8), steps, None, guidance=omega)
    assert relative_error(mine, theirs) <= 1e-5 and set(passes) == {2}
    # all-zero ω (class 2 only): one pass per step, plain conditional sampling
    zero = LearnedGuidance.from_schedule(ZeroForClass2(omega), torch.tensor([2, 2]), scheduler, steps)
    with torch.no_grad():
        plain, passes = guider_loop(
            model,
            ddim(prediction_type="v_prediction"),
            zero,
            torch.tensor([2, 2]),
            torch.tensor([k, k]),
            latents[:2],
            steps,
        )
    assert set(passes) == {1}
    plain_ours = ours(denoiser, scheduler, torch.tensor([2, 2]), 3, (2, 8, 8), steps, 0.0)
    assert relative_error(plain_ours, plain) <= 1e-5  # the first two latents of seed 3, unguided
    # config-serialisable like diffusers' guiders
    guider.save_pretrained(tmp_path)
    again = LearnedGuidance.from_pretrained(tmp_path)
    assert torch.equal(again.omegas, guider.omegas)


def test_learned_guider_validates_its_table_and_state():
    with pytest.raises(ValueError, match="finite"):
        LearnedGuidance(omegas=[[float("nan")]])
    guider = LearnedGuidance(omegas=[[1.0, 0.0]])
    with pytest.raises(RuntimeError, match="set_state"):
        guider.forward(torch.ones(2, 1), torch.zeros(2, 1))
    guider.set_state(step=0, num_inference_steps=1, timestep=torch.tensor(999))
    out = guider.forward(torch.ones(2, 1), torch.zeros(2, 1)).pred
    assert out.flatten().tolist() == [2.0, 1.0]  # x̂_c + ω (x̂_c − x̂_∅) per item
    with pytest.raises(ValueError, match="items per step"):
        guider.forward(torch.ones(3, 1), torch.zeros(3, 1))


def test_classic_pipeline_callback_sets_the_next_steps_scale_and_never_turns_cfg_off():
    scheduler = ddim()
    schedule = schedule_from_scheduler(scheduler)
    scales = per_step_scales(ZeroForClass2(learned_omega_net(schedule)), torch.tensor([2]), scheduler, 5)
    assert len(scales) == 5 and min(scales) > 1.0 and max(scales) < 1.001  # ω ≡ 0 is kept just above 1
    varying = per_step_scales(learned_omega_net(schedule), torch.tensor([0]), scheduler, 5)
    callback = guidance_scale_callback(varying)
    pipe = type("Pipe", (), {"_guidance_scale": varying[0]})()
    for step in range(4):
        assert callback(pipe, step, None, {"latents": 1}) == {"latents": 1}
        assert pipe._guidance_scale == varying[step + 1]
    with pytest.raises(ValueError, match="> 1"):
        guidance_scale_callback([1.0, 2.0])
    with pytest.raises(ValueError, match="one condition"):
        per_step_scales(learned_omega_net(schedule), torch.tensor([0, 1]), scheduler, 5)


def save_pipeline_folder(folder, model, scheduler):
    model.save_pretrained(folder / "unet")
    scheduler.save_pretrained(folder / "scheduler")
    return folder


def test_cli_bank_fit_export_on_a_local_diffusers_folder(tmp_path, capsys):
    folder = save_pipeline_folder(tmp_path / "pipe", digits_unet(), ddim())
    bank, omega, out = tmp_path / "bank", tmp_path / "omega", tmp_path / "schedule.json"
    args = ["bank", "--model", str(folder), "--dataset", "digits", "--null-class", "10", "--out", str(bank)]
    assert main([*args, "--items", "64", "--shard-size", "32", "--batch-size", "32", "--no-progress"]) == 0
    manifest = json.loads((bank / "manifest.json").read_text())
    assert (
        manifest["schedule"]["name"] == "discrete-vp" and len(manifest["schedule"]["alphas_cumprod"]) == 1000
    )
    assert main(["fit", "--bank", str(bank), "--out", str(omega), "--epochs", "2", "--no-progress"]) == 0
    assert (
        main(["export", "--omega", str(omega), "--model", str(folder), "--steps", "5", "--out", str(out)])
        == 0
    )
    table = json.loads(out.read_text())
    assert table["timesteps"] == [801, 601, 401, 201, 1]  # leading spacing, steps_offset 1
    assert set(table["omega"]) == {str(k) for k in range(10)} and len(table["omega"]["3"]) == 5
    for k in table["omega"]:
        assert table["guidance_scale"][k] == pytest.approx([1 + w for w in table["omega"][k]])
    smp = ["sample", "--model", str(folder), "--null-class", "10", "--steps", "3", "--no-progress"]
    assert (
        main(
            [
                *smp,
                "--omega",
                str(omega),
                "--classes",
                "0",
                "1",
                "--per-class",
                "2",
                "--out",
                str(out.parent / "s"),
            ]
        )
        == 0
    )
    saved = load_file(out.parent / "s" / "samples.safetensors")
    assert saved["images"].shape == (4, 1, 8, 8) and saved["labels"].tolist() == [0, 0, 1, 1]
    assert (out.parent / "s" / "samples.png").stat().st_size > 500
    assert main([*smp, "--constant", "0.5", "--classes", "12", "--out", str(out.parent / "bad")]) == 2
    assert "class ids must be in [0, 10)" in capsys.readouterr().err and not (out.parent / "bad").exists()


def test_cli_refuses_a_mismatched_or_incomplete_diffusers_folder(tmp_path, capsys):
    folder = save_pipeline_folder(tmp_path / "pipe", digits_unet(sample_size=16), ddim())
    args = ["bank", "--model", str(folder), "--dataset", "digits", "--out", str(tmp_path / "bank")]
    assert main([*args, "--null-class", "10", "--no-progress"]) == 2
    assert "shape (1, 8, 8)" in capsys.readouterr().err and not (tmp_path / "bank").exists()
    (folder / "scheduler" / "scheduler_config.json").unlink()
    assert main([*args, "--null-class", "10"]) == 2
    assert "scheduler_config.json is missing" in capsys.readouterr().err
    assert main(["bank", "--model", str(tmp_path), "--dataset", "digits", "--out", str(tmp_path / "b")]) == 2
    assert "no transformer/config.json or unet/config.json" in capsys.readouterr().err


TINY = {
    "DiTTransformer2DModel": {
        "attention_head_dim": 8,
        "num_attention_heads": 2,
        "num_layers": 1,
        "sample_size": 8,
    },
    "UNet2DConditionModel": {
        "block_out_channels": [8, 8, 16, 16],
        "cross_attention_dim": 12,
        "attention_head_dim": 2,
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "sample_size": 16,
    },
}


@pytest.mark.parametrize(
    "model_config, scheduler_config, null",
    [
        (DIT_XL_2_256, DIT_SCHEDULER, "class"),
        (SD15_UNET, SD15_SCHEDULER, "text"),
        (SD15_UNET, SD21_SCHEDULER, "text"),
    ],
    ids=["DiT-XL-2-256", "SD-1.5", "SD-2.1-v"],
)
def test_adapter_accepts_published_configurations(tmp_path, model_config, scheduler_config, null):
    import diffusers

    config = {k: v for k, v in model_config.items() if k != "_class_name"} | TINY[model_config["_class_name"]]
    torch.manual_seed(0)
    model = getattr(diffusers, model_config["_class_name"])(**config)
    scheduler = load_scheduler(scheduler_config)
    save_pipeline_folder(tmp_path, model, scheduler)
    from learnguide.integrations.diffusers_models import load_diffusers_model

    loaded, loaded_scheduler = load_diffusers_model(tmp_path)
    size = config["sample_size"]
    if null == "class":
        denoiser, cond = DiffusersDenoiser(loaded, loaded_scheduler), torch.tensor([0, 999])
        assert denoiser.null_class == 1000
    else:
        empty = torch.zeros(3, config["cross_attention_dim"])
        denoiser = DiffusersDenoiser(loaded, loaded_scheduler, null_embedding=empty)
        cond = torch.randn(2, 3, config["cross_attention_dim"])
    expected = {"epsilon": "eps", "v_prediction": "v"}[scheduler_config.get("prediction_type", "epsilon")]
    assert denoiser.prediction == expected
    acp = loaded_scheduler.alphas_cumprod.double()
    assert torch.allclose(denoiser.schedule.alpha(torch.tensor([1.0], dtype=torch.float64)) ** 2, acp[-1:])
    grid = scheduler_grid(loaded_scheduler, 4)
    assert len(grid) == 5 and bool((grid[1:] < grid[:-1]).all())
    images = sample(denoiser, denoiser.schedule, ConstantGuidance(1.0), cond, (4, size, size), grid=grid)
    assert images.shape == (2, 4, size, size) and bool(images.isfinite().all())


def test_adapter_accepts_the_published_sd3_medium_configuration(tmp_path):
    tiny = {"attention_head_dim": 8, "num_attention_heads": 2, "caption_projection_dim": 16, "num_layers": 1}
    tiny |= {"joint_attention_dim": 24, "pooled_projection_dim": 32, "sample_size": 8}
    config = {k: v for k, v in SD3_MEDIUM_TRANSFORMER.items() if k != "_class_name"} | tiny
    torch.manual_seed(0)
    SD3Transformer2DModel(**config).save_pretrained(tmp_path / "transformer")
    load_scheduler(SD3_SCHEDULER).save_pretrained(tmp_path / "scheduler")
    from learnguide.integrations.diffusers_models import load_diffusers_model

    model, scheduler = load_diffusers_model(tmp_path)
    empty = pack_prompt_condition(torch.zeros(1, 5, 24), torch.zeros(1, 32))[0]
    denoiser = DiffusersDenoiser(model, scheduler, null_embedding=empty)
    assert isinstance(denoiser.schedule, RectifiedFlow) and denoiser.prediction == "flow"
    cond = pack_prompt_condition(torch.randn(2, 5, 24), torch.randn(2, 32))
    grid = scheduler_grid(scheduler, 4)
    assert grid[0].item() == 1.0 and grid[-1].item() == 0.0 and len(grid) == 5
    images = sample(denoiser, denoiser.schedule, ConstantGuidance(1.0), cond, (16, 8, 8), grid=grid)
    assert images.shape == (2, 16, 8, 8) and bool(images.isfinite().all())
