"""The Padé activation unit: its formula, its hand-written gradient and its published start."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.pau import DENOMINATOR_INIT, NUMERATOR_INIT, PadeActivation, _PadeFunction


def formula(x: torch.Tensor, a: list[float], b: list[float]) -> torch.Tensor:
    """P(x) / Q(x), written out term by term: P = sum_j a_j x^j, Q = 1 + sum_k |b_k| |x|^k."""
    p = sum(a_j * x**j for j, a_j in enumerate(a))
    q = 1 + sum(abs(b_k) * x.abs() ** k for k, b_k in enumerate(b, start=1))
    return p / q


def test_it_computes_the_rational_function_term_by_term():
    unit = PadeActivation().double()
    with torch.no_grad():  # other coefficients than the start, negative ones included
        unit.numerator.copy_(torch.tensor([0.1, -0.7, 0.3, 0.05, -0.2, 0.01]))
        unit.denominator.copy_(torch.tensor([-0.5, 0.2, -1.5, 0.3]))
    x = torch.linspace(-6, 6, 1001, dtype=torch.double)
    expected = formula(x, unit.numerator.tolist(), unit.denominator.tolist())
    torch.testing.assert_close(unit(x), expected, rtol=1e-12, atol=1e-12)


def test_the_denominator_never_vanishes():
    # Q >= 1 whatever the coefficients' signs, so there is no pole.
    unit = PadeActivation()
    with torch.no_grad():
        unit.denominator.copy_(torch.tensor([-3.0, -2.0, -1.0, -0.5]))
    x = torch.linspace(-50, 50, 10001)
    assert torch.isfinite(unit(x)).all()


def test_the_published_start_is_the_leaky_relu_fit():
    # pade_optimized_leakyrelu: degree 5 over degree 4, close to leaky ReLU on [-3, 3].
    assert len(NUMERATOR_INIT) == 6 and len(DENOMINATOR_INIT) == 4
    unit = PadeActivation()
    x = torch.linspace(-3, 3, 601)
    with torch.no_grad():
        y = unit(x)
    error = (y - F.leaky_relu(x, 0.01)).abs()
    assert error.max() < 0.05 and error.mean() < 0.01
    assert sum(p.numel() for p in unit.parameters()) == 10


def test_the_hand_written_gradient_matches_finite_differences():
    torch.manual_seed(0)
    x = (2 * torch.randn(40, dtype=torch.double)).requires_grad_()
    a = torch.randn(6, dtype=torch.double, requires_grad=True)
    b = torch.randn(4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(_PadeFunction.apply, (x, a, b))


def test_the_gradient_matches_autograd_of_the_formula():
    torch.manual_seed(1)
    unit = PadeActivation()
    x = torch.randn(3, 5, 7, requires_grad=True)
    grad_out = torch.randn(3, 5, 7)
    (unit(x) * grad_out).sum().backward()
    got = (x.grad.clone(), unit.numerator.grad.clone(), unit.denominator.grad.clone())
    x.grad = None
    a = unit.numerator.detach().clone().requires_grad_()
    b = unit.denominator.detach().clone().requires_grad_()
    p = sum(a[j] * x**j for j in range(6))
    q = 1 + sum(b[k - 1].abs() * x.abs() ** k for k in range(1, 5))
    ((p / q) * grad_out).sum().backward()
    for mine, reference in zip(got, (x.grad, a.grad, b.grad), strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-5)


def test_derivative_is_the_slope():
    unit = PadeActivation()
    x = torch.linspace(-4, 4, 81, requires_grad=True)
    unit(x).sum().backward()
    torch.testing.assert_close(unit.derivative(x.detach()), x.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_are_computed_in_float32(dtype):
    unit = PadeActivation()
    x = torch.linspace(-3, 3, 101)
    y = unit(x.to(dtype))
    assert y.dtype == dtype
    torch.testing.assert_close(y.float(), unit(x.to(dtype).float()).to(dtype).float())
