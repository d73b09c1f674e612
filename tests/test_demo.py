import json

import pytest
import torch

from learnguide.apps.cli import main
from learnguide.apps.demo import REGIMES, DemoConfig
from learnguide.core.guidance import METHODS
from learnguide.images.reports import describe_settings


def test_demo_grids_cover_every_baseline_family():
    families = DemoConfig().baselines()
    assert {k: len(v) for k, v in families.items()} == {"constant": 9, "interval": 12, "increasing": 8}
    assert families["constant"][0].config() == {"type": "constant", "omega": 0.0}
    assert [r.name for r in REGIMES] == ["well_trained", "under_trained"]
    assert (
        describe_settings({"type": "interval", "omega": 2.0, "t_lo": 0.2, "t_hi": 0.6})
        == "ω = 2 on t ∈ [0.2, 0.6]"
    )


def test_cli_reports_bad_output_folder_without_traceback(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["demo", "--quick", "--out", str(blocker), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("learnguide demo: error:") and "Traceback" not in err


@pytest.mark.slow
def test_demo_quick_writes_every_result_field(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["quick"] is True
    for regime in ("well_trained", "under_trained"):
        r = results[regime]
        assert r["steps"] == 20
        for method in METHODS:
            entry = r[method]
            assert {"settings", "energy", "mmd", "energy_std", "mmd_std", "tuning"} <= set(entry)
            assert entry["energy"] >= 0 and entry["mmd"] > -1e-3
        for family in ("constant", "interval", "increasing"):
            assert r[family]["settings"]["type"] == family
            assert min(s["energy"] for s in r[family]["sweep"]) == r[family]["tuning"]["energy"]
        assert r["learned"]["settings"]["type"] == "learned"
        assert r["learned"]["learning"]["method"] == "bank"
        assert r["learned"]["learning"]["denoiser_evals"] == 4096 * 2 * 4
        assert len(r["learned"]["omega_table"]["per_class"]) == 4
        assert (out / f"samples_{regime}.png").stat().st_size > 1000
    # the under-trained denoiser under-commits: guidance must clearly help there (not in the well-trained one)
    under, well = results["under_trained"], results["well_trained"]
    assert under["constant"]["energy"] < 0.5 * under["unguided"]["energy"]
    assert under["learned"]["energy"] < 0.5 * under["unguided"]["energy"]
    assert well["learned"]["energy"] <= 1.5 * well["constant"]["energy"] + 0.002
    report = (out / "report.md").read_text()
    assert "## under_trained" in report and "metric_vs_omega.png" in report
    assert (out / "learned_omega.png").is_file() and (out / "metric_vs_omega.png").is_file()
    # a second run reuses the trained denoisers
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["well_trained"]["denoiser"]["source"] == "loaded"
    assert again["under_trained"]["learned"]["energy"] == pytest.approx(under["learned"]["energy"])


def test_ranking_line_names_the_learned_place():
    from learnguide.apps.reports import ranking

    regime = {
        m: {"energy": e, "energy_std": 0.001}
        for m, e in zip(METHODS, [0.2, 0.03, 0.02, 0.04, 0.05], strict=True)
    }
    line = ranking(regime)
    assert line.startswith("learned ω ranks 4 of 5") and "best: interval 0.0200" in line and "= 4.00" in line


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--line-search", "--online"], "--line-search finds one constant ω by itself"),
        (["--line-search", "--rollout", "20"], "--line-search finds one constant ω by itself"),
        (["--statistic", "class-energy"], "--statistic is a setting of --line-search"),
        (["--line-search", "--scales", "1", "2", "3"], "--scales is the grid of a --shape"),
    ],
)
def test_demo_refuses_line_search_settings_that_do_not_fit(tmp_path, capsys, flags, message):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_run_demo_refuses_search_settings_without_a_line_search(tmp_path):
    from learnguide.apps.demo import run_demo

    with pytest.raises(ValueError, match="settings of --line-search"):
        run_demo(tmp_path / "demo", quick=True, progress=False, line_search={"statistic": "class-energy"})
    with pytest.raises(ValueError, match="drop --objective and --rollout"):
        run_demo(tmp_path / "demo", quick=True, progress=False, learn="line-search", rollout=20)


@pytest.mark.slow
def test_demo_quick_line_search_learns_one_constant_per_regime(tmp_path):
    out = tmp_path / "demo"
    flags = ["--line-search", "--statistic", "class-energy", "--no-progress"]
    assert main(["demo", "--quick", "--out", str(out), *flags]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["learn"] == "line-search"
    under, well = results["under_trained"], results["well_trained"]
    for regime in (under, well):
        learning = regime["learned"]["learning"]
        assert learning["method"] == "line-search" and learning["omegas"] == [0.0, 1.0, 2.0]
        assert learning["denoiser_evals"] == 400 * 20 * 5 and learning["line_search"]["steps"] == 20
        table = torch.tensor(regime["learned"]["omega_table"]["per_class"])  # [C, N]: one constant
        assert torch.allclose(table, torch.full_like(table, learning["omega"]), atol=1e-6)
    assert well["learned"]["learning"]["omega"] == 0.0  # the well-trained conditionals need no guidance
    assert 0.5 < under["learned"]["learning"]["omega"] < 1.5  # the under-trained ones do
    assert under["learned"]["energy"] < 0.5 * under["unguided"]["energy"]
    report = (out / "report.md").read_text()
    assert "Learning ω (line search, class-energy statistic): constant ω = " in report
    assert "over seeds (half-sample estimate" in report


def test_the_learning_line_gives_a_searchs_spread_and_reads_records_made_before_it():
    from learnguide.apps.reports import learning_line

    learning = {
        "method": "line-search", "denoiser_evals": 100, "seconds": 1.0, "line_search": {"shape": None,
        "statistic": "energy"}, "omegas": [0.0, 1.0], "losses": [2.0, 1.0], "scales": [], "shape_losses": [],
        "shape": "constant", "omega": 0.8,
    }  # fmt: skip
    assert "constant ω = 0.800 (loss by ω" in learning_line(learning)  # a record without a spread
    spread = learning_line({**learning, "omega_spread": 0.05, "family_share": 1.0})
    assert "constant ω = 0.800 ± 0.05 over seeds (half-sample estimate) (loss by ω" in spread
    doubt = "13 of 32 half-sample draws choose no guidance: another seed may not guide at all"
    warned = learning_line({**learning, "warnings": [doubt]})
    assert warned.endswith(f"s). Warning: {doubt}.")
