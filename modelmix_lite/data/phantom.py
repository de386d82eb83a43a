"""A synthetic cardiac MR phantom: ACDC-, MSCMRseg- and MyoPS-like datasets from one 3-D heart model.

Every case is sliced from the same parametric heart, so LV, myocardium and RV look alike across the
three datasets (the premise of ModelMix: related tasks), while each dataset keeps its own sequences,
resolution and label set (:mod:`.tasks`):

* **anatomy** (:mod:`.anatomy`; mm, long-axis position ``t``: 0 at the base, 1 at the apex): LV cavity inside a
  myocardial wall that thins toward the apex, papillary muscles (labelled LV), an RV crescent on the
  septal side that shrinks and vanishes before the apex, epicardial fat; around it a body with a fat
  rim, chest-wall muscle, lungs, liver (apical slices), spine and a bright descending aorta;
* **subject variation**: size, wall thickness, ellipticity, smooth harmonic deformation twisting along
  the axis, RV shape, pose in the image (rotation, shift); ACDC end-systole (ES) contracts the
  cavity and thickens the wall;
* **pathology** (MSCMR, MyoPS): a coronary territory of edema (angular sector x long-axis range,
  subendocardial to transmural) with a scar core, so scar ⊆ edema ⊆ myocardium;
* **contrast**: cine/bSSFP bright blood, dark myocardium; LGE nulled myocardium, bright scar,
  moderately bright blood; T2 bright edema, darker blood;
* **image formation**: through-plane partial volume (three sub-slices averaged), tissue texture,
  in-plane blur, smooth multiplicative bias field, Rician noise; stored as intensity-like integers.

:func:`generate_phantom` writes a whole data root in the official layouts through
:func:`.writer.write_case`, with ground truth for every split and synthetic scribbles
(:func:`.scribbles.synthesize_scribbles`) where the released datasets have scribbles.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError
from .anatomy import (
    EDEMA, LV_BLOOD, MYO, PAPILLARY, RV_BLOOD, SCAR, TISSUES, Subject, end_systole, render_tissue, sample_subject,
)
from .layout import SPLITS, find_dataset_root
from .writer import write_case, write_index
from .scribbles import synthesize_scribbles
from .tasks import TASKS, TaskSpec, get_task

CONTRAST: dict[str, np.ndarray] = {
    #                 air  fat  mus lung liv bone mar  ves rvw  myo  ede  scar  LVb  pap  RVb
    "bssfp": np.array([0, 650, 260, 35, 330, 40, 480, 950, 240, 240, 290, 280, 1000, 250, 980], float),
    "lge": np.array([0, 420, 170, 25, 260, 40, 330, 520, 120, 70, 110, 1150, 560, 80, 540], float),
    "t2": np.array([0, 620, 240, 30, 210, 40, 420, 140, 300, 330, 720, 680, 150, 330, 150], float),
}
"""Typical signal of each tissue per contrast (``TISSUES`` order), before subject variation."""
SEQUENCE_CONTRAST = {"cine": "bssfp", "C0": "bssfp", "LGE": "lge", "DE": "lge", "T2": "t2"}
NOISE = {"bssfp": 0.03, "lge": 0.05, "t2": 0.04}
"""Typical Rician noise level as a fraction of the blood signal."""

TISSUE_CLASSES = {
    RV_BLOOD: ("RV",),
    MYO: ("MYO",),
    EDEMA: ("edema", "MYO"),
    SCAR: ("scar", "MYO"),
    LV_BLOOD: ("LV",),
    PAPILLARY: ("LV",),
}
"""Tissue -> class names, first one the task has wins; others are background (MyoPS RV, RV wall, fat)."""


@dataclass(frozen=True)
class Acquisition:
    """How one task's volumes are sampled in a preset."""

    counts: tuple[int, int, int]  # subjects (ACDC: patients, 2 frames each) in train, val, test
    shapes: tuple[tuple[int, int], ...]  # in-plane sizes (X, Y) to draw from
    pixel_mm: tuple[float, float]  # in-plane spacing range
    slice_mm: tuple[float, float]  # slice spacing range
    n_slices: tuple[int, int]  # slice-count range, inclusive


@dataclass(frozen=True)
class Geometry:
    """Where a volume's voxels lie: shape ``(X, Y, Z)``, spacing, slice positions on the long axis (mm)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    z: tuple[float, ...]
    pose: float  # in-plane rotation of the body in the image, rad
    shift: tuple[float, float]  # heart centre offset from the image centre, mm


PRESETS: dict[str, dict[str, Acquisition]] = {
    "paper": {
        "acdc": Acquisition((70, 15, 15), ((216, 256), (232, 256)), (1.37, 1.68), (8.5, 10.5), (8, 10)),
        "mscmr": Acquisition((25, 5, 15), ((480, 480),), (0.7, 0.8), (5.5, 7.0), (10, 15)),
        "myops": Acquisition((20, 5, 20), ((288, 288),), (0.9, 1.25), (12.0, 15.0), (3, 5)),
    },
    "default": {
        "acdc": Acquisition((10, 3, 4), ((216, 256), (232, 256)), (1.37, 1.68), (8.5, 10.5), (8, 10)),
        "mscmr": Acquisition((10, 3, 5), ((224, 224),), (1.1, 1.3), (5.5, 7.0), (10, 13)),
        "myops": Acquisition((10, 3, 5), ((192, 192),), (1.25, 1.45), (12.0, 15.0), (3, 5)),
    },
    "smoke": {
        "acdc": Acquisition((3, 1, 1), ((80, 96),), (1.9, 2.2), (15.0, 17.0), (5, 6)),
        "mscmr": Acquisition((6, 1, 1), ((96, 96),), (1.8, 2.0), (14.0, 16.0), (5, 6)),
        "myops": Acquisition((6, 1, 1), ((80, 80),), (2.0, 2.3), (12.0, 15.0), (3, 3)),
    },
}
"""Dataset sizes and sampling per preset: ``paper`` (the real splits), ``default`` (book, CPU), ``smoke`` (CI)."""

STACKS = {
    "acdc": ((0.0, 0.06), (0.95, 1.08)),
    "mscmr": ((0.02, 0.10), (0.90, 1.02)),
    "myops": ((0.15, 0.30), (0.60, 0.75)),
}
"""Long-axis range each task's slice stack covers: (first-slice range, last-slice range) in ``t``."""

SUBJECT_NUMBERS: dict[str, tuple[tuple[int, ...], ...]] = {
    "acdc": (tuple(range(1, 71)), tuple(range(71, 86)), tuple(range(86, 101))),
    "mscmr": (
        (2, 4, 6, 7, 9, 13, 14, 15, 18, 19, 20, 21, 22, 24, 25, 26, 27, 31, 32, 34, 37, 39, 42, 44, 45),
        (1, 8, 29, 36, 41),
        (3, 5, 10, 11, 12, 16, 17, 23, 28, 30, 33, 35, 38, 40, 43),
    ),
    "myops": (tuple(n for n in range(102, 126) if n % 5 != 1), (101, 106, 111, 116, 121), tuple(range(201, 221))),
}
"""The real datasets' subject numbers per split (train, val, test); presets take the first ``counts``."""


def sample_geometry(rng: np.random.Generator, acquisition: Acquisition, task: str, length: float) -> Geometry:
    """Draw a volume's grid and pose; slices run base -> apex over the task's long-axis range (``STACKS``)."""
    shape = acquisition.shapes[int(rng.integers(len(acquisition.shapes)))]
    pixel, step = rng.uniform(*acquisition.pixel_mm), rng.uniform(*acquisition.slice_mm)
    (first_lo, first_hi), (last_lo, last_hi) = STACKS[task]
    first, last = rng.uniform(first_lo, first_hi), rng.uniform(last_lo, last_hi)
    n = int(np.clip(round((last - first) * length / step) + 1, *acquisition.n_slices))
    fov = np.array(shape) * pixel
    return Geometry(
        shape=(*shape, n),
        spacing=(pixel, pixel, step),
        z=tuple(first * length + step * np.arange(n)),
        pose=rng.uniform(-0.4, 0.4),
        shift=tuple(rng.uniform(-0.06, 0.06, 2) * fov),
    )


@dataclass(frozen=True)
class Scan:
    """One series' settings, shared by its frames: tissue signal, coil bias and noise level."""

    signal: np.ndarray  # (len(TISSUES),) signal per tissue
    bias: np.ndarray  # (5,) coefficients of the log-bias polynomial in x, y, x^2, y^2, xy
    noise: float  # Rician sigma


def sample_scan(rng: np.random.Generator, sequence: str) -> Scan:
    """Draw a series of ``sequence`` (a ``SEQUENCE_CONTRAST`` key): per-tissue and global gain, bias, noise."""
    if sequence not in SEQUENCE_CONTRAST:
        known = ", ".join(SEQUENCE_CONTRAST)
        raise ConfigError(f"sequence: the phantom has no contrast for {sequence!r}; known: {known}")
    contrast = SEQUENCE_CONTRAST[sequence]
    signal = CONTRAST[contrast] * np.exp(rng.normal(0.0, 0.08, len(TISSUES))) * rng.uniform(0.7, 1.3)
    noise = NOISE[contrast] * signal[LV_BLOOD] * rng.uniform(0.7, 1.4)
    return Scan(signal=signal, bias=rng.normal(0.0, 0.12, 5), noise=noise)


def render_volume(
    subject: Subject, geometry: Geometry, task: TaskSpec | str, scans: list[Scan], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Image ``(C, X, Y, Z)`` float32 and canonical label ``(X, Y, Z)`` of one frame.

    Args:
        scans: one per sequence, in ``task.sequences`` order.
        rng: texture and noise of this frame.
    """
    spec = get_task(task) if isinstance(task, str) else task
    if len(scans) != spec.n_channels:
        raise ConfigError(f"scans: expected {spec.n_channels} (one per sequence of {spec.name}), got {len(scans)}")
    px, py = _patient_grid(geometry)
    thickness = 0.8 * min(geometry.spacing[2], 12.0)
    stack = [
        np.stack([render_tissue(subject, px, py, z + dz) for dz in (-thickness / 3, 0.0, thickness / 3)])
        for z in geometry.z
    ]  # (Z, 3 sub-slices, X, Y)
    label = np.stack([_class_lut(spec)[sub[1]] for sub in stack], axis=-1)
    image = np.stack([_acquire(stack, scan, rng) for scan in scans])
    return image.astype(np.float32), label


def _acquire(stack: list[np.ndarray], scan: Scan, rng: np.random.Generator) -> np.ndarray:
    """One sequence ``(X, Y, Z)``: partial volume, texture, blur, bias, Rician noise."""
    shape = stack[0].shape[1:]
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    bias = np.exp(np.tensordot(scan.bias, np.stack([x, y, x * x, y * y, x * y]), axes=1))
    slices = []
    for sub in stack:
        clean = scan.signal[sub].mean(axis=0) * (1.0 + 0.06 * _smooth_noise(shape, 3.0, rng))
        clean = ndimage.gaussian_filter(clean, 0.6) * bias
        noisy = np.hypot(clean + scan.noise * rng.standard_normal(shape), scan.noise * rng.standard_normal(shape))
        slices.append(np.clip(np.rint(noisy), 0, 4000))
    return np.stack(slices, axis=-1)


def _patient_grid(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Patient-frame coordinates (mm) of the in-plane pixels, each ``(X, Y)``."""
    (nx, ny, _), (sx, sy, _) = geometry.shape, geometry.spacing
    gx, gy = np.meshgrid(
        (np.arange(nx) - (nx - 1) / 2) * sx - geometry.shift[0],
        (np.arange(ny) - (ny - 1) / 2) * sy - geometry.shift[1],
        indexing="ij",
    )
    cos, sin = np.cos(geometry.pose), np.sin(geometry.pose)
    return cos * gx - sin * gy, sin * gx + cos * gy


def _class_lut(spec: TaskSpec) -> np.ndarray:
    """Tissue -> canonical class of ``spec`` (see ``TISSUE_CLASSES``)."""
    lut = np.zeros(len(TISSUES), np.uint8)
    for tissue, names in TISSUE_CLASSES.items():
        lut[tissue] = next((spec.classes.index(n) for n in names if n in spec.classes), 0)
    return lut


def _smooth_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field / field.std()


def _subject_id(task: str, split: str, number: int, frame: int) -> str:
    if task == "acdc":
        return f"patient{number:03d}_frame{frame:02d}"
    if task == "mscmr":
        return f"subject{number}_DE"
    return f"myops_test_{number}" if split == "test" else f"myops_training_{number}"


def _has_scribble(task: str, split: str) -> bool:
    """Where the released datasets have scribbles: every train split, and ACDC val/test (weak_labels)."""
    return split == "train" or task == "acdc"


def _cases(
    spec: TaskSpec, split: str, number: int, acquisition: Acquisition, seed: int
) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray | None, tuple[float, float, float]]]:
    """The volumes of one subject (ACDC: ED and ES frames): ``(id, image, label, scribble, spacing)``."""
    task_index = list(TASKS).index(spec.name)
    rng = np.random.default_rng([seed, task_index, number])
    shows_lesion = any(SEQUENCE_CONTRAST[s] != "bssfp" for s in spec.sequences)
    subject = sample_subject(rng, lesion=shows_lesion)
    geometry = sample_geometry(rng, acquisition, spec.name, subject.heart.length)
    scans = [sample_scan(rng, sequence) for sequence in spec.sequences]
    frames = [(1 if spec.name == "acdc" else 0, subject.heart)]
    if spec.name == "acdc":
        frames.append((int(rng.integers(10, 15)), end_systole(subject.heart, rng)))
    for frame, heart in frames:
        frame_rng = np.random.default_rng([seed, task_index, number, frame])
        image, label = render_volume(replace(subject, heart=heart), geometry, spec, scans, frame_rng)
        scribble = synthesize_scribbles(label, spec, frame_rng) if _has_scribble(spec.name, split) else None
        yield _subject_id(spec.name, split, number, frame), image, label, scribble, geometry.spacing


def generate_phantom(
    out: str | Path,
    preset: str = "default",
    seed: int = 0,
    tasks: tuple[str, ...] = ("acdc", "mscmr", "myops"),
    progress: bool = True,
) -> dict[str, dict[str, list[str]]]:
    """Write a synthetic data root holding the phantom versions of ``tasks`` in their official layouts.

    Deterministic: one ``seed`` gives identical arrays, and each subject depends only on
    (seed, task, subject number), so presets share their first subjects.

    Args:
        out: data root to write into (created).
        preset: a key of :data:`PRESETS`.
        seed: non-negative integer.
        tasks: task names.
        progress: show a progress bar.

    Returns:
        ``{task: {split: [subject ids]}}`` of the written cases.

    Raises:
        ConfigError: unknown preset or task, or a bad seed.
    """
    if preset not in PRESETS:
        raise ConfigError(f"preset: unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed: expected a non-negative integer, got {seed!r}")
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    unknown = [t for t in tasks if t not in PRESETS[preset]]
    if unknown:
        raise ConfigError(f"tasks: unknown tasks {unknown}; expected some of {', '.join(PRESETS[preset])}")
    jobs = [
        (name, split, number)
        for name in tasks
        for split, count, numbers in zip(SPLITS, PRESETS[preset][name].counts, SUBJECT_NUMBERS[name])
        for number in numbers[:count]
    ]
    summary: dict[str, dict[str, list[str]]] = {name: {split: [] for split in SPLITS} for name in tasks}
    for name, split, number in tqdm(jobs, desc=f"phantom ({preset})", disable=not progress):
        cases = _cases(TASKS[name], split, number, PRESETS[preset][name], int(seed))
        for subject, image, label, scribble, spacing in cases:
            write_case(name, out, split, subject, image, spacing, label=label, scribble=scribble)
            summary[name][split].append(subject)
    for name in tasks:
        write_index(name, out, summary[name])
    return summary


def ensure_phantom(root: str | Path, preset: str = "default", seed: int = 0, progress: bool = True) -> Path:
    """Generate the phantom into ``root`` unless it already holds one; return ``root``.

    It is written into a temporary sibling folder and renamed into place, so an interrupted or concurrent
    run never leaves half a data root behind.

    Raises:
        DataError: ``root`` exists but holds no dataset folder (something else is in the way).
    """
    root = Path(root)

    def present() -> bool:
        try:
            return any(find_dataset_root(task, root) for task in PRESETS[preset])
        except (DataError, ConfigError):
            return False

    if present():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        generate_phantom(partial, preset=preset, seed=seed, progress=progress)
    except BaseException:  # a bad option or an interrupt: leave nothing half written behind
        shutil.rmtree(partial, ignore_errors=True)
        raise
    try:
        partial.rename(root)
    except OSError:  # another run wrote it meanwhile, or a non-empty folder is in the way
        shutil.rmtree(partial)
        if not present():
            raise DataError(f"{root}: exists but holds no dataset folder; remove it to regenerate") from None
    return root
