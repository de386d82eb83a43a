"""The phantom's anatomy: one parametric 3-D heart in a body, drawn as a map of tissues.

Long-axis position ``t`` is 0 at the base and 1 at the apex; lengths are in mm. :func:`sample_subject` draws a
subject (heart at end-diastole, body, an optional coronary territory of edema with a scar core),
:func:`end_systole` contracts its heart, and :func:`render_tissue` draws the tissue index of every point of a
slice. What each tissue looks like in an image is :mod:`.phantom`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

# Tissues: indices into the rows of CONTRAST.
TISSUES = ("air", "fat", "muscle", "lung", "liver", "bone", "marrow", "vessel", "RV wall", "myocardium",
           "edema", "scar", "LV blood", "papillary", "RV blood")
AIR, FAT, MUSCLE, LUNG, LIVER, BONE, MARROW, VESSEL, RV_WALL, MYO, EDEMA, SCAR, LV_BLOOD, PAPILLARY, RV_BLOOD = (
    range(len(TISSUES))
)

# Body layout in the patient frame (mm; x to the patient's left, y posterior; LV centre at the origin).
BODY = (-35.0, 45.0, 165.0, 120.0)  # centre x, y, semi-axes
LUNGS = ((75.0, 40.0, 42.0, 75.0), (-125.0, 35.0, 45.0, 75.0))  # left, right
LIVER_ELLIPSE = (-70.0, 55.0, 95.0, 85.0)
SPINE = (-25.0, 110.0, 16.0)  # centre x, y, radius
AORTA = (5.0, 82.0, 11.0)
RV_WALL_MM = 3.0
EPICARDIAL_FAT_MM = 1.5
ATRIAL_DEPTH = 0.3
HEART_EXTENT = 3.0
"""No heart tissue lies farther than this many basal radii from the LV centre."""
ATRIA = ((0.15, 0.3, 0.75), (-1.0, 0.4, 0.6), (-0.3, -0.45, 0.4))
"""Above the base (-ATRIAL_DEPTH < t < 0): LA, RA, aortic root as (u, v, radius) in basal radii."""


@dataclass(frozen=True)
class Lesion:
    """A coronary territory: edema with a scar core (angles in the heart frame, positions in ``t``)."""

    angle: float  # centre of the territory
    width: float  # angular half-width
    ripple: tuple[float, float]  # relative amplitude and phase of the irregular border
    center: float  # centre along the long axis
    extent: float  # half-extent along the long axis
    edema_depth: float  # transmural extent of edema at the centre (fraction of the wall)
    scar_depth: float  # the same for scar, <= edema_depth
    scar_size: float  # the scar territory is the edema territory scaled by this (< 1)


@dataclass(frozen=True)
class Heart:
    """One heart at one cardiac phase (mm and rad)."""

    radius: float  # basal epicardial radius
    wall: float  # basal wall thickness; thins by 40 % toward the apex
    length: float  # base-to-apex length
    base: float  # base position on the long axis (0 at end-diastole)
    taper: float  # exponent of the apical taper (larger: blunter)
    ellipticity: float  # in-plane aspect ratio
    harmonics: tuple[tuple[float, float, float], ...]  # k = 2, 3, 4: amplitude, phase, twist along t
    axis: float  # in-plane angle of the septum-to-lateral-wall axis in the body
    rv: tuple[float, float, float, float]  # centre offset, semi-axes u and v (in radii), apical end (in t)
    papillary: float  # papillary-muscle radius as a fraction of the cavity radius
    fat: tuple[float, float]  # epicardial fat: angle, maximal thickness
    lesion: Lesion | None


@dataclass(frozen=True)
class Body:
    """The anatomy around the heart."""

    scale: float
    fat: float  # subcutaneous fat thickness, mm
    liver_start: float  # long-axis position ``t`` where the liver appears


@dataclass(frozen=True)
class Subject:
    """One phantom subject: its heart (end-diastole) and body."""

    heart: Heart
    body: Body


def sample_subject(rng: np.random.Generator, lesion: bool) -> Subject:
    """Draw one subject's end-diastolic heart and body; ``lesion`` adds an edema/scar territory."""
    territory = None
    if lesion:  # LAD (anterior), LCx (lateral) or RCA (inferior) territory
        edema_depth = rng.uniform(0.75, 1.0)
        territory = Lesion(
            angle=rng.choice([-2.0, 0.0, 1.9]) + rng.normal(0.0, 0.3),
            width=rng.uniform(0.7, 1.3),
            ripple=(rng.uniform(0.0, 0.25), rng.uniform(0, 2 * np.pi)),
            center=rng.uniform(0.3, 0.7),
            extent=rng.uniform(0.35, 0.6),
            edema_depth=edema_depth,
            scar_depth=edema_depth * rng.uniform(0.5, 0.85),
            scar_size=rng.uniform(0.55, 0.8),
        )
    heart = Heart(
        radius=rng.uniform(29.0, 38.0),
        wall=rng.uniform(7.5, 11.0),
        length=rng.uniform(75.0, 95.0),
        base=0.0,
        taper=rng.uniform(2.2, 3.5),
        ellipticity=rng.uniform(0.88, 1.12),
        harmonics=tuple(
            (rng.uniform(0.0, 0.05), rng.uniform(0, 2 * np.pi), rng.normal(0.0, 1.0)) for _ in range(3)
        ),
        axis=np.deg2rad(45.0 + rng.normal(0.0, 12.0)),
        rv=(rng.uniform(0.45, 0.7), rng.uniform(0.8, 1.05), rng.uniform(1.1, 1.35), rng.uniform(0.7, 0.85)),
        papillary=rng.uniform(0.12, 0.2),
        fat=(rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 5.0)),
        lesion=territory,
    )
    body = Body(scale=rng.uniform(0.9, 1.15), fat=rng.uniform(6.0, 22.0), liver_start=rng.uniform(0.35, 0.6))
    return Subject(heart, body)


def end_systole(heart: Heart, rng: np.random.Generator) -> Heart:
    """Contract an end-diastolic heart: smaller cavity and RV, thicker wall, base descending to the apex."""
    length = heart.length * rng.uniform(0.88, 0.94)
    offset, width, height, end = heart.rv
    shrink = rng.uniform(0.88, 0.95)
    return replace(
        heart,
        radius=heart.radius * rng.uniform(0.85, 0.9),
        wall=heart.wall * rng.uniform(1.35, 1.55),
        length=length,
        base=heart.base + heart.length - length,
        rv=(offset, width * shrink, height * shrink, end),
    )


def render_tissue(subject: Subject, px: np.ndarray, py: np.ndarray, z: float) -> np.ndarray:
    """Tissue map (``TISSUES`` indices, uint8) of the plane at long-axis position ``z`` (mm).

    Args:
        px, py: patient-frame coordinates (mm) of the pixels, any equal shapes.
    """
    body, s = subject.body, subject.body.scale
    t = (z - subject.heart.base) / subject.heart.length
    tissue = np.full(px.shape, AIR, np.uint8)
    cx, cy, a, b = BODY
    tissue[_ellipse(px, py, s * cx, s * cy, s * a, s * b) < 1] = FAT
    tissue[_ellipse(px, py, s * cx, s * cy, s * a - body.fat, s * b - body.fat) < 1] = MUSCLE
    liver = float(np.clip((t - body.liver_start) / 0.3, 0.0, 1.0))
    for (ex, ey, ea, eb), size in zip(LUNGS, (1.0, 1.0 - 0.6 * liver)):  # the right lung yields to the liver
        tissue[_ellipse(px, py, s * ex, s * ey, s * ea * size, s * eb * size) < 1] = LUNG
    if liver > 0:
        ex, ey, ea, eb = LIVER_ELLIPSE
        size = s * np.sqrt(liver)
        tissue[_ellipse(px, py, s * ex, s * ey, size * ea, size * eb) < 1] = LIVER
    spine = np.hypot(px - s * SPINE[0], py - s * SPINE[1])
    tissue[spine < s * SPINE[2]] = BONE
    tissue[spine < s * SPINE[2] - 3.0] = MARROW
    tissue[np.hypot(px - s * AORTA[0], py - s * AORTA[1]) < s * AORTA[2]] = VESSEL
    draw = _draw_atria if t < 0.0 else _draw_heart
    if -ATRIAL_DEPTH < t < 1.0:  # paint only the pixels near the heart (speed)
        near = np.hypot(px, py) < HEART_EXTENT * subject.heart.radius
        part = tissue[near]
        draw(part, subject.heart, px[near], py[near], t)
        tissue[near] = part
    return tissue


def _heart_frame(heart: Heart, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heart-frame coordinates (mm): +u toward the lateral wall, -u toward the septum and RV."""
    cos, sin = np.cos(heart.axis), np.sin(heart.axis)
    return (cos * px + sin * py) / heart.ellipticity, (-sin * px + cos * py) * heart.ellipticity


def _draw_atria(tissue: np.ndarray, heart: Heart, px: np.ndarray, py: np.ndarray, t: float) -> None:
    """Paint the blood of the atria and aortic root (background classes) above the base, in place."""
    u, v = _heart_frame(heart, px, py)
    size = heart.radius * np.sqrt(1.0 - (t / ATRIAL_DEPTH) ** 2)
    for cu, cv, radius in ATRIA:
        distance = np.hypot(u - cu * heart.radius, v - cv * heart.radius)
        tissue[distance < radius * size + RV_WALL_MM] = RV_WALL
    for cu, cv, radius in ATRIA:
        tissue[np.hypot(u - cu * heart.radius, v - cv * heart.radius) < radius * size] = VESSEL


def _draw_heart(tissue: np.ndarray, heart: Heart, px: np.ndarray, py: np.ndarray, t: float) -> None:
    """Paint the heart's tissues at long-axis position ``t`` in [0, 1) into ``tissue``, in place."""
    u, v = _heart_frame(heart, px, py)
    theta = np.arctan2(v, u)
    harmonics = enumerate(heart.harmonics, start=2)
    wobble = 1.0 + sum(a * np.cos(k * theta + phase + twist * t) for k, (a, phase, twist) in harmonics)
    radial = np.hypot(u, v) / wobble
    epi = heart.radius * np.sqrt(1.0 - t**heart.taper)
    endo = epi - heart.wall * (1.0 - 0.4 * t)  # negative at the apical cap
    fat_angle, fat_mm = heart.fat
    fat = EPICARDIAL_FAT_MM + fat_mm * np.maximum(np.cos(theta - fat_angle), 0.0) ** 3
    tissue[radial < epi + fat] = FAT
    offset, width, height, end = heart.rv
    if t < end:
        size = epi * np.sqrt(1.0 - (t / end) ** 2)
        outside = radial >= epi
        for grow, kind in ((RV_WALL_MM + EPICARDIAL_FAT_MM, FAT), (RV_WALL_MM, RV_WALL), (0.0, RV_BLOOD)):
            inside = _ellipse(u, v, -offset * epi, 0.0, width * size + grow, height * size + grow) < 1
            tissue[inside & outside] = kind
    myo = radial < epi
    tissue[myo] = MYO
    if heart.lesion is not None:
        depth = (radial - max(endo, 0.0)) / (epi - max(endo, 0.0))
        edema, scar = lesion_masks(heart.lesion, theta, depth, t)
        tissue[myo & edema] = EDEMA
        tissue[myo & scar] = SCAR
    if endo > 0:
        tissue[radial < endo] = LV_BLOOD
        if 0.2 < t < 0.8:  # anterolateral and posteromedial papillary muscles
            for angle in (0.9, -0.9):
                centre = 0.6 * endo * np.array([np.cos(angle), np.sin(angle)])
                tissue[np.hypot(u - centre[0], v - centre[1]) < heart.papillary * endo] = PAPILLARY


def lesion_masks(lesion: Lesion, theta: np.ndarray, depth: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Edema and scar masks from the angle ``theta``, transmural ``depth`` (0 endo -> 1 epi) and ``t``.

    The territory is an ellipse in (angle, t); a smooth bump over it sets how deep the lesion reaches
    from the endocardium. Scar uses a smaller territory and depth, so scar ⊆ edema.
    """
    delta = np.angle(np.exp(1j * (theta - lesion.angle)))
    width = lesion.width * (1.0 + lesion.ripple[0] * np.sin(3.0 * theta + lesion.ripple[1]))
    radius2 = (delta / width) ** 2 + ((t - lesion.center) / lesion.extent) ** 2  # < 1 in the territory

    def reach(size: float) -> np.ndarray:
        return np.clip(1.0 - radius2 / size**2, 0.0, 1.0) ** 0.35

    return depth < lesion.edema_depth * reach(1.0), depth < lesion.scar_depth * reach(lesion.scar_size)


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    """Ellipse function: < 1 inside the ellipse centred at (cx, cy) with semi-axes a, b."""
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2
