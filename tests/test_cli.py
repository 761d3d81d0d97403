"""Command line: every subcommand's --help, one-line errors with exit status 2, a tiny train -> sample round trip."""
import os
from fractions import Fraction
import subprocess
import sys

import pytest
import torch

from sdelab import hub
from sdelab.cli import main

HELP = [["--help"], ["train", "--help"], ["train", "toy", "--help"], ["train", "mnist", "--help"],
        ["sample", "--help"], ["bench", "--help"], ["train-classifier", "--help"], ["checkpoints", "--help"]]


@pytest.mark.parametrize("argv", HELP, ids=lambda a: " ".join(a))
def test_help(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sdelab") and "--help" in out


BAD = [
    (["train", "toy", "--steps", "-3"], "sdelab: error: --steps must be an integer in [1, 100_000_000], got -3"),
    (["train", "toy", "--steps", "abc"], "sdelab: error: --steps must be an integer in [1, 100_000_000], got abc"),
    (["train", "mnist", "--lr", "0"], "sdelab: error: --lr must be a number > 0, got 0"),
    (["train", "toy", "--dataset", "nope"], "sdelab: error: --dataset: invalid choice: 'nope'"),
    (["train", "toy", "--ema-decay", "1.5"], "sdelab: error: --ema-decay must lie in [0, 1)"),
    (["sample", "--pretrained", "nope"], "sdelab: error: unknown pretrained model 'nope'; available:"),
    (["sample", "--checkpoint", "/no/such/file.pt"], "sdelab: error: no such checkpoint: /no/such/file.pt"),
    (["sample", "--pretrained", "ring", "--out", "x.jpg"], "sdelab: error: --out must end in .png or .pt"),
    (["sample", "--pretrained", "ring", "--sampler", "magic"], "sdelab: error: --sampler: invalid choice"),
    (["sample"], "sdelab: error: one of the arguments --checkpoint --pretrained is required"),
    (["bench", "--only", "nope"], "sdelab: error: --only: invalid choice: 'nope'"),
    (["checkpoints", "--only", "nope"], "sdelab: error: --only: unknown model(s) nope"),
    (["frobnicate"], "sdelab: error: COMMAND: invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=lambda a: " ".join(a) if isinstance(a, list) else "")
def test_bad_arguments_give_one_line_and_status_2(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message), captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.out == ""


def test_module_entry_point_exits_2_without_traceback():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "sdelab", "train", "toy", "--steps", "-3"], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert r.stderr == "sdelab: error: --steps must be an integer in [1, 100_000_000], got -3\n"


def test_train_toy_then_sample_from_its_checkpoint(tmp_path, capsys):
    ck = tmp_path / "toy.pt"
    args = ["train", "toy", "--dataset", "moons", "--steps", "60", "--batch-size", "64", "--hidden", "32",
            "--depth", "1", "--out", str(ck), "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    assert "trained 60 steps" in capsys.readouterr().out
    meta = hub.file_meta(ck)
    assert meta["model"] == {"class": "MLPScore", "kwargs": {"dim": 2, "hidden": 32, "depth": 1, "emb_dim": 64}}
    assert meta["data"] == {"kind": "toy", "name": "moons"}
    # resume from --out: only the 20 missing steps run
    assert main(args[:5] + ["80"] + args[6:]) == 0
    assert "trained 80 steps (20 in this run" in capsys.readouterr().out
    for sampler, out in (("pf_euler", "s.pt"), ("ddim", "s.png")):
        assert main(["sample", "--checkpoint", str(ck), "--sampler", sampler, "--steps", "10", "--n", "50",
                     "--out", str(tmp_path / out)]) == 0
    x = torch.load(tmp_path / "s.pt")["samples"]
    assert x.shape == (50, 2) and torch.isfinite(x).all()
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif("mnist_unet" not in hub.available(), reason="mnist_unet not shipped")
def test_sample_pretrained_mnist_with_label_and_guidance(tmp_path):
    out = tmp_path / "digits.pt"
    assert main(["sample", "--pretrained", "mnist_unet", "--sampler", "dpm2m", "--steps", "5", "--n", "3",
                 "--label", "7", "--guidance", "1.0", "--out", str(out)]) == 0
    saved = torch.load(out)
    assert saved["samples"].shape == (3, 1, 28, 28) and saved["labels"].tolist() == [7, 7, 7]


def test_sample_clip_x0_keeps_the_eps_model_in_range_and_is_refused_by_score_samplers(tmp_path, capsys):
    out = tmp_path / "clipped.pt"
    assert main(["sample", "--pretrained", "mnist_unet_eps", "--sampler", "ddim", "--steps", "10", "--n", "4",
                 "--clip-x0", "1", "--out", str(out)]) == 0
    assert torch.load(out)["samples"].abs().max() < 1.5  # without clipping this model's DDIM samples reach +-20
    assert main(["sample", "--pretrained", "mnist_unet", "--sampler", "heun", "--steps", "2", "--n", "2",
                 "--clip-x0", "1", "--out", str(out)]) == 2
    assert "clip_x0" in capsys.readouterr().err
    assert main(["sample", "--pretrained", "mnist_unet", "--clip-x0", "0", "--out", str(out)]) == 2
    assert "--clip-x0" in capsys.readouterr().err


def test_sample_rejects_a_label_for_an_unconditional_model(tmp_path, capsys):
    assert main(["sample", "--pretrained", "ring", "--label", "3", "--steps", "2", "--n", "2", "--out",
                 str(tmp_path / "unused.pt")]) == 2
    assert "class-conditional" in capsys.readouterr().err


def test_checkpoints_list(capsys):
    assert main(["checkpoints", "--list"]) == 0
    out = capsys.readouterr().out
    assert "ring" in out and "MLPScore" in out


def test_train_on_a_finished_checkpoint_says_how_to_train_further(tmp_path, capsys):
    ck = tmp_path / "m.pt"
    args = ["train", "toy", "--steps", "30", "--batch-size", "32", "--hidden", "16", "--depth", "1",
            "--out", str(ck), "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    assert "trained 30 steps" in capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == f"{ck} already holds 30 steps; pass --steps N with N > 30 to train further\n"


def test_checkpoints_write_to_the_user_cache_or_directory(tmp_path, monkeypatch, capsys):
    import sdelab.recipes

    calls = []
    monkeypatch.setattr(sdelab.recipes, "make_checkpoints", lambda only, **kw: calls.append((only, kw)) or {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["checkpoints", "--only", "ring", "--no-progress"]) == 0
    assert calls[-1][0] == ["ring"] and calls[-1][1]["directory"] == tmp_path / "cache" / "sdelab" / "weights"
    assert main(["checkpoints", "--only", "ring", "--directory", str(tmp_path / "w"), "--no-progress"]) == 0
    assert calls[-1][1]["directory"] == tmp_path / "w"
    assert f"weights written to {tmp_path / 'w'}" in capsys.readouterr().out


def _nan_checkpoint(tmp_path):
    """A toy model whose weights are NaN: every sample it draws is NaN."""
    from sdelab.recipes import toy_spec

    model = hub.build_model(toy_spec(16, 1))
    with torch.no_grad():
        model.out.bias.fill_(float("nan"))
    meta = {"model": toy_spec(16, 1), "sde": hub.sde_spec(__import__("sdelab").VPSDE()), "prediction": "eps",
            "shape": [2]}
    hub.export_weights("nan", model, meta, directory=tmp_path, half=False)
    return tmp_path / "nan.safetensors"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_faults")
    ck = d / "toy.pt"
    assert main(["train", "toy", "--steps", "5", "--batch-size", "16", "--hidden", "16", "--depth", "1", "--out",
                 str(ck), "--no-progress", "--device", "cpu"]) == 0
    (d / "text.txt").write_text("hello")
    (d / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    (d / "empty.pt").write_bytes(b"")
    (d / "trunc.pt").write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    (d / "adir").mkdir()
    (d / "adir.png").mkdir()
    torch.save({"meta": {"model": {}}, "obj": Fraction(1, 3)}, d / "pickle.pt")  # not tensors or plain data
    return d


def _sample(d, *extra):
    return ["sample", "--checkpoint", str(d / "toy.pt"), "--steps", "3", "--n", "4", "--out", str(d / "s.pt"), *extra]


FAULTS = {  # name -> (argv from the folder, start of the one-line error)
    "device bogus": (lambda d: _sample(d, "--device", "bogus"), "--device must be cpu, cuda or cuda:N"),
    "device meta": (lambda d: _sample(d, "--device", "meta"), "--device must be cpu, cuda or cuda:N, got meta"),
    "train device bogus": (lambda d: ["train", "toy", "--device", "bogus"], "--device must be cpu, cuda"),
    "out is a directory": (lambda d: ["train", "toy", "--steps", "2", "--out", str(d / "adir"), "--device", "cpu"],
                           "checkpoint must be a file path"),
    "out is a text file": (lambda d: ["train", "toy", "--steps", "2", "--out", str(d / "text.txt"), "--device",
                                      "cpu", "--no-progress"], "is not a readable checkpoint"),
    "sample out is a directory": (lambda d: _sample(d)[:-2] + ["--out", str(d / "adir.png")], "--out must be a file"),
    "checkpoint text": (lambda d: ["sample", "--checkpoint", str(d / "text.txt")], "is not a readable checkpoint"),
    "checkpoint png": (lambda d: ["sample", "--checkpoint", str(d / "img.png")], "is not a file of tensors"),
    "checkpoint hostile pickle": (lambda d: ["sample", "--checkpoint", str(d / "pickle.pt")], "refused since"),
    "checkpoint empty": (lambda d: ["sample", "--checkpoint", str(d / "empty.pt")], "is not a readable checkpoint"),
    "checkpoint truncated": (lambda d: ["sample", "--checkpoint", str(d / "trunc.pt")], "is not a readable"),
    "guidance 1e30": (lambda d: _sample(d, "--guidance", "1e30"), "--guidance must be a number in [0, 100]"),
    "huge n": (lambda d: _sample(d, "--n", "10000000000000"), "--n must be an integer in [1, 100_000]"),
    "huge batch": (lambda d: _sample(d, "--batch-size", "10000000000000"), "--batch-size must be an integer in"),
    "huge sample steps": (lambda d: _sample(d, "--steps", "10000000000000"), "--steps must be an integer in"),
    "huge train steps": (lambda d: ["train", "toy", "--steps", "10000000000000"], "--steps must be an integer in"),
    "diverging lr": (lambda d: ["train", "toy", "--steps", "100", "--lr", "1e6", "--hidden", "16", "--depth", "1",
                                "--out", str(d / "lr.pt"), "--device", "cpu", "--no-progress"],
                     "training diverged: non-finite"),
}
if not torch.cuda.is_available():
    FAULTS["device cuda"] = (lambda d: _sample(d, "--device", "cuda"), "--device cuda: CUDA is not available")


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_faults_give_one_line_and_status_2(case, files, capsys):
    argv, message = FAULTS[case]
    assert main(argv(files)) == 2
    err = capsys.readouterr().err
    assert err.startswith("sdelab: error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and "weights_only=False" not in err


def test_non_finite_samples_are_not_written(files, capsys):
    ck, out = _nan_checkpoint(files / "nan"), files / "nan.pt"
    assert main(["sample", "--checkpoint", str(ck), "--steps", "3", "--n", "4", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sdelab: error: ") and "NaN" in err and err.count("\n") == 1  # the sampler's or ours
    assert not out.exists()
