"""Where does an ensemble of small classifiers put the best ω? A landscape before any fit (issue 14).

Every learning statistic so far measured in one clean classifier's features, and it inherits that
classifier's preference for how much to guide (§10k: on MNIST well_trained its FD is lowest one grid step
below both judges'). This asks whether features that no single classifier owns agree with the judges. For
one checkpoint it reads the 25-step landscape that ``class_omega_headroom.py`` cached (``--per-class`` per
class under each ω of ``--policies`` and ``--family``, tuning seed 1; drawn if missing) and scores it in:

- each member of ``--members`` (``clean``: the feature classifier the learned variants use;
  ``arch:width:seed``: a classifier trained here on the training split, none with a judge's width and seed;
  ``arch:width:seed:half``: one trained on a random half of it, whose reference images are the other half),
  by its FD against ``--data-per-class`` training images per class (what a fit may use), divided by the trace
  of those images' feature covariance so that members of different scales can be averaged;
- the ensemble: the mean of the relative FDs of the members trained on the whole training split (the
  ``:half`` ones are a control for the reference images, not members);
- for the diagnosis only, each member's relative FD against the whole training split and the whole test
  split (the judges' reference set, which no fit may use), to separate "which classifier" from "which
  reference images", and the test split's own relative FD to the training split (how far apart the splits
  are, with no sample involved);
- both judges, against their test-split references (as RESULTS.md scores and as the tuned baselines were
  chosen), and for the diagnosis against the whole training split.

Prints and writes each curve over the grid, its argmin, and how often each grid value is the argmin over
``--boots`` bootstrap resamples of each class's samples (paired: the same rows under every ω and in every
space), which says how firmly the landscape places it. Nothing is fitted or chosen from the judges.

    python benchmarks/feature_ensemble_landscape.py --checkpoint mnist/well_trained \
        --policies 0 0.125 0.25 0.375 0.5
    python benchmarks/feature_ensemble_landscape.py --table
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from class_omega_headroom import FAMILIES, landscape_samples
from final_sample_landscape import data_items
from learned_vs_tuned import FEATURE_CLASSIFIER_EPOCHS, evaluation_setup, feature_classifier, random_halves
from learnguide.core.metrics import feature_moments, frechet_distance_from_moments
from learnguide.images.classifier import (
    ClassifierTrainingConfig,
    load_classifier,
    predict,
    save_classifier,
    train_classifier,
)
from results_file import add_results

MEMBERS = ("clean", "cnn:16:4", "cnn:8:5", "lenet:16:6")  # the judges: cnn:32:0 and lenet:32:1


def halves(dataset) -> tuple:
    """The training split cut in two by :func:`random_halves`: ``(fit half, held half)`` as datasets whose
    training split is that half (the test split unchanged)."""
    return tuple(
        replace(dataset, train_images=dataset.train_images[i], train_labels=dataset.train_labels[i])
        for i in random_halves(len(dataset.train_labels))
    )


def member_classifier(dataset, member: str, work: Path) -> tuple:
    """``(classifier, reference dataset)`` of ``member`` (module docstring); the classifier is trained and
    saved under ``work``/ensemble first if it is not there (``FEATURE_CLASSIFIER_EPOCHS`` epochs, as the clean
    one); with a ``:half`` suffix it is trained on the fit half of :func:`halves` and the held half is
    its reference (training images it never saw), else the whole training split is both."""
    arch, width, seed, *half = member.split(":")
    fit, reference = halves(dataset) if half == ["half"] else (dataset, dataset)
    folder = work / "ensemble" / f"{dataset.name}-{arch}-w{width}-s{seed}{'-half' if half else ''}"
    if not (folder / "model.safetensors").is_file():
        epochs = FEATURE_CLASSIFIER_EPOCHS[dataset.name] * (2 if half else 1)  # the same number of steps
        config = ClassifierTrainingConfig(epochs=epochs, seed=int(seed), arch=arch)
        model, record = train_classifier(fit, config, width=int(width), progress=False)
        save_classifier(model, folder, record, config, fit.fingerprint())
    return load_classifier(folder, data_id=fit.fingerprint()), reference


def relative_fd(features: Tensor, moments: tuple[Tensor, Tensor], scale: float) -> float:
    """FD of ``features [n, F]`` to reference ``moments`` (mean, covariance), over ``scale``."""
    return frechet_distance_from_moments(*feature_moments(features), *moments) / scale


def curves_on(spaces: dict, rows: Tensor, members: list[str]) -> dict[str, list[float]]:
    """Each space's curve over the grid on the samples ``rows`` (the same rows under every ω), and the
    ensemble's: the mean of the ``members``' curves. ``spaces``: name -> (features, one ``[n, F]`` per grid
    value; reference moments; scale)."""
    curves = {
        name: [relative_fd(f[rows], moments, scale) for f in features]
        for name, (features, moments, scale) in spaces.items()
    }
    curves["ensemble"] = [sum(v) / len(members) for v in zip(*(curves[m] for m in members), strict=True)]
    return curves


def argmin(policies: list[float], curve: list[float]) -> float:
    """The grid value of ``curve``'s lowest point."""
    return policies[min(range(len(curve)), key=curve.__getitem__)]


def markdown_table(reports: dict) -> str:
    """One row per curve and one column per landscape of ``reports`` (this script's JSON): the argmin and,
    in brackets, the share of bootstrap resamples that put it there."""
    names = list(dict.fromkeys(name for r in reports.values() for name in r["curves"]))
    rows = ["| curve | " + " | ".join(reports) + " |", "|---" * (len(reports) + 1) + "|"]
    for name in names:
        cells = []
        for r in reports.values():
            entry = r["curves"].get(name)
            share = entry and entry["argmin_share"][r["policies"].index(entry["argmin"])]
            cells.append(f"{entry['argmin']:g} ({share:.2f})" if entry else "—")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="<dataset>/<regime> under checkpoints/")
    parser.add_argument("--policies", type=float, nargs="+", help="the landscape's grid")
    parser.add_argument("--family", choices=list(FAMILIES), default="constant", help="the schedule of one ω")
    parser.add_argument("--per-class", type=int, default=128, help="the landscape's samples per class and ω")
    parser.add_argument("--data-per-class", type=int, default=256)
    parser.add_argument(
        "--members", nargs="+", default=list(MEMBERS), help="clean, arch:width:seed or arch:width:seed:half"
    )
    parser.add_argument("--boots", type=int, default=200, help="bootstrap resamples of the samples")
    parser.add_argument("--work", type=Path, default=Path("runs/learned-vs-tuned"))
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/feature_ensemble_landscape.json")
    )
    parser.add_argument("--table", action="store_true", help="print the table of --out and stop")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads(args.out.read_text())))
        return
    if args.checkpoint is None or args.policies is None:
        parser.error("--checkpoint and --policies are required (unless --table)")
    dataset_name, regime = args.checkpoint.split("/")
    dataset, _, scorer, _ = evaluation_setup(dataset_name, regime, args.work)
    clean = feature_classifier(dataset, args.work)
    draws = [
        landscape_samples(
            scorer,
            FAMILIES[args.family](w),
            args.checkpoint,
            dataset.num_classes,
            args.per_class,
            1,
            args.work,
        )
        for w in args.policies
    ]
    labels, samples = draws[0][0], [x for _, x in draws]
    split_gap = {}  # member: the test split's relative FD to the training split (a data fact, no samples)
    spaces = {}  # name: (features per grid value, reference moments, scale); members' FD relative
    for member in args.members:
        net, data = (clean, dataset) if member == "clean" else member_classifier(dataset, member, args.work)
        features = [predict(net, x)[0].double() for x in samples]
        references = {member: data_items(data, args.data_per_class)[0]}  # what a fit may use
        references |= {f"{member} vs {split}": data.split(split)[0] for split in ("train", "test")}
        embedded = {name: predict(net, images)[0].double() for name, images in references.items()}
        for name, reference in embedded.items():  # "vs": the diagnosis, every image of a split
            moments = feature_moments(reference)
            spaces[name] = (features, moments, float(moments[1].trace()))
        test = embedded[f"{member} vs test"]  # how far the test split is from the training split
        split_gap[member] = relative_fd(test, *spaces[f"{member} vs train"][1:])
    judges = {"evaluation judge": (scorer.classifier, scorer.reference), "held-out judge": scorer.held_out}
    for name, (net, reference) in judges.items():  # "vs train": the diagnosis, the judge on training images
        features = [predict(net, x)[0].double() for x in samples]
        spaces[name] = (features, (reference.mu, reference.cov), 1.0)
        spaces[f"{name} vs train"] = (features, feature_moments(predict(net, dataset.train_images)[0]), 1.0)
    ensemble = [m for m in args.members if not m.endswith(":half")]
    curves = curves_on(spaces, torch.arange(len(labels)), ensemble)
    gen, wins = torch.Generator().manual_seed(0), {name: [0] * len(args.policies) for name in curves}
    for _ in range(args.boots):  # resample each class's samples, the same rows under every ω and space
        rows = torch.cat([
            own[torch.randint(len(own), (len(own),), generator=gen)]
            for own in (torch.nonzero(labels == c)[:, 0] for c in range(dataset.num_classes))
        ])  # fmt: skip
        for name, curve in curves_on(spaces, rows, ensemble).items():
            wins[name][args.policies.index(argmin(args.policies, curve))] += 1
    report = {
        name: {
            "curve": c,
            "argmin": argmin(args.policies, c),
            "argmin_share": [w / args.boots for w in wins[name]],
        }
        for name, c in curves.items()
    }
    for name, entry in report.items():
        shares = " ".join(f"{v:.2f}" for v in entry["argmin_share"])
        curve = " ".join(f"{v:.4g}" for v in entry["curve"])
        print(f"{name:>28}: argmin {entry['argmin']:<6} {curve}  (argmin share {shares})")
    print("the test split's relative FD to the training split:", json.dumps(split_gap))
    key = args.checkpoint + ("" if args.family == "constant" else f"/{args.family}")
    entry = {
        "policies": args.policies, "per_class": args.per_class, "curves": report, "split_gap": split_gap
    }  # fmt: skip
    add_results(args.out, {key: entry})


if __name__ == "__main__":
    main()
