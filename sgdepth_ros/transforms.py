"""Rotation ⇄ quaternion conversion and pose validation for tf and odometry messages (pure numpy, no ROS, no
rosbags: the node path uses it too; :mod:`sgdepth_ros.bag.transforms` re-exports it).

Quaternions follow ROS (geometry_msgs/Quaternion): order (x, y, z, w), Hamilton convention,
unit norm. A rotation matrix ``R`` maps child-frame coordinates into the parent frame:
``p_parent = R @ p_child + t``, which is what a parent → child TransformStamped carries.
"""
from __future__ import annotations

import numpy as np

_ORTHO_TOL = 1e-4   # max |R·Rᵀ − I| and |det R − 1| accepted as a rotation
_NORM_TOL = 1e-3    # max |‖q‖ − 1| accepted before renormalising a quaternion


def rotation_to_quaternion(R) -> tuple[float, float, float, float]:
    """A 3x3 rotation matrix → unit quaternion ``(x, y, z, w)`` with ``w >= 0``.

    Args:
        R: array-like, shape (3, 3), a proper rotation (orthonormal, det +1).

    Returns:
        (x, y, z, w) floats; ``q`` and ``−q`` are the same rotation, the one with w ≥ 0 is
        returned (for a half-turn, w = 0, the first non-zero of x, y, z is made positive).

    Raises:
        ValueError: not 3x3, not finite, or not a proper rotation (a reflection or a scaled
        matrix).
    """
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3) or not np.all(np.isfinite(R)):
        raise ValueError(f"rotation must be a finite 3x3 matrix, got shape {R.shape}")
    if np.abs(R @ R.T - np.eye(3)).max() > _ORTHO_TOL or abs(np.linalg.det(R) - 1.0) > _ORTHO_TOL:
        raise ValueError(f"not a proper rotation matrix (orthonormal, det +1):\n{R}")
    # Shepperd: divide by the largest of 4w², 4x², 4y², 4z² for numerical stability
    trace = np.trace(R)
    diag = np.diag(R)
    i = int(np.argmax([trace, *diag]))
    if i == 0:
        s = 2.0 * np.sqrt(1.0 + trace)                       # s = 4w
        q = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1], 0.25 * s * s]) / s
    else:
        a = i - 1                                              # largest of x, y, z
        b, c = (a + 1) % 3, (a + 2) % 3
        s = 2.0 * np.sqrt(1.0 + R[a, a] - R[b, b] - R[c, c])   # s = 4·q[a]
        q = np.empty(4)
        q[a] = 0.25 * s
        q[b] = (R[b, a] + R[a, b]) / s
        q[c] = (R[c, a] + R[a, c]) / s
        q[3] = (R[c, b] - R[b, c]) / s
    q /= np.linalg.norm(q)
    q = _canonical(q)
    return tuple(float(v) for v in q)


def quaternion_to_rotation(quaternion) -> np.ndarray:
    """A quaternion ``(x, y, z, w)`` → 3x3 float64 rotation matrix (the inverse of the above).

    Raises ValueError for a quaternion that is not (close to) unit length.
    """
    x, y, z, w = check_quaternion(quaternion)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def check_quaternion(quaternion) -> tuple[float, float, float, float]:
    """Validate ``(x, y, z, w)``: 4 finite numbers within 1e-3 of unit norm → renormalised floats."""
    q = np.asarray(quaternion, dtype=np.float64).reshape(-1)
    if q.shape != (4,) or not np.all(np.isfinite(q)):
        raise ValueError(f"quaternion must be 4 finite numbers (x, y, z, w), got {quaternion!r}")
    norm = float(np.linalg.norm(q))
    if abs(norm - 1.0) > _NORM_TOL:
        raise ValueError(f"quaternion {tuple(q)} has norm {norm:.6f}, expected 1 (x, y, z, w order)")
    return tuple(float(v) for v in q / norm)


def check_translation(translation) -> tuple[float, float, float]:
    """Validate a translation: 3 finite numbers (metres) → floats."""
    t = np.asarray(translation, dtype=np.float64).reshape(-1)
    if t.shape != (3,) or not np.all(np.isfinite(t)):
        raise ValueError(f"translation must be 3 finite numbers (x, y, z metres), got {translation!r}")
    return tuple(float(v) for v in t)


def _canonical(q: np.ndarray) -> np.ndarray:
    """Pick the sign of ``q`` (x, y, z, w) so that w > 0, or for w = 0 the first non-zero part > 0."""
    for value in (q[3], q[0], q[1], q[2]):
        if abs(value) > 1e-12:
            return q if value > 0 else -q
    return q


def rotation_vector(R) -> np.ndarray:
    """A 3x3 rotation → its rotation vector (axis · angle in radians, angle in [0, π]), float64 [3]."""
    x, y, z, w = rotation_to_quaternion(R)
    v = np.array([x, y, z])
    s = float(np.linalg.norm(v))
    if s < 1e-15:
        return np.zeros(3)
    return v / s * (2.0 * np.arctan2(s, w))
