"""Recipes: every sampler by name, labels and guidance, chunked training that resumes and stops on request."""
import pytest
import torch

from sdelab import VPSDE, hub, recipes, toy
from sdelab.nets import MLPScore

SDE = VPSDE()


def _mlp(**kw):
    torch.manual_seed(0)
    return MLPScore(hidden=16, depth=1, emb_dim=8, **kw).eval()


@pytest.mark.parametrize("sampler", recipes.SAMPLER_NAMES)
def test_generate_with_every_sampler(sampler):
    x, y = recipes.generate(_mlp(), SDE, 7, sampler=sampler, steps=4, shape=(2,), batch_size=5,
                            generator=torch.Generator().manual_seed(0))
    assert x.shape == (7, 2) and y is None and torch.isfinite(x).all()
    again, _ = recipes.generate(_mlp(), SDE, 7, sampler=sampler, steps=4, shape=(2,), batch_size=5,
                                generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, again)  # a seed fixes the samples


def test_generate_labels_and_guidance():
    model = _mlp(num_classes=3)
    _, y = recipes.generate(model, SDE, 7, sampler="ddim", steps=3, shape=(2,))
    assert y.tolist() == [0, 1, 2, 0, 1, 2, 0]  # the classes in turn
    _, y = recipes.generate(model, SDE, 4, sampler="ddim", steps=3, shape=(2,), label=2, guidance=1.5)
    assert y.tolist() == [2, 2, 2, 2]
    with pytest.raises(ValueError, match="label must lie in 0..2"):
        recipes.generate(model, SDE, 2, steps=2, shape=(2,), label=3)
    with pytest.raises(ValueError, match="class-conditional"):
        recipes.generate(_mlp(), SDE, 2, steps=2, shape=(2,), label=1)
    with pytest.raises(ValueError, match="sampler must be one of"):
        recipes.generate(_mlp(), SDE, 2, sampler="nope", shape=(2,))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_generate_clip_x0(sampler):
    # on a grid ending at t = 0 the last step returns the (clamped) x0_hat, so every sample lies in [-c, c]
    kw = dict(sampler=sampler, steps=4, shape=(2,), eps=0.0)
    plain, _ = recipes.generate(_mlp(), SDE, 50, generator=torch.Generator().manual_seed(0), **kw)
    clipped, _ = recipes.generate(_mlp(), SDE, 50, generator=torch.Generator().manual_seed(0), clip_x0=0.5, **kw)
    assert plain.abs().max() > 0.5 and clipped.abs().max() <= 0.5
    with pytest.raises(ValueError, match="clip_x0 applies"):
        recipes.generate(_mlp(), SDE, 2, sampler="heun", steps=2, shape=(2,), clip_x0=1.0)


def test_train_until_resumes_in_chunks_and_stops_on_callback(tmp_path):
    ck = tmp_path / "run.pt"
    seen = []

    def stop(res):
        seen.append(res.step)
        return res.step >= 60

    res = recipes.train_until(_mlp(), SDE, toy.DATASETS["ring"], steps=200, chunk=30, checkpoint=ck, callback=stop,
                              progress=False, batch_size=32, device="cpu", generator=torch.Generator().manual_seed(0))
    assert seen == [30, 60] and res.step == 60 and len(res.losses) == 60 and res.start_step == 0
    # the same run without stopping early is the same run: chunks resume exactly from the checkpoint
    ref = recipes.train_until(_mlp(), SDE, toy.DATASETS["ring"], steps=60, chunk=60, progress=False, batch_size=32,
                              device="cpu", generator=torch.Generator().manual_seed(0))
    for a, b in zip(res.ema.state_dict().values(), ref.ema.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_toy_quality_of_the_shipped_ring_is_near_the_floor():
    if "ring" not in hub.available():
        pytest.skip("ring not shipped")
    # the untrained network's samples are ~0.5 away; the shipped one is within the noise of the floor
    sw, floor = recipes.toy_quality(hub.pretrained("ring"), SDE, toy.DATASETS["ring"], n=1000, steps=100)
    assert 0 < sw < 1.5 * floor, (sw, floor)
    sw0, _ = recipes.toy_quality(_mlp(), SDE, toy.DATASETS["ring"], n=1000, steps=100)
    assert sw0 > 3 * floor, (sw0, floor)


def test_make_checkpoints_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown model"):
        recipes.make_checkpoints(["nope"])


def test_cpu_config_reproduces_the_shipped_mnist_unet_record():
    # `make checkpoints ONLY=mnist_unet` on a CPU must be the run that made the shipped model
    cfg, entry = recipes.mnist_unet_config("cpu"), hub.info("mnist_unet", directory=hub.WEIGHTS_DIR)
    tr = entry["training"]
    for key in ("batch_size", "lr", "ema_decay", "warmup", "p_uncond", "weighting"):
        assert tr[key] == cfg[key], key
    assert entry["prediction"] == cfg["prediction"] == "v" and entry["model"] == recipes.mnist_spec(cfg["base"])
    assert entry["data"]["n_train"] == 60000 and tr["device"] == "cpu"
    # stopped by steps or by time: the budget is checked at the end of each chunk, so it may run over by one chunk
    assert tr["steps"] <= cfg["steps"] and tr["minutes"] <= 1.1 * cfg["seconds"] / 60


def test_train_mnist_unet_trains_what_the_config_says():
    cfg = {**recipes.mnist_unet_config("cpu"), "base": 8, "steps": 2, "batch_size": 4, "chunk": 1, "warmup": 1}
    x, y = torch.rand(8, 1, 28, 28) * 2 - 1, torch.arange(8)
    for pred, weighting in (("v", "v"), ("eps", "sigma2")):
        res = recipes.train_mnist_unet(x, y, {**cfg, "prediction": pred, "weighting": weighting}, device="cpu",
                                       progress=False)
        assert res.step == 2 and res.ema.prediction == res.model.prediction == pred


@pytest.mark.parametrize("sampler", ["ddim", "pf_euler", "heun", "dpm2m", "dpm3m", "unipc"])
def test_deterministic_samples_do_not_depend_on_the_batch_size(sampler):
    """Sample i depends on the seed and i only: batch sizes 1, 3 and n give the same samples."""
    torch.manual_seed(0)
    model = MLPScore(dim=2, hidden=16, depth=1)
    runs = [recipes.generate(model, SDE, 20, sampler=sampler, steps=4, shape=(2,), batch_size=bs,
                             generator=torch.Generator().manual_seed(3))[0] for bs in (1, 3, 20)]
    for x in runs[1:]:
        torch.testing.assert_close(x, runs[0], rtol=1e-5, atol=1e-5)
    assert runs[0].std() > 0.1  # not a degenerate output


def test_stochastic_samples_are_reproducible_and_match_one_batch():
    """euler_maruyama with batch_size >= n is one batch: batch sizes n and 2n give the same samples for a seed, and
    another seed gives others (smaller batches change the per-step noise: see `generate`'s docstring)."""
    torch.manual_seed(0)
    model = MLPScore(dim=2, hidden=16, depth=1)

    def run(bs, seed=3):
        return recipes.generate(model, SDE, 6, sampler="euler_maruyama", steps=4, shape=(2,), batch_size=bs,
                                generator=torch.Generator().manual_seed(seed))[0]

    torch.testing.assert_close(run(6), run(12), rtol=0, atol=0)
    assert not torch.allclose(run(6), run(6, seed=4))


def test_sampler_function_names_what_generate_runs():
    from sdelab.multistep import dpm_solver_3m

    assert recipes.sampler_function("dpm3m") is dpm_solver_3m and "dpm3m" in recipes.SAMPLER_NAMES
    for bad in ("dpm_solver_3m", None, 3):
        with pytest.raises(ValueError, match="sampler must be one of"):
            recipes.sampler_function(bad)
