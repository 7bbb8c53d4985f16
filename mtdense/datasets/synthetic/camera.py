"""Pinhole camera of the synthetic renderer.

Camera frame (the project convention, docs/architecture.md): x right, y up, z towards
the viewer, so the camera looks along -z. Pixel (u, v) (column, row; integer
coordinates at pixel centres, as in OpenCV) sees the ray

    d(u, v) = ((u - cx) / fx, -(v - cy) / fy, -1)

whose z component is -1, so the ray parameter t of a hit equals its depth along the
camera z axis. ``K`` below is the usual OpenCV intrinsic matrix; the OpenCV camera frame
is ours with y and z negated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List

import numpy as np


def rot_x(angle: float) -> np.ndarray:
    """Right-handed rotation about +x by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1., 0., 0.], [0., c, -s], [0., s, c]])


def rot_y(angle: float) -> np.ndarray:
    """Right-handed rotation about +y by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0., s], [0., 1., 0.], [-s, 0., c]])


def rot_z(angle: float) -> np.ndarray:
    """Right-handed rotation about +z by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.], [s, c, 0.], [0., 0., 1.]])


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics of an ``height`` x ``width`` image with horizontal field of view
    ``hfov_deg`` and square pixels, principal point at the image centre."""
    height: int
    width: int
    hfov_deg: float = 60.0

    def __post_init__(self) -> None:
        if int(self.height) < 1 or int(self.width) < 1:
            raise ValueError(f'PinholeCamera: size must be positive, got '
                             f'height={self.height}, width={self.width}')
        if not 1.0 <= float(self.hfov_deg) <= 170.0:
            raise ValueError(f'PinholeCamera: hfov_deg must be in [1, 170], got {self.hfov_deg}')

    @property
    def fx(self) -> float:
        return 0.5 * self.width / math.tan(math.radians(self.hfov_deg) / 2.0)

    @property
    def fy(self) -> float:
        return self.fx

    @property
    def cx(self) -> float:
        return (self.width - 1) / 2.0

    @property
    def cy(self) -> float:
        return (self.height - 1) / 2.0

    @property
    def vfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(0.5 * self.height / self.fy))

    @property
    def K(self) -> List[List[float]]:
        """OpenCV intrinsic matrix as nested lists (JSON friendly)."""
        return [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]]

    def to_dict(self) -> Dict[str, object]:
        return dict(height=self.height, width=self.width, hfov_deg=self.hfov_deg, fx=self.fx,
                    fy=self.fy, cx=self.cx, cy=self.cy, K=self.K,
                    frame='x right, y up, z towards the viewer (camera looks along -z); '
                          'pixel (u, v) sees ((u - cx) / fx, -(v - cy) / fy, -1)')

    def ray_grid(self) -> np.ndarray:
        """(H, W, 3) float64 ray directions with z = -1 (not normalised)."""
        u = (np.arange(self.width, dtype=np.float64) - self.cx) / self.fx
        v = -(np.arange(self.height, dtype=np.float64) - self.cy) / self.fy
        rays = np.empty((self.height, self.width, 3), dtype=np.float64)
        rays[..., 0] = u[None, :]
        rays[..., 1] = v[:, None]
        rays[..., 2] = -1.0
        return rays

    def project_box(self, lo: np.ndarray, hi: np.ndarray, near: float = 1e-3):
        """Conservative pixel bounding box ``(v0, v1, u0, u1)`` (half-open) of the
        camera-frame axis-aligned box [lo, hi]; ``None`` if it is entirely off screen.

        x / (-z) is monotonic in x and in -z separately on a box in front of the camera,
        so its extremes lie at the box corners.
        """
        if hi[2] > -near:  # the box reaches the camera plane: no finite projection bound
            return 0, self.height, 0, self.width
        w = np.array([-hi[2], -lo[2]])  # positive distances in front of the camera
        xs = np.array([lo[0], hi[0]])[:, None] / w[None, :]
        ys = np.array([lo[1], hi[1]])[:, None] / w[None, :]
        u0 = math.floor(self.cx + self.fx * xs.min())
        u1 = math.ceil(self.cx + self.fx * xs.max()) + 1
        v0 = math.floor(self.cy - self.fy * ys.max())
        v1 = math.ceil(self.cy - self.fy * ys.min()) + 1
        u0, u1 = max(u0, 0), min(u1, self.width)
        v0, v1 = max(v0, 0), min(v1, self.height)
        if u0 >= u1 or v0 >= v1:
            return None
        return v0, v1, u0, u1


@dataclass(frozen=True)
class CameraPose:
    """Camera placement in the world (y up, floor at y = 0).

    The camera-to-world rotation is ``rot_y(yaw) @ rot_x(-pitch)``: ``pitch > 0`` looks
    down, ``yaw > 0`` turns left (towards -x). Angles in radians.
    """
    position: tuple
    yaw: float = 0.0
    pitch: float = 0.0

    @property
    def cam_to_world(self) -> np.ndarray:
        return rot_y(self.yaw) @ rot_x(-self.pitch)

    @property
    def world_to_cam(self) -> np.ndarray:
        return self.cam_to_world.T

    def point_to_cam(self, p_world: np.ndarray) -> np.ndarray:
        """World point(s) (..., 3) to the camera frame."""
        return (np.asarray(p_world, dtype=np.float64) - np.asarray(self.position)) @ \
            self.world_to_cam.T

    def dir_to_cam(self, d_world: np.ndarray) -> np.ndarray:
        """World direction(s) (..., 3) to the camera frame."""
        return np.asarray(d_world, dtype=np.float64) @ self.world_to_cam.T

    def to_dict(self) -> Dict[str, object]:
        return dict(position=[float(x) for x in self.position], yaw=float(self.yaw),
                    pitch=float(self.pitch))
