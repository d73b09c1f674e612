"""Class-conditional image denoisers built on diffusers' ``UNet2DModel``, and their checkpoints.

The network sees the continuous time t ∈ [0, 1] as the timestep 1000·t, and class ids 0 … K − 1 with id K
as the null class ∅ (``num_class_embeds = K + 1``; train it with label dropout). A checkpoint folder holds
``unet/`` (diffusers' ``config.json`` + ``diffusion_pytorch_model.safetensors``, loaded with
``from_pretrained`` from the local folder) and ``learnguide.json`` (schedule, prediction, classes, data and
training record). Nothing is downloaded and no code is loaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn

from learnguide.checkpoints import (
    CONFIG_FILE,
    SIZE,
    CheckpointError,
    Field,
    atomic_write_text,
    check_finite,
    check_module_fits,
    checked_config,
    plain_file_mode,
    read_json_config,
    safetensors_shapes,
    strict_json,
)
from learnguide.core.denoiser_training import DenoiserTrainingConfig, train_denoiser
from learnguide.core.denoisers import PREDICTIONS, PredictionAdapter
from learnguide.core.networks import check_group_width
from learnguide.core.schedules import Schedule, VPCosine, get_schedule
from learnguide.data.images import DATASETS, ImageDataset

KIND = "learnguide.image_denoiser"
META_FILE, UNET_DIR = "learnguide.json", "unet"
TIMESTEP_SCALE = 1000.0
META_FIELDS = {  # what load_image_denoiser reads from learnguide.json
    "schedule": Field(parse=get_schedule),
    "prediction": Field(str, choices=PREDICTIONS),
    "class_names": Field(list, optional=True, items=Field(str)),
    "data_id": Field(str, optional=True),
    "dataset": Field(str, optional=True),
}
UNET_FIELDS = {  # the sizes unet_config writes into unet/config.json
    "sample_size": Field((int, list), 1, 4096, items=Field(int, 1, 4096)),
    "in_channels": SIZE,
    "out_channels": SIZE,
    "block_out_channels": Field(list, items=SIZE),
    "layers_per_block": Field(int, 1, 64),
    "norm_num_groups": SIZE,
    "num_class_embeds": Field(int, 2, SIZE.high),
}


def unet_config(image_shape: tuple[int, int, int], num_classes: int, width: int = 32) -> dict:
    """A small ``UNet2DModel`` configuration for ``(C, H, W)`` images and K classes (+ the null class).

    Two resolution levels (attention at the lower one) for images up to 16 pixels wide, three above;
    ``width`` is the channel count of the first level (then 2×, 2×). About 1.0 M parameters at width 32.
    """
    check_group_width(width)  # norm_num_groups below
    channels, height, width_px = image_shape
    levels = 2 if max(height, width_px) <= 16 else 3
    blocks = (width, 2 * width, 2 * width)[:levels]
    return {
        "sample_size": [height, width_px],
        "in_channels": channels,
        "out_channels": channels,
        "block_out_channels": list(blocks),
        "down_block_types": ["DownBlock2D"] * (levels - 1) + ["AttnDownBlock2D"],
        "up_block_types": ["AttnUpBlock2D"] + ["UpBlock2D"] * (levels - 1),
        "layers_per_block": 2 if levels == 2 else 1,
        "norm_num_groups": 8,
        "num_class_embeds": num_classes + 1,
    }


class ClassConditionalUNet(nn.Module):
    """``(x_t [B, C, H, W], t [B], class ids [B]) -> [B, C, H, W]`` around a diffusers ``UNet2DModel``.

    The output's meaning (ε, v, x_0, velocity) is set by the :class:`PredictionAdapter` that wraps it.
    """

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        if getattr(unet.config, "num_class_embeds", None) is None:
            raise ValueError("the UNet2DModel needs num_class_embeds = K + 1 (class K is the null class)")
        self.unet = unet

    @property
    def null_id(self) -> int:
        """The null class id K."""
        return self.unet.config.num_class_embeds - 1

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images the UNet was built for."""
        size = self.unet.config.sample_size
        height, width = (size, size) if isinstance(size, int) else size
        return self.unet.config.in_channels, height, width

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """Network output ``[B, C, H, W]``."""
        return self.unet(x_t, t * TIMESTEP_SCALE, class_labels=cond).sample


def build_image_denoiser(config: dict, schedule: Schedule, prediction: str = "v") -> PredictionAdapter:
    """A freshly initialised class-conditional UNet denoiser from a :func:`unet_config` dictionary."""
    from diffusers import UNet2DModel

    net = ClassConditionalUNet(UNet2DModel(**config))
    return PredictionAdapter(net, schedule, prediction, null_id=net.null_id)


def save_image_denoiser(
    model: PredictionAdapter,
    directory: str | Path,
    training: DenoiserTrainingConfig,
    data_id: str,
    class_names: tuple[str, ...],
    dataset: str | None = None,
) -> Path:
    """Write ``model`` (a :class:`ClassConditionalUNet` in a :class:`PredictionAdapter`) to ``directory``.

    ``dataset``, the data's name or image folder (stored as an absolute path), is recorded so that commands
    find the data without ``--dataset`` (:func:`recorded_dataset`).
    """
    directory = Path(directory)
    check_finite(dict(model.net.unet.state_dict()), f"the UNet to be saved in {directory} (try a lower --lr)")
    model.net.unet.save_pretrained(directory / UNET_DIR, safe_serialization=True)
    plain_file_mode(*(directory / UNET_DIR).glob("*.safetensors"))
    meta = {
        "kind": KIND,
        "schedule": model.schedule.config(),
        "prediction": model.prediction,
        "class_names": list(class_names),
        "data_id": data_id,
        "training": asdict(training),
    }
    if dataset is not None:
        meta["dataset"] = dataset if dataset in DATASETS else str(Path(dataset).resolve())
    atomic_write_text(directory / META_FILE, strict_json(meta, indent=2))
    return directory


def load_image_denoiser(directory: str | Path, data_id: str | None = None) -> PredictionAdapter:
    """Load a checkpoint written by :func:`save_image_denoiser` (local files only; safetensors weights).

    Raises :class:`~learnguide.checkpoints.CheckpointError` if the folder is not such a checkpoint, its
    weights are corrupted, or it was trained on other data than ``data_id`` (when given).
    """
    from diffusers import UNet2DModel

    directory = Path(directory)
    meta = read_image_denoiser_meta(directory)
    if data_id is not None and meta.get("data_id") != data_id:
        raise CheckpointError(
            f"{directory} was trained on other data (data_id {meta.get('data_id')}, expected {data_id})"
        )
    _check_unet_files(directory / UNET_DIR)
    try:
        unet = UNet2DModel.from_pretrained(
            directory / UNET_DIR, local_files_only=True, use_safetensors=True, low_cpu_mem_usage=False
        )
    except (OSError, ValueError, RuntimeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{directory / UNET_DIR} cannot be loaded: {first}") from None
    net = ClassConditionalUNet(unet.eval())
    return PredictionAdapter(net, meta["schedule"], meta["prediction"], null_id=net.null_id)


def _check_unet_files(unet_dir: Path) -> None:
    """Raise :class:`CheckpointError` naming the file and the key unless ``unet_dir/config.json`` holds
    sizes of the right type and range and describes exactly the tensors of the safetensors weights beside
    it (checked on the meta device: a config asking for a huge UNet allocates nothing)."""
    from diffusers import UNet2DModel

    path = unet_dir / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as err:
        raise CheckpointError(f"{path} is missing or not valid JSON ({err})") from None
    checked_config(config, UNET_FIELDS, path)
    files = sorted(unet_dir.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{unet_dir} holds no safetensors weights")
    shapes = {key: shape for f in files for key, shape in safetensors_shapes(f).items()}
    check_module_fits(lambda: UNet2DModel.from_config(config), shapes, files[0])


def read_image_denoiser_meta(directory: str | Path) -> dict:
    """The ``learnguide.json`` of an image-denoiser checkpoint, checked, with ``"schedule"`` as a
    :class:`~learnguide.core.schedules.Schedule` (raises ``CheckpointError`` naming the key if absent/bad)."""
    path = Path(directory) / META_FILE
    return checked_config(read_json_config(path, KIND), META_FIELDS, path)


def image_denoiser_fingerprint(directory: str | Path) -> str:
    """A short SHA-256 of the checkpoint's weights (identifies the denoiser a bank was made with)."""
    files = sorted((Path(directory) / UNET_DIR).glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{directory / UNET_DIR} holds no safetensors weights")
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def train_image_denoiser(
    dataset: ImageDataset,
    out_dir: str | Path,
    training: DenoiserTrainingConfig,
    width: int = 32,
    schedule: Schedule | None = None,
    prediction: str = "v",
    checkpoint_every: int = 500,
    progress: bool = True,
    source: str | None = None,
) -> PredictionAdapter:
    """Train a class-conditional UNet on an :class:`~learnguide.data.images.ImageDataset`; resumable.

    The trainer state lives in ``out_dir/train_state`` (written every ``checkpoint_every`` steps); a run
    pointed at the same ``out_dir`` with the same settings continues where a killed one stopped. The
    finished checkpoint (EMA weights when ``training.ema_decay > 0``) is written to ``out_dir``, recording
    ``source`` (the dataset's name or folder, as :func:`~learnguide.data.images.load_dataset` takes it).
    """
    schedule = schedule or VPCosine()
    torch.manual_seed(training.seed)  # the UNet's initial weights
    config = unet_config(dataset.image_shape, dataset.num_classes, width)
    model = build_image_denoiser(config, schedule, prediction)
    train_denoiser(
        model,
        dataset.data_sampler("train"),
        training,
        progress=progress,
        state_dir=Path(out_dir) / "train_state",
        checkpoint_every=checkpoint_every,
    )
    save_image_denoiser(model, out_dir, training, dataset.fingerprint(), dataset.class_names, source)
    return model


def recorded_dataset(directory: str | Path) -> str | None:
    """The dataset (name or image folder) an image denoiser's ``learnguide.json`` records it was trained
    on, or None (checkpoints written without one)."""
    return read_image_denoiser_meta(directory).get("dataset")
