"""What the command line tells a new user: counts with their plurals, the work of a resumed run."""

import json
import re

import pytest

from learnguide.apps.cli import main
from learnguide.core.denoiser_training import DenoiserTrainingConfig, save_mlp_denoiser


@pytest.fixture
def denoiser_dir(tmp_path, mlp_denoiser, mixture):
    return save_mlp_denoiser(
        mlp_denoiser, tmp_path / "denoiser", DenoiserTrainingConfig(), mixture.fingerprint()
    )


def test_a_bank_of_one_shard_says_shard(tmp_path, denoiser_dir, capsys):
    args = ["bank", "--denoiser", str(denoiser_dir), "--out", str(tmp_path / "bank"), "--items", "16"]
    assert main([*args, "--particles", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "16 items in 1 shard; this run wrote 1 shard (" in out, out


def test_a_resumed_online_fit_reports_only_the_evaluations_it_made(tmp_path, denoiser_dir, capsys):
    online = ["fit", "--online", "--denoiser", str(denoiser_dir), "--batch-size", "16", "--particles", "2"]
    online += ["--checkpoint-every", "2", "--no-progress"]

    def evals(iterations: int, out: str) -> tuple[int, str]:
        assert main([*online, "--iterations", str(iterations), "--out", str(tmp_path / out)]) == 0
        line = capsys.readouterr().out
        return int(re.search(r"(\d+) denoiser evals here and 0 more processes", line).group(1)), line

    whole, line = evals(4, "whole")
    assert "(4 iterations," in line
    first, _ = evals(2, "resumed")  # a run killed after 2 of 4 iterations, then started again
    rest, line = evals(4, "resumed")
    assert "resumed at iteration 2" in line
    assert first == rest == whole // 2 > 0
    again, line = evals(4, "resumed")  # a finished run started again does nothing
    assert again == 0 and "resumed at iteration 4" in line


def test_the_sample_progress_bar_counts_denoiser_steps_over_all_batches(tmp_path, capsys):
    from learnguide.core.schedules import VPCosine
    from learnguide.images.denoisers import build_image_denoiser, save_image_denoiser, unet_config

    model = build_image_denoiser(unet_config((1, 8, 8), 4, width=8), VPCosine())
    save_image_denoiser(model, tmp_path / "denoiser", DenoiserTrainingConfig(), "toy", tuple("abcd"))
    args = ["sample", "--denoiser", str(tmp_path / "denoiser"), "--constant", "1", "--steps", "5"]
    assert main([*args, "--per-class", "1", "--batch-size", "2", "--out", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert "10/10" in err and "step" in err, err  # 2 batches × 5 steps, not 2/2 batches


def test_every_help_is_plain_text_and_every_command_has_a_description():
    import argparse

    from learnguide.apps.arguments import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in commands.choices.items():
        assert sub.description, f"learnguide {name} --help has no description"
    for text in [parser.format_help()] + [sub.format_help() for sub in commands.choices.values()]:
        assert "`" not in text and ":func:" not in text, text  # no Markdown or reStructuredText markup


def test_the_diffusers_guide_lists_as_not_supported_only_what_is_not():
    from pathlib import Path

    guide = (Path(__file__).parents[1] / "docs" / "diffusers.md").read_text()
    unsupported = guide.split("## Not yet supported")[1].split("\n## ")[0]
    assert "accelerate launch" not in unsupported and "Multi-GPU" not in unsupported
    assert "accelerate launch --multi_gpu" in guide.replace("\n", " ")


def test_weights_json_and_the_lock_are_written_with_one_file_mode(tmp_path):
    import os

    import torch

    from learnguide.checkpoints import save_checkpoint
    from learnguide.core.schedules import VPCosine
    from learnguide.distributed import OutputLock
    from learnguide.images.denoisers import build_image_denoiser, save_image_denoiser, unet_config

    save_checkpoint(tmp_path / "out", {"w": torch.zeros(2)}, {"kind": "test"})
    model = build_image_denoiser(unet_config((1, 8, 8), 2, width=8), VPCosine())
    save_image_denoiser(model, tmp_path / "out" / "image", DenoiserTrainingConfig(), "toy", ("a", "b"))
    with OutputLock(tmp_path / "out", "test"):
        modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "out").rglob("*") if p.is_file()}
    umask = os.umask(0)
    os.umask(umask)
    assert {"model.safetensors", "config.json", ".learnguide.lock"} <= set(modes)
    assert "diffusion_pytorch_model.safetensors" in modes
    assert set(modes.values()) == {0o666 & ~umask}, modes


def test_experiment_finds_the_committed_checkpoints_from_any_folder(tmp_path, monkeypatch):
    from pathlib import Path
    from types import SimpleNamespace

    from learnguide.apps.experiment import experiment_inputs

    monkeypatch.chdir(tmp_path)  # not the repository root
    denoisers, classifier = experiment_inputs(SimpleNamespace(name="digits"))
    repository = Path(__file__).resolve().parents[1]
    assert classifier == repository / "checkpoints" / "digits" / "classifier" and classifier.is_dir()
    assert all(folder.is_dir() for folder in denoisers.values()) and set(denoisers) == {
        "under_trained",
        "well_trained",
    }


def test_bank_takes_the_data_an_image_denoiser_records(tmp_path, capsys):
    import json

    train = ["train-denoiser", "--dataset", "digits", "--out", str(tmp_path / "d"), "--steps", "1"]
    assert main([*train, "--batch-size", "4", "--width", "8", "--no-progress"]) == 0
    assert json.loads((tmp_path / "d" / "learnguide.json").read_text())["dataset"] == "digits"
    for denoiser in (tmp_path / "d", "checkpoints/digits/under_trained"):  # a new and a committed one
        bank = ["bank", "--denoiser", str(denoiser), "--items", "4", "--particles", "2", "--no-progress"]
        out = tmp_path / f"bank-{len(str(denoiser))}"
        assert main([*bank, "--out", str(out)]) == 0, capsys.readouterr().err  # no --dataset
        assert (out / "manifest.json").is_file()


def test_the_readme_and_the_help_give_one_time_for_the_quick_demo():
    import re
    from pathlib import Path

    from learnguide.apps.arguments import build_parser
    from learnguide.apps.demo import DemoConfig

    readme = (Path(__file__).parents[1] / "README.md").read_text().replace("\n", " ")
    demo_help = build_parser()._subparsers._group_actions[0].choices["demo"].format_help().replace("\n", " ")
    quoted = [
        re.search(r"`--quick`: (under [a-z0-9 ]+?)\)", readme).group(1),
        re.search(r"CI-sized run \((under [a-z0-9 ]+?) on", " ".join(demo_help.split())).group(1),
        re.search(r"CI-sized variant \((under [a-z0-9 ]+?) on", DemoConfig.__doc__).group(1),
    ]
    assert len(set(quoted)) == 1, quoted


def test_version_prints_the_package_version(capsys):
    import learnguide

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"learnguide {learnguide.__version__}"


def test_every_file_the_readme_names_is_in_the_repository():
    from pathlib import Path

    root = Path(__file__).parents[1]
    readme = (root / "README.md").read_text()
    named = set(re.findall(r"(?<![\w/.])((?:docs|benchmarks|checkpoints|src|tests|\.ci)/[\w./-]*\w)", readme))
    assert "docs/design.md" in named  # the design reference is in the repository, not elsewhere
    assert all((root / path).exists() for path in named), sorted(p for p in named if not (root / p).exists())
    assert not re.search(r"\]\((?!docs/|#)", readme)  # links stay inside the repository


def test_json_outputs_write_non_finite_numbers_as_null():
    from learnguide.checkpoints import strict_json

    text = strict_json({"fd": float("nan"), "xs": [1.0, float("inf")], "t": (2, -float("inf"))}, indent=1)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON")) == {
        "fd": None,
        "xs": [1.0, None],
        "t": [2, None],
    }


def test_fit_offers_every_output_map_of_the_omega_network():
    import argparse

    from learnguide.apps.arguments import build_parser
    from learnguide.core.guidance import OUTPUT_MAPS

    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    (output,) = [a for a in commands.choices["fit"]._actions if a.dest == "output"]
    assert tuple(output.choices) == OUTPUT_MAPS
