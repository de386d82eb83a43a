"""The official folder layouts of ACDC, MSCMRseg and MyoPS: find a dataset and pair its files.

This is the one module that knows folder and file names; :mod:`.writer` writes cases under them.
A *data root* holds any of ``ACDC_dataset/``, ``MSCMR_dataset/``, ``MyoPS/`` (+ ``MyoPS_scribbles/``)::

    ACDC_dataset/{train,val,TestSet}/images/patientXXX_frameYY.nii.gz
        train/labels/patientXXX_frameYY_scribble.nii.gz       (+ optional _gt)
        {val,TestSet}/labels/patientXXX_frameYY_gt.nii.gz     weak_labels/patientXXX_frameYY_scribble.nii.gz
    MSCMR_dataset/{train,val,TestSet}/images/subjectN_DE.nii.gz
        train/labels/subjectN_DE_scribble.nii.gz              (+ optional _manual)
        {val,TestSet}/labels/subjectN_DE_manual.nii.gz        (+ optional _scribble)
    MyoPS/train/myops_training_XXX_{C0,DE,T2}.nii.gz          train_gd/myops_training_XXX_gd.nii.gz
    MyoPS/train20.txt  MyoPS/validation5.txt                  (lines: img_prefix gt_prefix z)
    MyoPS/test.csv                                            (file_name,stage,dx,dy,dz)
    MyoPS/test/myops_test_2XX_{C0,DE,T2}.nii.gz               test_gd/myops_test_2XX_gd.nii.gz (optional)
    MyoPS_scribbles/myops_training_XXX_gd.nii.gz              (scribbles of training subjects)

Files are paired by subject name, never by sorted position. Splits are ``train``/``val``/``test``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .tasks import TaskSpec, get_task

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_FOLDERS: dict[str, str] = {"train": "train", "val": "val", "test": "TestSet"}
"""On-disk split folder names of ACDC and MSCMR."""
MYOPS_LISTS: dict[str, str] = {"train": "train20.txt", "val": "validation5.txt"}
MYOPS_TEST_CSV = "test.csv"
MYOPS_SCRIBBLES = "MyoPS_scribbles"
EXT = ".nii.gz"

SUBJECT_PATTERNS: dict[str, re.Pattern[str]] = {
    "acdc": re.compile(r"patient\d{3}_frame\d{2}"),
    "mscmr": re.compile(r"subject\d+_DE"),
    "myops": re.compile(r"myops_training_\d{3}"),
    "myops_test": re.compile(r"myops_test_\d{3}"),
}
IMAGE_DTYPES: dict[str, type] = {
    "cine": np.int16,
    "LGE": np.int16,
    "C0": np.uint16,
    "DE": np.uint16,
    "T2": np.float32,
}
"""Stored dtype of each sequence written by :func:`write_case` (real files mix integer and float)."""


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case.

    Attributes:
        task: task name (``acdc``, ``mscmr``, ``myops``).
        subject: case id (``patient001_frame01``, ``subject13_DE``, ``myops_training_102``).
        split: ``train``, ``val`` or ``test``.
        images: one path per sequence, in ``TaskSpec.sequences`` order.
        label: ground-truth file, or ``None``.
        scribble: scribble file, or ``None``.
    """

    task: str
    subject: str
    split: str
    images: tuple[Path, ...]
    label: Path | None
    scribble: Path | None


def check_split(split: str) -> None:
    """:class:`ConfigError` unless ``split`` is one of :data:`SPLITS`."""
    if split not in SPLITS:
        raise ConfigError(f"split: unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def _natural_key(name: str) -> list[int | str]:
    """Sort key that orders ``subject2`` before ``subject10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def subject_pattern(spec: TaskSpec, split: str) -> re.Pattern[str]:
    """The file-name pattern of a subject of ``spec``'s ``split`` (MyoPS's test subjects are named apart)."""
    return SUBJECT_PATTERNS["myops_test" if spec.name == "myops" and split == "test" else spec.name]


def _nifti_files(folder: Path) -> list[Path]:
    """NIfTI files in ``folder`` (hidden files, e.g. unfinished atomic writes, are skipped)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith((".nii.gz", ".nii")) and not p.name.startswith("."))


def find_dataset_root(task: str, root: str | Path) -> Path:
    """Return the dataset folder of ``task`` given a data root or the dataset folder itself.

    Raises:
        DataError: ``root`` does not exist, or neither it nor its child is the expected folder.
    """
    spec, root = get_task(task), Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data root not found (expected a folder holding {spec.folder}/)")
    if root.name == spec.folder:
        return root
    if (root / spec.folder).is_dir():
        return root / spec.folder
    found = sorted(p.name for p in root.iterdir())
    raise DataError(
        f"{root}: expected the {spec.title} folder {spec.folder}/ here (or this path to be it); "
        f"found {found[:20]}"
    )


def expected_files(spec: TaskSpec, dataset: Path, split: str, subject: str) -> CaseFiles:
    """Where every file of ``subject`` lives (whether or not it exists)."""
    if spec.name == "myops":
        images_dir, gt_dir = ("test", "test_gd") if split == "test" else ("train", "train_gd")
        scribble = None if split == "test" else dataset.parent / MYOPS_SCRIBBLES / f"{subject}_gd{EXT}"
        return CaseFiles(
            task=spec.name,
            subject=subject,
            split=split,
            images=tuple(dataset / images_dir / f"{subject}_{seq}{EXT}" for seq in spec.sequences),
            label=dataset / gt_dir / f"{subject}_gd{EXT}",
            scribble=scribble,
        )
    split_dir = dataset / SPLIT_FOLDERS[split]
    gt_suffix = "_gt" if spec.name == "acdc" else "_manual"
    scribble_dir = "weak_labels" if spec.name == "acdc" and split != "train" else "labels"
    return CaseFiles(
        task=spec.name,
        subject=subject,
        split=split,
        images=(split_dir / "images" / f"{subject}{EXT}",),
        label=split_dir / "labels" / f"{subject}{gt_suffix}{EXT}",
        scribble=split_dir / scribble_dir / f"{subject}_scribble{EXT}",
    )


def _pair(expected: CaseFiles, required: str | None, use_scribble: bool) -> tuple[CaseFiles | None, list[str]]:
    """Keep the partner files that exist; a missing image or required partner is a problem."""
    problems = [f"{p}: image file not found" for p in expected.images if not p.is_file()]
    label = expected.label if expected.label.is_file() else None
    scribble = expected.scribble if use_scribble and expected.scribble and expected.scribble.is_file() else None
    if required == "label" and label is None:
        problems.append(f"{expected.images[0]}: ground truth {expected.label} not found")
    if required == "scribble" and scribble is None:
        problems.append(f"{expected.images[0]}: scribble {expected.scribble} not found")
    if problems:
        return None, problems
    return CaseFiles(expected.task, expected.subject, expected.split, expected.images, label, scribble), []


def _files_of(expected: CaseFiles) -> set[Path | None]:
    return {*expected.images, expected.label, expected.scribble}


def _unused_files(folders: list[Path], used: set[Path | None], pattern: re.Pattern[str], known: set[str],
                  orphan: Callable[[str], str]) -> list[str]:
    """A problem for every NIfTI file in ``folders`` that no case uses.

    ``orphan(subject)`` says why a file of a subject outside ``known`` is unused; any other unused file
    has an unexpected name.
    """
    problems = []
    for f in (f for folder in folders for f in _nifti_files(folder) if f not in used):
        match = pattern.match(f.name)
        unknown = match is not None and match.group(0) not in known
        problems.append(f"{f}: {orphan(match.group(0)) if unknown else 'unexpected file name for this folder'}")
    return problems


def _scan_folder_layout(spec: TaskSpec, dataset: Path, split: str) -> tuple[list[CaseFiles], list[str]]:
    split_dir = dataset / SPLIT_FOLDERS[split]
    images_dir = split_dir / "images"
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: {split} images folder not found")
    pattern, problems, subjects = subject_pattern(spec, split), [], []
    for f in _nifti_files(images_dir):
        stem = f.name[: -len(EXT)] if f.name.endswith(EXT) else None
        if stem is not None and pattern.fullmatch(stem):
            subjects.append(stem)
        else:
            problems.append(f"{f}: unexpected image file name (expected like {pattern.pattern}{EXT})")
    required = "scribble" if split == "train" else "label"
    cases, used = [], set()
    for subject in sorted(subjects, key=_natural_key):
        expected = expected_files(spec, dataset, split, subject)
        used |= _files_of(expected)
        case, case_problems = _pair(expected, required, use_scribble=True)
        problems += case_problems
        cases += [case] if case else []
    problems += _unused_files(
        [split_dir / "labels", split_dir / "weak_labels"], used, pattern, set(subjects),
        lambda subject: f"no matching image {images_dir / (subject + EXT)}",
    )
    return cases, problems


def _read_myops_list(path: Path) -> list[str]:
    """Subjects of a ``train20.txt``/``validation5.txt`` list (lines: ``img_prefix gt_prefix z``)."""
    if not path.is_file():
        raise DataError(f"{path}: MyoPS split list not found")
    subjects: list[str] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not fields[2].isdigit():
            raise DataError(f"{path}:{number}: expected 'img_prefix gt_prefix z', got {line.strip()!r}")
        subject, gt = Path(fields[0]).name, Path(fields[1]).name
        if not SUBJECT_PATTERNS["myops"].fullmatch(subject) or gt not in (subject, f"{subject}_gd"):
            raise DataError(f"{path}:{number}: bad prefixes {fields[0]!r} {fields[1]!r}")
        if subject not in subjects:
            subjects.append(subject)
    return subjects


def _read_myops_test_csv(path: Path) -> list[str]:
    """Subjects of ``test.csv`` (header ``file_name,stage,dx,dy,dz``)."""
    if not path.is_file():
        raise DataError(f"{path}: MyoPS test list not found")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and "file_name" not in rows[0]:
        raise DataError(f"{path}: expected a header 'file_name,stage,dx,dy,dz'")
    subjects = [Path(row["file_name"]).name for row in rows]
    bad = [s for s in subjects if not SUBJECT_PATTERNS["myops_test"].fullmatch(s)]
    if bad:
        raise DataError(f"{path}: bad file_name values {bad} (expected like myops_test_201)")
    return subjects


def _scan_myops(spec: TaskSpec, dataset: Path, split: str) -> tuple[list[CaseFiles], list[str]]:
    if split == "test":
        members = {"test": _read_myops_test_csv(dataset / MYOPS_TEST_CSV)}
        folders, lists = [dataset / "test", dataset / "test_gd"], MYOPS_TEST_CSV
    else:
        members = {name: _read_myops_list(dataset / MYOPS_LISTS[name]) for name in MYOPS_LISTS}
        # Files in the folders shared by train and val are checked once, with the train split.
        shared = [dataset / "train", dataset / "train_gd", dataset.parent / MYOPS_SCRIBBLES]
        folders = shared if split == "train" else []
        lists = " or ".join(MYOPS_LISTS.values())
    problems = [
        f"{dataset / MYOPS_LISTS['val']}: {s} is also listed in {MYOPS_LISTS['train']}"
        for s in members.get("val", [])
        if split == "train" and s in members["train"]
    ]
    required = {"train": "scribble", "val": "label", "test": None}[split]
    cases = []
    for subject in sorted(members[split], key=_natural_key):
        case, case_problems = _pair(expected_files(spec, dataset, split, subject), required, split == "train")
        problems += case_problems
        cases += [case] if case else []
    listed = {s for subjects in members.values() for s in subjects}
    used = set()
    for name, subjects in members.items():
        used |= {f for s in subjects for f in _files_of(expected_files(spec, dataset, name, s))}
    problems += _unused_files(
        folders, used, subject_pattern(spec, split), listed, lambda s: f"subject {s} is not listed in {lists}"
    )
    return cases, problems


def split_present(task: str, root: str | Path, split: str) -> bool:
    """Whether the dataset under ``root`` has ``split`` at all (its images folder, or MyoPS's split list).

    A data root may lack a split (the real ACDC test set is kept back): commands fail on a missing split only
    when they ask for it. Raises :class:`DataError` when the dataset itself is missing.
    """
    spec = get_task(task)
    check_split(split)
    dataset = find_dataset_root(task, root)
    if spec.name == "myops":
        return (dataset / (MYOPS_TEST_CSV if split == "test" else MYOPS_LISTS[split])).is_file()
    return (dataset / SPLIT_FOLDERS[split] / "images").is_dir()


def scan_split(task: str, root: str | Path, split: str) -> tuple[list[CaseFiles], list[str]]:
    """Pair the files of one split by subject name, collecting problems instead of raising.

    Returns:
        the complete cases, and one message per problem (each starting with the file it is about):
        an image without its required partner (train: scribble; val/test: ground truth, except MyoPS
        test), a label or scribble without an image, an unexpected file name.

    Raises:
        DataError: the dataset, split folder or split list is missing or malformed.
    """
    spec = get_task(task)
    check_split(split)
    dataset = find_dataset_root(task, root)
    scan = _scan_myops if spec.name == "myops" else _scan_folder_layout
    return scan(spec, dataset, split)


def list_cases(task: str, root: str | Path, split: str) -> list[CaseFiles]:
    """The cases of one split, paired by subject name, in natural subject order.

    Raises:
        DataError: on any problem found by :func:`scan_split` (all of them, one per line).
    """
    cases, problems = scan_split(task, root, split)
    if problems:
        raise DataError("\n".join(problems))
    return cases


