"""The layer contracts (docs/design.md §6) hold, and a violation of them fails `lint-imports`."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(source_root: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(source_root), "PATH": str(LINT_IMPORTS.parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=source_root,
    )


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is a dev dependency")
def test_the_package_keeps_its_layers_and_a_core_module_importing_an_app_breaks_them(tmp_path):
    assert _lint(ROOT / "src").returncode == 0
    shutil.copytree(ROOT / "src" / "learnguide", tmp_path / "learnguide")
    (tmp_path / "learnguide" / "core" / "shortcut.py").write_text("from learnguide.apps import cli\n")
    broken = _lint(tmp_path)
    assert broken.returncode != 0
    assert "learnguide.core.shortcut -> learnguide.apps.cli" in broken.stdout
