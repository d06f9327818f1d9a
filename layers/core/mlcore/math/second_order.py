"""Newton and L-BFGS rounds with a line search spread over rounds: pure numpy, no I/O.

Each round, the workers evaluate the objective at one candidate ``theta`` (loss and gradient sums, and for Newton
the Hessian sums); the aggregator then calls ``line_search_round``, which either

- accepts the candidate, when it decreases the objective enough against the last accepted point, the *anchor*
  (Armijo: ``f(anchor + t d) <= f(anchor) + ARMIJO * t * g·d``), makes it the new anchor, and proposes the full
  step ``anchor + d`` along a new direction ``d``: Newton's ``-H⁻¹g`` or L-BFGS's two-loop ``-H̃g``;
- or rejects it and proposes a shorter step from the anchor along the same direction (backtracking, the step
  from a safeguarded quadratic interpolation of the rejected loss).

So a round costs one Map whatever happens: no separate line-search evaluations. Near the optimum every full Newton
step is accepted, and Newton converges quadratically (IRLS for logistic regression is this iteration).

The search's state is a dict of float64 arrays stored beside ``theta`` (like an optimizer's): ``anchor``,
``anchor_loss``, ``anchor_grad``, ``direction``, ``step`` (0 before the first round), and for L-BFGS the last
``MEMORY`` curvature pairs ``s`` and ``y`` (rows, newest last).
"""

from __future__ import annotations

import numpy as np

ARMIJO = 1e-4
NEWTON_MAX_PARAMS = 1000  # (n_features + 1) x k: a worker's Hessian sum (float64) is 8 MB at 1,000 parameters
MEMORY = 10  # L-BFGS curvature pairs kept
SHRINK_MIN, SHRINK_MAX = 0.1, 0.5  # a rejected step is cut to between these fractions of itself


def triangle_size(p: int) -> int:
    """Values in the upper triangle (with the diagonal) of a ``p x p`` matrix."""
    return p * (p + 1) // 2


def pack_symmetric(matrix: np.ndarray) -> np.ndarray:
    """The upper triangle of a symmetric matrix, row by row (half the values to send)."""
    return matrix[np.triu_indices(matrix.shape[0])]


def unpack_symmetric(values: np.ndarray, p: int) -> np.ndarray:
    """The symmetric ``p x p`` matrix of ``pack_symmetric``'s values."""
    if values.shape != (triangle_size(p),):
        raise ValueError(f"the upper triangle of a {p} x {p} matrix has {triangle_size(p)} values, got {values.shape}")
    matrix = np.zeros((p, p))
    matrix[np.triu_indices(p)] = values
    return matrix + np.triu(matrix, 1).T


def regularized_hessian(hessian_sum: np.ndarray, rows: int, l2: float, k: int) -> np.ndarray:
    """The Hessian of the mean loss plus ``0.5 * l2 * ||W||^2``: intercepts (the last ``k`` parameters) unpenalized."""
    if rows <= 0:
        raise ValueError("cannot average over zero rows")
    H = hessian_sum / rows
    penalized = np.arange(H.shape[0] - k)
    H[penalized, penalized] += l2
    return H


def newton_direction(hessian: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """``-H⁺g`` with ``H⁺`` the pseudo-inverse of the symmetric Hessian: eigenvalues below ``p * eps`` times the
    largest are directions the objective is flat along (softmax's common shift of all intercepts, whose gradient
    is zero; separable classes without L2) and take no step, where a plain solve would step arbitrarily far."""
    eigenvalues, vectors = np.linalg.eigh(hessian)
    kept = eigenvalues > eigenvalues[-1] * len(eigenvalues) * np.finfo(np.float64).eps
    direction = -(vectors[:, kept] @ ((vectors[:, kept].T @ grad) / eigenvalues[kept]))
    if not np.all(np.isfinite(direction)) or float(grad @ direction) >= 0:
        return -grad  # no descent direction (a Hessian with no positive curvature): steepest descent
    return direction


def lbfgs_direction(grad: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """L-BFGS's two-loop recursion over the curvature pairs (rows of ``s`` and ``y``, oldest first), scaled by the
    newest pair's ``s·y / y·y``; with no pair, steepest descent scaled to unit length."""
    if len(s) == 0:
        return -grad / max(float(np.linalg.norm(grad)), 1.0)
    q = grad.copy()
    rho = 1.0 / np.einsum("ij,ij->i", s, y)
    alpha = np.empty(len(s))
    for i in range(len(s) - 1, -1, -1):
        alpha[i] = rho[i] * float(s[i] @ q)
        q -= alpha[i] * y[i]
    q *= float(s[-1] @ y[-1]) / float(y[-1] @ y[-1])
    for i in range(len(s)):
        beta = rho[i] * float(y[i] @ q)
        q += (alpha[i] - beta) * s[i]
    return -q


def init_state(n_params: int) -> dict[str, np.ndarray]:
    """The search before round 0: no anchor yet (``step`` 0), no curvature pairs."""
    return {
        "anchor": np.zeros(n_params),
        "anchor_loss": np.zeros(1),
        "anchor_grad": np.zeros(n_params),
        "direction": np.zeros(n_params),
        "step": np.zeros(1),
        "s": np.zeros((0, n_params)),
        "y": np.zeros((0, n_params)),
    }


def accepts(state: dict[str, np.ndarray], loss: float) -> bool:
    """Whether a candidate with objective ``loss`` is accepted: the first one always; later ones by Armijo."""
    step = float(state["step"][0])
    if step == 0.0:
        return True
    slope = float(state["anchor_grad"] @ state["direction"])
    return bool(np.isfinite(loss) and loss <= float(state["anchor_loss"][0]) + ARMIJO * step * slope)


def line_search_round(
    solver: str,
    state: dict[str, np.ndarray],
    theta: np.ndarray,
    loss: float,
    grad: np.ndarray,
    hessian: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], bool]:
    """The next candidate and search state after evaluating ``theta`` (objective ``loss``, gradient ``grad``, and
    for ``newton`` the regularized Hessian): ``(next_theta, next_state, accepted)``. Pure: inputs unchanged."""
    if solver not in ("newton", "lbfgs"):
        raise ValueError(f"unknown line-search solver {solver!r}; expected 'newton' or 'lbfgs'")
    if solver == "newton" and hessian is None:
        raise ValueError("the newton solver needs the Hessian")
    state = {name: np.array(value, dtype=np.float64, copy=True) for name, value in state.items()}
    if not accepts(state, loss):
        step = float(state["step"][0])
        slope = float(state["anchor_grad"] @ state["direction"])
        rise = loss - float(state["anchor_loss"][0]) - slope * step
        # the minimum of the quadratic through the anchor's loss and slope and the rejected loss, kept in range
        shrink = -slope * step / (2.0 * rise) if np.isfinite(loss) and rise > 0 else SHRINK_MIN
        state["step"] = np.array([step * min(max(shrink, SHRINK_MIN), SHRINK_MAX)])
        return state["anchor"] + state["step"][0] * state["direction"], state, False
    if solver == "lbfgs" and float(state["step"][0]) > 0:
        s, y = theta - state["anchor"], grad - state["anchor_grad"]
        if float(s @ y) > 1e-10 * float(np.linalg.norm(s)) * float(np.linalg.norm(y)):  # curvature condition
            state["s"] = np.vstack([state["s"], s])[-MEMORY:]
            state["y"] = np.vstack([state["y"], y])[-MEMORY:]
    if solver == "newton":
        assert hessian is not None
        direction = newton_direction(hessian, grad)
    else:
        direction = lbfgs_direction(grad, state["s"], state["y"])
    state.update(
        anchor=np.array(theta, dtype=np.float64, copy=True),
        anchor_loss=np.array([loss]),
        anchor_grad=np.array(grad, dtype=np.float64, copy=True),
        direction=direction,
        step=np.ones(1),
    )
    return theta + direction, state, True
