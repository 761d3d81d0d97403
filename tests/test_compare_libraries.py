"""Tests of tools/compare_libraries.py: the conversions without the libraries, one end-to-end run with diffusers."""
import importlib.util
import math
from pathlib import Path

import pytest
import torch

from sdelab.sde import VPSDE
from sdelab.toy import GaussianMixture, ring

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("compare_libraries", ROOT / "tools" / "compare_libraries.py")
cl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cl)

F64 = torch.float64


def test_ve_sigma_inverts():
    sde = VPSDE()
    t = torch.linspace(1e-3, 1.0, 1001, dtype=F64)
    back = cl.t_of_ve_sigma(sde, cl.ve_sigma(sde, t))
    assert torch.allclose(back, t, rtol=1e-10, atol=0)   # closed form, float64


def test_ve_sigma_is_std_over_mean_coeff():
    sde = VPSDE()
    t = torch.tensor([1e-3, 0.3, 1.0], dtype=F64)
    expected = torch.sqrt(torch.expm1(sde.schedule.integral(t)))   # sigma_VE^2 = e^B - 1 for VP
    assert torch.allclose(cl.ve_sigma(sde, t), expected, rtol=1e-12)


def test_t_of_ve_sigma_refuses_other_sdes():
    with pytest.raises(ValueError, match="linear schedule"):
        cl.t_of_ve_sigma(VPSDE(schedule="cosine"), torch.tensor([1.0]))


def test_denoiser_is_x_minus_sigma_eps():
    sde, mix = VPSDE(), ring(dtype=F64)
    eps_fn = mix.eps_fn(sde)
    t = torch.tensor([0.01, 0.2, 0.5, 0.9], dtype=F64)
    sigma = cl.ve_sigma(sde, t)
    x_ve = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=F64) * 3
    got = cl.denoiser(eps_fn, sde)(x_ve, sigma)
    want = x_ve - sigma[:, None] * eps_fn(sde.mean_coeff(t)[:, None] * x_ve, t)
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)


def test_denoiser_is_the_posterior_mean_of_one_gaussian():
    # one component N(mu, s^2 I): E[x0 | x_VE] = mu + s^2 (x_VE - mu) / (s^2 + sigma^2)
    sde, mu, s = VPSDE(), torch.tensor([[1.0, -2.0]], dtype=F64), 0.3
    mix = GaussianMixture(mu, s, dtype=F64)
    sigma = cl.ve_sigma(sde, torch.tensor([0.05, 0.4, 0.8], dtype=F64))
    x_ve = torch.randn(3, 2, generator=torch.Generator().manual_seed(1), dtype=F64) * 2
    want = mu + s**2 * (x_ve - mu) / (s**2 + sigma[:, None] ** 2)
    assert torch.allclose(cl.denoiser(mix.eps_fn(sde), sde)(x_ve, sigma), want, rtol=1e-8, atol=1e-10)


def test_eps_model_maps_timestep_to_t():
    sde, mix = VPSDE(), ring(dtype=F64)
    eps_fn = mix.eps_fn(sde)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    for k in (0, 499, 998.5, 999):
        t = torch.full((5,), (k + 1) / 1000, dtype=F64)
        assert torch.equal(cl.eps_model(eps_fn)(x, torch.tensor(k)), eps_fn(x, t))


def test_discrete_alphas_cumprod_matches_vpsde_within_stated_mismatch():
    sde = VPSDE()
    acp = cl.discrete_alphas_cumprod()
    abar = sde.mean_coeff(cl.timestep_to_t(torch.arange(1000))) ** 2
    rel = ((acp - abar).abs() / abar).max()
    assert rel <= cl.ALPHA_BAR_MISMATCH
    assert cl.schedule_mismatch(sde)["alpha_bar_rel"] == pytest.approx(float(rel), rel=1e-12)
    assert acp[0] == pytest.approx(1 - 1e-4, rel=1e-15)   # diffusers' first beta


def test_exact_betas_close_the_mismatch():
    sde = VPSDE()
    acp = torch.cumprod(1 - sde.exact_discrete_betas(1000), 0)
    abar = sde.mean_coeff(cl.timestep_to_t(torch.arange(1000))) ** 2
    assert torch.allclose(acp, abar, rtol=1e-11)


def test_only_rejects_unknown_names():
    names = ["sdelab:ddim_sample/logsnr", "diffusers:ddim"]
    assert cl.select(names, ["diffusers"]) == ["diffusers:ddim"]
    with pytest.raises(ValueError, match="--only"):
        cl.select(names, ["nope"])


class FakeSampling:
    """k-diffusion's `get_sigmas_karras` (Karras et al. eq. 5, then a final 0) and samplers that record their sigmas."""

    def __init__(self):
        self.sigmas = None

    @staticmethod
    def get_sigmas_karras(n, sigma_min, sigma_max, rho=7.0):
        ramp = torch.linspace(0, 1, n)
        s = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
        return torch.cat([s, s.new_zeros(1)])

    def _record(self, model, x, sigmas, disable=True):
        self.sigmas = sigmas
        for _ in range(len(sigmas) - 1):
            model(x, sigmas[0])
        return x

    sample_dpmpp_2m = sample_euler = _record


@pytest.mark.parametrize("end", ["0", "eps"])
def test_run_kdiff_ends_where_asked_with_the_budget_spent(end):
    # at eps: no final 0, the last sigma is sigma(eps), as many steps as the budget, the VP state alpha(eps) x returned
    sde, fake = VPSDE(), FakeSampling()
    x_T = torch.ones(3, 2, dtype=F64)
    eps_fn = lambda x, t: torch.zeros_like(x)
    x, nfe = cl.run_kdiff(fake, "dpmpp_2m", 12, sde, x_T, eps_fn, end=end)
    assert nfe == 12 and len(fake.sigmas) == 13
    assert fake.sigmas[0] == pytest.approx(float(cl.ve_sigma(sde, 1.0)), rel=1e-12)
    last = float(fake.sigmas[-1])
    if end == "0":
        assert last == 0 and torch.equal(x, x_T * fake.sigmas[0])
    else:
        assert last == pytest.approx(float(cl.ve_sigma(sde, cl.EPS)), rel=1e-12)
        alpha = float(sde.mean_coeff(torch.tensor(cl.EPS, dtype=F64)))
        assert torch.allclose(x, alpha * x_T * fake.sigmas[0], rtol=1e-14) and alpha < 1


def test_every_eps_row_is_named_for_its_end_point():
    rows = cl.build_rows(None, FakeSampling(), cl.make_problem(4))
    ends = {name: row[2] for name, row in rows.items() if name.startswith("k-diffusion:")}
    assert ends and all((v == "eps") == k.endswith("@eps") for k, v in ends.items())
    assert {k.removesuffix("@eps") for k in ends} == {f"k-diffusion:{k}" for k in cl.KDIFF}


@pytest.mark.skipif(importlib.util.find_spec("diffusers") is None, reason="diffusers not installed (see INSTALL)")
def test_diffusers_dpmpp_2m_karras_end_to_end():
    import diffusers as lib

    sched = cl.make_scheduler(lib, "dpmpp_2m_karras")
    # diffusers builds alphas_cumprod in float32: equal to the float64 formula within float32 cumprod rounding
    assert torch.allclose(sched.alphas_cumprod.to(F64), cl.discrete_alphas_cumprod(), rtol=1e-4)
    (sde, _, eps_fn, x_T, quality), ref = cl.thresholds(2000)
    x, nfe = cl.run_scheduler(sched, 32, x_T, eps_fn)
    assert nfe == 32 and torch.isfinite(x).all()
    assert quality(x)[0] <= ref["sw_max"]   # bound: grid_measure's loose mark at n = 2000 (1.1 x the converged W2)


def test_scan_finds_the_fewest_nfe_and_where_strict_holds_from_on():
    # fake sampler: loose from 8 on, strict (spread) from 16, p_0 strict from 20; its spread error also crosses zero
    # at 12 (strict there, not at 14), so "first strict" is 12 and "strict from" 16
    ref = {"sw_max": 1.0, "spread_tol": 0.01}
    runner = lambda b: (torch.full((2, 2), float(b), dtype=F64), b)
    quality = lambda x: (8 / x[0, 0].item(), 0.0 if x[0, 0].item() == 12 else 0.16 / x[0, 0].item())
    quality0 = lambda x: (8 / x[0, 0].item(), 0.2 / x[0, 0].item())
    row = cl.scan(runner, quality, quality0, ref, ends_at_zero=True, nfes=[6, 8, 12, 14, 16, 20, 24, 32])
    assert (row["loose"], row["strict"], row["strict_from"]) == (8, 12, 16)
    assert (row["loose_p0"], row["strict_p0"], row["strict_from_p0"]) == (8, 20, 20)
    assert [r[0] for r in row["runs"]] == [6, 8, 12, 14, 16, 20, 24, 32]   # every budget is tried


def test_strict_from_needs_every_larger_budget_to_pass():
    from sdelab.grid_measure import strict_from

    assert strict_from([(8, False), (12, True), (16, False), (20, True), (24, True)]) == 20
    assert strict_from([(24, True), (8, True), (16, True)]) == 8      # order of the runs does not matter
    assert strict_from([(8, True), (16, False)]) is None


@pytest.mark.skipif(importlib.util.find_spec("diffusers") is not None, reason="only without the libraries")
def test_missing_libraries_exit_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        cl.main(["--n", "200", "--only", "diffusers:ddim"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "pip install --target" in err and len(err.splitlines()) == 1
