"""probssl.evaluation.pca: principal components against an eigendecomposition, and the bit-budget quantisers."""

import pytest
import torch

from probssl.evaluation.pca import fit_pca, sign_codes, uniform_codes


def _data(n=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    scales = torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, 0.1])
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    return (torch.randn(n, 6, generator=g) * scales) @ rotation.T + 7.0, rotation


def test_components_are_the_covariance_eigenvectors_by_decreasing_variance():
    z, _ = _data()
    pca = fit_pca(z, 3)
    cov = torch.cov(z.double().T)
    eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
    for k in range(3):
        top = eigvecs[:, -1 - k]
        assert abs(float(top @ pca.components[:, k].double())) == pytest.approx(1.0, abs=1e-5)
    assert float(pca.explained.sum()) == pytest.approx(float(eigvals[-3:].sum() / eigvals.sum()), rel=1e-4)
    assert torch.all(pca.explained[:-1] >= pca.explained[1:])
    coords = pca(z)
    assert coords.shape == (len(z), 3)
    assert coords.mean(0).abs().max() < 1e-3  # centred with the fitted mean
    assert torch.allclose(coords.var(0).double(), eigvals.flip(0)[:3], rtol=1e-3)


def test_sign_of_each_component_is_fixed():
    z, _ = _data()
    a, b = fit_pca(z, 4), fit_pca(z.flip(0), 4)  # same rows, another order: same components and signs
    assert torch.allclose(a.components, b.components, atol=1e-5)
    largest = a.components.gather(0, a.components.abs().argmax(0, keepdim=True))
    assert torch.all(largest > 0)


@pytest.mark.parametrize("dim", [0, 7])
def test_dimension_out_of_range_is_an_error(dim):
    with pytest.raises(ValueError, match="PCA to"):
        fit_pca(torch.randn(50, 6), dim)


def test_sign_codes_are_one_bit_per_component():
    z, _ = _data(200)
    pca = fit_pca(z, 4)
    codes = sign_codes(z, pca)
    assert codes.shape == (200, 4) and set(codes.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(codes > 0, pca(z) >= 0)


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_uniform_codes_round_to_the_nearest_of_2_to_the_bits_levels(bits):
    z, _ = _data(500)
    pca = fit_pca(z, 3)
    x = pca(z)
    low, high = x.min(0).values, x.max(0).values
    q = uniform_codes(z, pca, bits, low, high)
    step = (high - low) / (2**bits - 1)
    assert torch.all((q - x).abs() <= step / 2 + 1e-4)
    levels = torch.round((q - low) / step)
    assert torch.allclose(levels * step + low, q, atol=1e-4)
    assert all(len(q[:, j].unique()) <= 2**bits for j in range(3))
    # values outside the bounds are clipped to them
    far = uniform_codes(z[:5] * 1000, pca, bits, low, high)
    assert torch.all(far >= low - 1e-5) and torch.all(far <= high + 1e-5)
