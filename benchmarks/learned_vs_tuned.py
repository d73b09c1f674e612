"""Issue 14's table: learned ω with one fixed objective against the tuned baselines on all six checkpoints.

For each committed image checkpoint, at 25 steps:

1. learn ω online with one of the objectives ``VARIANTS`` below (``--variant``), in the features of a
   time-conditioned classifier (``train-classifier --noisy``, width 16, seed 1; trained once under
   ``--work``; never used for evaluation);
2. sample the learned ω, the unguided model and the winners of RESULTS.md's tuned baseline families (tuned by
   ``learnguide experiment`` on the evaluation classifier's FD; settings copied from the tables there) on
   RESULTS.md's own evaluation sets (3 seed sets, 100 per class on digits and 30 on MNIST / Fashion-MNIST);
3. score every sample set with the committed evaluation classifier (FD, accuracy) and with the held-out
   classifier (``checkpoints/<dataset>/held_out_classifier``: another architecture and seed, whose features
   no method was trained or tuned in), and with ``--inception`` also Inception FID.

Reports the learning cost (denoiser evaluations, seconds) against one 7-point constant grid at 25 steps on the
experiment's default tuning set (50 per class: 162,500 evaluations). Writes JSON, one entry per checkpoint,
and skips checkpoints already in ``--out``; the learned ω-network is saved under ``--work`` and reused.

    python benchmarks/learned_vs_tuned.py --out benchmarks/results/learned_vs_tuned.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from learnguide.apps.comparison import evaluate_over_sets
from learnguide.apps.experiment import ExperimentConfig
from learnguide.core.discrepancy import data_scaled_features, pixel_features
from learnguide.core.guidance import ConstantGuidance, GuidanceSchedule, OmegaNet, guidance_from_config
from learnguide.core.line_search import LineSearchConfig, line_search_omega, schedule_network
from learnguide.core.online import OnlineConfig, train_omega_online
from learnguide.core.schedules import step_grid
from learnguide.data.images import load_dataset
from learnguide.images.classifier import (
    ClassifierTrainingConfig,
    frozen_features,
    load_classifier,
    save_classifier,
    train_classifier,
)
from learnguide.images.denoisers import load_image_denoiser
from learnguide.images.evaluation import (
    ImageScorer,
    InceptionFeatures,
    classifier_reference,
    inception_reference,
    sample_set,
)
from results_file import add_results, read_results

STEPS = 25


@dataclass(frozen=True)
class Variant:
    """An objective to learn ω with: the online settings, the ω-network's output map and start, and the
    weight of pixels beside the noisy classifier's features (0: features only; > 0: the joint space of
    :func:`~learnguide.core.discrepancy.joint_features`, each space scaled by its mean distance on data), and
    the ω-network's Fourier features of log-SNR (0: a smooth function of the log-SNRs themselves), which
    classifier's which layer φ is, and whether each batch holds every class equally (``balanced``). With
    ``line_search`` the constant ω is found by :func:`~learnguide.core.line_search.line_search_omega` in φ
    instead of learned online."""

    online: OnlineConfig
    output: str = "relu"
    init_omega: float = 1.0
    pixel_weight: float = 0.0
    fourier_features: int = 8
    classifier: str = "noisy"  # "noisy": noisy_classifier(); a CLEAN_ARCHITECTURES key: feature_classifier()
    layers: tuple[str, ...] = ("pooled",)  # frozen_features' layers; several: joined, each scaled on data
    shared: bool = False  # one ω(s, t) for every class (OmegaNet's ``shared``)
    balanced: bool = False  # ImageDataset.data_sampler's ``balanced``: every drawn item joins a class group
    reference: str = "train"  # the fit's data side; "test-half": the first of test_halves (a diagnosis)
    judged: str = "test"  # the judges' reference; "test-half": the second of test_halves only
    line_search: LineSearchConfig | None = None  # learn one constant ω by line search instead (online unused)


ROLLOUT = OnlineConfig(  # docs/design.md §3.4: the whole 25-step trajectory, final samples vs data
    iterations=40, batch_size=80, particles=1, objective="class-marginal", group_size=8, rollout=STEPS,
    grid_steps=STEPS, churn=0.0, lr=2e-2,
)  # fmt: skip
POOLED = Variant(  # "rollout-pooled"; why: the comment above its entry in VARIANTS
    replace(ROLLOUT, iterations=40, batch_size=80, objective="marginal", beta=1.0, lr=6e-3,
            lr_decay="cosine", class_strata=False),
    "relu-st", init_omega=0.5, fourier_features=0, classifier="clean", layers=("pooled",), shared=True,
    balanced=True,
)  # fmt: skip
PRIOR = replace(  # "rollout-prior"; why: the comment above its entry in VARIANTS
    POOLED, online=replace(POOLED.online, reference=10, class_strata=True, start="prior")
)
LINE_SEARCH = replace(  # "line-search"; why: the comment above its entry in VARIANTS
    POOLED, balanced=True, line_search=LineSearchConfig(omegas=(0.0, 0.25, 0.5, 0.75, 1.0), samples=640,
    reference=4, steps=STEPS, beta=1.75),
)  # fmt: skip
SHAPES = {"shape": "increasing-cosine", "scales": (0.5, 1.0, 2.0, 3.0, 4.0)}  # "shape-search"'s family


def searching(**settings) -> Variant:
    """``LINE_SEARCH`` with these :class:`LineSearchConfig` settings replaced (the same samples and data)."""
    return replace(LINE_SEARCH, line_search=replace(LINE_SEARCH.line_search, **settings))


VARIANTS = {  # the objectives compared on MNIST under_trained first; one becomes the recommended default
    "on-policy": Variant(OnlineConfig(  # docs/design.md §3.3
        iterations=160, batch_size=160, objective="class-marginal", group_size=8, start="on-policy",
        grid_steps=STEPS, refresh=4, churn=0.0, lr=3e-3,
    )),
    "rollout": Variant(ROLLOUT),
    # BENCHMARKS §10b: final-sample landscapes put features at ω = 0.5 and pixels at 0.25 on MNIST under and
    # well, while the fit exploits per-step freedom (ω up to 19 near t = 0); this one learns in both spaces,
    # from ω ≈ 0, with the map the sampler uses (softplus) and ω a smooth function of the log-SNRs
    "rollout-joint": Variant(ROLLOUT, "softplus", init_omega=0.1, pixel_weight=1.0, fourier_features=0),
    # BENCHMARKS §10c: with common random numbers and 64 samples per class, noisy classifiers' features say
    # ω = 0 on MNIST well_trained while a clean classifier's logits follow the judges; a whole rollout only
    # needs features of final samples, so a clean classifier (not a judge: another width and seed) can be φ.
    # 16 trajectories per class per step (one group per class), ω a smooth function of the log-SNRs
    "rollout-logits": Variant(
        replace(ROLLOUT, iterations=30, batch_size=160, group_size=16), fourier_features=0,
        classifier="clean", layers=("logits",),
    ),
    # on the development set rollout-logits over-guides MNIST well_trained (ω per class 0 to 13; FD 0.61 vs
    # 0.24 unguided): the 10 logits cannot see within-class diversity and β = 1.75 weighs mostly the means.
    # So: the pooled features beside the logits (each scaled by its mean distance on data) and β = 1
    "rollout-clean": Variant(
        replace(ROLLOUT, iterations=30, batch_size=160, group_size=16, beta=1.0), fourier_features=0,
        classifier="clean", layers=("pooled", "logits"),
    ),
    # on the development set rollout-clean still over-guides MNIST well_trained: per class ω from 0 to 8.8,
    # FD 0.386 vs 0.198 tuned. 16 samples of a class per step do not pin a per-class ω; the tuned baselines
    # are one ω(t) for all classes, and so is this one, learned from all classes at once
    "rollout-shared": Variant(
        replace(ROLLOUT, iterations=30, batch_size=160, group_size=16, beta=1.0), fourier_features=0,
        classifier="clean", layers=("pooled", "logits"), shared=True,
    ),
    # rollout-shared's relu fit sees ω unconstrained; on digits well_trained (optimum ω = 0) it swings
    # between negative ω (loss spikes 6×) and ω ≈ 1 and stops wherever the 30th step leaves it (1.05). The
    # map the sampler uses, softplus, keeps ω ≥ 0 in the fit too; it starts at ω = 0.5, mid-range
    "rollout-softplus": Variant(
        replace(ROLLOUT, iterations=30, batch_size=160, group_size=16, beta=1.0), "softplus", init_omega=0.5,
        fourier_features=0, classifier="clean", layers=("pooled", "logits"), shared=True,
    ),
    # rollout-softplus at lr 2e-2 drops MNIST well_trained's ω from 0.5 to ≡ 0 and cannot come back: an Adam
    # step moves every weight of the 4-layer MLP by ~lr at once, which moves ω by up to ~0.3 per step once
    # the layers align, and softplus saturates below 0. At a third of the step size it still ends ≡ 0
    "rollout-softplus-slow": Variant(
        replace(ROLLOUT, iterations=30, batch_size=160, group_size=16, beta=1.0, lr=6e-3), "softplus",
        init_omega=0.5, fourier_features=0, classifier="clean", layers=("pooled", "logits"), shared=True,
    ),
    # so the fit keeps ω unconstrained (relu: clamped only at use) and takes a third of rollout-shared's step
    # from mid-range: on MNIST well_trained ω then dips below 0 and comes back, where softplus stays, but it
    # still swings by ±0.2 around ≈ 0.1 with a period of ~10 steps (Adam's momentum), so the rate falls to 0
    # over the 30 iterations (cosine) and the fit ends at the centre of the swing, not wherever it stops
    "rollout-steady": Variant(
        replace(ROLLOUT, iterations=30, batch_size=160, group_size=16, beta=1.0, lr=6e-3, lr_decay="cosine"),
        init_omega=0.5, fourier_features=0, classifier="clean", layers=("pooled", "logits"), shared=True,
    ),
    # rollout-steady's trace on digits well_trained: ω falls to 0 in 4 steps as the landscape asks, overshoots
    # below 0, where the rollout anti-guides and the loss jumps, and that wall's gradient throws it back up
    # to 0.445. So the fit clamps ω at 0 too, its gradient passed through the clamp only towards more
    # guidance (relu-st); each batch holds 8 of every class (a plain draw of 160 left 30–70 items outside any
    # group of 16), and 40 steps at 80 items cost one 7-point grid
    "rollout-clamped": Variant(
        replace(ROLLOUT, iterations=40, batch_size=80, group_size=8, beta=1.0, lr=6e-3, lr_decay="cosine"),
        "relu-st", init_omega=0.5, fourier_features=0, classifier="clean", layers=("pooled", "logits"),
        shared=True, balanced=True,
    ),
    # rollout-clamped's fits settle (two starts agree on digits) but MNIST and Fashion-MNIST well_trained end
    # at ω ≈ 0.05 where the judges want 0.25: the class-conditional energy distance is lowest near 0 there.
    # The final-sample landscapes of BENCHMARKS §10c/§10d (tuning seed) have the energy distance of all
    # classes pooled, in the clean classifier's pooled features, lowest where both judges' FD is on MNIST
    # well and Fashion-MNIST well (0.25), MNIST under (0.5) and digits well (0); one grid step lower on
    # Fashion-MNIST under (0.25 against 0.5). So: the same fit, compared across the whole balanced batch
    "rollout-pooled": POOLED,
    # rollout-pooled stops 0.1–0.2 short of the judges' ω on MNIST and Fashion-MNIST well_trained: the pooled
    # energy distance moves by ~0.002 between ω = 0 and 0.25 there, against the noise of 80 samples per step
    # compared with 80 data images. The data side costs no denoiser evaluation, so each step compares the
    # same 80 samples with 800 balanced data images (OnlineConfig.reference = 10): same denoiser cost
    "rollout-reference": replace(POOLED, online=replace(POOLED.online, reference=10)),
    # rollout-reference's fits from ω = 0.5 and 1.0 end 0.35 apart on MNIST well_trained (BENCHMARKS §10f):
    # from 1.0, Adam drops ω to 0 in 4 steps, bounces to 0.86 and has drifted back only to 0.58 when the
    # cosine rate runs out. Halving the samples per step (4 per class) buys twice the steps at the same
    # denoiser cost, and 800 data images (reference 20) keep the data side's noise where rollout-reference
    # had it
    "rollout-long": replace(
        POOLED, online=replace(POOLED.online, iterations=80, batch_size=40, reference=20)
    ),
    # rollout-long from 1.0 ends where rollout-reference did (0.58). Its gradient at a constant ω is ≈ 0 at
    # 0.5, where rollout-reference's (8 per class) points down: the plain mean over the guided set's pairs
    # gives same-class pairs (n_c − 1)/(n − 1) of the weight, not the class mix's n_c/n, so the fewer items
    # per class, the less a loss of within-class diversity costs. Weighting pairs by class (class_strata)
    # moves the gradient by +0.011 at ω = 0.25 and +0.008 at 0.5 on the same batches (BENCHMARKS §10g)
    "rollout-strata": replace(POOLED, online=replace(POOLED.online, reference=10, class_strata=True)),
    # rollout-strata lands near its own statistic's minimum, which is below the judges' (BENCHMARKS §10g). The
    # 64-per-class landscapes of §10e (nearly unbiased) put the pooled energy distance's minimum in these
    # features higher with the paper's β = 1.75 than with β = 1: MNIST well 0.29 (β = 1: 0.22; held-out FD
    # 0.31), Fashion-MNIST well 0.33 (0.21; 0.27), Fashion-MNIST under 0.35 (0.30; 0.5), MNIST under 1.0
    # (0.62; 1.0), digits well 0 (0; 0). So: rollout-strata with β = 1.75
    "rollout-strata-paper-beta": replace(
        POOLED, online=replace(POOLED.online, reference=10, class_strata=True, beta=1.75)
    ),
    # rollout-strata-paper-beta's gradient is too noisy for 40 steps (1.43× on MNIST well). rollout-strata
    # itself ends below its statistic's minimum on the final-sample landscapes: on MNIST well its gradient's
    # root is ≈ 0.16 (BENCHMARKS §10g), while the same pooled energy distance of samples drawn as the sampler
    # draws them, from N(0, I), is lowest at 0.25 (64 per class, BENCHMARKS §10h), where both judges are. The
    # one difference left is the start: the rollout began from each item's own data noised to t = 0.99, whose
    # trace of x0 (α ≈ 0.016) the samples keep. So: rollout-strata from the sampler's own start
    "rollout-prior": PRIOR,
    # on the same landscapes in the same features (BENCHMARKS §10h), KID's cubic kernel, which compares
    # moments as FD does, has its minimum one grid step above the energy distance's on Fashion-MNIST well
    # (0.25 against 0.125) and digits under (0.25 against 0.125), where the held-out judge's is, and with it
    # elsewhere; its curves are flatter. So: rollout-prior with the polynomial kernel, on those two first
    "rollout-prior-kid": replace(
        POOLED,
        online=replace(POOLED.online, reference=10, class_strata=True, start="prior", kernel="polynomial"),
    ),
    # BENCHMARKS §10l: on MNIST well_trained the clean features put the best constant at 0.125 against
    # training images and at the judges' 0.25 against the test split (other writers), the judges' reference.
    # This asks whether rollout-pooled, given data from the evaluation's distribution, reaches the tuned
    # baselines: its data side is one half of the test split, and every method is scored against the other
    # half only (a diagnosis, not a recipe)
    "rollout-pooled-test-half": replace(POOLED, reference="test-half", judged="test-half"),
    "rollout-pooled-half-judged": replace(POOLED, judged="test-half"),  # its control: the recipe as it is
    # rollout-pooled-test-half learned 0.40 flat from the test half, as rollout-pooled does from training
    # images: where it lands is its bias towards guidance (§10g), whatever the reference. rollout-prior has no
    # such bias (class strata) and learned 0.19 from training images on MNIST well (1.07×), where its
    # statistic's minimum against the test split is the judges' 0.25 (§10l). Does the unbiased fit, given the
    # test half, land there? Judged like rollout-pooled-test-half, with its control
    "rollout-prior-test-half": replace(PRIOR, reference="test-half", judged="test-half"),
    "rollout-prior-half-judged": replace(PRIOR, judged="test-half"),  # its control: rollout-prior as it is
    # rollout-prior-test-half learned 0.21 on MNIST well (1.05× held-out), short of the judges' 0.25 on the
    # side where FD rises fastest, and its ω swings with a ~20-step period (§10i, §10m). Twice the samples
    # per step halve the gradient's variance, at 1.97× a 7-point grid (the cost cap is 2×)
    "rollout-prior-test-half-160": replace(
        PRIOR, online=replace(PRIOR.online, batch_size=160), reference="test-half", judged="test-half"
    ),
    # §10n: with the paper's β = 1.75 the same statistic's minimum moves to the held-out judge's: 0.25
    # (share 0.8) on MNIST well against any data side, 0.75 (0.82) on MNIST under (reference_landscape.py),
    # where β = 1 says 0.16–0.19 and 0.5–0.62 (§10g). rollout-prior with that β, from training images, judged
    # on half B, where both MNIST checkpoints' baselines are scored
    "rollout-prior-paper-beta-half-judged": replace(
        PRIOR, online=replace(PRIOR.online, beta=1.75), judged="test-half"
    ),
    # rollout-prior-paper-beta-half-judged stayed at its start (0.52 on MNIST under, where β = 1.75's minimum
    # is 0.75): its gradient is too noisy for 40 steps (§10g, §10n). Where the ω asked for is one constant,
    # the statistic can be minimised where it is precise: the sampler's final samples under 5 constants from
    # the same noise (64 per class), each against the same 4 × 640 balanced training images, in the clean
    # features with β = 1.75; the parabola's vertex. 144,000 denoiser evaluations (0.89× a 7-point grid)
    "line-search": LINE_SEARCH,
    # No constant can reach the second target (§10i). By the line search's own statistic (shape_landscape.py,
    # §10p) the tuned increasing schedule lies below every constant on Fashion-MNIST well, the constant 0.25
    # below every shape on MNIST well, as the judges rank them. So the same search, also under the
    # increasing cosine schedule at ω_max ∈ {0.5, 1, 2, 3, 4} on the same noise, keeping the family whose
    # lowest loss is lower: 304,000 denoiser evaluations (1.87× a 7-point grid). Fixed before any scoring
    "shape-search": searching(**SHAPES),
    # shape-search picks the right family but keeps falling with late guidance up to ω_max = 4 on
    # Fashion-MNIST well, where the judges want 2 (§10p): as β → 2 the energy distance tends to the distance
    # between the means, and late guidance narrows each class, which a Fréchet distance charges through its
    # covariance term. So: the same search and samples, minimising the energy distance plus that covariance
    # term in the same features (--statistic energy+covariance). Same cost. Fixed before any scoring
    "covariance-search": searching(**SHAPES, statistic="energy+covariance"),
    # On the toy demo the pooled statistic cannot see a conditional that under-commits towards p(x) while
    # the class mixture stays right (it learns ω = 0 there; BENCHMARKS §1c); each class against its own data
    # (--statistic class-energy) finds the guidance. The constant line search's samples and cost, with that
    # statistic (64 samples and 256 data items per class). Fixed before any scoring
    "class-search": searching(statistic="class-energy"),
    # §10v: on MNIST well every statistic in the clean feature classifier's features says ω = 0 at every
    # sample size, the evaluation classifier's FD too, and only the held-out classifier wants 0.26. Both cnn
    # classifiers pool globally over space (test accuracy 0.954 and 0.974), the held-out LeNet keeps a 2×2
    # layout (0.990): globally pooled features can miss a stroke in the wrong place, the errors a
    # well-trained model's unguided samples make. So: the line search in the features of a third
    # architecture, cnn's conv blocks with a 2×2 pool (cnn-spatial, the same width, seed and epochs as the
    # clean feature classifier); same samples and cost. Fixed before any scoring
    "spatial-search": replace(LINE_SEARCH, classifier="clean-spatial"),
    # spatial-search's features say 0 on MNIST well too, with 0.990 test accuracy (§10w): layout and accuracy
    # are not what the held-out judge sees. Every classifier that says 0 there normalises each image's
    # channels (GroupNorm); the held-out LeNet and Inception do not (BatchNorm at evaluation is a fixed
    # affine map). So: the same search in a cnn with BatchNorm (same width, seed and epochs). A diagnosis
    # first (statistic_landscape.py --variant batchnorm-search); fixed before any scoring
    "batchnorm-search": replace(LINE_SEARCH, classifier="clean-batchnorm"),
    # In the cnn-batchnorm features (§10w, the shape search's whole grid on the three MNIST-like checkpoints
    # landscaped first) every statistic sees guidance's gain on MNIST well; the energy distance alone keeps
    # over-guiding (0.53 there, ω_max 4 on Fashion-MNIST well, the constant 1 on MNIST under: the grid's
    # ends), the energy distance plus the Fréchet covariance term (§10q) lands on the tuned winners' family
    # and scale on both well-trained checkpoints (0.27; increasing cosine 2.28) and at 0.80 on MNIST under.
    # So: covariance-search in these features. 304,000 denoiser evaluations (1.87× a 7-point grid), as
    # covariance-search. Fixed before any scoring
    "batchnorm-covariance-search": replace(
        searching(**SHAPES, statistic="energy+covariance"), classifier="clean-batchnorm"
    ),
}  # fmt: skip


def _interval(omega: float, lo: float, hi: float) -> dict:
    return {"type": "interval", "omega": omega, "t_lo": lo, "t_hi": hi}


def _increasing(omega_max: float, shape: str) -> dict:
    return {"type": "increasing", "omega_max": omega_max, "shape": shape}


# RESULTS.md's 25-step winners (constant, interval, increasing) and evaluation samples per class
CHECKPOINTS = {
    ("digits", "under_trained"): (100, [0.25, _interval(1.0, 0.1, 0.6), _increasing(1.0, "cosine")]),
    ("digits", "well_trained"): (100, [0.0]),
    ("mnist", "under_trained"): (30, [0.5, _interval(1.0, 0.3, 0.8), _increasing(2.0, "linear")]),
    ("mnist", "well_trained"): (30, [0.25, _interval(0.5, 0.3, 0.8), _increasing(1.0, "linear")]),
    ("fashion-mnist", "under_trained"): (30, [0.25, _interval(1.0, 0.1, 0.6), _increasing(2.0, "cosine")]),
    ("fashion-mnist", "well_trained"): (30, [0.0, _interval(1.0, 0.1, 0.6), _increasing(2.0, "cosine")]),
}


# RESULTS.md's 10- and 50-step winners where its tables name them (the MNIST and Fashion-MNIST sections). The
# digits section names no interval or increasing settings (its rows come from `learnguide experiment`); its
# under_trained rows are those of the 25-step winners' settings, which reproduce the twenty-first session's
# 10-step scores of them on the same sets (RESULTS.md) to every printed digit (at 50 steps only the unguided
# row was checked, likewise).
OTHER_STEPS = {
    ("digits", "under_trained"): {
        10: [0.0, _interval(1.0, 0.1, 0.6), _increasing(1.0, "cosine")],
        50: [0.25, _interval(1.0, 0.1, 0.6), _increasing(1.0, "cosine")],
    },
    ("mnist", "under_trained"): {
        10: [0.5, _interval(1.0, 0.3, 0.8), _increasing(2.0, "linear")],
        50: [0.5, _interval(1.0, 0.5, 1.0), _increasing(2.0, "linear")],
    },
    ("mnist", "well_trained"): {
        n: [0.25, _interval(0.5, 0.3, 0.8), _increasing(1.0, "linear")] for n in (10, 50)
    },
    ("fashion-mnist", "under_trained"): {
        10: [0.25, _interval(1.0, 0.1, 0.6), _increasing(2.0, "cosine")],
        50: [0.25, _interval(1.0, 0.3, 0.8), _increasing(2.0, "cosine")],
    },
    ("fashion-mnist", "well_trained"): {
        10: [0.0, _interval(1.0, 0.1, 0.6), _increasing(2.0, "cosine")],
        50: [0.25, _interval(1.0, 0.1, 0.6), _increasing(2.0, "cosine")],
    },
}


def tuned_winners(dataset_name: str, regime: str, steps: int = STEPS) -> dict[str, GuidanceSchedule]:
    """RESULTS.md's winners of a checkpoint at ``steps`` (25; 10 or 50 where ``OTHER_STEPS`` has them) as
    schedules, keyed by their JSON config."""
    if steps == STEPS:
        winners = CHECKPOINTS[(dataset_name, regime)][1]
    elif steps in OTHER_STEPS.get((dataset_name, regime), {}):
        winners = OTHER_STEPS[(dataset_name, regime)][steps]
    else:
        raise SystemExit(f"--steps {steps}: RESULTS.md names no winners of {dataset_name}/{regime} there")
    schedules = [ConstantGuidance(w) if isinstance(w, float) else guidance_from_config(w) for w in winners]
    return {json.dumps(g.config()): g for g in schedules}


def noisy_classifier(dataset, folder: Path):
    """The noisy classifier of ``folder`` (width 16, 2 epochs, seed 1), trained first if it is not there."""
    if not (folder / "model.safetensors").is_file():
        config = ClassifierTrainingConfig(epochs=2, noisy=True, seed=1)
        model, record = train_classifier(dataset, config, width=16, progress=False)
        save_classifier(model, folder, record, config, dataset.fingerprint())
    return load_classifier(folder, data_id=dataset.fingerprint())


CLEAN_ARCHITECTURES = {  # Variant.classifier -> the feature classifier's arch
    "clean": "cnn", "clean-spatial": "cnn-spatial", "clean-batchnorm": "cnn-batchnorm",
}  # fmt: skip
FEATURE_CLASSIFIER_EPOCHS = {"digits": 40, "mnist": 4, "fashion-mnist": 4}  # about 500–2,000 steps


def feature_classifier(dataset, work: Path, arch: str = "cnn"):
    """The clean classifier of ``work``/<dataset>-feature-classifier (cnn, width 16, seed 3: neither judge's
    width and seed; another ``arch``: that suffix on the folder), trained first if it is not there:
    ``learnguide train-classifier --dataset <name> --width 16 --seed 3 --epochs <4; digits 40> [--arch]``."""
    folder = work / f"{dataset.name}-feature-classifier{'' if arch == 'cnn' else '-' + arch}"
    if not (folder / "model.safetensors").is_file():
        config = ClassifierTrainingConfig(epochs=FEATURE_CLASSIFIER_EPOCHS[dataset.name], seed=3, arch=arch)
        model, record = train_classifier(dataset, config, width=16, progress=False)
        save_classifier(model, folder, record, config, dataset.fingerprint())
    return load_classifier(folder, data_id=dataset.fingerprint())


def variant_features(dataset, spec: Variant, work: Path):
    """The frozen feature map φ(x [B, ...], s [B]) -> [B, F] a variant learns in: its classifier's layers, and
    pixels when ``spec.pixel_weight`` > 0; several are joined, each scaled by its mean distance on 512
    training images."""
    if spec.classifier in CLEAN_ARCHITECTURES:
        classifier = feature_classifier(dataset, work, CLEAN_ARCHITECTURES[spec.classifier])
    else:
        classifier = noisy_classifier(dataset, work / f"{dataset.name}-noisy-classifier")
    parts = [(frozen_features(classifier, layer), 1.0) for layer in spec.layers]
    parts += [(pixel_features, spec.pixel_weight)] if spec.pixel_weight > 0 else []
    phi = parts[0][0]
    if len(parts) > 1:
        x0 = dataset.data_sampler("train")(512, torch.Generator().manual_seed(0))[0]
        phi = data_scaled_features(parts, x0)
    return phi


def variant_network(dataset, denoiser, spec: Variant) -> OmegaNet:
    """The ω-network a variant starts from (seeded: the same weights every time)."""
    torch.manual_seed(0)
    return OmegaNet(
        denoiser.schedule, num_classes=dataset.num_classes, output=spec.output, init_omega=spec.init_omega,
        fourier_features=spec.fourier_features, shared=spec.shared,
    )  # fmt: skip


def random_halves(n: int) -> tuple[Tensor, Tensor]:
    """Indices ``0 … n − 1`` in a random order (seed 0), cut in two: ``([n // 2], [n − n // 2])``."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    return order[: n // 2], order[n // 2 :]


def test_halves(dataset) -> tuple:
    """The test split cut in two by :func:`random_halves`, as datasets: ``(fit, evaluation)``; ``fit``'s
    training split is the first half (a fit's data side), ``evaluation``'s test split the second (the
    judges' reference), everything else unchanged."""
    first, second = random_halves(len(dataset.test_labels))
    return (
        replace(dataset, train_images=dataset.test_images[first], train_labels=dataset.test_labels[first]),
        replace(dataset, test_images=dataset.test_images[second], test_labels=dataset.test_labels[second]),
    )


def learn(dataset, denoiser, variant: str, folder: Path, work: Path) -> tuple[OmegaNet, dict]:
    """The ω-network learned with ``VARIANTS[variant]`` and its cost, loaded from ``folder`` when there."""
    if (folder / "learning.json").is_file():
        return OmegaNet.load(folder, denoiser.schedule), json.loads((folder / "learning.json").read_text())
    spec = VARIANTS[variant]
    phi, net = variant_features(dataset, spec, work), variant_network(dataset, denoiser, spec)
    began = time.perf_counter()
    source = test_halves(dataset)[0] if spec.reference == "test-half" else dataset
    data = source.data_sampler("train", balanced=spec.balanced)
    if spec.line_search is not None:
        record = line_search_omega(denoiser, denoiser.schedule, data, spec.line_search, phi)
        k = dataset.num_classes
        net = schedule_network(denoiser.schedule, torch.arange(k), record.omega, k, record.shape)
        found = {"line_search": record.found()}
        print(f"line search: {found}")
    else:
        record, found = train_omega_online(net, denoiser, data, spec.online, features=phi), {}
    cost = {
        "denoiser_evals": record.denoiser_evals, "feature_evals": record.feature_evals,
        "seconds": time.perf_counter() - began, **found,
    }  # fmt: skip
    net.save(folder)
    (folder / "learning.json").write_text(json.dumps({**cost, "warnings": record.warnings}))
    return net, {**cost, "warnings": record.warnings}


def evaluation_setup(
    dataset_name: str,
    regime: str,
    work: Path,
    inception: bool = False,
    dev: bool = False,
    test_half: bool = False,
    steps: int = STEPS,
) -> tuple:
    """``(dataset, denoiser, scorer, eval_sets)`` of one checkpoint at ``steps``: the scorer judges in the
    evaluation and held-out classifiers' features (and Inception's with ``inception``) against the test
    split, or with ``test_half`` against the second half of :func:`test_halves` only; the sets are
    RESULTS.md's evaluation sets, or with ``dev`` one set of 30 per class on the experiment's tuning seed."""
    per_class = 30 if dev else CHECKPOINTS[(dataset_name, regime)][0]
    dataset, experiment = load_dataset(dataset_name), ExperimentConfig()
    data_id = dataset.fingerprint()
    denoiser = load_image_denoiser(f"checkpoints/{dataset_name}/{regime}", data_id=data_id)
    references, judged = {}, test_halves(dataset)[1] if test_half else dataset
    cache = work / ("cache-test-half" if test_half else "cache")  # the cache key does not hash the test split
    for name in ("classifier", "held_out_classifier"):
        folder = Path(f"checkpoints/{dataset_name}/{name}")
        model = load_classifier(folder, data_id=data_id)
        references[name] = (model, classifier_reference(judged, model, folder, cache))
    extractor = InceptionFeatures() if inception else None
    scorer = ImageScorer(
        denoiser, *references["classifier"], dataset.image_shape, steps, experiment.batch_size,
        inception=(extractor, inception_reference(judged, extractor, cache)) if inception else None,
        held_out=references["held_out_classifier"],
    )  # fmt: skip
    seeds = [1] if dev else [100 + j for j in range(3)]  # the tuning seed, or RESULTS.md's (seed 0)
    return dataset, denoiser, scorer, [sample_set(dataset.num_classes, per_class, seed) for seed in seeds]


def score(scorer: ImageScorer, guidance, eval_sets: list, label: str) -> dict:
    """Mean and std over ``eval_sets`` of every metric of ``scorer`` for ``guidance`` (printed under
    ``label``)."""
    result = evaluate_over_sets(scorer.score, guidance, eval_sets)
    scores = {key: v for key, v in result.items() if not key.endswith("_per_seed")}
    print(label, {key: round(v, 4) for key, v in scores.items()})
    return scores


def score_with_baselines(
    scorer: ImageScorer, learned, winners: dict, sets: list, known: dict | None = None, name: str = ""
) -> dict:
    """Scores over ``sets`` of ``learned`` (None: none), ω = 0 (``"unguided"``) and the tuned ``winners``
    (keyed by :func:`tuned_winners`), each labelled so; those in ``known`` are reused, not sampled, and a
    tuned ω = 0 is the unguided model, scored once. ``name`` prefixes the printed labels."""
    unguided = ConstantGuidance(0.0)
    scores = dict(known or {})
    methods = ({} if learned is None else {"learned": learned}) | {"unguided": unguided, **winners}
    for label, guidance in methods.items():
        if label == json.dumps(unguided.config()):
            scores[label] = scores["unguided"]
        if label not in scores:
            scores[label] = score(scorer, guidance, sets, f"{name} {label}".strip())
    return scores


def run_checkpoint(
    dataset_name: str,
    regime: str,
    variant: str,
    work: Path,
    inception: bool,
    known: dict,
    dev: bool,
    steps: int = STEPS,
) -> dict:
    """Learn, sample and score one checkpoint at ``steps``; returns its JSON entry. ``known``: scores of the
    baselines on the same sets from another variant's entry (reused, not sampled again). ``dev``: score on one
    set of 30 per class drawn with the experiment's tuning seed instead of RESULTS.md's evaluation sets. ω is
    learned once (at 25 steps where the variant has a step count) and serves every ``steps``."""
    test_half = VARIANTS[variant].judged == "test-half"
    winners = tuned_winners(dataset_name, regime, steps)
    dataset, denoiser, scorer, eval_sets = evaluation_setup(
        dataset_name, regime, work, inception, dev, test_half, steps
    )
    net, learning = learn(dataset, denoiser, variant, work / f"{dataset_name}-{regime}-{variant}", work)
    known = {label: v for label, v in known.items() if label != "learned"}
    scores = score_with_baselines(scorer, net, winners, eval_sets, known, f"{dataset_name} {regime}")
    k, experiment = dataset.num_classes, ExperimentConfig()
    n_tune = k * experiment.tune_per_class
    grid_evals = sum(n_tune * steps * (1 if w == 0 else 2) for w in experiment.constant_grid)
    table = net.omega_table(torch.arange(k), step_grid(steps))  # [N, K]
    return {
        "variant": variant,
        "steps": steps,
        "learning": {**learning, "grid_denoiser_evals": grid_evals},
        "eval_n": len(eval_sets[0][0]),  # per set
        "omega_t": step_grid(steps)[:-1].tolist(),
        "omega_per_class": table.T.tolist(),
        "scores": scores,
    }


def entry_key(checkpoint: str, variant: str, steps: int) -> str:
    """The JSON key of one entry: ``checkpoint:variant``, with ``@<steps>`` unless ``steps`` is 25."""
    return f"{checkpoint}:{variant}" + ("" if steps == STEPS else f"@{steps}")


def known_scores(report: dict, checkpoint: str, steps: int = STEPS) -> dict:
    """The scores of ``checkpoint``'s first entry at ``steps`` in ``report`` (every variant's entry scores the
    same baselines on the same sets); ``{}`` when it has none."""
    return next(
        (
            v["scores"]
            for k, v in report.items()
            if k.startswith(f"{checkpoint}:") and v.get("steps", STEPS) == steps
        ),
        {},
    )


def judged_against(report: dict, judged: str) -> dict:
    """The entries of ``report`` (this script's JSON) whose variant was judged against ``judged``
    (``"test"``: the whole test split; ``"test-half"``: its second half)."""
    return {
        k: v
        for k, v in report.items()
        if k != "variants" and report["variants"][v["variant"]].get("judged", "test") == judged
    }


def recorded_baselines(report: dict, checkpoint: str) -> dict:
    """The recorded 25-step scores of ``checkpoint``'s tuned winners (:func:`tuned_winners`) and of ω = 0 in
    ``report`` (this script's JSON), from an entry judged against the whole test split; ``{}`` when none."""
    winners = tuned_winners(*checkpoint.split("/"))
    known = known_scores(judged_against(report, "test"), checkpoint)
    return {k: v for k, v in known.items() if k in winners or k == "unguided"}


def score_against_tuned(checkpoint: str, guidance, label: str, setup: tuple, baselines_from: Path) -> dict:
    """Scores of ``guidance`` on RESULTS.md's evaluation sets (``setup``: :func:`evaluation_setup`'s) in both
    judges' features, with the ratio to the best tuned baseline in each (the tuned winners' scores recorded
    in ``baselines_from``, judged against the test split): ``{"scores", "ratios": {"fd", "held_out_fd"}}``."""
    _, _, scorer, eval_sets = setup
    scores = score(scorer, guidance, eval_sets, f"{checkpoint} {label}")
    tuned = recorded_baselines(read_results(baselines_from), checkpoint)
    if "unguided" not in tuned:
        raise SystemExit(f"{baselines_from} has no scores of {checkpoint}: run learned_vs_tuned.py first")
    ratios = {m: scores[m] / best_tuned(tuned, m)[m] for m in ("fd", "held_out_fd")}
    print(
        f"{checkpoint} {label}: ratio to best tuned (eval. / held-out)",
        {k: round(v, 3) for k, v in ratios.items()},
    )
    return {"scores": scores, "ratios": ratios}


def best_tuned(scores: dict, metric: str) -> dict:
    """The scores of the tuned winner lowest in ``metric`` among an entry's ``scores`` (ω = 0's when no
    winner is listed: digits ``well_trained``, where ω = 0 is the winner)."""
    tuned = [v for k, v in scores.items() if k not in ("learned", "unguided")] or [scores["unguided"]]
    return min(tuned, key=lambda v: v[metric])


def markdown_table(report: dict, variant: str | None = None) -> str:
    """RESULTS.md's table from the JSON: per checkpoint (of ``variant``'s entries, or all), FD in both
    classifiers' features of the learned ω, the best tuned baseline in each (the lowest of RESULTS.md's
    winners on these sets) and ω = 0."""
    rows = [
        "| checkpoint | learned FD (eval.) | best tuned (eval.) | ratio | learned FD (held-out) | best tuned "
        "(held-out) | ratio | unguided (eval. / held-out) | learning cost (× 7-point grid) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, entry in report.items():
        if ":" not in key or (variant is not None and entry["variant"] != variant):
            continue
        scores = entry["scores"]
        cells = [f"{key.split(':')[0]}, {entry.get('steps', STEPS)} steps"]
        for metric in ("fd", "held_out_fd"):
            best = best_tuned(scores, metric)
            learned = scores["learned"]
            cells += [
                f"{learned[metric]:.3g} ± {learned[metric + '_std']:.2g}",
                f"{best[metric]:.3g} ± {best[metric + '_std']:.2g}",
                f"{learned[metric] / best[metric]:.2f}",
            ]
        cells.append(f"{scores['unguided']['fd']:.3g} / {scores['unguided']['held_out_fd']:.3g}")
        cost = entry["learning"]
        cells.append(f"{cost['denoiser_evals'] / cost['grid_denoiser_evals']:.2f} ({cost['seconds']:.0f} s)")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_omega_curves(report: dict, path: Path, variant: str | None = None) -> None:
    """One panel per checkpoint (of ``variant``'s entries, or all): the learned ω over the 25-step grid's t,
    one line per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = {
        k.split(":")[0]: v
        for k, v in report.items()
        if ":" in k and (variant is None or v["variant"] == variant)
    }
    fig, axes = plt.subplots(1, len(entries), figsize=(3.2 * len(entries), 2.8), squeeze=False, sharey=True)
    for ax, (name, entry) in zip(axes[0], entries.items(), strict=True):
        for k, omegas in enumerate(entry["omega_per_class"]):
            ax.plot(entry["omega_t"], omegas, lw=1, label=str(k))
        ax.set(title=name, xlabel="t (step from t to the next grid time)", xlim=(1, 0))
    axes[0][0].set_ylabel("learned ω")
    axes[0][-1].legend(fontsize=6, ncol=2, title="class", title_fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", nargs="+", default=[f"{d}/{r}" for d, r in CHECKPOINTS])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="rollout")
    parser.add_argument("--inception", action="store_true", help="also Inception FID (digits and MNIST)")
    parser.add_argument(
        "--dev", action="store_true", help="score on one tuning-seed set of 30 per class (develop on it)"
    )
    parser.add_argument(
        "--steps", type=int, default=STEPS, help="steps of the scored sets (10 / 50: MNIST-like only)"
    )
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learned_vs_tuned.json"))
    parser.add_argument("--table", action="store_true", help="print RESULTS.md's table from --out and stop")
    parser.add_argument(
        "--figure", type=Path, help="draw the learned ω curves from --out into this PNG and stop"
    )
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads(args.out.read_text()), args.variant))
        return
    if args.figure:
        plot_omega_curves(json.loads(args.out.read_text()), args.figure, args.variant)
        return
    for name in args.checkpoints:  # refuse a step count without winners before any work
        tuned_winners(*name.split("/"), args.steps)
    report = read_results(args.out)
    report["variants"] = report.get("variants", {}) | {name: asdict(v) for name, v in VARIANTS.items()}
    for name in args.checkpoints:
        key = entry_key(name, args.variant, args.steps)
        if key in report:
            continue
        dataset_name, regime = name.split("/")
        # baselines are reused only from an entry judged against the same reference
        known = known_scores(judged_against(report, VARIANTS[args.variant].judged), name, args.steps)
        report[key] = run_checkpoint(
            dataset_name, regime, args.variant, args.work, args.inception, known, args.dev, args.steps
        )
        add_results(args.out, {"variants": report["variants"], key: report[key]})


if __name__ == "__main__":
    main()
