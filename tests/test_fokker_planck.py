"""The 1-D Fokker–Planck solver against closed forms: mass, Gaussian and mixture marginals, order 2, OU."""
import numpy as np
import pytest
import torch

from sdelab import VPSDE
from sdelab import fokker_planck as fp

SDE = VPSDE()  # linear schedule, beta from 0.1 to 20
F, G = fp.sde_coefficients(SDE)
TS = np.array([0.0, 0.05, 0.2, 0.5, 1.0])


def vp_mixture(x, t, w, mu, s):
    """Exact VP marginal of a Gaussian mixture: sum_k w_k N(alpha mu_k, alpha^2 s_k^2 + sigma^2)."""
    tt = torch.tensor(float(t), dtype=torch.float64)
    a, sig = float(SDE.mean_coeff(tt)), float(SDE.std(tt))
    return fp.gaussian_mixture_pdf(x, w, a * np.asarray(mu), np.sqrt(a**2 * np.asarray(s) ** 2 + sig**2))


def test_sde_coefficients_are_the_vp_drift_and_diffusion():
    f, g = fp.sde_coefficients(SDE)
    x = np.linspace(-2, 2, 5)
    beta = 0.1 + 19.9 * 0.3
    np.testing.assert_allclose(f(x, 0.3), -0.5 * beta * x, rtol=1e-12)
    assert g(0.3) == pytest.approx(np.sqrt(beta), rel=1e-12)


def test_mass_is_conserved_to_round_off():
    x = fp.cell_grid(-5, 5, 200)
    p0 = vp_mixture(x, 0, [0.3, 0.7], [-2.0, 1.0], [0.2, 0.4])
    P = fp.solve(F, G, p0, x, TS)
    np.testing.assert_allclose(fp.mass(P, x), fp.mass(p0, x), rtol=0, atol=1e-12)


def test_vp_gaussian_marginal_and_second_order_convergence():
    """L1 error to N(alpha m0, alpha^2 s0^2 + sigma^2) at the worst of the times: 2.7e-3, 6.8e-4, 1.7e-4."""
    w, mu, s = [1.0], [1.5], [0.3]
    errors = []
    for n in (100, 200, 400):
        x = fp.cell_grid(-5, 5, n)
        P = fp.solve(F, G, vp_mixture(x, 0, w, mu, s), x, TS, rtol=1e-10, atol=1e-13)
        errors.append(max(fp.l1_distance(P[k], vp_mixture(x, t, w, mu, s), x) for k, t in enumerate(TS)))
    errors = np.array(errors)
    assert errors[-1] < 2.5e-4
    order = np.log2(errors[:-1] / errors[1:])
    assert np.all((order > 1.8) & (order < 2.2)), order


def test_gaussian_mixture_marginal():
    w, mu, s = [0.25, 0.5, 0.25], [-2.0, 0.0, 2.0], [0.25, 0.25, 0.25]
    x = fp.cell_grid(-5, 5, 400)
    P = fp.solve(F, G, vp_mixture(x, 0, w, mu, s), x, TS)
    for k, t in enumerate(TS):
        assert fp.l1_distance(P[k], vp_mixture(x, t, w, mu, s), x) < 2e-3, t


def test_ou_relaxes_to_its_stationary_density():
    """dx = -x dt + sqrt(2) dw has the stationary density N(0, 1); start from a two-bump density."""
    x = fp.cell_grid(-6, 6, 240)
    p0 = fp.gaussian_mixture_pdf(x, [0.5, 0.5], [-2.5, 2.0], [0.3, 0.5])
    P = fp.solve(lambda x, t: -x, np.sqrt(2.0), p0, x, [0.0, 1.0, 12.0])
    stationary = fp.gaussian_mixture_pdf(x, [1.0], [0.0], [1.0])
    assert fp.l1_distance(P[1], stationary, x) > 0.05  # not there yet at t = 1
    assert fp.l1_distance(P[-1], stationary, x) < 1e-3


def test_heat_equation_with_constant_g():
    """f = 0, g = 0.5: N(0, s0^2) spreads to N(0, s0^2 + g^2 t)."""
    x = fp.cell_grid(-4, 4, 320)
    p0 = fp.gaussian_mixture_pdf(x, [1.0], [0.0], [0.5])
    P = fp.solve(lambda x, t: 0 * x, 0.5, p0, x, [0.0, 2.0])
    exact = fp.gaussian_mixture_pdf(x, [1.0], [0.0], [np.sqrt(0.25 + 0.25 * 2.0)])
    assert fp.l1_distance(P[1], exact, x) < 1e-4


def test_current_gives_the_effective_drift_of_a_gaussian():
    """For p = N(0, 1) under the VP-SDE, J/p = f - g^2/2 d/dx log p = -beta x/2 + beta x/2 = 0."""
    x = fp.cell_grid(-4, 4, 400)
    p = fp.gaussian_mixture_pdf(x, [1.0], [0.0], [1.0])
    xf, J = fp.current(p, x, F, G, 0.5)
    assert xf.shape == J.shape == (399,)
    assert np.abs(J).max() < 1e-3


def test_lsoda_and_radau_agree_with_bdf():
    x = fp.cell_grid(-5, 5, 100)
    p0 = vp_mixture(x, 0, [1.0], [1.0], [0.5])
    ref = fp.solve(F, G, p0, x, [0.0, 0.5])
    for method in ("Radau", "LSODA"):
        np.testing.assert_allclose(fp.solve(F, G, p0, x, [0.0, 0.5], method=method), ref, atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"x": np.array([0.0, 1.0, 3.0, 4.0])}, "uniform"),
    ({"x": np.array([[0.0, 1.0, 2.0]])}, "1-D grid"),
    ({"p0": "negative"}, "non-negative"),
    ({"p0": "unnormalised"}, "integrate to 1"),
    ({"p0": "nan"}, "non-finite"),
    ({"p0": "short"}, "shape of x"),
    ({"ts": [0.0, 0.5, 0.5]}, "strictly increasing"),
    ({"ts": [0.0, np.nan]}, "finite times"),
    ({"g": -1.0}, "g\\(t\\) must be >= 0"),
    ({"f": lambda x, t: x[:-1]}, "shape of x"),
    ({"method": "RK45"}, "stiff"),
])
def test_bad_inputs_raise_clear_errors(kwargs, match):
    x = kwargs.get("x", fp.cell_grid(-4, 4, 50))
    p0 = fp.gaussian_mixture_pdf(x, [1.0], [0.0], [1.0]) if x.ndim == 1 and x.size == 50 else np.ones(x.shape)
    special = {"negative": p0 - 0.01, "unnormalised": 2 * p0, "nan": np.where(x > 0, np.nan, p0), "short": p0[:-1]}
    if isinstance(kwargs.get("p0"), str):
        p0 = special[kwargs["p0"]]
    args = dict(f=lambda x, t: -x, g=1.0, p0=p0, x=x, ts=[0.0, 0.5])
    args.update({k: v for k, v in kwargs.items() if k not in ("p0", "x")})
    with pytest.raises(ValueError, match=match):
        fp.solve(args.pop("f"), args.pop("g"), args.pop("p0"), args.pop("x"), args.pop("ts"), **args)


def test_coarse_grid_with_weak_noise_warns():
    x = fp.cell_grid(-4, 4, 20)
    p0 = fp.gaussian_mixture_pdf(x, [1.0], [0.0], [1.0])
    p0 = p0 / fp.mass(p0, x)
    with pytest.warns(RuntimeWarning, match="Peclet"):
        fp.solve(lambda x, t: -x, 0.1, p0, x, [0.0, 0.1])


def test_helpers_validate():
    with pytest.raises(ValueError, match="n must be"):
        fp.cell_grid(0, 1, 2)
    with pytest.raises(ValueError, match="lo < hi"):
        fp.cell_grid(1, 0, 10)
    with pytest.raises(ValueError, match="sum to 1"):
        fp.gaussian_mixture_pdf(0.0, [0.5, 0.6], [0, 1], [1, 1])
    with pytest.raises(ValueError, match="same non-zero length"):
        fp.gaussian_mixture_pdf(0.0, [1.0], [0, 1], [1])
    x = fp.cell_grid(-1, 1, 4)
    assert fp.mass(np.full(4, 0.5), x) == pytest.approx(1.0)
    assert fp.solve(lambda x, t: 0 * x, 1.0, np.full(4, 0.5), x, [0.3]).shape == (1, 4)


def test_complex_none_and_x_dependent_coefficients_are_refused():
    """NumPy would drop an imaginary part or turn None into NaN silently; each raises naming what is wrong."""
    from sdelab import fokker_planck as fp

    x = fp.cell_grid(-4, 4, 40)
    p0 = fp.gaussian_mixture_pdf(x, [1.0], [0.0], [1.0])
    p0 = p0 / fp.mass(p0, x)
    ok = lambda x, t: -x  # noqa: E731
    cases = [
        (lambda: fp.solve(lambda x, t: -x + 0j, 1.0, p0, x, [0, 0.1]), r"^f\(x, t\) must be real numbers, got complex"),
        (lambda: fp.solve(lambda x, t: None, 1.0, p0, x, [0, 0.1]), r"^f\(x, t\) must be real numbers, got None"),
        (lambda: fp.solve(ok, lambda t: None, p0, x, [0, 0.1]), r"^g\(t\) must be real numbers, got None"),
        (lambda: fp.solve(ok, lambda t: np.ones(3), p0, x, [0, 0.1]), r"^g\(t\) must be one number"),
        (lambda: fp.solve(ok, 1.0, p0.astype(complex), x, [0, 0.1]), r"^p0 must be real numbers"),
        (lambda: fp.current(p0, x + 0j, ok, 1.0, 0.0), r"^x must be real numbers"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    assert np.isfinite(fp.solve(ok, lambda t: np.float32(1.0), p0, x, [0, 0.1])).all()
