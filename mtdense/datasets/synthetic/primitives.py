"""Analytic ray-primitive intersections for rays from the camera centre.

Every primitive lives in the camera frame: ``center`` (3,) and ``rot`` (3, 3), whose
columns are the primitive's local axes, so ``p_local = (p - center) @ rot``. Rays start
at the origin with direction ``d`` (any shape ``(..., 3)``), and ``intersect`` returns
the ray parameter of the first hit in front of the camera (``inf`` on a miss). With the
camera's z = -1 directions that parameter is the depth. ``normal`` returns outward unit
normals at given surface points. Closed primitives assume the camera is outside them.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

EPS = 1e-9
INF = np.inf


class Primitive:
    """Base class: pose, semantic label, person part, material and bounds."""

    #: half extents of a local axis-aligned box that contains the primitive
    local_half_extent: np.ndarray

    def __init__(self, center, rot=None, label: int = 0, part: int = 0,
                 material: Any = None) -> None:
        self.center = np.asarray(center, dtype=np.float64).reshape(3)
        self.rot = np.eye(3) if rot is None else np.asarray(rot, dtype=np.float64).reshape(3, 3)
        self.label = int(label)
        self.part = int(part)
        self.material = material

    def moved(self, rot: np.ndarray, trans: np.ndarray) -> 'Primitive':
        """Copy under the rigid motion x -> rot @ x + trans (e.g. world -> camera)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.center = rot @ self.center + trans
        new.rot = rot @ self.rot
        return new

    def to_local(self, p: np.ndarray) -> np.ndarray:
        return (p - self.center) @ self.rot

    def _local_ray(self, d: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Ray origin (3,) and directions (..., 3) in the local frame."""
        return -self.center @ self.rot, d @ self.rot

    def bounds(self) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """Camera-frame axis-aligned bounding box (lo, hi); None = unbounded."""
        half = np.abs(self.rot) @ self.local_half_extent
        return self.center - half, self.center + half

    def intersect(self, d: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def normal(self, p: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def _local_normal_to_cam(self, n_local: np.ndarray) -> np.ndarray:
        n = n_local @ self.rot.T
        return n / np.linalg.norm(n, axis=-1, keepdims=True)


def _sphere_entry(o: np.ndarray, d: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """Nearer root of |o + t d - center| = radius (inf on a miss or behind the origin)."""
    oc = o - center
    a = np.einsum('...i,...i->...', d, d)
    b = d @ oc
    c = float(oc @ oc) - radius * radius
    disc = b * b - a * c
    with np.errstate(invalid='ignore'):
        t = (-b - np.sqrt(disc)) / a
    return np.where((disc >= 0) & (t > EPS), t, INF)


def _side_entry(o: np.ndarray, d: np.ndarray, radius: float, half_height: float) -> np.ndarray:
    """Entry through the side of a y-axis cylinder, clipped to |y| <= half_height."""
    a = d[..., 0] ** 2 + d[..., 2] ** 2
    b = o[0] * d[..., 0] + o[2] * d[..., 2]
    c = o[0] ** 2 + o[2] ** 2 - radius * radius
    disc = b * b - a * c
    with np.errstate(invalid='ignore', divide='ignore'):
        t = (-b - np.sqrt(disc)) / a
    y = o[1] + t * d[..., 1]
    ok = (disc >= 0) & (a > 0) & (t > EPS) & (np.abs(y) <= half_height)
    return np.where(ok, t, INF)


class Sphere(Primitive):
    """Sphere of ``radius`` around ``center``."""

    def __init__(self, center, radius: float, **kwargs) -> None:
        super().__init__(center, **kwargs)
        self.radius = float(radius)
        self.local_half_extent = np.full(3, self.radius)

    def bounds(self):
        return self.center - self.radius, self.center + self.radius

    def intersect(self, d):
        return _sphere_entry(np.zeros(3), d, self.center, self.radius)

    def normal(self, p):
        n = p - self.center
        return n / np.linalg.norm(n, axis=-1, keepdims=True)


class Ellipsoid(Primitive):
    """Ellipsoid with semi-axes ``radii`` along its local x, y, z."""

    def __init__(self, center, radii, rot=None, **kwargs) -> None:
        super().__init__(center, rot, **kwargs)
        self.radii = np.asarray(radii, dtype=np.float64).reshape(3)
        self.local_half_extent = self.radii.copy()

    def intersect(self, d):
        o, dl = self._local_ray(d)
        return _sphere_entry(o / self.radii, dl / self.radii, np.zeros(3), 1.0)

    def normal(self, p):
        return self._local_normal_to_cam(self.to_local(p) / self.radii ** 2)


class Box(Primitive):
    """Box with local half extents ``half`` (rotated by ``rot``)."""

    def __init__(self, center, half, rot=None, **kwargs) -> None:
        super().__init__(center, rot, **kwargs)
        self.half = np.asarray(half, dtype=np.float64).reshape(3)
        self.local_half_extent = self.half.copy()

    def intersect(self, d):
        o, dl = self._local_ray(d)
        with np.errstate(divide='ignore', invalid='ignore'):
            inv = 1.0 / dl
            t1 = (-self.half - o) * inv
            t2 = (self.half - o) * inv
        # fmin / fmax skip the NaNs of 0 * inf (ray parallel to a face plane).
        t_near = np.fmax.reduce(np.fmin(t1, t2), axis=-1)
        t_far = np.fmin.reduce(np.fmax(t1, t2), axis=-1)
        return np.where((t_near <= t_far) & (t_near > EPS), t_near, INF)

    def normal(self, p):
        q = self.to_local(p) / self.half
        axis = np.argmax(np.abs(q), axis=-1)
        n = np.zeros_like(q)
        rows = np.arange(len(q))
        n[rows, axis] = np.sign(q[rows, axis])
        return self._local_normal_to_cam(n)


class Cylinder(Primitive):
    """Capped cylinder around the local y axis: ``radius``, ``half_height``."""

    def __init__(self, center, radius: float, half_height: float, rot=None, **kwargs) -> None:
        super().__init__(center, rot, **kwargs)
        self.radius = float(radius)
        self.half_height = float(half_height)
        self.local_half_extent = np.array([self.radius, self.half_height, self.radius])

    def intersect(self, d):
        o, dl = self._local_ray(d)
        t_side = _side_entry(o, dl, self.radius, self.half_height)
        # A ray going down can only enter through the top cap, one going up the bottom one.
        cap_y = np.where(dl[..., 1] < 0, self.half_height, -self.half_height)
        with np.errstate(divide='ignore', invalid='ignore'):
            t_cap = (cap_y - o[1]) / dl[..., 1]
        x = o[0] + t_cap * dl[..., 0]
        z = o[2] + t_cap * dl[..., 2]
        ok = np.isfinite(t_cap) & (t_cap > EPS) & (x * x + z * z <= self.radius ** 2)
        return np.minimum(t_side, np.where(ok, t_cap, INF))

    def normal(self, p):
        q = self.to_local(p)
        rho = np.sqrt(q[:, 0] ** 2 + q[:, 2] ** 2)
        on_cap = np.abs(np.abs(q[:, 1]) - self.half_height) < np.abs(rho - self.radius)
        safe = np.maximum(rho, 1e-12)
        n = np.stack([q[:, 0] / safe, np.zeros_like(rho), q[:, 2] / safe], axis=-1)
        n[on_cap] = 0.0
        n[on_cap, 1] = np.sign(q[on_cap, 1])
        return self._local_normal_to_cam(n)


class Capsule(Primitive):
    """Segment from ``a`` to ``b`` swept by a ball of ``radius`` (limbs of people)."""

    def __init__(self, a, b, radius: float, **kwargs) -> None:
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        axis = b - a
        length = float(np.linalg.norm(axis))
        if length < 1e-9:
            raise ValueError(f'Capsule: endpoints must differ, got a={a}, b={b}')
        super().__init__((a + b) / 2.0, _frame_with_y(axis / length), **kwargs)
        self.radius = float(radius)
        self.half_length = length / 2.0
        self.local_half_extent = np.array([self.radius, self.half_length + self.radius,
                                           self.radius])

    def intersect(self, d):
        o, dl = self._local_ray(d)
        t = _side_entry(o, dl, self.radius, self.half_length)
        # The capsule is the union of the clipped cylinder and the two end balls, so its
        # entry point is the earliest entry of the three.
        for end in (self.half_length, -self.half_length):
            t = np.minimum(t, _sphere_entry(o, dl, np.array([0.0, end, 0.0]), self.radius))
        return t

    def normal(self, p):
        q = self.to_local(p)
        q[:, 1] -= np.clip(q[:, 1], -self.half_length, self.half_length)
        return self._local_normal_to_cam(q)


class Quad(Primitive):
    """One-sided rectangle in its local xy plane, facing local +z (room surfaces).

    Rays reaching it from behind (d . n >= 0) pass through, so a room seen from inside
    is its inward-facing quads.
    """

    def __init__(self, center, half_x: float, half_y: float, rot=None, **kwargs) -> None:
        super().__init__(center, rot, **kwargs)
        # A hair of overlap so that adjacent quads leave no cracks at shared edges.
        self.half_x = float(half_x) * (1 + 1e-9) + 1e-9
        self.half_y = float(half_y) * (1 + 1e-9) + 1e-9
        self.local_half_extent = np.array([self.half_x, self.half_y, 0.0])

    def intersect(self, d):
        n = self.rot[:, 2]
        dn = d @ n
        with np.errstate(divide='ignore', invalid='ignore'):
            t = (self.center @ n) / dn
        x = t * (d @ self.rot[:, 0]) - self.center @ self.rot[:, 0]
        y = t * (d @ self.rot[:, 1]) - self.center @ self.rot[:, 1]
        ok = (dn < 0) & (t > EPS) & (np.abs(x) <= self.half_x) & (np.abs(y) <= self.half_y)
        return np.where(ok, t, INF)

    def normal(self, p):
        return np.broadcast_to(self.rot[:, 2], p.shape).copy()


def _frame_with_y(y: np.ndarray) -> np.ndarray:
    """A right-handed orthonormal frame (columns) whose second axis is ``y``."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(y[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    x = _cross(y, helper)
    x /= np.linalg.norm(x)
    return np.stack([x, y, _cross(x, y)], axis=1)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross is slow on single vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2],
                     a[0] * b[1] - a[1] * b[0]])
