"""The MNIST lab's "Training, or loading a trained model" cell, GPU branch, run on the CPU with CUDA patched in and a
tiny budget: the model it trains is a v-network, as the chapter says (issue 11, the High item)."""
import json
from pathlib import Path

import pytest
import torch

import sdelab
from sdelab import hub, recipes

NB = Path(__file__).resolve().parents[1] / "book" / "part4" / "mnist_lab.ipynb"


def _training_cell() -> str:
    cells = ["".join(c["source"]) for c in json.loads(NB.read_text())["cells"] if c["cell_type"] == "code"]
    found = [c for c in cells if 'mnist_unet_config("cuda")' in c]
    assert len(found) == 1, "the lab should have one training cell"
    return found[0]


@pytest.mark.parametrize("prediction", ["v", "eps"])
def test_gpu_branch_trains_what_the_config_says(tmp_path, monkeypatch, prediction):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(sdelab, "quick", lambda: False)
    tiny = {**recipes.mnist_unet_config("cuda"), "base": 8, "steps": 4, "batch_size": 4, "chunk": 2, "amp": False,
            "warmup": 1}
    if prediction == "eps":  # the branch must follow the config, whatever it says
        tiny.update(prediction="eps", weighting="sigma2")
    monkeypatch.setattr(recipes, "mnist_unet_config", lambda device: dict(tiny))
    gen = torch.Generator().manual_seed(0)
    ns = {"sdelab": sdelab, "torch": torch, "hub": hub, "device": torch.device("cpu"),
          "images": torch.rand(16, 1, 28, 28, generator=gen) * 2 - 1, "labels": torch.arange(16) % 10}
    code = _training_cell()
    if prediction == "eps":  # the cell's last line asserts the shipped setting, v
        code = code.replace("assert model.prediction == cfg[\"prediction\"] == 'v'", "")
    exec(compile(code, "mnist_lab training cell", "exec"), ns)
    model = ns["model"]
    assert ns["result"].step == 4 and sum(p.numel() for p in model.parameters()) < 200_000  # base 8: 0.16 M (16: 0.64 M)
    assert model.prediction == prediction
    assert (tmp_path / "sdelab" / f"mnist_lab_unet_base8_{prediction}.pt").is_file()  # resumable checkpoint
