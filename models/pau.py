"""Padé activation unit (PAU, Molina et al. 2020): a learnable rational activation.

``PAU(x) = P(x) / Q(x)`` with ``P(x) = a_0 + a_1 x + ... + a_5 x^5`` and the pole-free
denominator ``Q(x) = 1 + |b_1| |x| + |b_2| |x|^2 + |b_3| |x|^3 + |b_4| |x|^4``: the form
ECG-DualNet trains (its ``PADEACTIVATION_F_abs_cpp`` CUDA kernel ``forward_5_4`` and its
Python fallback ``PADEACTIVATION_F_python`` compute exactly this; ``pade_activation_unit/``
in github.com/ChristophReich1996/ECG_Classification). One unit holds 10 coefficients shared
by every channel and position, initialised to the published fit of a leaky ReLU
(``pade_optimized_leakyrelu``).

No maintained library provides it for the CPU, so it is written here: a custom autograd
function evaluates both polynomials by Horner's scheme, mostly in place, and keeps three
tensors for its hand-written backward (a naive autograd graph of the formula keeps about a
dozen and takes about twice as long).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

NUMERATOR_INIT: tuple[float, ...] = (
    3.35583603e-02, 5.05000375e-01, 1.65343934e00, 2.01001052e00, 9.31901999e-01, 1.52424124e-01,
)
"""a_0..a_5 of the published leaky-ReLU fit (``get_constants_for_inits``)."""

DENOMINATOR_INIT: tuple[float, ...] = (
    3.30847488e-06, 3.98021568e00, 5.12471206e-07, 3.01830109e-01,
)
"""b_1..b_4 of the published leaky-ReLU fit (used through their absolute values)."""


def _horner(x: Tensor, coefficients: list[float]) -> Tensor:
    """sum_k c_k x^k for the coefficients c_0..c_n (plain floats), by Horner's scheme.

    One new tensor, every other step in place: on the CPU a freshly allocated tensor costs
    page faults and cache misses that an in-place pass does not, and this runs in every block.
    """
    if len(coefficients) == 1:
        return torch.full_like(x, coefficients[0])
    out = torch.mul(x, coefficients[-1]).add_(coefficients[-2])
    for c in reversed(coefficients[:-2]):
        out.mul_(x).add_(c)
    return out


def _denominator(ax: Tensor, denominator: list[float]) -> Tensor:
    """Q = 1 + |x| (|b_1| + |x| (|b_2| + ...)) from |x|."""
    return _horner(ax, [abs(b) for b in denominator]).mul_(ax).add_(1.0)


def pau_reference(x: Tensor, numerator: Tensor, denominator: Tensor) -> Tensor:
    """The formula term by term (powers, no Horner), for tests: P(x) / (1 + sum |b_k||x|^k)."""
    p = sum(a * x**j for j, a in enumerate(numerator))
    q = 1 + sum(b.abs() * x.abs() ** (k + 1) for k, b in enumerate(denominator))
    return p / q


def _power_sums(weights: Tensor, x: Tensor, n: int) -> Tensor:
    """(sum w, sum w x, ..., sum w x^(n-1)); ``weights`` is overwritten."""
    sums = []
    for k in range(n):
        sums.append(weights.sum())
        if k + 1 < n:
            weights.mul_(x)
    return torch.stack(sums)


class _PadeFunction(torch.autograd.Function):
    """y = P(x) / Q(x) with a hand-written backward.

    Saves x, y and Q (three tensors; the backward then needs no second evaluation of P and
    Q). With r = g / Q: dL/dx = r (P' - y Q'), dL/da_j = sum r x^j and
    dL/db_k = -sign(b_k) sum r y |x|^k.
    """

    @staticmethod
    def forward(ctx, x: Tensor, numerator: Tensor, denominator: Tensor) -> Tensor:
        q = _denominator(x.abs(), denominator.tolist())
        y = _horner(x, numerator.tolist()).div_(q)
        ctx.save_for_backward(x, y, q, numerator, denominator)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, y, q, numerator, denominator = ctx.saved_tensors
        a, b = numerator.tolist(), denominator.tolist()
        ax = x.abs()
        r = grad / q  # dL/dP
        grad_x = grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            dp = _horner(x, [j * a_j for j, a_j in enumerate(a)][1:])  # P'(x)
            # Q'(x) = sign(x) sum_k k |b_k| |x|^(k-1); the sum is >= 0, so copysign sets it.
            dq = _horner(ax, [k * abs(b_k) for k, b_k in enumerate(b, start=1)]).copysign_(x)
            grad_x = dp.sub_(dq.mul_(y)).mul_(r)
        if ctx.needs_input_grad[2]:
            s = (r * y).mul_(ax)  # -dL/dQ |x|
            grad_b = (_power_sums(s, ax, len(b)) * -denominator.sign()).to(denominator.dtype)
        if ctx.needs_input_grad[1]:
            grad_a = _power_sums(r, x, len(a)).to(numerator.dtype)
        return grad_x, grad_a, grad_b


class PadeActivation(nn.Module):
    """A PAU of numerator degree 5 and denominator degree 4, coefficients shared by all
    channels (10 parameters), initialised to the published leaky-ReLU fit.

    Computed in float32 whatever the autocast dtype (a degree-5 polynomial in bfloat16 loses
    most of its 8 mantissa bits); the output keeps the input's dtype.
    """

    def __init__(self) -> None:
        super().__init__()
        self.numerator = nn.Parameter(torch.tensor(NUMERATOR_INIT))
        self.denominator = nn.Parameter(torch.tensor(DENOMINATOR_INIT))

    def forward(self, x: Tensor) -> Tensor:
        wide = x if x.dtype in (torch.float32, torch.float64) else x.float()
        return _PadeFunction.apply(wide, self.numerator, self.denominator).to(x.dtype)

    def derivative(self, x: Tensor) -> Tensor:
        """dPAU/dx at ``x`` (for explanations that linearise the head), no graph."""
        with torch.no_grad():
            a, b = self.numerator.tolist(), self.denominator.tolist()
            ax = x.abs()
            q = _denominator(ax, b)
            y = _horner(x, a).div_(q)
            dp = _horner(x, [j * a_j for j, a_j in enumerate(a)][1:])
            dq = _horner(ax, [k * abs(b_k) for k, b_k in enumerate(b, start=1)]).copysign_(x)
            return dp.sub_(dq.mul_(y)).div_(q)
