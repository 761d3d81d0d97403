"""Weights: manifest checksums, every shipped model loads and runs, safetensors and old .pt files, the user's folder
searched first and written by default, clear errors, corruption detected."""
import hashlib
import json
import shutil

import pytest
import torch

from sdelab import hub
from sdelab.nets import MLPScore

SHIPPED = hub.available(directory=hub.WEIGHTS_DIR)
W = hub.WEIGHTS_DIR


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_book_models_are_shipped():
    assert {"ring", "moons", "mnist_classifier", "mnist_unet", "mnist_unet_eps"} <= set(SHIPPED), SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_manifest_checksum_and_size_match_the_file(name):
    entry = hub.info(name, directory=W)
    path = W / entry["file"]
    assert path.suffix == ".safetensors"
    assert path.is_file(), path
    assert _sha256(path) == entry["sha256"]
    assert path.stat().st_size == entry["bytes"]


def test_weights_total_at_most_15_mb():
    total = sum(p.stat().st_size for p in hub.WEIGHTS_DIR.iterdir() if p.is_file())
    assert total <= 15 * 2**20, total


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_loads_in_float32_and_runs(name):
    entry = hub.info(name, directory=W)
    model = hub.pretrained(name, directory=W)
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
    entry = hub.info(name, directory=W)
    for key in ("device", "steps", "minutes", "data", "batch_size", "weighting"):
        assert key in entry["training"], key
    assert "mnist_fid" in entry["metrics"]
    assert entry["prediction"] == {"mnist_unet": "v", "mnist_unet_eps": "eps"}[name]
    assert hub.pretrained(name, directory=W).prediction == entry["prediction"]  # what eps_fn / score_fn / generate read


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(ValueError, match="unknown pretrained model 'nope'; available: .*ring"):
        hub.pretrained("nope", directory=W)


def _copy(tmp_path):
    d = tmp_path / "weights"
    shutil.copytree(hub.WEIGHTS_DIR, d)
    return d


def test_corrupted_file_is_detected_by_its_checksum(tmp_path):
    d = _copy(tmp_path)
    path = d / hub.info("ring", directory=W)["file"]
    hub.pretrained("ring", directory=d)  # the intact copy loads
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum mismatch"):
        hub.pretrained("ring", directory=d)


def test_missing_file_says_to_run_make_checkpoints(tmp_path):
    d = _copy(tmp_path)
    (d / hub.info("moons", directory=W)["file"]).unlink()
    with pytest.raises(FileNotFoundError, match="make checkpoints"):
        hub.pretrained("moons", directory=d)


def _tiny():
    torch.manual_seed(0)
    model = MLPScore(hidden=16, depth=1, emb_dim=8)
    return model, {"class": "MLPScore", "kwargs": {"dim": 2, "hidden": 16, "depth": 1, "emb_dim": 8}}


def test_export_then_load_round_trip(tmp_path):
    model, spec = _tiny()
    ref = {"mu": torch.arange(3, dtype=torch.float64), "cov": torch.eye(3, dtype=torch.float64)}
    entry = hub.export_weights("tiny", model, {"model": spec, "note": "test"}, directory=tmp_path,
                               extra={"stats": ref})
    assert entry["sha256"] == _sha256(tmp_path / "tiny.safetensors") and entry["note"] == "test"
    assert json.loads((tmp_path / "manifest.json").read_text())["tiny"]["file"] == "tiny.safetensors"
    assert hub.available(directory=tmp_path) == ["tiny"]
    loaded = hub.pretrained("tiny", directory=tmp_path)
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert b.dtype == a.dtype
        torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0, msg=k)  # exactly the fp16 rounding
    got = hub.load_extra("tiny", "stats", directory=tmp_path)  # extras keep their dtype (no fp16 rounding)
    assert got.keys() == ref.keys() and all(torch.equal(got[k], ref[k]) for k in ref)
    assert hub.file_meta(tmp_path / "tiny.safetensors") == {"model": spec, "note": "test"}
    with pytest.raises(ValueError, match="no extra tensors 'nope'"):
        hub.load_extra("tiny", "nope", directory=tmp_path)
    with pytest.raises(ValueError, match="spec"):
        hub.export_weights("bad", model, {"model": {"class": "Nope"}}, directory=tmp_path)
    with pytest.raises(ValueError, match="name"):
        hub.export_weights("a/b", model, {"model": spec}, directory=tmp_path)


def test_an_old_pt_weights_file_still_loads_with_weights_only(tmp_path, monkeypatch):
    model, spec = _tiny()
    state = {k: v.half() for k, v in model.state_dict().items()}
    path = tmp_path / "old.pt"
    torch.save({"format": hub.FORMAT, "name": "old", "state_dict": state, "meta": {"model": spec}}, path)
    entry = {"file": "old.pt", "sha256": _sha256(path), "bytes": path.stat().st_size, "model": spec}
    (tmp_path / "manifest.json").write_text(json.dumps({"old": entry}))
    calls = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k.get("weights_only")) or real(*a, **k))
    for loaded in (hub.pretrained("old", directory=tmp_path), hub.load_file(path)):
        for k, v in state.items():
            assert torch.equal(loaded.state_dict()[k], v.float()), k
    assert calls == [True, True]


def test_user_folder_is_searched_first_and_is_the_default_destination(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    user = tmp_path / "sdelab" / "weights"
    assert hub.user_dir() == user
    shipped = hub.pretrained("ring", directory=W)
    assert "ring" in hub.available() and hub.locate("ring") == W  # nothing in the user's folder yet
    model, spec = _tiny()
    entry = hub.export_weights("ring", model, {"model": spec, "note": "mine"})  # default: the user's folder
    assert (user / entry["file"]).is_file() and hub.locate("ring") == user and hub.info("ring")["note"] == "mine"
    mine = hub.pretrained("ring")
    assert mine.inp.weight.shape == (16, 2) != shipped.inp.weight.shape  # the user's model wins
    assert "note" not in hub.info("ring", directory=W)  # the shipped manifest is untouched
    assert set(hub.available()) == set(SHIPPED) | {"ring"}


def test_make_checkpoints_writes_to_the_user_folder_by_default(tmp_path, monkeypatch):
    from sdelab import recipes

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model, spec = _tiny()
    monkeypatch.setitem(recipes.RECIPES, "tiny_test", lambda **kw: (model, {"model": spec}))
    before = sorted(p.name for p in W.iterdir())
    out = recipes.make_checkpoints(["tiny_test"], progress=False)
    assert (tmp_path / "sdelab" / "weights" / out["tiny_test"]["file"]).is_file()
    assert sorted(p.name for p in W.iterdir()) == before  # never into the installed package
    assert hub.locate("tiny_test") == tmp_path / "sdelab" / "weights"


def test_build_sde_round_trip():
    from sdelab import VESDE, VPSDE, SubVPSDE

    for sde in (VPSDE(beta_max=15.0, schedule="cosine"), SubVPSDE(), VESDE(sigma_max=10.0)):
        again = hub.build_sde(hub.sde_spec(sde))
        assert repr(again) == repr(sde)


HOSTILE_SPECS = [
    ({"class": "UNet", "kwargs": {"in_channels": 1, "base": 4096}}, "base must be an integer in"),
    ({"class": "UNet", "kwargs": {"channels": [100000, 2]}}, "channels must be a list of 1 to 8 integers"),
    ({"class": "UNet", "kwargs": {"base": 16, "evil": 1}}, "takes no argument 'evil'"),
    ({"class": "MLPScore", "kwargs": {"hidden": 4096, "depth": 64}}, "more than MAX_PARAMETERS"),
    ({"class": "MLPScore", "kwargs": {"hidden": "128"}}, "hidden must be an integer"),
    ({"class": "MNISTClassifier", "kwargs": {"hidden": True}}, "hidden must be an integer"),
    ({"class": "os.system", "kwargs": {}}, "'class' in"),
]


@pytest.mark.parametrize("spec,message", HOSTILE_SPECS, ids=lambda v: str(v)[:40])
def test_a_small_file_cannot_build_a_huge_network(tmp_path, spec, message):
    """1 KB of metadata asking for UNet(base=4096) (gigabytes): refused before anything is allocated."""
    import tracemalloc

    from safetensors.torch import save_file

    path = tmp_path / "hostile.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"meta": json.dumps({"model": spec})})
    assert path.stat().st_size < 2000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=message):
            hub.load_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20


def test_weights_that_do_not_fit_the_spec_are_refused_before_building(tmp_path):
    from safetensors.torch import save_file

    from sdelab.recipes import toy_spec

    good = {k: v for k, v in hub.build_model(toy_spec(16, 1)).state_dict().items()}
    bad = dict(good, **{"out.weight": torch.zeros(2, 17)})
    for state, ok in ((good, True), (bad, False)):
        path = tmp_path / f"{ok}.safetensors"
        save_file(state, str(path), metadata={"meta": json.dumps({"model": toy_spec(16, 1)})})
        if ok:
            assert hub.load_file(path).out.weight.shape == (2, 16)
        else:
            with pytest.raises(ValueError, match=r"'out.weight': \(2, 17\) in the file, \(2, 16\) in the spec"):
                hub.load_file(path)
