r"""Sample-based distances between point clouds (chapters "Sampling" and "Samplers compared").

* `wasserstein_1d`: the exact $W_p$ between two 1-D empirical measures (any sizes);
* `wasserstein_1d_to_cdf`: $W_1$ between a 1-D sample and a law given by its CDF (no second sample);
* `sliced_wasserstein`: $SW_2(a, b) = (E_\theta W_2^2(\theta^\top a, \theta^\top b))^{1/2}$ over random unit
  directions $\theta$, each 1-D $W_2$ exact;
* `mmd`: the squared maximum mean discrepancy with a sum of Gaussian (RBF) kernels.

Every one of them is non-zero for two finite samples of the same law: compare a sampler's score
with the data-vs-data floor at the same sample size.

* `mnist_fid`: the Fréchet distance between Gaussians fitted to the penultimate features of the
  package's own small MNIST classifier (defined in `sdelab.classifier`, re-exported here).
"""
from __future__ import annotations

import torch

from .classifier import mnist_fid  # noqa: F401  (re-exported: sdelab.metrics.mnist_fid)
from .utils import check_finite
from .validate import as_samples

__all__ = ["wasserstein_1d", "wasserstein_1d_to_cdf", "sliced_wasserstein", "mmd"]  # mnist_fid: documented in sdelab.classifier


def _points(name: str, x, *, flat: bool = True) -> torch.Tensor:
    if not torch.is_tensor(x) and not isinstance(x, (list, tuple)):
        x = as_samples(name, x, min_ndim=0)  # NumPy arrays; None and other objects raise
    x = torch.as_tensor(x)
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must be a real tensor (float, or integers that are converted), got {x.dtype}")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one point, shape (n, ...), got shape {tuple(x.shape)}")
    check_finite(name, x)
    return x.reshape(x.shape[0], -1) if flat else x


def _quantile_coupling(n: int, m: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices into the sorted samples and weights of the monotone (quantile) coupling of an n- and an
    m-point empirical measure: on each interval of levels between consecutive breakpoints {i/n} U {j/m}
    both quantile functions are constant."""
    u = torch.cat([torch.arange(1, n + 1, dtype=torch.float64) / n, torch.arange(1, m + 1, dtype=torch.float64) / m])
    u = torch.unique(u)  # sorted, ends at 1
    w = torch.diff(u, prepend=torch.zeros(1, dtype=torch.float64))
    mid = u - w / 2
    ia = torch.clamp((mid * n).floor().long(), max=n - 1)
    ib = torch.clamp((mid * m).floor().long(), max=m - 1)
    keep = w > 0
    return ia[keep].to(device), ib[keep].to(device), w[keep].to(device)


def wasserstein_1d(a, b, p: float = 1.0) -> torch.Tensor:
    r"""Exact $W_p(a, b) = (\int_0^1 |F_a^{-1}(u) - F_b^{-1}(u)|^p du)^{1/p}$ between 1-D empirical measures.

    Args:
        a: `(n,)` or `(n, 1)` samples. b: `(m,)` or `(m, 1)`; sizes may differ.
        p: order, `>= 1`.
    Returns:
        A 0-dim tensor (float64).
    """
    if not p >= 1:
        raise ValueError(f"p must be >= 1, got {p!r}")
    a, b = _points("a", a), _points("b", b)
    if a.shape[1] != 1 or b.shape[1] != 1:
        raise ValueError(f"a and b must be 1-D samples, shapes (n,) or (n, 1); got {tuple(a.shape)}, {tuple(b.shape)}")
    a, b = a[:, 0].double().sort().values, b[:, 0].double().sort().values.to(a.device)
    ia, ib, w = _quantile_coupling(len(a), len(b), a.device)
    return ((a[ia] - b[ib]).abs().pow(p) * w).sum().pow(1 / p)


def wasserstein_1d_to_cdf(x, cdf, lo: float, hi: float, *, points: int = 100_001) -> torch.Tensor:
    r"""$W_1 = \int |F_n(y) - F(y)|\,dy$ between the empirical law $F_n$ of the 1-D samples `x` and a law with CDF `cdf`.

    Args:
        x: `(n,)` or `(n, 1)` samples.
        cdf: vectorised $F$, a `(m,)` float64 tensor of points to `(m,)` values in [0, 1].
        lo, hi: an interval outside which the law has negligible mass; the grid spans it and all the samples.
        points: trapezoid-rule grid points (the error falls like `points**-2` between sample points).
    Returns:
        A 0-dim tensor (float64).
    """
    x = _points("x", x)
    if x.shape[1] != 1:
        raise ValueError(f"x must be 1-D samples, shape (n,) or (n, 1); got {tuple(x.shape)}")
    if not (float(lo) < float(hi)):
        raise ValueError(f"lo must be < hi, got lo={lo!r}, hi={hi!r}")
    if isinstance(points, bool) or int(points) != points or points < 2:
        raise ValueError(f"points must be an integer >= 2, got {points!r}")
    xs = x[:, 0].double().cpu().sort().values
    grid = torch.linspace(min(xs[0].item(), float(lo)), max(xs[-1].item(), float(hi)), int(points),
                          dtype=torch.float64)
    f_n = torch.searchsorted(xs, grid, right=True).double() / len(xs)
    return torch.trapezoid((f_n - torch.as_tensor(cdf(grid), dtype=torch.float64)).abs(), grid)


def sliced_wasserstein(a, b, n_proj: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Sliced 2-Wasserstein distance $SW_2 = \bigl(\frac1P\sum_{k=1}^P W_2^2(\theta_k^\top a, \theta_k^\top b)\bigr)^{1/2}$.

    The `n_proj` directions $\theta_k$ are uniform on the unit sphere, drawn on the CPU with `generator`
    (pass the same seed to compare several samplers on the same directions). Each 1-D $W_2$ is exact for
    the two empirical measures (monotone coupling of the sorted projections, any sizes n and m).
    For a shift $b = a + c$, $SW_2^2 \to |c|^2/d$ as `n_proj` grows.

    Args:
        a: `(n, ...)`; b: `(m, ...)` with the same number of entries per point (flattened).
    Returns:
        A 0-dim tensor in the dtype of `a` (differentiable with respect to `a` and `b`).
    """
    if int(n_proj) < 1:
        raise ValueError(f"n_proj must be an integer >= 1, got {n_proj!r}")
    a, b = _points("a", a), _points("b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same dimension, got {a.shape[1]} and {b.shape[1]}")
    b = b.to(device=a.device, dtype=a.dtype)
    theta = torch.randn((int(n_proj), a.shape[1]), generator=generator, dtype=torch.float64)
    theta = (theta / theta.norm(dim=1, keepdim=True)).to(device=a.device, dtype=a.dtype)
    pa = (theta @ a.T).sort(dim=1).values  # (P, n), sorted along the contiguous dim (fast)
    pb = (theta @ b.T).sort(dim=1).values  # (P, m)
    ia, ib, w = _quantile_coupling(len(a), len(b), a.device)
    w2 = ((pa[:, ia] - pb[:, ib]) ** 2 * w.to(a.dtype)).sum(1)  # (P,)
    return w2.mean().sqrt()


def _sq_dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.pow(2).sum(1)[:, None] + y.pow(2).sum(1)[None] - 2 * x @ y.T).clamp_min(0)


def mmd(a, b, bandwidths=None, *, unbiased: bool = True) -> torch.Tensor:
    r"""Squared MMD with the kernel $k(x, y) = \sum_h \exp(-|x - y|^2/(2h^2))$.

    Unbiased (default): the U-statistic

    $$\frac{1}{n(n-1)}\sum_{i\ne j} k(a_i, a_j) + \frac{1}{m(m-1)}\sum_{i\ne j} k(b_i, b_j)
    - \frac{2}{nm}\sum_{i,j} k(a_i, b_j),$$

    whose mean is the population $\mathrm{MMD}^2$ (it can be slightly negative); `unbiased=False` gives the
    V-statistic (diagonals included, always >= 0).

    Args:
        a: `(n, ...)`; b: `(m, ...)` (flattened per point); n, m >= 2 for the unbiased estimate.
        bandwidths: kernel widths $h > 0$; default: the median pairwise distance of the pooled sample
            (of an evenly strided subset of at most 1000 pooled points) times (0.5, 1, 2).
    Returns:
        A 0-dim tensor, $\widehat{\mathrm{MMD}}^2$ (float64).
    """
    a, b = _points("a", a).double(), _points("b", b).double()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same dimension, got {a.shape[1]} and {b.shape[1]}")
    b = b.to(a.device)
    n, m = len(a), len(b)
    if unbiased and min(n, m) < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 points in each sample, got n={n}, m={m}")
    daa, dbb, dab = _sq_dists(a, a), _sq_dists(b, b), _sq_dists(a, b)
    if bandwidths is None:
        z = torch.cat([a, b])
        z = z[torch.linspace(0, len(z) - 1, min(len(z), 1000)).long()]  # evenly strided subset: cheap median
        d2 = _sq_dists(z, z)
        d2 = d2[torch.triu_indices(len(z), len(z), 1, device=z.device).unbind()]
        med = float(d2[d2 > 0].median().sqrt()) if (d2 > 0).any() else 1.0
        hs = [0.5 * med, med, 2 * med]
    else:
        hs = [float(h) for h in torch.as_tensor(bandwidths, dtype=torch.float64).reshape(-1)]
        if not hs or not all(h > 0 and h < float("inf") for h in hs):
            raise ValueError(f"bandwidths must be finite and > 0, got {bandwidths!r}")

    def k(d2):
        return sum(torch.exp(-d2 / (2 * h * h)) for h in hs)

    kaa, kbb, kab = k(daa), k(dbb), k(dab)
    if unbiased:
        saa = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
        sbb = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    else:
        saa, sbb = kaa.mean(), kbb.mean()
    return saa + sbb - 2 * kab.mean()
