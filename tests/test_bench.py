"""``bench``: the JSON record's schema and identities (FLOP counts, ratios), the tables, the errors. No speed checks."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from modelmix_lite.bench import overhead_ratios, parse_method_spec, peak_tflops, run_bench, synthetic_batches
from modelmix_lite.bench_command import COMPARE_FIELDS, compare, format_table, main_bench
from modelmix_lite.data.tasks import UNANNOTATED
from modelmix_lite.errors import ConfigError, DataError
from modelmix_lite.methods import METHODS

TINY = dict(width=8, size=32, batch=2, tasks=("myops", "mscmr"), steps=2, warmup=1, device="cpu")
METHOD_FIELDS = {
    "method": str, "preset": str, "step_s": float, "step_cpu_s": float, "samples_per_s": float,
    "peak_memory_mib": float, "flops_per_step": int, "tflop_per_s": float, "s_per_gflop": float,
    "cpu_s_per_gflop": float, "fraction_of_peak": type(None), "inference_slices_per_s": float,
    "s_per_flop_vs_#1": float, "cpu_s_per_flop_vs_#1": float,
}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a small shared machine two spinning threads per process slow everything down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def record() -> dict:
    return run_bench(**TINY, methods=("#1", "#2", "#4:paper", "fullsup"))


def test_record_schema(record: dict) -> None:
    assert set(record) == {"device", "torch", "commit", "dirty", "host", "settings", "results", "overhead",
                           "data", "created"}
    assert record["device"] == "cpu" and record["torch"] == torch.__version__
    assert record["commit"] is None or len(record["commit"]) == 40
    assert isinstance(record["dirty"], bool) or record["commit"] is None
    assert "cores" in record["host"] and "1 torch threads" in record["host"]
    assert record["settings"]["width"] == 8 and record["settings"]["tasks"] == ["myops", "mscmr"]
    assert record["settings"]["peak_tflops"] is None and record["settings"]["amp_bf16"] is False
    assert list(record["results"]) == ["#1", "#2", "#4:paper", "fullsup"]
    for spec, result in record["results"].items():
        assert {k: type(v) for k, v in result.items()} == METHOD_FIELDS, spec
        assert result["flops_per_step"] > 0 and result["step_s"] > 0 and result["peak_memory_mib"] > 0
        assert result["samples_per_s"] == pytest.approx(2 * 2 / result["step_s"])
        assert result["tflop_per_s"] == pytest.approx(result["flops_per_step"] / result["step_s"] / 1e12)
        assert result["s_per_gflop"] == pytest.approx(result["step_s"] / (result["flops_per_step"] / 1e9))
    assert json.loads(json.dumps(record)) == record


def test_flop_counts_follow_the_model_passes(record: dict) -> None:
    """#1: one forward+backward per task; #2 adds the mixup pass; #4 (paper) also the virtual model; FullSup = #1."""
    flops = {spec: r["flops_per_step"] for spec, r in record["results"].items()}
    assert flops["#2"] == 2 * flops["#1"]
    assert flops["#4:paper"] == 3 * flops["#1"]
    assert flops["fullsup"] == flops["#1"]


def test_overhead_ratio_present(record: dict) -> None:
    results = record["results"]
    assert results["#1"]["s_per_flop_vs_#1"] == 1.0 and results["#1"]["cpu_s_per_flop_vs_#1"] == 1.0
    expected = results["#4:paper"]["cpu_s_per_gflop"] / results["#1"]["cpu_s_per_gflop"]
    assert record["overhead"]["basis"] == "cpu_s_per_flop_vs_#1"
    assert record["overhead"]["ratios"] == {"#4:paper": pytest.approx(expected)}
    assert record["overhead"]["within_target"] == (expected <= record["overhead"]["target"])


def test_data_path(record: dict) -> None:
    data = record["data"]
    assert data["workers"] >= 1 and data["n_slices"] > 0
    for source in ("phantom", "cache"):
        assert data[source]["build_slices_per_s"] == pytest.approx(data["n_slices"] / data[source]["build_s"])
        assert data[source]["loader_slices_per_s"] > 0


def test_format_table(record: dict) -> None:
    text = format_table(record)
    for spec in record["results"]:
        assert f"\n{spec} " in text
    assert "#4:paper" in text.splitlines()[-2] and "loader workers" in text.splitlines()[-1]


def _timed(method: str, preset: str, s_per_gflop: float | None) -> dict:
    return {"method": method, "preset": preset, "s_per_gflop": s_per_gflop}


def test_overhead_ratios_by_hand() -> None:
    results = {"#1": _timed("#1", "paper", 2.0), "#4:paper": _timed("#4", "paper", 3.0),
               "#4:released_code": _timed("#4", "released_code", 5.0)}
    assert overhead_ratios(results) == {"#1": 1.0, "#4:paper": 1.5, "#4:released_code": 2.5}
    # a #1 with the same preset is the baseline where there is one
    results["#1:released_code"] = _timed("#1", "released_code", 4.0)
    assert overhead_ratios(results) == {"#1": 1.0, "#4:paper": 1.5, "#4:released_code": 1.25, "#1:released_code": 1.0}
    assert overhead_ratios({"#4:paper": results["#4:paper"]}) == {"#4:paper": None}
    assert overhead_ratios({"#1": results["#1"], "#2": _timed("#2", "paper", None)}) == {"#1": 1.0, "#2": None}


@pytest.mark.parametrize(
    "name, expected",
    [("NVIDIA H100 80GB HBM3", (989.0, "bf16")), ("NVIDIA H100 PCIe", (756.0, "bf16")), ("NVIDIA H200", (989.0, "bf16")),
     ("NVIDIA A100-SXM4-80GB", (312.0, "bf16")), ("NVIDIA GeForce RTX 3090", (71.0, "bf16")),
     ("NVIDIA L4", (121.0, "bf16")), ("Tesla T4", (65.0, "fp16")), ("NVIDIA L40S", None), ("cpu", None)],
)
def test_peak_tflops(name: str, expected: tuple | None) -> None:
    assert peak_tflops(name) == expected


def test_parse_method_spec() -> None:
    assert parse_method_spec("#4") == (METHODS["#4"], parse_method_spec("#4:paper")[1])
    assert parse_method_spec("#4:released_code")[1].detach_virtual is True
    with pytest.raises(ConfigError, match=r"^--methods: unknown method '#9' in '#9:paper'"):
        parse_method_spec("#9:paper")
    with pytest.raises(ConfigError, match=r"^--methods: unknown core preset 'foo' in '#4:foo'"):
        parse_method_spec("#4:foo")


@pytest.mark.parametrize(
    "options, message",
    [(dict(size=40), r"^--size: must be a positive multiple of 16"), (dict(batch=1), r"^--batch: must be >= 2, got 1"),
     (dict(steps=0), r"^--steps: must be >= 1"), (dict(tasks=("myops", "heart")), r"^--tasks: unknown task 'heart'"),
     (dict(tasks=("myops",)), r"^--tasks: method '#1' needs at least 2 tasks")],
)
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_bench(**{**TINY, **options, "methods": ("#1",)})


def test_missing_data_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"^{tmp_path / 'nowhere'}: data root not found"):
        run_bench(**TINY, methods=("#1",), data_root=tmp_path / "nowhere")


def test_synthetic_batches() -> None:
    cpu = torch.device("cpu")
    scribbled = synthetic_batches(METHODS["#4"], ["myops", "mscmr"], 4, 32, cpu)
    myops = scribbled["myops"]
    assert myops["image"].shape == (4, 3, 32, 32) and myops["target"].dtype == torch.int64
    assert myops["n_scribbled"] == 2 and bool((myops["target"][2:] == UNANNOTATED).all())
    annotated = myops["target"][:2] != UNANNOTATED
    assert 0 < annotated.float().mean() < 0.2 and int(myops["target"][:2][annotated].max()) < 5
    assert int(scribbled["mscmr"]["target"][:2][scribbled["mscmr"]["target"][:2] != UNANNOTATED].max()) < 4
    assert synthetic_batches(METHODS["#1"], ["myops"], 4, 32, cpu)["myops"]["n_scribbled"] == 4
    full = synthetic_batches(METHODS["fullsup"], ["myops"], 4, 32, cpu)["myops"]
    assert full["n_scribbled"] == 4 and bool((full["target"] < 5).all())


def _record(step_s: float, flops: int) -> dict:
    return {"results": {"#1": {"step_s": step_s, "flops_per_step": flops, "peak_memory_mib": 100.0}}}


def test_compare() -> None:
    table = compare(_record(2.0, 10), _record(1.0, 10))
    assert list(table.columns) == list(COMPARE_FIELDS)
    assert table.loc["#1", "step_s"] == 0.5 and table.loc["#1", "flops_per_step"] == 1.0
    assert math.isnan(table.loc["#1", "samples_per_s"])  # a field missing from the records
    with pytest.raises(DataError, match=r"^b.json: no method in common with a.json \(#1\)"):
        compare(_record(1.0, 1), {"results": {"#2": {}}}, "a.json", "b.json")


def test_main_bench_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_record(2.0, 10)))
    b.write_text(json.dumps(_record(3.0, 10)))
    assert main_bench(["--compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert f"A = {a}" in out and "1.500" in out
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad.json: not a readable bench JSON file"):
        main_bench(["--compare", str(a), str(tmp_path / "bad.json")])
    with pytest.raises(DataError, match=r"missing.json: not a readable bench JSON file"):
        main_bench(["--compare", str(a), str(tmp_path / "missing.json")])


def test_main_bench_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results" / "tiny.json"
    argv = ["--width", "8", "--size", "32", "--batch", "2", "--steps", "1", "--warmup", "0", "--device", "cpu",
            "--methods", "#1", "--out", str(out)]
    assert main_bench(argv) == 0
    saved = json.loads(out.read_text())
    assert list(saved["results"]) == ["#1"] and saved["settings"]["steps"] == 1
    assert saved["overhead"] == {"target": 1.15, "basis": "cpu_s_per_flop_vs_#1", "ratios": {}, "within_target": None}
    assert f"wrote {out}" in capsys.readouterr().out
