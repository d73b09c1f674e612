"""Does the search's own pooled statistic tell a helpful per-class schedule from a harmful one? (issue 14)

Three per-class rules were scored from the recommended search's samples (§10z, §10aa): each class its
least-loss grid point (``class_choice_agreement.py``), shrunk by its noise (``class_shrinkage.py``), kept
where a second feature space agrees (``class_shrinkage.py --consensus``). Each helps on some checkpoints and
hurts on others, MNIST ``well_trained`` most: a class-by-class preference need not lower the distance of all
classes' samples together, which is what FD measures. This asks the search itself, judge-free, with one more
schedule drawn: each rule's per-class schedule and the shared answer are drawn from the search's own noise
and conditions (common random numbers: 640 samples, the search's seed), and the search's pooled statistic
(the energy distance plus the covariance term in the ``cnn-batchnorm`` features, against the search's data
items) is compared. The fixed rule: keep the per-class schedule only where its pooled statistic is lower
than the shared answer's.

The ω = 0 schedule is drawn beside them and its features must equal the saved landscape's (the same noise,
checked). Prints and writes per checkpoint each schedule's pooled statistic and the rule's decision, with the
per-class rule's recorded ratio to the best tuned baseline (held-out and evaluation FD, a diagnosis: the
decision never reads it). Cost: each checked rule adds one schedule's samples (32,000 denoiser evaluations
at 25 steps, 0.2× a 7-point grid), the shared answer's one more, so a search that checks one rule costs
2.26× a grid (304,000 + 64,000 evaluations; over issue 14's 2× by 13 %).

    PYTHONPATH=benchmarks python benchmarks/per_class_check.py          # about 1-3 min per checkpoint
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from class_choice_agreement import class_ids, schedule_of
from class_omega_headroom import FAMILIES, PerClassGuidance, per_class_schedule
from learned_vs_tuned import CHECKPOINTS, VARIANTS, evaluation_setup, variant_features
from learnguide.core.guidance import ConstantGuidance
from learnguide.core.line_search import common_draw, final_samples, search_statistic
from results_file import add_results, read_results
from statistic_landscape import add_saved_paths, file_stem, searched_key

SPACE = "batchnorm-search"  # the recommended search's features
RULES = {  # rule -> (results file, entry key suffix): where its per-class choice and scores were recorded
    "raw": ("class_choice_agreement.json", ""),
    "shrunk": ("class_shrinkage.json", ""),
    "consensus": ("class_shrinkage.json", "~spatial-search"),
}


def recorded_rules(results: Path, checkpoint: str, statistic: str) -> tuple[tuple[str, float], dict]:
    """The shared answer (family, ω) and, per rule of ``RULES``, ``(per-class schedule, recorded ratios)``
    from the benchmarks' JSON in ``results``. Exits naming a missing entry."""
    key, entries = f"{searched_key(checkpoint, SPACE)}:{statistic}", {}
    for rule, (name, suffix) in RULES.items():
        entries[rule] = read_results(results / name).get(key + suffix)
        if not entries[rule] or "scored" not in entries[rule]:
            raise SystemExit(f"{results / name} has no scored {key + suffix}: run its benchmark with --score")
    rules = {}
    for rule, entry in entries.items():
        if rule == "raw":
            guidance = PerClassGuidance([schedule_of(label) for label in entry["choices"]["search"]])
        else:
            guidance = per_class_schedule(entry["family"], entry["omegas"])
        rules[rule] = (guidance, entry["scored"]["ratios"])
    return (entries["shrunk"]["family"], entries["shrunk"]["omega"]), rules


def pooled_statistics(checkpoint: str, schedules: dict, args: argparse.Namespace) -> dict[str, float]:
    """The search's pooled statistic of each of ``schedules`` (label -> schedule), drawn from the search's
    noise; checks that ω = 0 (drawn first) reproduces the saved landscape's features."""
    dataset, denoiser, _, _ = evaluation_setup(*checkpoint.split("/"), args.work)
    spec = VARIANTS[SPACE]
    config = replace(spec.line_search, statistic=args.statistic)
    phi = variant_features(dataset, spec, args.work)
    saved = load_file(str(args.features / f"{file_stem(searched_key(checkpoint, SPACE))}.safetensors"))
    labels, true, true_labels = class_ids(saved)
    x0, cond = common_draw(dataset.data_sampler("train", balanced=spec.balanced), config)
    if not torch.equal(cond[: config.samples], labels):
        raise SystemExit(f"{checkpoint}: the search's conditions are not the saved landscape's")
    drawn = final_samples(
        denoiser, denoiser.schedule, list(schedules.values()), labels, tuple(x0.shape[1:]), config
    )
    found = {}
    for label, samples in zip(schedules, drawn, strict=True):
        features = phi(samples, samples.new_zeros(len(samples))).double()
        if label == "ω = 0" and not torch.allclose(features, saved["constant 0/phi"], atol=1e-5):
            raise SystemExit(f"{checkpoint}: ω = 0 does not reproduce the saved landscape (other noise)")
        found[label] = search_statistic(features, true, config, labels, true_labels)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", nargs="+", default=[f"{d}/{r}" for d, r in CHECKPOINTS])
    parser.add_argument("--statistic", default="energy+covariance", choices=["energy", "energy+covariance"])
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results"), help="the rules' JSON")
    add_saved_paths(parser, "per_class_check.json", baselines=False)
    args = parser.parse_args()
    for checkpoint in args.checkpoints:
        began = time.perf_counter()
        shared, rules = recorded_rules(args.results, checkpoint, args.statistic)
        schedules = {"ω = 0": ConstantGuidance(0.0), "shared": FAMILIES[shared[0]](shared[1])}
        schedules |= {rule: guidance for rule, (guidance, _) in rules.items()}
        stats = pooled_statistics(checkpoint, schedules, args)
        decisions = {rule: stats[rule] < stats["shared"] for rule in rules}
        print(checkpoint, f"shared {shared[0]} {shared[1]:.3f}", {k: round(v, 5) for k, v in stats.items()})
        for rule, (_, ratios) in rules.items():
            kept = "kept" if decisions[rule] else "shared answer instead"
            shown = {k: round(v, 3) for k, v in ratios.items()}
            print(f"  {rule}: {kept}; the per-class rule's recorded ratios {shown}")
        entry = {"shared": list(shared), "statistics": stats, "kept": decisions}
        entry |= {"recorded_ratios": {rule: ratios for rule, (_, ratios) in rules.items()}}
        add_results(
            args.out, {f"{checkpoint}:{args.statistic}": entry | {"seconds": time.perf_counter() - began}}
        )


if __name__ == "__main__":
    main()
