import json
from pathlib import Path

import pytest
import torch

from learnguide.apps import experiment
from learnguide.apps.cli import main
from learnguide.apps.comparison import baseline_families, best_index, evaluate_over_sets, tune
from learnguide.apps.experiment import ExperimentConfig, evaluate_method
from learnguide.core.guidance import METHODS, ConstantGuidance
from learnguide.images.evaluation import sample_set
from tiny_models import write_tiny_inception


def test_tune_and_evaluate_over_sets_aggregate_a_scorer():
    def score(guidance, sample_set):
        return {
            "fd": abs(guidance.omega(torch.zeros(1), torch.zeros(1), torch.ones(1)).item() - 1) + sample_set
        }

    families = baseline_families((0.0, 1.0, 2.0), (1.0,), ((0.5, 1.0),), (2.0,), ("linear",))
    sweep = tune(score, families["constant"], 0.0)
    assert [r["fd"] for r in sweep] == [1.0, 0.0, 1.0] and best_index(sweep, "fd") == 1
    summary = evaluate_over_sets(score, ConstantGuidance(1.0), [0.1, 0.3])
    assert summary["fd"] == pytest.approx(0.2) and summary["fd_per_seed"] == pytest.approx([0.1, 0.3])
    assert summary["fd_std"] == pytest.approx(torch.tensor([0.1, 0.3]).std().item())


def test_sample_sets_are_balanced_with_distinct_seeds():
    labels, seeds = sample_set(3, 4, seed=7)
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert len(set(seeds.tolist())) == 12
    assert not set(seeds.tolist()) & set(sample_set(3, 4, seed=8)[1].tolist())
    assert ExperimentConfig().steps == (10, 25, 50)


def test_experiment_names_the_training_command_for_a_missing_checkpoint(tmp_path, capsys):
    code = main(["experiment", "--dataset", "digits", "--checkpoints", str(tmp_path), "--tiny"])
    err = capsys.readouterr().err
    assert code == 2 and "learnguide train-denoiser --dataset digits" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_tiny_experiment_on_digits_end_to_end(tmp_path, monkeypatch):
    """Trains tiny denoisers and a classifier on digits, then runs the whole comparison at CI size."""
    for name, steps in (("under_trained", 2), ("well_trained", 8)):
        args = ["train-denoiser", "--dataset", "digits", "--out", str(tmp_path / name), "--steps", str(steps)]
        assert main([*args, "--width", "8", "--batch-size", "32", "--no-progress"]) == 0
    clf = ["train-classifier", "--dataset", "digits", "--out", str(tmp_path / "classifier"), "--epochs", "1"]
    assert main([*clf, "--width", "8", "--no-progress"]) == 0
    out = tmp_path / "run"
    exp = ["experiment", "--dataset", "digits", "--checkpoints", str(tmp_path), "--out", str(out)]
    assert main([*exp, "--tiny", "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["dataset"] == "digits" and results["meta"]["fd_train_vs_test"] > 0
    for name in ("under_trained", "well_trained"):
        r = results[name]
        assert r["learning"]["method"] == "bank" and r["learning"]["denoiser_evals"] == 512 * 2 * 4
        assert set(r["by_steps"]) == {"4", "8"}
        for entry in r["by_steps"].values():
            assert entry["eval_n"] == 80 and entry["tune_n"] == 60
            for method in METHODS:
                e = entry[method]
                assert e["fd"] >= 0 and 0 <= e["accuracy"] <= 1 and len(e["fd_per_seed"]) == 2
                assert {"kid", "precision", "recall", "images_per_second", "tuning"} <= set(e)
            assert entry["constant"]["tuning"]["fd"] == min(s["fd"] for s in entry["constant"]["sweep"])
            assert entry["learned"]["settings"]["type"] == "learned"
        assert len(r["omega_table"]["per_class"]) == 10
        assert len(r["bank_diagnostics"]["omega"]) == 10
        pngs = (f"samples_{name}_4.png", f"fd_vs_omega_{name}.png", f"omega_heatmap_{name}.png")
        for png in (*pngs, f"bank_optimal_omega_{name}.png"):
            assert (out / png).stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "## under_trained" in report and "FD, 8 steps" in report
    assert list((out / "cache").glob("refstats-*.safetensors"))

    # a rerun reuses every saved step count (nothing is sampled for the tables again) and reports the same
    def refuse(*args, **kwargs):
        raise AssertionError("a saved step count was recomputed")

    monkeypatch.setattr(experiment, "compare_baselines", refuse)
    monkeypatch.setattr(experiment, "evaluate_method", refuse)
    assert main([*exp, "--tiny", "--no-progress"]) == 0
    rerun = json.loads((out / "results.json").read_text())
    for name in ("under_trained", "well_trained"):
        assert rerun[name]["by_steps"] == results[name]["by_steps"]
    # learning ω another way re-evaluates only the learned ω
    monkeypatch.setattr(experiment, "evaluate_method", evaluate_method)
    under = ["--denoisers", f"under_trained={tmp_path / 'under_trained'}"]
    assert main([*exp, *under, "--tiny", "--no-progress", "--objective", "class-marginal"]) == 0
    marginal = json.loads((out / "results.json").read_text())["under_trained"]
    assert marginal["learning"]["method"] == "online"
    assert marginal["learning"]["online"]["objective"] == "class-marginal"
    for steps, entry in marginal["by_steps"].items():
        assert entry["constant"] == results["under_trained"]["by_steps"][steps]["constant"]
    # reward-tilted ω: one per γ_R, next to the saved baselines (still not recomputed)
    assert main([*exp, *under, "--tiny", "--no-progress", "--reward", "classifier", "--gamma", "0", "3"]) == 0
    rewarded = json.loads((out / "results.json").read_text())["under_trained"]
    assert set(rewarded["rewarded_learning"]) == {"0", "3"}
    assert rewarded["rewarded_learning"]["3"]["fit"]["reward_weight"] == 3.0
    assert rewarded["rewarded_learning"]["3"]["bank"]["store_predictions"]
    for steps, entry in rewarded["by_steps"].items():
        assert set(entry["rewarded"]) == {"0", "3"}
        assert entry["constant"] == results["under_trained"]["by_steps"][steps]["constant"]
        assert 0 <= entry["rewarded"]["3"]["accuracy"] <= 1 and "tuning" in entry["rewarded"]["3"]
    assert (out / "reward_tradeoff_under_trained.png").stat().st_size > 1000
    assert "Reward-tilted ω" in (out / "report.md").read_text()
    learn = experiment.learn_omega

    def learn_unrewarded_only(*args, **kwargs):
        assert kwargs.get("reward") is None, "a rewarded ω learned before was learned again"
        return learn(*args, **kwargs)

    monkeypatch.setattr(experiment, "learn_omega", learn_unrewarded_only)
    assert main([*exp, *under, "--tiny", "--no-progress", "--reward", "classifier", "--gamma", "0", "3"]) == 0
    again = json.loads((out / "results.json").read_text())["under_trained"]
    assert again["by_steps"]["4"]["rewarded"] == rewarded["by_steps"]["4"]["rewarded"]
    assert main([*exp, *under, "--tiny", "--no-progress", "--reward", "classifier", "--gamma", "-1"]) == 2
    # other grids make the saved step counts stale: they are recomputed
    monkeypatch.undo()
    grid = ["--constant-grid", "0", "0.5", "--interval-omegas", "0.5", "--increasing-omegas", "1"]
    assert (
        main([*exp, "--tiny", "--no-progress", "--denoisers", f"u={tmp_path / 'under_trained'}", *grid]) == 0
    )
    entry = json.loads((out / "results.json").read_text())["u"]["by_steps"]["4"]
    assert [s["settings"]["omega"] for s in entry["constant"]["sweep"]] == [0.0, 0.5]
    assert (
        entry["interval"]["settings"]["omega"] == 0.5 and entry["increasing"]["settings"]["omega_max"] == 1.0
    )
    # ω learned by a whole-trajectory rollout in a noisy classifier's features, scored by a held-out one
    for extra, folder in ((["--noisy"], "noisy"), (["--arch", "lenet"], "lenet")):
        clf = ["train-classifier", "--dataset", "digits", "--epochs", "1", "--width", "8", *extra]
        assert main([*clf, "--out", str(tmp_path / folder), "--no-progress"]) == 0
    features = ["--features", str(tmp_path / "noisy"), "--rollout", "3", "--objective", "class-marginal"]
    features += ["--feature-layer", "pooled", "logits", "--shared"]
    held_out = ["--held-out-classifier", str(tmp_path / "lenet")]
    assert main([*exp, *under, "--tiny", "--no-progress", *features, *held_out]) == 0
    rolled = json.loads((out / "results.json").read_text())["under_trained"]
    online = rolled["learning"]["online"]
    assert (
        rolled["learning"]["features"] == str(tmp_path / "noisy") and rolled["learning"]["method"] == "online"
    )
    assert online["rollout"] == 3 and online["churn"] == 0.0 and online["objective"] == "class-marginal"
    assert rolled["learning"]["feature_layers"] == ["pooled", "logits"]
    assert rolled["learning"]["omega_hparams"] == {"shared": True}
    assert json.loads((out / "under_trained" / "omega_net" / "config.json").read_text())["shared"] is True
    for entry in rolled["by_steps"].values():
        assert entry["learned"]["held_out_fd"] >= 0 and 0 <= entry["constant"]["held_out_accuracy"] <= 1
    assert main([*exp, *under, "--tiny", "--no-progress", "--features", str(tmp_path / "none")]) == 2


def test_image_scorer_adds_inception_fd_on_the_same_samples(tmp_path):
    from learnguide.core.denoisers import CountingDenoiser
    from learnguide.core.schedules import VPCosine
    from learnguide.images.classifier import ImageClassifier
    from learnguide.images.denoisers import build_image_denoiser, unet_config
    from learnguide.images.evaluation import ImageScorer, InceptionFeatures, ReferenceStats

    torch.manual_seed(0)
    denoiser = CountingDenoiser(build_image_denoiser(unet_config((1, 8, 8), 3, width=8), VPCosine()).eval())
    classifier = ImageClassifier(1, 3, width=8).eval()
    real = torch.rand(30, 1, 8, 8) * 2 - 1
    reference = ReferenceStats.compute_or_load(lambda x: classifier.features(x).detach(), real, None, "k")
    write_tiny_inception(tmp_path / "net.pt")
    extractor = InceptionFeatures(tmp_path / "net.pt")
    inception = (extractor, ReferenceStats.compute_or_load(extractor, real, None, "i"))
    scorer = ImageScorer(
        denoiser, classifier, reference, (1, 8, 8), steps=2, batch_size=4, inception=inception
    )
    labels, seeds = sample_set(3, 3, seed=0)
    scores = scorer.score(ConstantGuidance(1.0), (labels, seeds))
    assert {"fd", "kid", "accuracy", "precision", "recall", "inception_fd"} == set(scores)
    assert scores["inception_fd"] > 0
    assert denoiser.evals == 2 * 9 * 2  # 2 steps × 9 images × (cond + uncond)
    again = scorer.samples(ConstantGuidance(1.0), labels[:4], seeds[:4])  # other batching, same seeds
    assert torch.allclose(again, scorer.samples(ConstantGuidance(1.0), labels, seeds)[:4], atol=1e-5)


def test_experiment_inputs_and_config_from_python(tmp_path):
    from learnguide.apps.experiment import experiment_config, experiment_inputs
    from learnguide.data.images import load_dataset

    digits = load_dataset("digits")
    denoisers, classifier = experiment_inputs(digits, "checkpoints/digits")
    assert set(denoisers) == {"under_trained", "well_trained"} and classifier.name == "classifier"
    mine, _ = experiment_inputs(digits, denoisers=["a=checkpoints/digits/well_trained"])
    assert mine == {"a": Path("checkpoints/digits/well_trained")}
    with pytest.raises(ValueError, match="NAME=DIR"):
        experiment_inputs(digits, denoisers=["foo"])
    with pytest.raises(ValueError, match="does not exist; train it"):
        experiment_inputs(digits, tmp_path)
    config = experiment_config(3, tiny=True, learn="online", objective="class-marginal", steps=[10, 25])
    assert config.steps == (10, 25) and config.online.objective == "class-marginal" and config.seed == 3


def _fit_recipe(out: Path, *extra: str) -> list[str]:
    """``fit --online`` on the committed digits denoiser with a tiny recipe (clean features, whole 3-step
    rollout from the prior, pooled objective, balanced draws, clamped output); returns the arguments."""
    args = ["fit", "--online", "--denoiser", "checkpoints/digits/under_trained", "--dataset", "digits"]
    args += ["--features", "checkpoints/digits/classifier", "--objective", "marginal", "--balanced-classes"]
    args += ["--rollout", "3", "--grid-steps", "3", "--start", "prior", "--iterations", "2", "--batch-size"]
    args += ["20", "--particles", "1", "--output", "relu-st", "--shared", "--init-omega", "0.5", *extra]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    return args


def test_a_recipe_is_read_back_from_an_online_fit(tmp_path):
    from learnguide.apps.experiment import experiment_config
    from learnguide.apps.learning import load_recipe

    _fit_recipe(tmp_path / "omega", "--lr", "0.01")
    recipe = load_recipe(tmp_path / "omega")
    online = recipe["online"]
    assert online.objective == "marginal" and online.rollout == 3 and online.start == "prior"
    assert online.lr == 0.01 and online.iterations == 2 and online.churn == 0.0
    assert recipe["features"] == str(Path("checkpoints/digits/classifier").resolve())
    assert recipe["feature_layers"] == ("pooled",) and recipe["balanced_classes"] is True
    extra = json.loads((tmp_path / "omega" / "config.json").read_text())["extra"]
    assert extra["target_data"] is None  # drawn from the training split
    hparams = recipe["omega_hparams"]
    assert hparams["output"] == "relu-st" and hparams["shared"] is True and hparams["init_omega"] == 0.5
    config = experiment_config(0, tiny=True, recipe=tmp_path / "omega", held_out_classifier="x")
    assert config.learn == "online" and config.online == online and config.balanced_classes
    assert config.omega_hparams == hparams and config.held_out_classifier == "x"


def test_a_recipe_that_cannot_be_followed_is_refused(tmp_path, capsys):
    from learnguide.apps.learning import load_recipe

    with pytest.raises(ValueError, match="no config.json"):
        load_recipe(tmp_path)
    _fit_recipe(tmp_path / "omega")
    config = json.loads((tmp_path / "omega" / "config.json").read_text())
    for broken, message in (
        ({k: v for k, v in config["extra"].items() if k != "online"}, "not learned online"),
        ({k: v for k, v in config["extra"].items() if k != "feature_layers"}, "does not record its features"),
        ({**config["extra"], "features": str(tmp_path / "gone")}, "does not exist here"),
        ({**config["extra"], "online": {**config["extra"]["online"], "reward_weight": 1.0}}, "reward"),
        ({**config["extra"], "online": {**config["extra"]["online"], "warp": 2}}, "do not fit this version"),
        ({**config["extra"], "target_data": "digits"}, "drew its data from --target-data digits"),
    ):
        (tmp_path / "omega" / "config.json").write_text(json.dumps({**config, "extra": broken}))
        with pytest.raises(ValueError, match=message):
            load_recipe(tmp_path / "omega")
    exp = ["experiment", "--dataset", "digits", "--tiny", "--out", str(tmp_path / "run")]
    for flag in (["--features", "checkpoints/digits/classifier"], ["--shared"], ["--objective", "marginal"]):
        assert main([*exp, "--recipe", str(tmp_path / "omega"), *flag]) == 2
        err = capsys.readouterr().err
        assert f"drop {flag[0]}" in err and "Traceback" not in err
    assert main([*exp, "--recipe", str(tmp_path / "nowhere")]) == 2
    assert "no config.json" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_a_fit_records_the_target_data_it_drew_from(tmp_path):
    _fit_recipe(tmp_path / "omega", "--target-data", "digits", "--target-split", "all")
    extra = json.loads((tmp_path / "omega" / "config.json").read_text())["extra"]
    assert extra["target_data"] == "digits" and extra["target_split"] == "all"


@pytest.mark.slow
def test_an_experiment_learns_as_a_recipe_did(tmp_path):
    """The experiment's learned ω for a checkpoint is the one `fit --online` learned with the same recipe."""
    from learnguide.core.guidance import OmegaNet

    _fit_recipe(tmp_path / "omega")
    out = tmp_path / "run"
    exp = ["experiment", "--dataset", "digits", "--tiny", "--out", str(out), "--steps", "4"]
    exp += ["--denoisers", "u=checkpoints/digits/under_trained", "--recipe", str(tmp_path / "omega")]
    assert main([*exp, "--no-progress"]) == 0
    learning = json.loads((out / "results.json").read_text())["u"]["learning"]
    saved = json.loads((tmp_path / "omega" / "config.json").read_text())["extra"]
    assert learning["online"] == saved["online"] and learning["balanced_classes"] is True
    assert learning["features"] == saved["features"] and learning["omega_hparams"]["output"] == "relu-st"
    fitted = OmegaNet.load(tmp_path / "omega")
    learned = OmegaNet.load(out / "u" / "omega_net")
    assert learned.config() == fitted.config()
    for name, weight in fitted.state_dict().items():
        torch.testing.assert_close(learned.state_dict()[name], weight)  # same seed, data and settings
