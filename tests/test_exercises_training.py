"""The checkers of "Training: learning the score needs no SDE solver" accept the reference solutions and name each
typical mistake."""
import numpy as np
import pytest
import torch

from sdelab import append_dims
from sdelab.exercises import WrongAnswer
from sdelab.exercises.training import check_dsm_eps_loss, check_from_eps, check_gaussian_denoiser


# ------------------------------------------------------------------ check_dsm_eps_loss
def _coef(sde, t, x):
    return append_dims(sde.mean_coeff(t), x.ndim), append_dims(sde.std(t), x.ndim)


def dsm_eps_loss(model, sde, x0, t, eps):
    a, s = _coef(sde, t, x0)
    return ((model(a * x0 + s * eps, t) - eps) ** 2).mean()


def test_dsm_eps_loss_accepts_solution():
    assert check_dsm_eps_loss(dsm_eps_loss).startswith("Correct!")
    # torch's own mse_loss is the same thing
    def with_mse(model, sde, x0, t, eps):
        a, s = _coef(sde, t, x0)
        return torch.nn.functional.mse_loss(model(a * x0 + s * eps, t), eps)
    assert check_dsm_eps_loss(with_mse).startswith("Correct!")


def _xt(build):
    def loss(model, sde, x0, t, eps):
        a, s = _coef(sde, t, x0)
        return ((model(build(a, s, x0, eps), t) - eps) ** 2).mean()
    return loss


def _res(reduce):
    def loss(model, sde, x0, t, eps):
        a, s = _coef(sde, t, x0)
        return reduce(model(a * x0 + s * eps, t), eps, x0, s)
    return loss


@pytest.mark.parametrize("wrong, match", [
    (_xt(lambda a, s, x0, e: a * x0 + e), "scaled by sigma"),
    (_xt(lambda a, s, x0, e: x0 + s * e), "forgot the data coefficient"),
    (_xt(lambda a, s, x0, e: a**2 * x0 + s * e), "you squared it"),
    (_xt(lambda a, s, x0, e: a * x0 + s**2 * e), "standard deviation sigma"),
    (_xt(lambda a, s, x0, e: a * x0 - s * e), "sign"),
    (_xt(lambda a, s, x0, e: a * x0), "no noise"),
    (_xt(lambda a, s, x0, e: x0), "not the clean x0"),
    (_xt(lambda a, s, x0, e: s * x0 + a * e), "swapped"),
    (_xt(lambda a, s, x0, e: a * x0 + 1.1 * s * e), "model was called with a wrong x_t"),
    (_res(lambda o, e, x0, s: ((o - e) ** 2).sum(1).mean()), "summed over the coordinates"),
    (_res(lambda o, e, x0, s: ((o - e) ** 2).sum()), "summed over everything"),
    (_res(lambda o, e, x0, s: ((o + e) ** 2).mean()), "sign error"),
    (_res(lambda o, e, x0, s: ((o - x0) ** 2).mean()), "not onto the clean data"),
    (_res(lambda o, e, x0, s: ((o + e / s) ** 2).mean()), r"\*score\* target"),
    (_res(lambda o, e, x0, s: ((o - e / s) ** 2).mean()), "neither target"),
    (_res(lambda o, e, x0, s: ((-o / s + e / s) ** 2).mean()), "dropped the weight lambda = sigma\\^2"),
    (_res(lambda o, e, x0, s: (s**2 * (o - e) ** 2).mean()), "do not weight it again"),
    (_res(lambda o, e, x0, s: (o - e).abs().mean()), "square the residual"),
    (_res(lambda o, e, x0, s: ((o - e) ** 2).mean().sqrt()), "RMSE"),
    (_res(lambda o, e, x0, s: ((o - e) ** 2).mean() * 1.5), "it should be"),
    (_res(lambda o, e, x0, s: ((o - e) ** 2).mean().item()), "call .item\\(\\)"),
    (_res(lambda o, e, x0, s: ((o - e) ** 2).mean(1)), "one number"),
    (_res(lambda o, e, x0, s: ((o - e) ** 2).mean().detach()), "detached"),
])
def test_dsm_eps_loss_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_dsm_eps_loss(wrong)


def test_dsm_eps_loss_other_failures():
    with pytest.raises(WrongAnswer, match="function"):
        check_dsm_eps_loss(0.5)
    with pytest.raises(WrongAnswer, match="never calls model"):
        check_dsm_eps_loss(lambda model, sde, x0, t, eps: (eps**2).mean())
    with pytest.raises(WrongAnswer, match="continuous times"):
        check_dsm_eps_loss(lambda model, sde, x0, t, eps: ((model(_coef(sde, t, x0)[0] * x0 + _coef(sde, t, x0)[1]
                                                                  * eps, 1000 * t) - eps) ** 2).mean())

    def fresh_noise(model, sde, x0, t, eps):
        x_t, _ = sde.perturb(x0, t, generator=torch.Generator().manual_seed(0))
        return ((model(x_t, t) - eps) ** 2).mean()
    with pytest.raises(WrongAnswer, match="not the given noise"):
        check_dsm_eps_loss(fresh_noise)

    def no_broadcast(model, sde, x0, t, eps):
        return ((model(sde.mean_coeff(t) * x0 + sde.std(t) * eps, t) - eps) ** 2).mean()
    with pytest.raises(WrongAnswer, match="append_dims"):
        check_dsm_eps_loss(no_broadcast)


# ------------------------------------------------------------------ check_from_eps
def from_eps(eps_hat, x_t, t, sde):
    a, s = _coef(sde, t, x_t)
    return -eps_hat / s, (x_t - s * eps_hat) / a


def test_from_eps_accepts_solution_and_the_package():
    assert check_from_eps(from_eps).startswith("Correct!")
    from sdelab import param
    assert check_from_eps(lambda e, x, t, sde: (param.eps_to_score(e, x, t, sde),
                                                param.eps_to_x0(e, x, t, sde))).startswith("Correct!")


def _vp_alpha(x, s):
    return torch.sqrt(1 - s**2) if s.max() < 1 else torch.full_like(s, 0.5)  # a VP-only alpha, wrong for VE


def _score(fn):
    return lambda e, x, t, sde: (fn(e, x, *_coef(sde, t, x)), from_eps(e, x, t, sde)[1])


def _x0(fn):
    return lambda e, x, t, sde: (from_eps(e, x, t, sde)[0], fn(e, x, *_coef(sde, t, x)))


@pytest.mark.parametrize("wrong, match", [
    (_score(lambda e, x, a, s: -e / s**2), "not sigma\\^2"),
    (_score(lambda e, x, a, s: e / s), "sign error"),
    (_score(lambda e, x, a, s: -s * e), "inverse map"),
    (_score(lambda e, x, a, s: -e), "forgot to divide by sigma"),
    (_score(lambda e, x, a, s: -e / a), "not -eps/alpha"),
    (_score(lambda e, x, a, s: -1.1 * e / s), "the score is wrong"),
    (_x0(lambda e, x, a, s: x - s * e), "forgot to divide by alpha"),
    (_x0(lambda e, x, a, s: (x - e) / a), "subtract sigma \\* eps_hat"),
    (_x0(lambda e, x, a, s: (x + s * e) / a), "sign error"),
    (_x0(lambda e, x, a, s: (x - s * e) / a**2), "divide by alpha once"),
    (_x0(lambda e, x, a, s: (x - s * e) * a), "do not multiply"),
    (_x0(lambda e, x, a, s: a * x - s * e), "v-parameterisation"),
    (_x0(lambda e, x, a, s: x / a), "ignored the noise"),
    (_x0(lambda e, x, a, s: (x - s**2 * e) / a), "not by the variance"),
    (_x0(lambda e, x, a, s: (x - s * e) / _vp_alpha(x, s)), "not for the VE-SDE"),
    (_x0(lambda e, x, a, s: (x - s * e) / a + 0.01), "x0_hat is wrong"),
])
def test_from_eps_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_from_eps(wrong)


def test_from_eps_bad_returns():
    with pytest.raises(WrongAnswer, match="pair"):
        check_from_eps(lambda e, x, t, sde: e)
    with pytest.raises(WrongAnswer, match="shape"):
        check_from_eps(lambda e, x, t, sde: (e[:, 0], e))
    with pytest.raises(WrongAnswer, match="append_dims"):
        check_from_eps(lambda e, x, t, sde: (-e / sde.std(t), e))
    with pytest.raises(WrongAnswer, match="NaN or inf"):
        check_from_eps(lambda e, x, t, sde: (e * np.inf, e))


# ------------------------------------------------------------------ check_gaussian_denoiser
def gaussian_denoiser(x_t, t, sde, m0, s0):
    a, s = _coef(sde, t, x_t)
    score = -(x_t - a * m0) / (a**2 * s0**2 + s**2)
    return (x_t + s**2 * score) / a


def test_gaussian_denoiser_accepts_solution_and_the_wiener_form():
    assert check_gaussian_denoiser(gaussian_denoiser).startswith("Correct!")

    def wiener(x_t, t, sde, m0, s0):
        a, s = _coef(sde, t, x_t)
        return m0 + a * s0**2 * (x_t - a * m0) / (a**2 * s0**2 + s**2)
    assert check_gaussian_denoiser(wiener).startswith("Correct!")


def _den(fn):
    def d(x_t, t, sde, m0, s0):
        a, s = _coef(sde, t, x_t)
        v = a**2 * s0**2 + s**2
        return fn(x_t, a, s, v, m0, s0, -(x_t - a * m0) / v)
    return d


@pytest.mark.parametrize("wrong, match", [
    (_den(lambda x, a, s, v, m0, s0, sc: x / a), "ignores the noise"),
    (_den(lambda x, a, s, v, m0, s0, sc: (x - (x - a * m0)) / a), "prior mean m0"),
    (_den(lambda x, a, s, v, m0, s0, sc: m0 + s0**2 * (x - a * m0) / v), "dropped the alpha"),
    (_den(lambda x, a, s, v, m0, s0, sc: m0 + a * s0**2 * (x - a * m0) / (s0**2 + s**2)), "scaled by alpha\\^2"),
    (_den(lambda x, a, s, v, m0, s0, sc: m0 + a * s0 * (x - a * m0) / v), "variance s0\\^2"),
    (_den(lambda x, a, s, v, m0, s0, sc: m0 + a * s0**2 * (x - a * m0) / (a**2 * s0**2 + s)), "not sigma, goes"),
    (_den(lambda x, a, s, v, m0, s0, sc: x + s**2 * sc), "divide by alpha"),
    (_den(lambda x, a, s, v, m0, s0, sc: (x - s**2 * sc) / a), "sign error"),
    (_den(lambda x, a, s, v, m0, s0, sc: (x + s * sc) / a), "not by sigma"),
    (_den(lambda x, a, s, v, m0, s0, sc: sc), "that is the score"),
    (_den(lambda x, a, s, v, m0, s0, sc: a * m0 + a * s0**2 * (x - a * m0) / v), "not alpha m0"),
    (_den(lambda x, a, s, v, m0, s0, sc: (x + s**2 * sc) / a * 1.01), "should be m0 \\+ alpha"),
])
def test_gaussian_denoiser_names_the_mistake(wrong, match):
    with pytest.raises(WrongAnswer, match=match):
        check_gaussian_denoiser(wrong)


def test_gaussian_denoiser_catches_vp_only_formulas():
    def vp_only(x_t, t, sde, m0, s0):
        a = sde.mean_coeff(t)[:, None]
        s2 = -torch.expm1(-(0.1 * t + 9.95 * t**2))[:, None]  # VP's sigma^2 hard-coded
        return m0 + a * s0**2 * (x_t - a * m0) / (a**2 * s0**2 + s2)
    with pytest.raises(WrongAnswer, match="not for the VE-SDE"):
        check_gaussian_denoiser(vp_only)


def test_from_eps_vp_only_formula_is_named_on_ve():
    def vp_only(e, x, t, sde):  # alpha = sqrt(1 - sigma^2): NaN on the VE-SDE, where sigma reaches 50
        s = append_dims(sde.std(t), x.ndim)
        return -e / s, (x - s * e) / torch.sqrt(1 - s**2)
    with pytest.raises(WrongAnswer, match="VP-only formulas such as alpha = sqrt\\(1 - sigma\\^2\\)"):
        check_from_eps(vp_only)


def test_gaussian_denoiser_vp_sigma_from_alpha_is_named():
    def vp_only(x_t, t, sde, m0, s0):  # sigma^2 = 1 - alpha^2, right for VP only
        a = append_dims(sde.mean_coeff(t), x_t.ndim)
        return m0 + a * s0**2 * (x_t - a * m0) / (a**2 * s0**2 + 1 - a**2)
    with pytest.raises(WrongAnswer, match="sigma\\^2 = 1 - alpha\\^2 holds only for VP"):
        check_gaussian_denoiser(vp_only)


def test_success_messages_are_one_short_line(capsys):
    from sdelab import param
    msgs = [check_dsm_eps_loss(dsm_eps_loss),
            check_from_eps(lambda e, x, t, sde: (param.eps_to_score(e, x, t, sde), param.eps_to_x0(e, x, t, sde))),
            check_gaussian_denoiser(gaussian_denoiser)]
    assert all(len(m) <= 90 and "\n" not in m for m in msgs), [len(m) for m in msgs]
