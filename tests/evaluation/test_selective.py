"""AUGRC against hand-computed values, torch-uncertainty's formula and its large-N closed form."""

import numpy as np
import pytest
import torch

from probssl.evaluation.selective import augrc, generalized_risk_curve


def reference_augrc(uncertainty: np.ndarray, correct: np.ndarray) -> float:
    """torch-uncertainty's AUGRC restated in numpy: confidence = -uncertainty, distinct scores only."""
    errors = (~correct).astype(float)[np.argsort(uncertainty)]  # most certain first
    n = len(errors)
    cov = np.arange(1, n + 1) / n
    selective_risk = np.cumsum(errors) / np.arange(1, n + 1)
    return np.trapezoid(selective_risk * cov, cov) / (1 - 1 / n)


def test_hand_computed_example():
    # Accepted in the order 0.1 (ok), 0.2 (wrong), 0.3 (ok), 0.4 (wrong): GR = 0, 1/4, 1/4, 2/4.
    u = torch.tensor([0.1, 0.2, 0.3, 0.4])
    correct = torch.tensor([True, False, True, False])
    coverage, risk = generalized_risk_curve(u, correct)
    assert coverage.tolist() == [0.25, 0.5, 0.75, 1.0] and risk.tolist() == [0, 0.25, 0.25, 0.5]
    # trapezoid area 0.75 / 4 = 0.1875 over the support 3 / 4
    assert augrc(u, correct) == pytest.approx(0.25, abs=1e-15)


def test_all_correct_all_wrong_and_too_few():
    u = torch.rand(50, generator=torch.Generator().manual_seed(0))
    assert augrc(u, torch.ones(50, dtype=torch.bool)) == 0.0
    assert augrc(u, torch.zeros(50, dtype=torch.bool)) == pytest.approx(51 / 100, abs=1e-15)  # (N + 1) / 2N
    assert np.isnan(augrc(torch.zeros(1), torch.ones(1, dtype=torch.bool)))


def test_matches_torch_uncertainty_formula():
    rng = np.random.default_rng(3)
    for n in (2, 17, 500):
        u = rng.permutation(n).astype(float)  # distinct: the reference's argsort order is then unique
        correct = rng.random(n) < 0.7
        correct[0] = not correct[0] if correct.all() or (~correct).all() else correct[0]
        assert augrc(torch.from_numpy(u), torch.from_numpy(correct)) == pytest.approx(
            reference_augrc(u, correct), abs=1e-12
        )


def test_large_n_closed_forms_and_ties():
    n, err = 20000, 0.3
    g = torch.Generator().manual_seed(1)
    correct = torch.randperm(n, generator=g) >= int(err * n)  # exactly 30% wrong
    perfect = (~correct).double() + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
    assert augrc(perfect, correct) == pytest.approx(err**2 / 2, abs=1e-3)
    assert augrc(-perfect, correct) == pytest.approx(err * (1 - err) + err**2 / 2, abs=1e-3)  # inverted
    assert augrc(torch.rand(n, generator=g), correct) == pytest.approx(err / 2, abs=5e-3)  # uninformative
    # All tied: the expected GR is k err / N at every k, exactly, so AUGRC = err (N + 1) / 2N.
    assert augrc(torch.zeros(n), correct) == pytest.approx(err * (n + 1) / (2 * n), abs=1e-12)
