"""The Python examples of README.md and docs/diffusers.md import what exists, and README's runs."""

import re
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


class _TinyEpsNet(nn.Module):
    """``my_net(x_t, t, c) -> ε``: what the README assumes the user has (here untrained)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.embed = nn.Embedding(num_classes + 1, 3)

    def forward(self, x_t, t, c):
        return self.conv(x_t) + self.embed(c)[:, :, None, None] * t[:, None, None, None]


def test_the_readme_example_runs_as_written_on_a_tiny_model(tmp_path, monkeypatch):
    (example,) = [b for b in _python_blocks(ROOT / "README.md") if "train_omega_online" in b]
    assert "OnlineConfig(iterations=2000)" in example
    example = example.replace("OnlineConfig(iterations=2000)", "OnlineConfig(iterations=3, batch_size=8)")
    num_classes = 3

    def sample_data(n, generator):
        return torch.randn(n, 3, 32, 32, generator=generator), torch.randint(0, 3, (n,), generator=generator)

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    scope = {"my_net": _TinyEpsNet(num_classes), "num_classes": num_classes, "sample_data": sample_data}
    scope["labels"] = torch.tensor([0, 1, 2, 0])
    exec(example, scope)
    assert scope["x"].shape == (4, 3, 32, 32) and bool(torch.isfinite(scope["x"]).all())
    assert (tmp_path / "runs" / "omega" / "model.safetensors").is_file()


def test_every_import_in_the_docs_resolves():
    imports = []
    for doc in (ROOT / "README.md", ROOT / "docs" / "diffusers.md"):
        for block in _python_blocks(doc):
            imports += [
                line for line in block.splitlines() if line.startswith(("from learnguide", "import "))
            ]
    assert len(imports) >= 5
    for line in imports:
        exec(line, {})


def test_the_readme_layout_names_every_module_and_only_modules_that_exist():
    layout = (ROOT / "README.md").read_text().split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    package = ROOT / "src" / "learnguide"
    named = set()
    for bullet in re.findall(r"^- .*?(?=^- |\Z)", layout, flags=re.S | re.M):
        folder = re.match(r"- `(\w+)/`", bullet)
        names = re.findall(r"`(\w+)`", bullet)
        named |= {Path(folder[1] if folder else "", f"{name}.py") for name in names}
    assert len(named) >= 30
    on_disk = {path.relative_to(package) for path in package.rglob("*.py") if path.name != "__init__.py"}
    assert named - on_disk == set(), "README's Layout names modules that do not exist"
    assert on_disk - named == set(), "README's Layout leaves these modules out"


def test_the_encoder_example_of_docs_diffusers_saves_a_folder_that_loads(tmp_path, monkeypatch):
    from learnguide.core.encoders import encoder_features, load_encoder

    (example,) = [b for b in _python_blocks(ROOT / "docs" / "diffusers.md") if "save_encoder(" in b]
    monkeypatch.chdir(tmp_path)
    exec(example, {"__name__": "docs_example"})
    phi = encoder_features(*load_encoder(tmp_path / "runs" / "my-encoder"))
    assert phi(torch.randn(2, 3, 256, 256), torch.zeros(2)).shape == (2, 64)
