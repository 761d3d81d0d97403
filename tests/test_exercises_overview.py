"""The checkers of the Overview chapter accept the reference solutions and name each typical mistake."""
import math

import numpy as np
import pytest
import torch

from sdelab import VPSDE, append_dims
from sdelab.exercises import WrongAnswer
from sdelab.exercises import overview as ex

SDE = VPSDE(0.1, 20.0)


# ---------------------------------------------------------------- chosen vs learned
ANSWER = {"f": "chosen", "g": "chosen", "beta": "chosen", "T": "chosen", "prior": "chosen",
          "score": "learned", "p_data": "data"}


def test_chosen_or_learned_accepts_answer_case_insensitively():
    assert ex.check_chosen_or_learned(ANSWER).startswith("Correct!")
    assert ex.check_chosen_or_learned({k: v.upper() for k, v in ANSWER.items()}).startswith("Correct!")


@pytest.mark.parametrize("key, value, match", [
    ("f", "learned", "fixed before training"),
    ("g", "learned", "fixed before training"),
    ("beta", "learned", "never trained"),
    ("prior", "learned", "approximate p_T"),
    ("score", "chosen", "one object the network"),
    ("p_data", "chosen", "only\nthrough samples|only through samples"),
    ("p_data", "learned", "through samples"),
    ("T", "data", "convention"),
])
def test_chosen_or_learned_explains_each_mistake(key, value, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_chosen_or_learned({**ANSWER, key: value})


def test_chosen_or_learned_rejects_malformed_answers():
    with pytest.raises(WrongAnswer, match="dict"):
        ex.check_chosen_or_learned(["score"])
    with pytest.raises(WrongAnswer, match="missing the keys.*score"):
        ex.check_chosen_or_learned({k: v for k, v in ANSWER.items() if k != "score"})
    with pytest.raises(WrongAnswer, match="unknown keys.*network"):
        ex.check_chosen_or_learned({**ANSWER, "network": "learned"})
    with pytest.raises(WrongAnswer, match="one of"):
        ex.check_chosen_or_learned({**ANSWER, "f": "fixed"})


# ---------------------------------------------------------------- alpha, sigma
def B(t):
    return 0.1 * t + 9.95 * t**2


def alpha_sigma(t):
    b = 0.1 * t + 0.5 * (20.0 - 0.1) * t**2
    return torch.exp(-b / 2), torch.sqrt(1 - torch.exp(-b))


def test_alpha_sigma_accepts_solution_and_the_package():
    assert ex.check_alpha_sigma(alpha_sigma).startswith("Correct!")
    assert ex.check_alpha_sigma(lambda t: (SDE.mean_coeff(t), SDE.std(t))).startswith("Correct!")
    # float32 and numpy answers are fine too
    assert ex.check_alpha_sigma(lambda t: tuple(v.float().numpy() for v in alpha_sigma(t)))


@pytest.mark.parametrize("fn, match", [
    (lambda t: (torch.exp(-B(t)), torch.sqrt(1 - torch.exp(-B(t)))), r"alpha_bar.*mind the 1/2"),
    (lambda t: (torch.exp(-(0.1 + 19.9 * t) * t / 2), torch.sqrt(1 - torch.exp(-(0.1 + 19.9 * t) * t))),
     r"beta\(t\) \* t .*lacks the 1/2"),
    (lambda t: (torch.exp(-(0.1 * t + 19.9 * t**2) / 2), torch.sqrt(1 - torch.exp(-(0.1 * t + 19.9 * t**2)))),
     "lacks the 1/2 of the quadratic term"),
    (lambda t: (torch.exp(-20 * t / 2), torch.sqrt(1 - torch.exp(-20 * t))), "constant rate beta_max"),
    (lambda t: (torch.exp(-B(t) / 2), 1 - torch.exp(-B(t) / 2)), r"not 1 - alpha"),
    (lambda t: (torch.exp(-B(t) / 2), 1 - torch.exp(-B(t))), "returned the variance"),
    (lambda t: (torch.exp(-B(t) / 2), torch.sqrt(1 - torch.exp(-B(t) / 2))), "alpha where alpha\\^2"),
    (lambda t: (torch.exp(-B(t) / 3), torch.sqrt(1 - torch.exp(-B(t)))), r"alpha\(0\.\d+\) = .*should be"),
    (lambda t: (torch.exp(-B(t) / 2), torch.sqrt(1 - torch.exp(-B(t) / 3))), r"sigma\(.*should be"),
])
def test_alpha_sigma_names_mistakes(fn, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_alpha_sigma(fn)


def test_alpha_sigma_bad_shapes_and_errors():
    with pytest.raises(WrongAnswer, match="pair"):
        ex.check_alpha_sigma(lambda t: torch.exp(-B(t) / 2))
    with pytest.raises(WrongAnswer, match="shape"):
        ex.check_alpha_sigma(lambda t: (torch.exp(-B(t) / 2)[:3], torch.sqrt(1 - torch.exp(-B(t)))))
    with pytest.raises(WrongAnswer, match="raised ZeroDivisionError"):
        ex.check_alpha_sigma(lambda t: 1 / 0)
    with pytest.raises(WrongAnswer, match="function"):
        ex.check_alpha_sigma(0.5)


# ---------------------------------------------------------------- reverse drift
def beta(t):
    return 0.1 + 19.9 * t


def reverse_drift(x, t, score_fn):
    b = append_dims(beta(t), x.ndim)
    return -0.5 * b * x - b * score_fn(x, t)


def test_reverse_drift_accepts_solution_and_the_package():
    assert ex.check_reverse_drift(reverse_drift).startswith("Correct!")
    from sdelab.sde import reverse_drift as pkg

    assert ex.check_reverse_drift(lambda x, t, s: pkg(SDE, s, x, t)).startswith("Correct!")


def _drift(kind):
    def fn(x, t, score_fn):
        b = beta(t)[:, None]
        s = score_fn(x, t)
        return {
            "sign": -0.5 * b * x + b * s,
            "pf": -0.5 * b * x - 0.5 * b * s,
            "g": -0.5 * b * x - b.sqrt() * s,
            "no_f": -b * s,
            "tau": 0.5 * b * x + b * s,
            "no_score": -0.5 * b * x,
            "beta_max": -10.0 * x - 20.0 * s,
            "other": -0.5 * b * x - 2 * b * s,
        }[kind]
    return fn


@pytest.mark.parametrize("kind, match", [
    ("sign", "wrong sign"), ("pf", "probability-flow ODE"), ("g", r"not by g\(t\) = sqrt"),
    ("no_f", "dropped the forward drift"), ("tau", "reversed time tau"), ("no_score", "left out the score"),
    ("beta_max", "beta_max for every t"), ("other", "does not match"),
])
def test_reverse_drift_names_mistakes(kind, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_reverse_drift(_drift(kind))


def test_reverse_drift_shape_and_argument_order():
    with pytest.raises(WrongAnswer, match="append_dims"):
        ex.check_reverse_drift(lambda x, t, s: (-0.5 * beta(t) * x.T - beta(t) * s(x, t).T))
    with pytest.raises(WrongAnswer, match=r"order \(x, t\)"):
        ex.check_reverse_drift(lambda x, t, s: s(t, x))


# ---------------------------------------------------------------- kernel vs marginal
def marginal_moments(mu0, s0, t):
    b = 0.1 * t + 9.95 * t**2
    a2 = math.exp(-b)
    return math.sqrt(a2) * mu0, a2 * s0**2 + 1 - a2


def test_marginal_moments_accepts_solution_and_the_package():
    assert ex.check_marginal_moments(marginal_moments).startswith("Correct!")

    def pkg(mu0, s0, t):
        a, s = SDE.mean_coeff(t).item(), SDE.std(t).item()
        return a * mu0, a**2 * s0**2 + s**2

    assert ex.check_marginal_moments(pkg).startswith("Correct!")


def _mm(kind):
    def fn(mu0, s0, t):
        a2 = math.exp(-(0.1 * t + 9.95 * t**2))
        a = math.sqrt(a2)
        return {
            "kernel": (a * mu0, 1 - a2),
            "alpha": (a * mu0, a * s0**2 + 1 - a2),
            "unscaled": (a * mu0, s0**2 + 1 - a2),
            "sd": (a * mu0, a2 * s0 + 1 - a2),
            "mean_mu0": (mu0, a2 * s0**2 + 1 - a2),
            "mean_a2": (a2 * mu0, a2 * s0**2 + 1 - a2),
            "mean_other": (0.5 * a * mu0, a2 * s0**2 + 1 - a2),
            "var_other": (a * mu0, 2.0),
        }[kind]
    return fn


@pytest.mark.parametrize("kind, match", [
    ("kernel", "transition\nkernel|transition kernel"), ("alpha", r"alpha\(t\)\^2, not alpha\(t\)"),
    ("unscaled", "must be scaled"), ("sd", "standard deviation"), ("mean_mu0", "mean is not mu0"),
    ("mean_a2", "not alpha\\^2 mu0"), ("mean_other", "expected alpha"), ("var_other", "expected alpha\\^2 s0\\^2"),
])
def test_marginal_moments_names_mistakes(kind, match):
    with pytest.raises(WrongAnswer, match=match):
        ex.check_marginal_moments(_mm(kind))


def test_checkers_print_success(capsys):
    ex.check_marginal_moments(marginal_moments)
    assert "Correct!" in capsys.readouterr().out
    assert np.isclose(math.exp(-B(1.0) / 2), 0.00657, rtol=1e-2)
