"""Bad input to the maths API: a ValueError naming the argument (or a documented safe conversion), never an
AttributeError, a RuntimeError from deep inside torch, NaN, or a silently broadcast result."""
import numpy as np
import pytest
import torch

from sdelab import VPSDE, brownian, losses, metrics, param, toy
from sdelab.validate import as_samples, check_output

SDE = VPSDE()
X = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
ZERO = lambda x, t: torch.zeros_like(x)  # noqa: E731
MIX = toy.ring()

BAD = {  # name -> (call, regex the ValueError must match)
    "convert complex x": (lambda: param.convert(X, X.to(torch.complex64), 0.5, SDE, source="eps", target="x0"),
                          r"^x must be a real tensor"),
    "convert empty batch": (lambda: param.convert(X[:0], X[:0], 0.5, SDE, source="eps", target="x0"),
                            r"^x must hold at least one sample"),
    "convert pred None": (lambda: param.convert(None, X, 0.5, SDE, source="eps", target="x0"), r"^pred must be a"),
    "convert t (B, 1)": (lambda: param.convert(X, X, torch.full((4, 1), 0.5), SDE, source="eps", target="x0"),
                         r"^t must be a scalar or have shape \(B,\)"),
    "eps_to_score wrong shape": (lambda: param.eps_to_score(torch.randn(4, 3), X, 0.5, SDE),
                                 r"^eps must have the shape of x"),
    "eps_to_score 0-d x": (lambda: param.eps_to_score(torch.tensor(1.0), torch.tensor(1.0), 0.5, SDE),
                           r"^x must have at least 1 dim"),
    "tweedie score None": (lambda: param.tweedie_denoiser(None, X, 0.5, SDE), r"^score must be a torch tensor"),
    "score_fn model None": (lambda: param.score_fn(lambda x, t: None, SDE)(X, 0.5),
                            r"^model must return a tensor of shape \(4, 2\), got NoneType"),
    "score_fn model wrong shape": (lambda: param.score_fn(lambda x, t: x[:, :1], SDE)(X, 0.5),
                                   r"^model must return a tensor of shape \(4, 2\)"),
    "toy complex x": (lambda: MIX.score(X.to(torch.complex64)), r"^x must be a real tensor"),
    "toy empty batch": (lambda: MIX.score(X[:0], 0.5, SDE), r"^x must hold at least one sample"),
    "toy x None": (lambda: MIX.log_prob(None), r"^x must be a torch tensor"),
    "dsm model None": (lambda: losses.dsm_loss(lambda x, t: None, SDE, X),
                       r"^the model must return a tensor of the shape of x0"),
    "dsm int x0": (lambda: losses.dsm_loss(ZERO, SDE, X.long()), r"^x0 must be a float tensor"),
    "sliced_wasserstein complex": (lambda: metrics.sliced_wasserstein(X.to(torch.complex64), X),
                                   r"^a must be a real tensor"),
    "mmd empty": (lambda: metrics.mmd(X[:0], X), r"^a must hold at least one point"),
    "strong_error empty": (lambda: brownian.strong_error(torch.zeros(0), torch.zeros(0)),
                           r"^x must hold at least one sample"),
    "em drift None": (lambda: brownian.euler_maruyama(lambda x, t: None, 1.0, torch.ones(3), torch.linspace(0, 1, 5)),
                      r"^f must give a real number or a tensor"),
    "em drift broadcasts wrongly": (lambda: brownian.euler_maruyama(ZERO, lambda x, t: torch.ones(3, 1),
                                                                    torch.ones(3), torch.linspace(0, 1, 5)),
                                    r"^g must give .* got shape \(3, 1\)"),
    "em empty batch": (lambda: brownian.euler_maruyama(ZERO, 1.0, torch.ones(0), torch.linspace(0, 1, 5)),
                       r"^x0 must hold at least one sample"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_raises_a_value_error_naming_the_argument(case):
    call, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        call()


def test_numpy_and_integer_input_is_converted_as_documented():
    xi = torch.tensor([[1, -2], [3, 0], [0, 2], [-1, -1]])
    xf = xi.to(torch.get_default_dtype())
    same = [
        (param.convert(xi.numpy(), xi, 0.5, SDE, source="eps", target="score"),
         param.convert(xf, xf, 0.5, SDE, source="eps", target="score")),
        (param.eps_fn(ZERO, SDE)(xi, 0.5), param.eps_fn(ZERO, SDE)(xf, 0.5)),
        (MIX.score(xi.numpy()), MIX.score(xf)),
        (MIX.log_prob(xi), MIX.log_prob(xf)),
        (metrics.mmd(xi.numpy(), xf), metrics.mmd(xf, xf)),
        (torch.tensor(brownian.strong_error(xi, xi + 1)), torch.tensor(brownian.strong_error(xf, xf + 1))),
    ]
    for got, want in same:
        assert got.dtype.is_floating_point
        torch.testing.assert_close(got, want)
    assert param.eps_fn(ZERO, SDE)(xi, 0.5).dtype == torch.get_default_dtype()  # not int64 as before


def test_helpers_directly():
    assert as_samples("x", np.ones((2, 3), np.int32)).dtype == torch.get_default_dtype()
    assert as_samples("x", torch.ones(2, dtype=torch.int8), dtype=torch.float64).dtype == torch.float64
    for bad, msg in ((torch.ones(2, dtype=torch.bool), "real tensor"), ([1.0, 2.0], "torch tensor"),
                     (torch.ones(0, 3), "at least one sample"), (torch.tensor(1.0), "at least 1 dim")):
        with pytest.raises(ValueError, match=f"^x must .*{msg}"):
            as_samples("x", bad)
    with pytest.raises(ValueError, match=r"^h must return a tensor of shape \(2,\)"):
        check_output("h", torch.ones(1, 2), (2,))
    with pytest.raises(ValueError, match="real floating tensor"):
        check_output("h", torch.ones(2, dtype=torch.long), (2,))
