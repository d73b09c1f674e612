import pytest
import torch

from learnguide.core.guidance import ConstantGuidance, PerStepGuidance
from learnguide.core.sampling import denoise_guided, sample
from learnguide.core.schedules import VPCosine, step_grid


def test_per_sample_seeds_make_samples_independent_of_the_batch(mlp_denoiser):
    kw = dict(shape=(2,), steps=5, churn=0.5)
    full = sample(
        mlp_denoiser,
        VPCosine(),
        ConstantGuidance(1.0),
        torch.tensor([0, 1, 2, 3]),
        seeds=[10, 11, 12, 13],
        **kw,
    )
    part = sample(mlp_denoiser, VPCosine(), ConstantGuidance(1.0), torch.tensor([2, 0]), seeds=[12, 10], **kw)
    assert torch.allclose(part, full[[2, 0]], atol=1e-6)
    with pytest.raises(ValueError, match="seeds"):
        sample(mlp_denoiser, VPCosine(), ConstantGuidance(1.0), torch.tensor([0, 1]), seeds=[1], **kw)


def test_sampling_is_reproducible_and_guidance_changes_it(mlp_denoiser):
    cond = torch.tensor([0, 1, 2])

    def run(omega):
        return sample(
            mlp_denoiser,
            VPCosine(),
            ConstantGuidance(omega),
            cond,
            (2,),
            steps=4,
            generator=torch.Generator().manual_seed(0),
        )

    assert torch.equal(run(1.0), run(1.0))
    assert not torch.allclose(run(1.0), run(0.0))


def test_per_item_omega_and_per_step_schedule(mlp_denoiser):
    x, t, cond = torch.randn(3, 2), torch.full((3,), 0.5), torch.tensor([0, 1, 2])
    omega = torch.tensor([0.0, 1.0, 2.0])
    guided = denoise_guided(mlp_denoiser, x, t, cond, omega)
    for i in range(3):  # each item gets its own ω
        alone = denoise_guided(mlp_denoiser, x[i : i + 1], t[:1], cond[i : i + 1], omega[i : i + 1] + 1e-12)
        assert torch.allclose(guided[i], alone[0], atol=1e-6)
    grid = step_grid(3)
    schedule = PerStepGuidance([2.0, 0.0, 0.0], grid)
    a = sample(
        mlp_denoiser, VPCosine(), schedule, cond, (2,), steps=3, generator=torch.Generator().manual_seed(1)
    )
    b = sample(
        mlp_denoiser,
        VPCosine(),
        ConstantGuidance(0.0),
        cond,
        (2,),
        steps=3,
        generator=torch.Generator().manual_seed(1),
    )
    assert not torch.allclose(a, b)
