"""Loading what a command works on: a denoiser with its data, the conditions to sample, a reward.

Each command of the CLI calls these; a Python user can call them the same way::

    loaded = DenoiserSource(denoiser="checkpoints/digits/under_trained", dataset="digits").load()
    loaded.denoiser, loaded.sample_data, loaded.denoiser_id
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

from learnguide.checkpoints import checkpoint_fingerprint
from learnguide.core.denoiser_training import load_mlp_denoiser
from learnguide.core.denoisers import Denoiser
from learnguide.core.items import DataSampler
from learnguide.core.objectives import Reward
from learnguide.data.images import ImageDataset, load_dataset
from learnguide.data.prompts import load_prompt_images
from learnguide.data.toy import ring_mixture
from learnguide.images.denoisers import (
    META_FILE,
    image_denoiser_fingerprint,
    load_image_denoiser,
    recorded_dataset,
)

if TYPE_CHECKING:
    from learnguide.integrations.diffusers_latents import LatentCodec


class LoadedDenoiser(NamedTuple):
    """A frozen denoiser, the data it is measured against, an id of its weights and, for a latent diffusers
    model, its VAE (None in pixel space)."""

    denoiser: Denoiser
    sample_data: DataSampler
    denoiser_id: str
    codec: LatentCodec | None = None


def is_prompt_file(path: str | Path | None) -> bool:
    """Whether a dataset path names a prompt file (images + caption embeddings, safetensors)."""
    return bool(path) and str(path).endswith(".safetensors")


@dataclass(frozen=True)
class DenoiserSource:
    """Where a denoiser and its data come from.

    Attributes:
        denoiser: a learnguide checkpoint folder: an image denoiser (needs ``dataset``) or a toy one (its data
            is the ring mixture).
        model: a local diffusers pipeline folder instead (``unet/`` or ``transformer/``, ``scheduler/``, and
            ``vae/`` for a latent model); needs ``dataset``.
        dataset: a dataset name, an image folder, or for a text-conditional model a prompt file.
        null_class: a class-conditional diffusers model's ∅ id (default: the model's own).
        balanced_classes: draw training data with every class equally often (``ImageDataset.data_sampler``'s
            ``balanced``; class-labelled image datasets only).
        target_data: a dataset name or image folder to draw the data from instead of the denoiser's training
            split: images of the distribution the samples are judged against, e.g. held-out images (the same
            image shape and number of classes; pixel-space image models only). None: the training split.
        target_split: which part of ``target_data`` is drawn: ``"test"`` (default), ``"train"`` or ``"all"``.
    """

    denoiser: str | None = None
    model: str | None = None
    dataset: str | None = None
    null_class: int | None = None
    balanced_classes: bool = False
    target_data: str | None = None
    target_split: str = "test"

    def load(self, cache_dir: str | Path | None = None, progress: bool = True) -> LoadedDenoiser:
        """Load the denoiser, its data sampler (the training split, or :attr:`target_data`) and its id. A
        latent model's data are encoded once by its VAE and cached in ``cache_dir`` (default: no cache)."""
        if self.model:
            return self._load_diffusers(cache_dir, progress)
        if not self.denoiser:
            raise ValueError("pass --denoiser DIR or --model DIR")
        if (Path(self.denoiser) / META_FILE).is_file():  # an image denoiser: its data is a named dataset
            name = self.dataset or recorded_dataset(self.denoiser)  # train-denoiser records it
            if not name:
                raise ValueError(
                    f"{self.denoiser} is an image denoiser; pass --dataset (the data it was trained on)"
                )
            dataset = load_dataset(name)
            denoiser = load_image_denoiser(self.denoiser, data_id=dataset.fingerprint())
            return LoadedDenoiser(
                denoiser, self._image_sampler(dataset), image_denoiser_fingerprint(self.denoiser)
            )
        if flag := self.class_data_flag():
            raise ValueError(f"{flag} draws class-labelled images; the toy ring data has no classes")
        mixture = ring_mixture()
        denoiser = load_mlp_denoiser(self.denoiser, data_id=mixture.fingerprint())
        return LoadedDenoiser(denoiser, mixture.data_sampler(), checkpoint_fingerprint(self.denoiser))

    def _load_diffusers(self, cache_dir: str | Path | None, progress: bool) -> LoadedDenoiser:
        from learnguide.integrations.diffusers_latents import encode_dataset, load_vae
        from learnguide.integrations.diffusers_models import (
            DiffusersDenoiser,
            diffusers_fingerprint,
            load_diffusers_model,
            model_image_shape,
        )

        if not self.dataset:
            raise ValueError(
                f"{self.model} is a diffusers model; pass --dataset (a dataset name, an image folder, or a "
                "prompt file .safetensors for a text-conditional model)"
            )
        prompts = is_prompt_file(self.dataset)
        if prompts and self.null_class is not None:
            raise ValueError(
                "--null-class is for class-conditional models; a prompt file holds its ∅ embedding"
            )
        model, scheduler = load_diffusers_model(self.model)
        model_id = diffusers_fingerprint(self.model)  # hashes the weights (GBs for SD): once per command
        codec = load_vae(self.model)
        if prompts:
            dataset = load_prompt_images(self.dataset)
        elif codec is None:  # the model's channels decide the images' (a latent model's: its VAE's)
            dataset = load_dataset(self.dataset, model_image_shape(model)[0], f"{self.model} expects")
        else:
            dataset = load_dataset(self.dataset, codec.image_channels, f"the VAE of {self.model} expects")
        if codec is not None:
            if self.target_data:
                raise ValueError(f"--target-data draws images in pixel space; {self.model} is a latent model")
            cache = Path(cache_dir) / "latents" if cache_dir is not None else None
            dataset = encode_dataset(dataset, codec, model_id, cache_dir=cache, progress=progress)
        expected = model_image_shape(model)
        if tuple(dataset.image_shape) != tuple(expected):
            what = "latents of shape" if codec is not None else "images of shape"
            raise ValueError(
                f"{self.dataset} has {what} {tuple(dataset.image_shape)}; {self.model} takes {expected}"
            )
        if prompts:
            if flag := self.class_data_flag():
                raise ValueError(f"{flag} draws class-labelled images; {self.dataset} holds prompts")
            denoiser = DiffusersDenoiser(model, scheduler, null_embedding=dataset.null_embedding)
            return LoadedDenoiser(denoiser, dataset.data_sampler(), model_id, codec)
        denoiser = DiffusersDenoiser(model, scheduler, null_class=self.null_class)
        if denoiser.null_class < dataset.num_classes:
            raise ValueError(
                f"the null class {denoiser.null_class} is one of {self.dataset}'s {dataset.num_classes} "
                "classes: pass the id the model was trained with as ∅ (--null-class)"
            )
        return LoadedDenoiser(denoiser, self._image_sampler(dataset), model_id, codec)

    def class_data_flag(self) -> str | None:
        """The first of ``--balanced-classes``, ``--target-data`` given (they need class-labelled images)."""
        given = {"--balanced-classes": self.balanced_classes, "--target-data": self.target_data}
        return next((flag for flag, value in given.items() if value), None)

    def _image_sampler(self, dataset: ImageDataset) -> DataSampler:
        """The sampler of ``dataset``'s training split, or of :attr:`target_split` of :attr:`target_data`
        (which must match ``dataset``'s image shape and classes); balanced when asked."""
        if not self.target_data:
            return dataset.data_sampler("train", balanced=self.balanced_classes)
        target = load_dataset(self.target_data, dataset.image_shape[0], f"the data of {dataset.name} has")
        if target.image_shape != dataset.image_shape or target.num_classes != dataset.num_classes:
            raise ValueError(
                f"--target-data {self.target_data} has {target.num_classes} classes of images "
                f"{target.image_shape}; the denoiser's data {dataset.name} has {dataset.num_classes} of "
                f"{dataset.image_shape}"
            )
        return target.data_sampler(self.target_split, balanced=self.balanced_classes)


def pick_conditions(
    picked: list[int] | None, num_classes: int | None, embeddings: Tensor | None = None
) -> tuple[Tensor, list[str]]:
    """The conditions to sample or export and their names: class ids ``[K]`` in [0, num_classes), or, given a
    prompt file's ``embeddings [P, L, D]``, those prompts ``[K, L, D]`` (``picked`` then holds prompt
    indices). ``picked=None`` takes all."""
    if embeddings is not None:
        picked = picked if picked is not None else list(range(len(embeddings)))
        if any(not 0 <= k < len(embeddings) for k in picked):
            raise ValueError(f"prompt indices must be in [0, {len(embeddings)}), got {picked}")
        return embeddings[torch.tensor(picked)], [str(k) for k in picked]
    if num_classes is None:
        raise ValueError("this ω-network takes condition embeddings; pass --prompts FILE.safetensors")
    picked = picked if picked is not None else list(range(num_classes))
    if any(not 0 <= k < num_classes for k in picked):
        raise ValueError(f"class ids must be in [0, {num_classes}), got {picked}")
    return torch.tensor(picked), [str(k) for k in picked]


def build_reward(
    kind: str,
    reward_model: str | None,
    prompts: str | None = None,
    captions: str | None = None,
    latent_model: str | None = None,
) -> Reward:
    """A reward R(x̂_0, c): ``kind="classifier"`` (log p(c | x̂_0) of a learnguide classifier folder) or
    ``"clip"`` (CLIP score of a local CLIP folder against ``captions``, a text file with one caption per
    prompt of the prompt file ``prompts``). With ``latent_model`` (a latent diffusers pipeline folder) the
    reward sees x̂_0 decoded by its VAE."""
    from learnguide.integrations.rewards import ClassifierLogProb, ClipScore

    if not reward_model:
        raise ValueError(f"--reward {kind} needs --reward-model (the classifier or CLIP folder)")
    if kind == "classifier":
        reward: Reward = ClassifierLogProb.from_checkpoint(reward_model)
    else:
        try:
            import transformers  # noqa: F401  (the optional extra clip)
        except ImportError:
            raise ValueError(
                "--reward clip needs the transformers package: pip install transformers==5.23.0"
            ) from None
        if not (prompts and captions):
            raise ValueError(
                "--reward clip needs --prompts (the bank's prompt file) and --captions (its texts)"
            )
        try:
            texts = Path(captions).read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise ValueError(
                f"--captions {captions} is not UTF-8 text ({err.reason} at byte {err.start})"
            ) from None
        conditions = load_prompt_images(prompts).prompt_embeds
        reward = ClipScore.from_pretrained(reward_model, texts, conditions=conditions)
    if latent_model:
        from learnguide.integrations.diffusers_latents import DecodedReward, load_vae

        codec = load_vae(latent_model)
        if codec is None:
            raise ValueError(f"{latent_model} has no vae/: --model is only needed for latent models")
        reward = DecodedReward(reward, codec)
    return reward
