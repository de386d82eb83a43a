"""``download``: fetch the public ACDC, MSCMRseg and MyoPS-scribble releases into a data root, checked file by file.

Run as ``python -m modelmix_lite download {acdc,mscmr,myops-scribbles,all} --out DATA_ROOT --accept-terms``.

Every file is listed in the committed registry ``registry.tsv`` (beside this module): dataset, repository, commit,
upstream path, local path, size and SHA-256, taken from the public release (:func:`registry_from_manifest`).
The upstream folders (``ACDC_dataset/``, ``MyoPS_scribbles/`` of ``BWGZK/ModelMix``, ``MSCMR_dataset/`` of
``BWGZK/CycleMix``) are already in the layout of :mod:`~modelmix_lite.data.layout`: a local path is the upstream
path.
A file is fetched from ``<base_url>/<repository>/<commit>/<path>`` by ``pooch.retrieve``: into a temporary
file first, renamed once its SHA-256 matches, so an interrupted download never leaves a half file under its
name and a re-run completes it. A file already present with the right SHA-256 is kept without any network.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import IO, Any, Iterator
from urllib.parse import unquote, urlparse

from ..errors import ConfigError, DataError

REGISTRY = files("modelmix_lite.data") / "registry.tsv"  # the committed registry (package data)
DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
"""Where the files are fetched from by default (GitHub's raw file server)."""
COLUMNS: tuple[str, ...] = ("dataset", "repository", "commit", "path", "local", "bytes", "sha256")
"""The columns of a registry file (tab-separated, with this header)."""
FOLDERS: dict[str, str] = {"ACDC_dataset": "acdc", "MSCMR_dataset": "mscmr", "MyoPS_scribbles": "myops-scribbles"}
"""Upstream top folder -> dataset key."""
DATASETS: tuple[str, ...] = tuple(FOLDERS.values())
"""The dataset keys, in the order they are listed."""
TERMS: dict[str, str] = {
    "acdc": "ACDC is released for research use, with citation: Bernard et al., IEEE TMI 37(11), 2018. "
            "Its scribbles: Valvano, Leo & Tsaftaris, IEEE TMI 40(8), 2021.",
    "mscmr": "MS-CMRSeg 2019 is released for research use, with citation: Zhuang, IEEE TPAMI 41(12), 2019; "
             "Zhuang et al., Medical Image Analysis, 2022. Its scribbles: Zhang & Zhuang, CycleMix, CVPR 2022.",
    "myops-scribbles": "MyoPS 2020 is released for research use, with citation: Li et al., Medical Image "
                       "Analysis 87, 2023. Its scribbles: Zhang & Zhuang, ZScribbleSeg, arXiv:2301.04882, 2023.",
}
"""Dataset key -> its terms of use and what to cite, printed before anything is fetched."""
TERMS_COMMON = ("These files were released with ModelMix (Zhang & Patel, MICCAI 2024): cite it as well. "
                "Do not commit the files, or images made from them in bulk, to a repository.")
"""The terms common to every dataset."""
_POOCH_TEMPORARY = re.compile(r"tmp[a-z0-9_]{8}")
"""Name of the temporary file ``pooch.retrieve`` downloads into (made by ``tempfile.NamedTemporaryFile``)."""


@dataclass(frozen=True)
class Entry:
    """One file of the registry.

    Attributes:
        dataset: dataset key (``acdc``, ``mscmr``, ``myops-scribbles``).
        repository: GitHub ``owner/name`` it is released in.
        commit: the commit it is pinned to.
        path: its path in the repository.
        local: its path under the data root.
        size: its size in bytes.
        sha256: its SHA-256 (hex).
    """

    dataset: str
    repository: str
    commit: str
    path: str
    local: str
    size: int
    sha256: str

    def url(self, base_url: str = DEFAULT_BASE_URL) -> str:
        """``<base_url>/<repository>/<commit>/<path>``."""
        return f"{base_url.rstrip('/')}/{self.repository}/{self.commit}/{self.path}"


def registry_from_manifest(manifest: str | Path) -> list[Entry]:
    """Registry entries of a manifest (``repository commit path bytes sha256``, tab-separated, with a header)."""
    with Path(manifest).open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    entries = []
    for row in rows:
        folder = row["path"].split("/")[0]
        if folder not in FOLDERS:
            raise DataError(f"{manifest}: {row['path']}: not in a known dataset folder ({', '.join(FOLDERS)})")
        entries.append(Entry(FOLDERS[folder], row["repository"], row["commit"], row["path"], row["path"],
                             int(row["bytes"]), row["sha256"]))
    return entries


def write_registry(entries: Iterable[Entry], path: str | Path) -> None:
    """Write ``entries`` as a registry file (the columns of :data:`COLUMNS`)."""
    lines = ["\t".join(COLUMNS)]
    lines += ["\t".join((e.dataset, e.repository, e.commit, e.path, e.local, str(e.size), e.sha256)) for e in entries]
    Path(path).write_text("\n".join(lines) + "\n")


def read_registry(path: str | Path | None = None) -> list[Entry]:
    """The entries of a registry file (default: the committed ``registry.tsv``)."""
    source = REGISTRY if path is None else Path(path)
    try:
        rows = list(csv.DictReader(source.read_text().splitlines(), delimiter="\t"))
        return [Entry(r["dataset"], r["repository"], r["commit"], r["path"], r["local"], int(r["bytes"]), r["sha256"])
                for r in rows]
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise DataError(f"{source}: unreadable registry ({err})") from None


def select(entries: Sequence[Entry], datasets: Sequence[str]) -> list[Entry]:
    """The entries of ``datasets`` (``all``: every dataset).

    Raises:
        ConfigError: an unknown dataset key.
    """
    wanted = set(DATASETS) if "all" in datasets else set(datasets)
    unknown = sorted(wanted - set(DATASETS))
    if unknown:
        raise ConfigError(f"dataset: unknown {unknown}; expected some of {', '.join(DATASETS)} or all")
    return [e for e in entries if e.dataset in wanted]


def sources_text(entries: Sequence[Entry]) -> str:
    """One line per dataset: where its files come from, pinned by commit."""
    lines = []
    for key in DATASETS:
        mine = [e for e in entries if e.dataset == key]
        for repository, commit in sorted({(e.repository, e.commit) for e in mine}):
            group = [e for e in mine if (e.repository, e.commit) == (repository, commit)]
            folders = ", ".join(sorted({e.path.split("/")[0] + "/" for e in group}))
            size = sum(e.size for e in group) / 1e6
            lines.append(f"  {key:<16} {repository} @ {commit} {folders} ({len(group)} files, {size:.1f} MB)")
    return "\n".join(lines)


def terms_text(datasets: Iterable[str]) -> str:
    """The terms and citations of ``datasets``, one paragraph each, then :data:`TERMS_COMMON`."""
    chosen = [TERMS[key] for key in DATASETS if key in set(datasets)] + [TERMS_COMMON]
    return "\n".join(textwrap.fill(text, 110, initial_indent="* ", subsequent_indent="  ") for text in chosen)


def accept_terms(accepted: bool, stdin: IO[str] | None = None, ask: Callable[[str], str] = input) -> bool:
    """Whether the terms are accepted: ``--accept-terms``, or the answer ``yes`` when ``stdin`` (default:
    ``sys.stdin``) is a terminal."""
    if accepted:
        return True
    if not (sys.stdin if stdin is None else stdin).isatty():
        return False
    try:
        return ask("Accept these terms? Type yes to continue: ").strip().lower() == "yes"
    except EOFError:
        return False


def is_verified(path: Path, entry: Entry) -> bool:
    """Whether ``path`` holds ``entry``'s bytes (size first, then SHA-256; no network)."""
    if not path.is_file() or path.stat().st_size != entry.size:
        return False
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest() == entry.sha256


class Progress:
    """One progress bar (``tqdm``) for all the files, driven by pooch's per-file protocol (``total``, ``update``,
    ``reset``, ``close``)."""

    def __init__(self, bar: Any) -> None:
        self.bar, self.start, self.total = bar, bar.n, 0

    def update(self, n: int) -> None:
        self.bar.update(n)

    def reset(self) -> None:  # pooch then adds the file's exact size
        self.bar.n = self.start

    def close(self) -> None:
        self.start = self.bar.n
        self.bar.refresh()


def _copy_file_url(url: str, output_file: str, pooch: Any, progress: Progress | None = None) -> None:
    """A pooch downloader for ``file://`` URLs (mirrors, tests): copy the file."""
    source = Path(unquote(urlparse(url).path))
    if not source.is_file():
        raise DataError(f"{url}: not found")
    shutil.copyfile(source, output_file)
    if progress is not None:
        progress.update(source.stat().st_size)
        progress.close()


def fetch(entry: Entry, target: Path, base_url: str, progress: Progress | None = None) -> None:
    """Download ``entry`` to ``target`` with ``pooch.retrieve``, checked against its SHA-256.

    Raises:
        DataError: the server does not have the file, the transfer broke off, the bytes do not match, or
            ``target`` cannot be written; one line naming the URL or file.
    """
    import pooch
    import requests

    url = entry.url(base_url)
    downloader = partial(_copy_file_url, progress=progress) if url.startswith("file:") else None
    try:
        pooch.retrieve(url, known_hash=f"sha256:{entry.sha256}", fname=target.name, path=target.parent,
                       downloader=downloader, progressbar=progress or False)
    except DataError:
        raise
    except requests.exceptions.HTTPError as err:
        raise DataError(f"{url}: the server answered {err.response.status_code} {err.response.reason}") from None
    except requests.exceptions.RequestException as err:
        raise DataError(f"{url}: the download failed or broke off ({type(err).__name__}); no partial file is kept, "
                        "run the command again to complete it") from None
    except ValueError:  # pooch: the downloaded bytes do not match (the temporary file is deleted)
        raise DataError(f"{url}: the downloaded file does not match the registry's SHA-256 {entry.sha256}") from None
    except OSError as err:
        raise DataError(f"{target}: cannot write the file ({err.strerror or err})") from None


@contextmanager
def _quiet_pooch() -> Iterator[None]:
    """Silence pooch's one log line per file while downloading."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        yield
    finally:
        logger.setLevel(level)


def check_options(out: Path, base_url: str) -> None:
    """Create ``out`` if needed.

    Raises:
        ConfigError: ``base_url`` is not an ``http(s)://`` or ``file://`` URL, or ``out`` cannot be created or
            written.
    """
    if urlparse(base_url).scheme not in ("http", "https", "file"):
        raise ConfigError(f"--base-url {base_url}: expected an https://, http:// or file:// URL")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot create the folder ({err.strerror or err})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: the folder is not writable")


def _remove_stale_temporaries(folders: Iterable[Path]) -> None:
    """Delete the temporary files a killed download left behind (pooch deletes them itself on an error)."""
    for folder in (f for f in set(folders) if f.is_dir()):
        for leftover in folder.iterdir():
            if leftover.is_file() and _POOCH_TEMPORARY.fullmatch(leftover.name):
                leftover.unlink()


def download(entries: Sequence[Entry], out: str | Path, base_url: str = DEFAULT_BASE_URL,
             progress: bool = True) -> dict[str, int]:
    """Bring every file of ``entries`` under ``out``: keep the verified ones, fetch the missing and corrupted ones.

    Returns:
        ``{"present": files kept, "fetched": missing files downloaded, "refetched": corrupted files downloaded
        again, "bytes": bytes downloaded}``.

    Raises:
        ConfigError: ``out`` cannot be written, or ``base_url`` is not a URL :func:`fetch` can use.
        DataError: a file could not be fetched (see :func:`fetch`); the files fetched before it are kept.
    """
    out = Path(out)
    check_options(out, base_url)
    targets = [(entry, out / entry.local) for entry in entries]
    _remove_stale_temporaries(target.parent for _, target in targets)
    todo = [(entry, target) for entry, target in targets if not is_verified(target, entry)]
    counts = {"present": len(targets) - len(todo), "fetched": 0, "refetched": 0,
              "bytes": sum(entry.size for entry, _ in todo)}
    from tqdm.auto import tqdm

    with _quiet_pooch(), tqdm(total=counts["bytes"], unit="B", unit_scale=True, desc="download",
                              disable=not progress or not todo) as bar:
        for entry, target in todo:
            counts["refetched" if target.exists() else "fetched"] += 1
            fetch(entry, target, base_url, Progress(bar) if progress else None)
    return counts


def inspect_summary(out: str | Path, datasets: Iterable[str]) -> tuple[list[str], int]:
    """Run :func:`~.inspect.inspect_dataset` on each downloaded dataset; summary lines and the problem count.

    The MyoPS label files cannot be inspected without the MyoPS images (not public): they are counted instead.
    """
    from .inspect import inspect_dataset

    lines, n_problems = [], 0
    for key in (k for k in DATASETS if k in set(datasets)):
        if key == "myops-scribbles":
            n = len(list((Path(out) / "MyoPS_scribbles").glob("*.nii.gz")))
            lines.append(f"MyoPS scribbles: {n} label files; 'inspect --dataset myops' needs the MyoPS images "
                         "(from the challenge, see data/README.md)")
            continue
        report = inspect_dataset(key, out)
        splits = ", ".join(f"{split} {len(info['cases'])} cases" for split, info in report["splits"].items())
        problems = report["problems"]
        lines.append(f"{report['title']} at {report['root']}: {splits or 'no split'}; {len(problems)} problem(s)")
        lines += [f"  - {problem}" for problem in problems]
        n_problems += len(problems)
    return lines, n_problems
