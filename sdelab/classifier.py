r"""A small MNIST classifier the package trains itself, and an FID computed in its features (chapter "MNIST").

The Fréchet Inception Distance (Heusel et al., 2017) compares two image sets through Gaussians fitted to the
features of a pretrained network. Inception-v3 features mean little for 28x28 digits, so here the network is a small
CNN trained on MNIST by `train_classifier` (`python -m sdelab train-classifier`, shipped as the pretrained model
`"mnist_classifier"`), and the features are its penultimate activations (128 numbers per image):

$$\mathrm{FID} = \|\mu_a - \mu_b\|^2 + \mathrm{tr}\bigl(\Sigma_a + \Sigma_b - 2(\Sigma_a\Sigma_b)^{1/2}\bigr).$$

Numbers from this "MNIST-FID" are comparable with each other (same classifier, same sample size), not with the
Inception FID of papers. Like every FID it is biased upwards at small sample sizes: compare models at equal `n`.
By default the reference is the Gaussian of the 10,000 MNIST test digits, shipped with the classifier's weights
(`reference_stats`), so the number does not depend on which digits a machine has; the manifest entry of
`mnist_classifier` records the real-vs-real floor (training digits against that reference) at n = 1,000 and 10,000.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import hub
from .utils import check_finite, default_device

__all__ = ["MNISTClassifier", "train_classifier", "accuracy", "features", "feature_stats", "frechet_distance",
           "mnist_fid", "load_classifier", "reference_stats"]


class MNISTClassifier(nn.Module):
    """A small CNN for `(B, 1, 28, 28)` images in $[-1, 1]$: two conv-conv-maxpool stages (28 -> 14 -> 7), a hidden
    fully connected layer of `hidden` units (the *features*), dropout and a linear layer to 10 logits.

    Args:
        channels: widths of the two convolution stages.
        hidden: size of the penultimate (feature) layer.
        dropout: dropout rate before the last layer (training only).
    """

    def __init__(self, channels: tuple[int, int] = (16, 32), hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        c1, c2 = (int(c) for c in channels)
        if min(c1, c2, int(hidden)) < 1:
            raise ValueError(f"channels and hidden must be positive integers, got {channels}, {hidden}")

        def stage(i, o):
            return [nn.Conv2d(i, o, 3, padding=1), nn.ReLU(), nn.Conv2d(o, o, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]

        self.conv = nn.Sequential(*stage(1, c1), *stage(c1, c2), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(c2 * 49, int(hidden)), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(int(hidden), 10))
        self.feature_dim = int(hidden)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations, `(B, 1, 28, 28)` -> `(B, hidden)`."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"images must have shape (B, 1, 28, 28), got {tuple(x.shape)}")
        return self.fc(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `(B, 10)`."""
        return self.head(self.features(x))


def _check_images(name: str, x, labels=None) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28) or not x.is_floating_point():
        raise ValueError(f"{name} must be float images of shape (N, 1, 28, 28) in [-1, 1], got "
                         f"{tuple(x.shape)} {x.dtype}")
    check_finite(name, x)
    if labels is not None and torch.as_tensor(labels).shape != x.shape[:1]:
        raise ValueError(f"labels must have shape (N,) = ({x.shape[0]},), got {tuple(torch.as_tensor(labels).shape)}")
    return x


def _shift(x: torch.Tensor, generator: torch.Generator | None, max_shift: int = 2) -> torch.Tensor:
    """Translate each image by a random integer offset in `[-max_shift, max_shift]^2` (zero padding = -1)."""
    B = x.shape[0]
    pad = F.pad(x, (max_shift,) * 4, value=-1.0)
    off = torch.randint(0, 2 * max_shift + 1, (2, B), generator=generator)
    rows = (off[0][:, None] + torch.arange(28)[None]).to(x.device)  # (B, 28)
    cols = (off[1][:, None] + torch.arange(28)[None]).to(x.device)
    return pad[torch.arange(B, device=x.device)[:, None, None], 0, rows[:, :, None], cols[:, None, :]][:, None]


def train_classifier(images: torch.Tensor, labels: torch.Tensor, *, epochs: int | None = 20,
                     steps: int | None = None, batch_size: int = 128, lr: float = 2e-3, augment: bool = True,
                     device=None, progress: bool = True, generator: torch.Generator | None = None,
                     model: MNISTClassifier | None = None) -> MNISTClassifier:
    """Train an `MNISTClassifier` with AdamW and cross-entropy (cosine learning-rate decay, random shifts of up to
    two pixels when `augment`). Returns the model in eval mode.

    Args:
        images: `(N, 1, 28, 28)` in $[-1, 1]$ (`sdelab.data.mnist()`); labels: `(N,)` in `0..9`.
        epochs: passes over the data; `steps` (if given) overrides it with a number of batches.
        batch_size, lr: optimiser settings.
        device: None for `sdelab.utils.default_device()`.
        generator: CPU generator for shuffling and shifts (None: torch's global RNG).
        model: a model to continue training (default: a fresh `MNISTClassifier()`).
    """
    images = _check_images("images", images, labels)
    labels = torch.as_tensor(labels).long()
    if labels.numel() and (labels.min() < 0 or labels.max() > 9):
        raise ValueError("labels must lie in 0..9")
    for name, v in (("batch_size", batch_size), ("epochs", epochs), ("steps", steps)):
        if v is not None and (isinstance(v, bool) or int(v) != v or v < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    device = torch.device(device) if device is not None else default_device()
    n, batch_size = images.shape[0], min(int(batch_size), images.shape[0])
    per_epoch = math.ceil(n / batch_size)
    total = int(steps) if steps is not None else int(epochs or 1) * per_epoch
    model = (model or MNISTClassifier()).to(device)
    images, labels = images.to(device), labels.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.15)
    from tqdm.auto import tqdm

    model.train()
    order = torch.empty(0, dtype=torch.long)
    with tqdm(range(total), disable=not progress, desc="classifier", unit="it") as bar:
        for step in bar:
            if order.numel() < batch_size:
                order = torch.cat([order, torch.randperm(n, generator=generator)])
            idx, order = order[:batch_size].to(device), order[batch_size:]
            x = _shift(images[idx], generator) if augment else images[idx]
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


@torch.no_grad()
def _batched(fn, x: torch.Tensor, device, batch_size: int) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, x.shape[0], batch_size)])


def accuracy(model: MNISTClassifier, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 500) -> float:
    """Fraction of `images` whose arg-max logit equals the label (model in eval mode, no augmentation)."""
    images = _check_images("images", images, labels)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pred = _batched(model, images, device, batch_size).argmax(1)
    model.train(was_training)
    return float((pred == torch.as_tensor(labels).cpu()).double().mean())


def features(model: MNISTClassifier, images: torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
    """Penultimate features `(N, hidden)` (float32, CPU) of images clamped to $[-1, 1]$, model in eval mode."""
    images = _check_images("images", images).clamp(-1, 1)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = _batched(model.features, images, device, batch_size)
    model.train(was_training)
    return out


def feature_stats(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean `(d,)` and unbiased covariance `(d, d)` (float64) of features `(N, d)`, $N \ge 2$."""
    f = torch.as_tensor(f).double()
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must have shape (N, d) with N >= 2, got {tuple(f.shape)}")
    mu = f.mean(0)
    c = f - mu
    return mu, c.T @ c / (f.shape[0] - 1)


def _psd_sqrt(c: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((c + c.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    r"""Squared Fréchet (2-Wasserstein) distance between $\mathcal N(\mu_1, \Sigma_1)$ and $\mathcal N(\mu_2, \Sigma_2)$:
    $\|\mu_1 - \mu_2\|^2 + \mathrm{tr}\,\Sigma_1 + \mathrm{tr}\,\Sigma_2 - 2\,\mathrm{tr}(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2}$.

    The last trace equals $\mathrm{tr}(\Sigma_1\Sigma_2)^{1/2}$ and is computed from the eigenvalues of the symmetric
    PSD matrix $\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}$ (float64), which stays real and stable when the covariances are
    singular, as they are when there are fewer samples than features.
    """
    mu1, mu2, cov1, cov2 = (torch.as_tensor(v).double() for v in (mu1, mu2, cov1, cov2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"need means of shape (d,) and covariances (d, d); got {tuple(mu1.shape)}, "
                         f"{tuple(cov1.shape)}, {tuple(mu2.shape)}, {tuple(cov2.shape)}")
    s1 = _psd_sqrt(cov1)
    m = s1 @ cov2 @ s1
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    fd = (mu1 - mu2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * tr_sqrt
    return max(float(fd), 0.0)


def load_classifier(path=None, *, device=None) -> MNISTClassifier:
    """The classifier for `mnist_fid`: `sdelab.pretrained("mnist_classifier")`, or a file written by
    `python -m sdelab train-classifier --out PATH`."""
    if path is None:
        return hub.pretrained("mnist_classifier", device=device)
    return hub.load_file(path, device=device)


_DEFAULT: dict = {}


def reference_stats() -> tuple[torch.Tensor, torch.Tensor]:
    """Mean `(d,)` and covariance `(d, d)` (float64) of the shipped classifier's features of the 10,000 MNIST test
    digits, stored with its weights (`hub.info("mnist_classifier")["fid_reference"]` says how they were made)."""
    if "ref" not in _DEFAULT:
        ref = hub.load_extra("mnist_classifier", "fid_reference")
        _DEFAULT["ref"] = (ref["mu"].double(), ref["cov"].double())
    return _DEFAULT["ref"]


def mnist_fid(samples: torch.Tensor, reference: torch.Tensor | None = None, *,
              classifier: MNISTClassifier | None = None, batch_size: int = 500) -> float:
    r"""FID between two image sets in the penultimate features of the MNIST classifier (module docstring).

    Args:
        samples: `(N, 1, 28, 28)` images in $[-1, 1]$ (clamped to it), N >= 2. Compare numbers at the same N:
            the estimate is biased upwards at small N.
        reference: `(M, 1, 28, 28)` images, M >= 2; None (default): the shipped statistics of the 10,000 MNIST
            test digits (`reference_stats`), which belong to the shipped classifier only.
        classifier: the feature network (default: the shipped `"mnist_classifier"`, loaded once).
    Returns:
        The FID, a float >= 0 (0 for two identical sets).
    """
    if reference is None and classifier is not None:
        raise ValueError("reference=None means the shipped test-digit statistics, which hold only for the shipped "
                         "classifier; pass reference images with your own classifier")
    if classifier is None:
        if "model" not in _DEFAULT:
            _DEFAULT["model"] = load_classifier()
        classifier = _DEFAULT["model"]
    fa = features(classifier, samples, batch_size=batch_size)
    if fa.shape[0] < 2:
        raise ValueError(f"mnist_fid needs at least 2 samples, got {fa.shape[0]}")
    if reference is None:
        return frechet_distance(*feature_stats(fa), *reference_stats())
    fb = features(classifier, reference, batch_size=batch_size)
    if fb.shape[0] < 2:
        raise ValueError(f"mnist_fid needs at least 2 reference images, got {fb.shape[0]}")
    return frechet_distance(*feature_stats(fa), *feature_stats(fb))
