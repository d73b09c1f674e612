"""Sampling into a folder, resumably, and scoring a folder of samples (``learnguide sample`` / ``evaluate``).

Under ``accelerate launch`` the batches are split over the processes (process r takes r, r + N, …) and
process 0 writes; one process gives the same files.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor
from tqdm.auto import tqdm

from learnguide.apps.loading import pick_conditions
from learnguide.checkpoints import atomic_save_tensors, atomic_write_text, check_finite, strict_json
from learnguide.core.guidance import ConstantGuidance, GuidanceSchedule, OmegaNet
from learnguide.core.memory import FLOAT32, FLOAT64, check_memory
from learnguide.core.sampling import sample
from learnguide.data.images import load_dataset
from learnguide.data.prompts import load_prompt_images
from learnguide.distributed import Processes, processes
from learnguide.images.classifier import load_classifier, predict
from learnguide.images.denoisers import image_denoiser_fingerprint, load_image_denoiser
from learnguide.images.evaluation import (
    InceptionFeatures,
    classifier_reference,
    inception_reference,
    score_features,
)
from learnguide.images.reports import plot_sample_grids


@dataclass(frozen=True)
class SampleRequest:
    """What :func:`sample_to_folder` draws.

    Attributes:
        denoiser: a learnguide image-denoiser folder, or
        model: a local diffusers pipeline folder (class-conditional, or text-conditional with ``prompts``).
        null_class: with ``model``: its ∅ class id (default: the model's own).
        prompts: with a text-conditional ``model``: a prompt file; ``classes`` then picks prompt indices.
        omega: a learned ω-network folder, or
        constant: a constant ω (paper convention, 0 = no guidance).
        any_denoiser: use ``omega`` although it was learned with another denoiser.
        steps: sampling steps (the scheduler's grid for ``model``).
        classes: class ids or prompt indices (None: all).
        per_class: samples per class or prompt.
        batch_size: images per batch (the unit of resumption and of the split over processes).
        seed: sample i uses seed·1000003 + i, whatever the batch.
    """

    denoiser: str | None = None
    model: str | None = None
    null_class: int | None = None
    prompts: str | None = None
    omega: str | None = None
    constant: float | None = None
    any_denoiser: bool = False
    steps: int = 25
    classes: list[int] | None = None
    per_class: int = 8
    batch_size: int = 256
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting."""
        if min(self.steps, self.per_class, self.batch_size) < 1:
            raise ValueError("--steps, --per-class and --batch-size must be >= 1")
        if (self.denoiser is None) == (self.model is None):
            raise ValueError("give exactly one of --denoiser or --model")
        if (self.omega is None) == (self.constant is None):
            raise ValueError("give exactly one of --omega or --constant")
        if self.constant is not None and not math.isfinite(self.constant):
            raise ValueError(f"--constant must be a finite ω, got {self.constant}")
        if self.prompts and not self.model:
            raise ValueError("--prompts needs --model (a text-conditional diffusers pipeline folder)")


def weights_stamp(paths: list[str | None]) -> list:
    """Name, size and modification time of every safetensors file in ``paths`` (folders or files; cheap:
    nothing is read), so that work kept for a resume is dropped when a checkpoint was replaced in place."""
    files: list[Path] = []
    for path in map(Path, filter(None, paths)):
        files += [path] if path.is_file() else sorted(path.rglob("*.safetensors"))
    return [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def partial_folder(out: Path, settings: dict, procs: Processes) -> Path:
    """``out/partial``, where a resumable command keeps finished units; emptied first when it holds the
    units of other ``settings``. Process 0 prepares it; every process returns after it is ready."""
    partial = out / "partial"
    text = json.dumps(settings, sort_keys=True, default=str)
    if procs.is_main:
        if (partial / "settings.json").is_file() and (partial / "settings.json").read_text() != text:
            shutil.rmtree(partial)
        partial.mkdir(parents=True, exist_ok=True)
        atomic_write_text(partial / "settings.json", text)
    procs.barrier()
    return partial


def _model_and_guidance(request: SampleRequest):
    """``(denoiser, VAE codec or None, sample shape, grid or None, conditions, names, guidance)``."""
    prompts = load_prompt_images(request.prompts) if request.prompts else None
    grid, codec = None, None
    if request.model:
        from learnguide.integrations.diffusers_latents import load_vae
        from learnguide.integrations.diffusers_models import (
            DiffusersDenoiser,
            diffusers_fingerprint,
            load_diffusers_model,
            model_image_shape,
            scheduler_grid,
        )

        model, scheduler = load_diffusers_model(request.model)
        null_embedding = prompts.null_embedding if prompts is not None else None
        denoiser = DiffusersDenoiser(
            model, scheduler, null_class=request.null_class, null_embedding=null_embedding
        )
        codec, shape = load_vae(request.model), model_image_shape(model)
        grid, num_classes = scheduler_grid(scheduler, request.steps), denoiser.null_class
    else:
        denoiser = load_image_denoiser(request.denoiser)
        shape, num_classes = denoiser.net.image_shape, denoiser.null_id
    conditions, names = pick_conditions(
        request.classes, num_classes, prompts.prompt_embeds if prompts else None
    )
    if request.constant is not None:
        guidance: GuidanceSchedule = ConstantGuidance(request.constant)
    else:
        denoiser_id = None  # hashing a diffusers model's weights reads GBs for SD: only when it is checked
        if not request.any_denoiser:
            fingerprint = diffusers_fingerprint if request.model else image_denoiser_fingerprint
            denoiser_id = fingerprint(request.model or request.denoiser)
        guidance = OmegaNet.load(request.omega, denoiser.schedule, denoiser_id=denoiser_id)
        guidance.check_condition(conditions)
    return denoiser, codec, shape, grid, conditions, names, guidance


def _check_sample_memory(request: SampleRequest, conditions: Tensor, numbers: int, device: str) -> None:
    """Refuse a request whose samples of ``numbers`` values (kept on the CPU until written, with their
    ``conditions`` repeated) or whose batch (on ``device``: the samples, their conditional and ∅ predictions,
    the noise) cannot fit (:func:`~learnguide.core.memory.check_memory`)."""
    n = len(conditions) * request.per_class
    each = 2 * numbers * FLOAT32 + conditions[0].numel() * conditions.element_size() + 2 * FLOAT64
    kept = n * each  # the batches and their concatenation; the condition, label and seed of each sample
    check_memory(kept, f"{n} samples of {numbers} values", "--per-class (or pick --classes)")
    batch = min(request.batch_size, n)
    check_memory(6 * batch * numbers * FLOAT32, f"a batch of {batch} samples", "--batch-size", device)


def sample_to_folder(request: SampleRequest, out: str | Path, progress: bool = True) -> dict:
    """Draw ``request.per_class`` samples per condition and write ``out/samples.safetensors`` (``images``
    ``[n, C, H, W]`` in [−1, 1], ``labels [n]``; ``latents`` too for a latent model) and ``out/samples.png``.

    Finished batches are kept in ``out/partial/`` until the end, so a run killed and started again with the
    same request and weights skips them and writes the same files. Returns ``{"n", "processes"}`` (on
    processes other than 0: ``{}``).
    """
    request.validate()
    out = Path(out)
    denoiser, codec, shape, grid, conditions, names, guidance = _model_and_guidance(request)
    procs = processes()
    _check_sample_memory(request, conditions, math.prod(shape), procs.device)
    labels = torch.tensor([int(name) for name in names]).repeat_interleave(request.per_class)
    cond = conditions.repeat_interleave(request.per_class, dim=0)
    seeds = request.seed * 1_000_003 + torch.arange(len(labels))
    denoiser = denoiser.to(procs.device)
    batches = list(zip(cond.split(request.batch_size), seeds.split(request.batch_size), strict=True))
    weights = weights_stamp([request.model or request.denoiser, request.omega, request.prompts])
    partial = partial_folder(out, {"args": asdict(request), "weights": weights}, procs)

    per_batch = len(grid) - 1 if grid is not None else request.steps
    mine = len(procs.mine(list(range(len(batches)))))  # one bar over the steps of this process's batches
    bar = tqdm(total=mine * per_batch, desc="sample", unit="step", disable=not progress or not procs.is_main)

    def sample_batch(j: int) -> Tensor:  # a finished batch is kept in partial/: a rerun after a kill skips it
        path = partial / f"batch-{j:06d}.safetensors"
        if path.is_file():
            bar.update(per_batch)
            return load_file(str(path))["images"]
        batch_cond, batch_seeds = batches[j]
        schedule = denoiser.schedule
        images = sample(
            denoiser,
            schedule,
            guidance,
            batch_cond.to(procs.device),
            shape,
            request.steps,
            seeds=batch_seeds,
            grid=grid,
            bar=bar,
        ).cpu()
        check_finite({"images": images}, f"sampling {request.model or request.denoiser} (batch {j})")
        atomic_save_tensors(path, {"images": images})
        return images

    chunks = procs.map_units(sample_batch, len(batches))
    bar.close()
    if chunks is None:  # not process 0
        return {}
    images, tensors = torch.cat(chunks), {"labels": labels}
    if codec is not None:  # a latent model: keep the latents, decode them to images
        decoded = codec.to(procs.device).decode(images.to(procs.device), request.batch_size).cpu()
        tensors["latents"], images = images.contiguous(), decoded
        check_finite({"images": images}, f"decoding with the VAE of {request.model}")
    atomic_save_tensors(out / "samples.safetensors", {"images": images, **tensors})
    title = f"{request.omega or f'constant ω = {request.constant}'}, {request.steps} steps"
    plot_sample_grids({"samples": images.clamp(-1, 1)}, len(names), title, out / "samples.png")
    shutil.rmtree(partial)
    return {"n": len(labels), "processes": str(procs)}


def load_samples(folder: str | Path) -> tuple[Tensor, Tensor]:
    """``(images [n, …] float32, labels [n])`` of ``folder/samples.safetensors`` (``learnguide sample``).

    Raises ``ValueError`` naming the file when it is missing, unreadable, not a set of at least 2 images
    with integer labels >= 0, or holds NaN or Inf (no score of such samples would mean anything).
    """
    path = Path(folder) / "samples.safetensors"
    if not path.is_file():
        raise ValueError(f"{path} is missing: {folder} holds no samples (`learnguide sample` writes them)")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is corrupted or truncated ({err})") from None
    images, labels = tensors.get("images"), tensors.get("labels")
    if images is None or labels is None or images.dim() < 2 or labels.shape != images.shape[:1]:
        raise ValueError(f"{path} must hold images [n, ...] and labels [n]")
    if len(labels) < 2 or labels.is_floating_point() or bool((labels < 0).any()):
        raise ValueError(f"{path} must hold at least 2 samples with integer labels >= 0")
    if not bool(images.isfinite().all()):
        bad = int((~images.isfinite()).reshape(len(images), -1).any(1).sum())
        raise ValueError(f"{path} holds NaN or Inf in {bad} of {len(images)} images; sample them again")
    return images.float(), labels


def evaluate_folder(
    samples: str | Path,
    dataset: str,
    classifier: str | None = None,
    inception: bool = False,
    cache: str | None = None,
    batch_size: int = 512,
    out: str | Path | None = None,
) -> dict | None:
    """Score ``samples/samples.safetensors`` against ``dataset``'s test split: FD and KID in the features of
    an evaluation ``classifier`` folder, its class accuracy and k-NN precision / recall, and with
    ``inception`` the Inception FID (``inception_fd``). Reference statistics are cached in ``cache``.
    Writes the scores to ``out`` (default: ``samples/metrics.json``) and returns them (None on processes
    other than 0)."""
    if not (classifier or inception):
        raise ValueError(
            "evaluate needs --classifier (FD, KID, accuracy, precision / recall), --inception, or both"
        )
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    procs = processes()  # under a launcher, process r extracts the features of batches r, r + N, …
    images, labels = load_samples(samples)
    channels = images.shape[1] if images.dim() == 4 else None  # grey data are compared with RGB samples
    data = load_dataset(dataset, channels, f"the samples in {samples} have")
    model = load_classifier(classifier, data_id=data.fingerprint()) if classifier else None
    if tuple(images.shape[1:]) != tuple(data.image_shape) or bool((labels >= data.num_classes).any()):
        raise ValueError(
            f"{samples} holds images {tuple(images.shape[1:])} with labels up to {int(labels.max())}; "
            f"{dataset} has images {tuple(data.image_shape)} and {data.num_classes} classes"
        )
    batches = images.clamp(-1, 1).split(batch_size)
    network = InceptionFeatures() if inception else None

    def features(j: int) -> tuple:
        """``(classifier features, logits, Inception features)`` of batch j (None for what is not asked)."""
        scored = predict(model, batches[j]) if model else (None, None)
        return (*scored, network(batches[j]) if network else None)

    with torch.no_grad():
        outputs = procs.map_units(features, len(batches))
    if outputs is None:  # not process 0
        return None
    feats, logits, pool = zip(*outputs, strict=True)
    scores: dict = {"samples": str(samples), "n": len(labels)}
    if model is not None:
        reference = classifier_reference(data, model, Path(classifier), cache)
        scores.update(score_features(torch.cat(feats), torch.cat(logits), labels, reference))
    if network is not None:  # the test split's statistics: computed by process 0 once per cache
        scores["inception_fd"] = inception_reference(data, network, cache).frechet_distance(torch.cat(pool))
    bad = [name for name, v in scores.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise ValueError(f"the {', '.join(bad)} of {samples} came out NaN or Inf (nothing was written)")
    atomic_write_text(Path(out or Path(samples) / "metrics.json"), strict_json(scores, indent=1))
    return scores
