"""Shipped weights: manifest checksums, every model loads and runs, clear errors, corruption detected."""
import hashlib
import json
import shutil

import pytest
import torch

from sdelab import hub
from sdelab.nets import MLPScore

SHIPPED = hub.available()


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_book_models_are_shipped():
    assert {"ring", "moons", "mnist_classifier", "mnist_unet", "mnist_unet_eps"} <= set(SHIPPED), SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_manifest_checksum_and_size_match_the_file(name):
    entry = hub.info(name)
    path = hub.WEIGHTS_DIR / entry["file"]
    assert path.is_file(), path
    assert _sha256(path) == entry["sha256"]
    assert path.stat().st_size == entry["bytes"]


def test_weights_total_at_most_15_mb():
    total = sum(p.stat().st_size for p in hub.WEIGHTS_DIR.iterdir() if p.is_file())
    assert total <= 15 * 2**20, total


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_loads_in_float32_and_runs(name):
    entry = hub.info(name)
    model = hub.pretrained(name)
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    cls = entry["model"]["class"]
    with torch.no_grad():
        if cls == "MLPScore":
            out = model(torch.zeros(3, 2), torch.full((3,), 0.5))
            assert out.shape == (3, 2)
        elif cls == "UNet":
            y = torch.tensor([0, 1, 2]) if model.num_classes else None
            out = model(torch.zeros(3, 1, 28, 28), torch.full((3,), 0.5), y)
            assert out.shape == (3, 1, 28, 28)
        else:
            out = model(torch.zeros(3, 1, 28, 28))
            assert out.shape == (3, 10)
    assert torch.isfinite(out).all()
    if "sde" in entry:
        hub.build_sde(entry["sde"])
        assert entry["training"]["device"] and entry["training"]["minutes"] >= 0


@pytest.mark.parametrize("name", ["mnist_unet", "mnist_unet_eps"])
def test_mnist_unets_record_how_they_were_trained_and_what_they_predict(name):
    entry = hub.info(name)
    for key in ("device", "steps", "minutes", "data", "batch_size", "weighting"):
        assert key in entry["training"], key
    assert "mnist_fid" in entry["metrics"]
    assert entry["prediction"] == {"mnist_unet": "v", "mnist_unet_eps": "eps"}[name]
    assert hub.pretrained(name).prediction == entry["prediction"]  # what eps_fn / score_fn / generate read


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(ValueError, match="unknown pretrained model 'nope'; available: .*ring"):
        hub.pretrained("nope")


def _copy(tmp_path):
    d = tmp_path / "weights"
    shutil.copytree(hub.WEIGHTS_DIR, d)
    return d


def test_corrupted_file_is_detected_by_its_checksum(tmp_path):
    d = _copy(tmp_path)
    path = d / hub.info("ring")["file"]
    hub.pretrained("ring", directory=d)  # the intact copy loads
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum mismatch"):
        hub.pretrained("ring", directory=d)


def test_missing_file_says_to_run_make_checkpoints(tmp_path):
    d = _copy(tmp_path)
    (d / hub.info("moons")["file"]).unlink()
    with pytest.raises(FileNotFoundError, match="make checkpoints"):
        hub.pretrained("moons", directory=d)


def test_export_then_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = MLPScore(hidden=16, depth=1, emb_dim=8)
    spec = {"class": "MLPScore", "kwargs": {"dim": 2, "hidden": 16, "depth": 1, "emb_dim": 8}}
    entry = hub.export_weights("tiny", model, {"model": spec, "note": "test"}, directory=tmp_path)
    assert entry["sha256"] == _sha256(tmp_path / "tiny.pt") and entry["note"] == "test"
    assert json.loads((tmp_path / "manifest.json").read_text())["tiny"]["file"] == "tiny.pt"
    assert hub.available(directory=tmp_path) == ["tiny"]
    loaded = hub.pretrained("tiny", directory=tmp_path)
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert b.dtype == a.dtype
        torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0, msg=k)  # exactly the fp16 rounding
    with pytest.raises(ValueError, match="spec"):
        hub.export_weights("bad", model, {"model": {"class": "Nope"}}, directory=tmp_path)
    with pytest.raises(ValueError, match="name"):
        hub.export_weights("a/b", model, {"model": spec}, directory=tmp_path)


def test_build_sde_round_trip():
    from sdelab import VESDE, VPSDE, SubVPSDE

    for sde in (VPSDE(beta_max=15.0, schedule="cosine"), SubVPSDE(), VESDE(sigma_max=10.0)):
        again = hub.build_sde(hub.sde_spec(sde))
        assert repr(again) == repr(sde)
