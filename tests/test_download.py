"""The ``download`` command, offline: a small release served from a temporary folder (``file://``) or by
``http.server`` on 127.0.0.1, and the committed registry checked against ``../shared/data/manifest.tsv``."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import threading
import tomllib
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from modelmix_lite import cli
from modelmix_lite.data import download as dl
from modelmix_lite.data.layout import SPLIT_FOLDERS
from modelmix_lite.errors import ConfigError, DataError

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_ENV = "MODELMIX_LITE_REAL_DATA"  # as tests/test_real_data.py
REAL_ROOT = Path(os.environ.get(REAL_ENV) or REPO_ROOT / ".." / "shared" / "data" / "real")
MANIFEST = REAL_ROOT.parent / "manifest.tsv"
REPOSITORY, COMMIT = "example/Release", "0123456789abcdef0123456789abcdef01234567"


def _publish(mirror: Path, files: dict[str, bytes], dataset: str = "acdc") -> list[dl.Entry]:
    """Put ``files`` (path -> bytes) on the mirror as ``REPOSITORY/COMMIT/path``; their registry entries."""
    entries = []
    for path, data in files.items():
        upstream = mirror / REPOSITORY / COMMIT / path
        upstream.parent.mkdir(parents=True, exist_ok=True)
        upstream.write_bytes(data)
        entries.append(dl.Entry(dataset, REPOSITORY, COMMIT, path, path, len(data), hashlib.sha256(data).hexdigest()))
    return entries


def _small_files(n: int = 3, size: int = 50_000) -> dict[str, bytes]:
    return {f"MyoPS_scribbles/myops_training_{101 + i}_gd.nii.gz": os.urandom(size) for i in range(n)}


def _files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _verified(entries: list[dl.Entry], out: Path) -> bool:
    return all(hashlib.sha256((out / e.local).read_bytes()).hexdigest() == e.sha256 for e in entries)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the mirror; logs each GET; sends half of the files in ``server.truncate`` and hangs up."""

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path not in self.server.truncate:
            return super().do_GET()
        data = Path(self.directory, self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[http.server.HTTPServer, Path, str]]:
    """An HTTP server on 127.0.0.1 serving ``tmp_path/mirror``: (server, mirror, base URL)."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(mirror)))
    httpd.requests, httpd.truncate = [], set()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, mirror, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def phantom_release(phantom_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[dl.Entry], str]:
    """The smoke phantom's ACDC folder published on a ``file://`` mirror, its registry made the command's."""
    mirror = tmp_path / "mirror"
    files = _files_under(phantom_root / "ACDC_dataset")
    entries = _publish(mirror, {f"ACDC_dataset/{name}": data for name, data in files.items()})
    registry = tmp_path / "registry.tsv"
    dl.write_registry(entries, registry)
    monkeypatch.setattr(dl, "REGISTRY", registry)
    return entries, mirror.as_uri()


def test_a_fresh_download_fetches_every_file_verified_and_inspects_it(phantom_release, phantom_root: Path,
                                                                       tmp_path: Path, capsys) -> None:
    entries, base_url = phantom_release
    out = tmp_path / "root"
    assert cli.main(["download", "acdc", "--out", str(out), "--accept-terms", "--base-url", base_url, "--quiet"]) == 0
    assert _files_under(out / "ACDC_dataset") == _files_under(phantom_root / "ACDC_dataset")
    assert _verified(entries, out)
    stdout = capsys.readouterr().out
    assert "Bernard et al." in stdout and "Valvano" in stdout  # the terms come first
    assert f"{len(entries)} files verified by SHA-256: 0 already there, {len(entries)} fetched" in stdout
    n_train = len(list((phantom_root / "ACDC_dataset" / SPLIT_FOLDERS["train"] / "images").iterdir()))
    assert f"ACDC (cine bSSFP) at {out / 'ACDC_dataset'}: train {n_train} cases" in stdout
    assert "; 0 problem(s)" in stdout


def test_a_rerun_over_a_complete_folder_fetches_nothing(phantom_release, tmp_path: Path, capsys) -> None:
    entries, base_url = phantom_release
    out = tmp_path / "root"
    assert dl.download(entries, out, base_url, progress=False)["fetched"] == len(entries)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    offline = (tmp_path / "nowhere").as_uri()  # every fetch would fail: the files are checked locally
    assert cli.main(["download", "all", "--out", str(out), "--accept-terms", "--base-url", offline, "--quiet"]) == 0
    assert f"{len(entries)} already there, 0 fetched, 0 fetched again" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_http_download_then_rerun_sends_no_request(server, tmp_path: Path) -> None:
    httpd, mirror, base_url = server
    entries = _publish(mirror, _small_files())
    counts = dl.download(entries, tmp_path / "root", base_url, progress=True)
    assert counts == {"present": 0, "fetched": 3, "refetched": 0, "bytes": sum(e.size for e in entries)}
    assert sorted(httpd.requests) == sorted(f"/{REPOSITORY}/{COMMIT}/{e.path}" for e in entries)
    assert _verified(entries, tmp_path / "root")
    httpd.requests.clear()
    assert dl.download(entries, tmp_path / "root", base_url, progress=False)["present"] == 3
    assert httpd.requests == []


def test_corrupted_files_are_fetched_again(phantom_release, tmp_path: Path) -> None:
    entries, base_url = phantom_release
    out = tmp_path / "root"
    dl.download(entries, out, base_url, progress=False)
    flipped, truncated = out / entries[0].local, out / entries[1].local
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes: only the SHA-256 tells
    flipped.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[:10])
    counts = dl.download(entries, out, base_url, progress=False)
    assert (counts["present"], counts["fetched"], counts["refetched"]) == (len(entries) - 2, 0, 2)
    assert _verified(entries, out)


def test_a_missing_upstream_file_is_one_clear_line(server, tmp_path: Path, capsys, monkeypatch) -> None:
    httpd, mirror, base_url = server
    entries = _publish(mirror, _small_files(2), dataset="myops-scribbles")
    (mirror / REPOSITORY / COMMIT / entries[1].path).unlink()
    registry = tmp_path / "registry.tsv"
    dl.write_registry(entries, registry)
    monkeypatch.setattr(dl, "REGISTRY", registry)
    argv = ["download", "myops-scribbles", "--out", str(tmp_path / "root"), "--accept-terms", "--base-url", base_url,
            "--quiet"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and entries[1].url(base_url) in err[0] and "404" in err[0]
    assert not (tmp_path / "root" / entries[1].local).exists() and _verified(entries[:1], tmp_path / "root")
    with pytest.raises(DataError, match=r"^file://.*myops_training_102_gd\.nii\.gz: not found$"):
        dl.download(entries, tmp_path / "root", mirror.as_uri(), progress=False)


def test_a_file_that_differs_from_the_registry_is_not_kept(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    entries = _publish(mirror, _small_files(1))
    (mirror / REPOSITORY / COMMIT / entries[0].path).write_bytes(b"another release")
    with pytest.raises(DataError, match=f"does not match the registry's SHA-256 {entries[0].sha256}$"):
        dl.download(entries, tmp_path / "root", mirror.as_uri(), progress=False)
    assert list((tmp_path / "root" / entries[0].local).parent.iterdir()) == []


def test_an_interrupted_download_leaves_no_half_file_and_a_rerun_completes_it(server, tmp_path: Path) -> None:
    httpd, mirror, base_url = server
    entries = _publish(mirror, _small_files(1, size=400_000))
    target = tmp_path / "root" / entries[0].local
    httpd.truncate.add(f"/{REPOSITORY}/{COMMIT}/{entries[0].path}")
    with pytest.raises(DataError, match="download failed or broke off.*run the command again") as error:
        dl.download(entries, tmp_path / "root", base_url, progress=False)
    assert "\n" not in str(error.value)
    assert list(target.parent.iterdir()) == []  # neither the final name nor pooch's temporary file
    httpd.truncate.clear()
    assert dl.download(entries, tmp_path / "root", base_url, progress=False)["fetched"] == 1
    assert _verified(entries, tmp_path / "root")


def test_a_killed_download_s_temporary_file_is_removed_and_the_file_fetched(phantom_release, tmp_path: Path) -> None:
    entries, base_url = phantom_release
    target = tmp_path / "root" / entries[0].local
    target.parent.mkdir(parents=True)
    (target.parent / "tmpab12_x9z").write_bytes(b"half of a file")  # what pooch's NamedTemporaryFile leaves
    (target.parent / "notes.txt").write_text("mine")
    dl.download(entries, tmp_path / "root", base_url, progress=False)
    assert not (target.parent / "tmpab12_x9z").exists() and (target.parent / "notes.txt").read_text() == "mine"
    assert _verified(entries, tmp_path / "root")


def test_without_accept_terms_nothing_is_fetched(phantom_release, tmp_path: Path, capsys, monkeypatch) -> None:
    entries, base_url = phantom_release
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))  # not a terminal: no question is asked
    out = tmp_path / "root"
    assert cli.main(["download", "acdc", "--out", str(out), "--base-url", base_url]) == 2
    captured = capsys.readouterr()
    assert "Bernard et al., IEEE TMI" in captured.out and "Zhang & Patel, MICCAI 2024" in captured.out
    assert captured.err.splitlines() == [
        "python -m modelmix_lite download: error: the terms above were not accepted (pass --accept-terms)"]
    assert not out.exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _no_question(prompt: str) -> str:
    raise AssertionError("asked")


def _eof(prompt: str) -> str:
    raise EOFError


def test_on_a_terminal_only_yes_accepts_the_terms() -> None:
    assert dl.accept_terms(False, _Terminal(), lambda prompt: " YES ")
    assert not dl.accept_terms(False, _Terminal(), lambda prompt: "y")
    assert not dl.accept_terms(False, _Terminal(), _eof)
    assert not dl.accept_terms(False, io.StringIO(), _no_question)
    assert dl.accept_terms(True, io.StringIO(), _no_question)


def test_help_names_the_sources_and_the_terms(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["download", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for repository, commit in {(e.repository, e.commit) for e in dl.read_registry()}:
        assert f"{repository} @ {commit}" in out
    for words in ("BWGZK/ModelMix", "BWGZK/CycleMix", "Bernard et al.", "TPAMI", "Medical Image Analysis, 2022",
                  "Valvano", "CycleMix, CVPR 2022", "Zhang & Patel, MICCAI 2024", "--accept-terms", "--base-url"):
        assert words in out


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["download", "brats", "--out", "x"], 2, "argument datasets: invalid choice: 'brats'"),
        (["download", "acdc", "--accept-terms"], 2, "the following arguments are required: --out"),
        (["download", "acdc", "--accept-terms", "--base-url", "gopher://mirror", "--out", "{tmp}"], 1,
         "--base-url gopher://mirror: expected an https://, http:// or file:// URL"),
        (["download", "acdc", "--accept-terms", "--out", "{tmp}/a_file/root"], 1,
         "--out {tmp}/a_file/root: cannot create the folder"),
    ],
)
def test_bad_input_is_one_clear_line(argv: list[str], status: int, message: str, tmp_path: Path, capsys) -> None:
    (tmp_path / "a_file").write_text("")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        assert cli.main(argv) == status
    except SystemExit as exit_:
        assert exit_.code == status
    err = capsys.readouterr().err.strip().splitlines()
    assert message.replace("{tmp}", str(tmp_path)) in err[-1]
    assert status == 2 or len(err) == 1


def test_select_and_the_registry_reader_reject_bad_input(tmp_path: Path) -> None:
    entries = dl.read_registry()
    assert {e.dataset for e in dl.select(entries, ["all"])} == set(dl.DATASETS)
    assert {e.dataset for e in dl.select(entries, ["mscmr"])} == {"mscmr"}
    with pytest.raises(ConfigError, match="unknown"):
        dl.select(entries, ["brats"])
    (tmp_path / "bad.tsv").write_text("dataset\tpath\nacdc\tx\n")
    with pytest.raises(DataError, match=r"bad\.tsv: unreadable registry"):
        dl.read_registry(tmp_path / "bad.tsv")


def test_the_registry_ships_as_package_data() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "registry.tsv" in config["package-data"]["modelmix_lite.data"]
    assert dl.REGISTRY.is_file() and len(dl.read_registry()) > 500


@pytest.mark.skipif(not MANIFEST.is_file(), reason=f"no manifest at {MANIFEST} (see ../shared/data/README.md)")
def test_the_committed_registry_covers_every_file_of_the_manifest() -> None:
    registry = dl.read_registry()
    manifest = dl.registry_from_manifest(MANIFEST)
    facts = lambda entries: sorted((e.repository, e.commit, e.path, e.size, e.sha256) for e in entries)  # noqa: E731
    assert facts(registry) == facts(manifest)
    assert registry == manifest
    assert {e.repository for e in registry if e.dataset == "mscmr"} == {"BWGZK/CycleMix"}
    assert {e.repository for e in registry if e.dataset != "mscmr"} == {"BWGZK/ModelMix"}
    first = registry[0]
    assert first.url() == f"https://raw.githubusercontent.com/BWGZK/ModelMix/{first.commit}/{first.path}"


@pytest.mark.skipif(not (REAL_ROOT / "ACDC_dataset").is_dir(), reason=f"no real data at {REAL_ROOT}")
def test_the_local_paths_are_the_layout_of_the_shared_data_root() -> None:
    registry = dl.read_registry()
    present = {str(p.relative_to(REAL_ROOT)) for p in REAL_ROOT.rglob("*") if p.is_file()}
    missing = {e.local for e in registry} - present
    assert missing and all(path.startswith("ACDC_dataset/TestSet/") for path in missing)  # kept back there
    assert present <= {e.local for e in registry}
    assert all((REAL_ROOT / e.local).stat().st_size == e.size for e in registry if e.local in present)
    assert all(dl.is_verified(REAL_ROOT / e.local, e) for e in registry if e.dataset == "myops-scribbles")
