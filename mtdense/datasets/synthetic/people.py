"""Articulated people built from primitives, posed by random joint angles.

Person frame: y up, z the direction the person faces, x to one side; the body is
symmetric, ``side = +1 / -1`` picks the limb. Proportions are fractions of the body
height. Forward kinematics: a limb segment points down (0, -1, 0) at rest; the hip /
shoulder rotate it forwards (flexion, about x) then outwards (abduction, about z); the
knee bends backwards and the elbow forwards relative to the upper segment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from .camera import rot_x, rot_y, rot_z
from .classes import CLASS_ID, PART_ID
from .primitives import Capsule, Ellipsoid, Primitive
from .textures import sample_material

DOWN = np.array([0.0, -1.0, 0.0])


@dataclass(frozen=True)
class PoseRanges:
    """Joint angle ranges in degrees (uniformly sampled per limb)."""
    hip_flexion: Tuple[float, float] = (-30.0, 70.0)
    hip_abduction: Tuple[float, float] = (0.0, 20.0)
    knee: Tuple[float, float] = (0.0, 95.0)
    shoulder_flexion: Tuple[float, float] = (-40.0, 150.0)
    shoulder_abduction: Tuple[float, float] = (0.0, 90.0)
    elbow: Tuple[float, float] = (0.0, 130.0)
    torso_lean: Tuple[float, float] = (-10.0, 15.0)
    torso_twist: Tuple[float, float] = (-20.0, 20.0)
    head_turn: Tuple[float, float] = (-40.0, 40.0)


def _deg(rng: np.random.Generator, rng_range: Tuple[float, float]) -> float:
    return math.radians(rng.uniform(*rng_range))


def limb(root: np.ndarray, frame: np.ndarray, side: int, flexion: float, abduction: float,
         bend: float, len1: float, len2: float) -> Tuple[np.ndarray, np.ndarray]:
    """Middle and end joints of a two-segment limb. ``bend > 0`` folds the lower segment
    forwards (elbow), ``bend < 0`` backwards (knee)."""
    r_upper = frame @ rot_z(side * abduction) @ rot_x(-flexion)
    mid = root + len1 * (r_upper @ DOWN)
    end = mid + len2 * (r_upper @ rot_x(-bend) @ DOWN)
    return mid, end


def make_person(rng: np.random.Generator, position_xz: Tuple[float, float], yaw: float,
                height: float, pose: PoseRanges = PoseRanges()) -> List[Primitive]:
    """World-frame primitives of one randomly posed person standing on the floor (y = 0)
    at ``position_xz``, facing ``yaw`` (radians about +y, 0 = facing +z)."""
    h = float(height)
    person = CLASS_ID['person']
    skin = sample_material('person:skin', rng)
    shirt = sample_material('person:shirt', rng)
    trousers = sample_material('person:trousers', rng)

    pelvis = np.array([0.0, 0.50 * h, 0.0])
    torso_frame = rot_y(_deg(rng, pose.torso_twist)) @ rot_x(_deg(rng, pose.torso_lean))
    # Torso and head hang off the pelvis, so leaning moves shoulders and head with them.
    torso_center = pelvis + torso_frame @ np.array([0.0, 0.16 * h, 0.0])
    head_center = pelvis + torso_frame @ np.array([0.0, 0.425 * h, 0.0])
    parts: List[Tuple[Primitive, int]] = []
    parts.append((Ellipsoid(torso_center, (0.135 * h, 0.2 * h, 0.085 * h), rot=torso_frame,
                            material=shirt), PART_ID['torso']))
    parts.append((Ellipsoid(head_center, (0.06 * h, 0.07 * h, 0.065 * h),
                            rot=torso_frame @ rot_y(_deg(rng, pose.head_turn)), material=skin),
                  PART_ID['head']))

    for side in (1, -1):
        shoulder = pelvis + torso_frame @ np.array([side * 0.135 * h, 0.29 * h, 0.0])
        elbow, hand = limb(shoulder, torso_frame, side, _deg(rng, pose.shoulder_flexion),
                           _deg(rng, pose.shoulder_abduction), _deg(rng, pose.elbow),
                           0.17 * h, 0.17 * h)
        parts.append((Capsule(shoulder, elbow, 0.036 * h, material=shirt),
                      PART_ID['upper_arm']))
        parts.append((Capsule(elbow, hand, 0.03 * h, material=skin), PART_ID['lower_arm']))

        hip = pelvis + np.array([side * 0.085 * h, 0.0, 0.0])
        knee, ankle = limb(hip, np.eye(3), side, _deg(rng, pose.hip_flexion),
                           _deg(rng, pose.hip_abduction), -_deg(rng, pose.knee),
                           0.24 * h, 0.23 * h)
        parts.append((Capsule(hip, knee, 0.058 * h, material=trousers), PART_ID['upper_leg']))
        parts.append((Capsule(knee, ankle, 0.045 * h, material=trousers),
                      PART_ID['lower_leg']))

    # Lower the body until its lowest point touches the floor (bent legs lift the feet).
    lowest = min(_lowest_point(p) for p, _ in parts)
    world_rot = rot_y(yaw)  # a turn about +y leaves heights unchanged
    shift = np.array([position_xz[0], -lowest, position_xz[1]])
    out = []
    for prim, part in parts:
        prim.label, prim.part = person, part
        out.append(prim.moved(world_rot, shift))
    return out


def _lowest_point(prim: Primitive) -> float:
    lo, _ = prim.bounds()
    if isinstance(prim, Capsule):  # exact: lowest endpoint minus the radius
        ends = prim.center[1] + np.array([1, -1]) * prim.half_length * prim.rot[1, 1]
        return float(ends.min() - prim.radius)
    return float(lo[1])


def person_footprint(height: float) -> float:
    """Radius (m) of the floor disc a person of ``height`` is kept within for placement."""
    return 0.3 * float(height)

