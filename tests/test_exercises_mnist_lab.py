"""The checkers of the chapter "MNIST lab" accept the reference solutions and name each typical mistake."""
import re

import numpy as np
import pytest
import torch

from sdelab.exercises import WrongAnswer
from sdelab.exercises import mnist_lab as ex


# ------------------------------------------------------------------ inpainting replacement
def _noised(x0, t, sde, generator, *, alpha=True, noise=True, scale="std"):
    a, s = sde.mean_coeff(torch.tensor(t)), sde.std(torch.tensor(t))
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    s = {"std": s, "var": s**2, "one": 1.0}[scale]
    return (a if alpha else 1.0) * x0 + (s * z if noise else 0.0)


def inpaint_ok(x, x0, mask, t, sde, generator=None):
    return mask * _noised(x0, t, sde, generator) + (1 - mask) * x


INPAINT_MISTAKES = {
    "clean x0": (lambda x, x0, mask, t, sde, generator=None: mask * x0 + (1 - mask) * x, "pasted the clean pixels"),
    "no noise": (lambda x, x0, mask, t, sde, generator=None:
                 mask * _noised(x0, t, sde, generator, noise=False) + (1 - mask) * x, "noise is missing"),
    "mask polarity": (lambda x, x0, mask, t, sde, generator=None:
                      (1 - mask) * _noised(x0, t, sde, generator) + mask * x, "Mask polarity"),
    "no alpha": (lambda x, x0, mask, t, sde, generator=None:
                 mask * _noised(x0, t, sde, generator, alpha=False) + (1 - mask) * x, "factor alpha(t)"),
    "variance": (lambda x, x0, mask, t, sde, generator=None:
                 mask * _noised(x0, t, sde, generator, scale="var") + (1 - mask) * x, "not by the variance"),
    "noise sqrt(1 - alpha)": (lambda x, x0, mask, t, sde, generator=None: mask * (
        sde.mean_coeff(torch.tensor(t)) * x0 + (1 - sde.mean_coeff(torch.tensor(t))).sqrt()
        * torch.randn(x.shape, generator=generator)) + (1 - mask) * x, "standard deviation 0.461"),
    "unit noise": (lambda x, x0, mask, t, sde, generator=None:
                   mask * _noised(x0, t, sde, generator, scale="one") + (1 - mask) * x, "standard deviation 1"),
    "no generator": (lambda x, x0, mask, t, sde, generator=None: inpaint_ok(x, x0, mask, t, sde, None),
                     "generator argument"),
    "same noise everywhere": (lambda x, x0, mask, t, sde, generator=None: mask * (
        sde.mean_coeff(torch.tensor(t)) * x0 + sde.std(torch.tensor(t))
        * torch.randn(x.shape[0], 1, 1, 1, generator=generator)) + (1 - mask) * x, "independent z"),
    "nothing replaced": (lambda x, x0, mask, t, sde, generator=None: x, "leaves the known pixels"),
    "wrong shape": (lambda x, x0, mask, t, sde, generator=None: inpaint_ok(x, x0, mask, t, sde, generator)[:, 0],
                    "shaped like x"),
    "not a function": (3, "should be a function"),
}


def test_inpaint_checker_accepts_solution():
    assert ex.check_inpaint_step(inpaint_ok).startswith("Correct!")


@pytest.mark.parametrize("fn, words", INPAINT_MISTAKES.values(), ids=list(INPAINT_MISTAKES))
def test_inpaint_checker_names_mistake(fn, words):
    with pytest.raises(WrongAnswer, match=re.escape(words)):
        ex.check_inpaint_step(fn)


# ------------------------------------------------------------------ classifier-free guidance
def cfg_ok(c, u, w):
    return (1 + w) * c - w * u


CFG_MISTAKES = {
    "swapped": (lambda c, u, w: (1 + w) * u - w * c, "swapped"),
    "w instead of 1 + w": (lambda c, u, w: w * c - (w - 1) * u, "shifted by one"),
    "direction only": (lambda c, u, w: w * (c - u), "guidance direction alone"),
    "no uncond": (lambda c, u, w: (1 + w) * c, "unconditional prediction is missing"),
    "plus sign": (lambda c, u, w: (1 + w) * c + w * u, "Sign"),
    "interpolation": (lambda c, u, w: (1 - w) * c + w * u, "interpolates"),
    "right at zero only": (lambda c, u, w: c + 2 * w * (c - u), "Right at w = 0"),
    "other": (lambda c, u, w: c * 0 + 1, "should return eps_cond unchanged"),
    "numpy fine but shape wrong": (lambda c, u, w: ((1 + w) * c - w * u).sum(), "shape of eps_cond"),
}


def test_cfg_checker_accepts_solution():
    assert ex.check_cfg(cfg_ok).startswith("Correct!")


@pytest.mark.parametrize("fn, words", CFG_MISTAKES.values(), ids=list(CFG_MISTAKES))
def test_cfg_checker_names_mistake(fn, words):
    with pytest.raises(WrongAnswer, match=re.escape(words)):
        ex.check_cfg(fn)


# ------------------------------------------------------------------ Fréchet distance
def _sqrtm(c):
    w, v = torch.linalg.eigh(c)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_ok(mu1, c1, mu2, c2):
    s1 = _sqrtm(c1)
    return (mu1 - mu2).pow(2).sum() + torch.trace(c1) + torch.trace(c2) - 2 * torch.trace(_sqrtm(s1 @ c2 @ s1))


def frechet_scipy(mu1, c1, mu2, c2):  # the common NumPy/SciPy way, also right
    from scipy import linalg

    covmean = linalg.sqrtm(c1.numpy() @ c2.numpy()).real
    return float(np.sum((mu1 - mu2).numpy() ** 2) + np.trace(c1.numpy()) + np.trace(c2.numpy()) - 2 * np.trace(covmean))


FRECHET_MISTAKES = {
    "no sqrt": (lambda m1, c1, m2, c2: (m1 - m2).pow(2).sum() + torch.trace(c1) + torch.trace(c2)
                - 2 * torch.trace(c1 @ c2), "matrix square root"),
    "plus sign": (lambda m1, c1, m2, c2: frechet_ok(m1, c1, m2, c2) + 4 * torch.trace(_sqrtm(_sqrtm(c1) @ c2 @ _sqrtm(c1))),
                  "Sign"),
    "no factor 2": (lambda m1, c1, m2, c2: frechet_ok(m1, c1, m2, c2) + torch.trace(_sqrtm(_sqrtm(c1) @ c2 @ _sqrtm(c1))),
                    "factor 2"),
    "mean not squared": (lambda m1, c1, m2, c2: frechet_ok(m1, c1, m2, c2) - (m1 - m2).pow(2).sum()
                         + (m1 - m2).norm(), "squared distance"),
    "returned the root": (lambda m1, c1, m2, c2: frechet_ok(m1, c1, m2, c2).sqrt(), "square root"),
    "elementwise sqrt": (lambda m1, c1, m2, c2: (m1 - m2).pow(2).sum() + torch.trace(c1) + torch.trace(c2)
                         - 2 * torch.trace((c1 * c2).abs().sqrt()), "elementwise"),
    "no mean term": (lambda m1, c1, m2, c2: frechet_ok(m1, c1, m2, c2) - (m1 - m2).pow(2).sum(), "first test pair"),
    "array": (lambda m1, c1, m2, c2: torch.stack([frechet_ok(m1, c1, m2, c2)] * 2), "one number"),
    "not a function": (1.0, "should be a function"),
}


def test_frechet_checker_accepts_solutions():
    assert ex.check_frechet(frechet_ok).startswith("Correct!")
    assert ex.check_frechet(frechet_scipy).startswith("Correct!")


@pytest.mark.parametrize("fn, words", FRECHET_MISTAKES.values(), ids=list(FRECHET_MISTAKES))
def test_frechet_checker_names_mistake(fn, words):
    with pytest.raises(WrongAnswer, match=re.escape(words)):
        ex.check_frechet(fn)


def test_frechet_checker_agrees_with_package():
    from sdelab.classifier import frechet_distance

    def pkg(m1, c1, m2, c2):
        return frechet_distance(m1, c1, m2, c2)

    assert ex.check_frechet(pkg).startswith("Correct!")
