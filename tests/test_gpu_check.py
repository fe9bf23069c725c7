"""benchmarks/gpu_check.sh runs on a machine without CUDA as a dry run of the same code paths
(tiny inputs on CPU), so CI proves the script a GPU machine will meet is not broken."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def table_rows(report: str, first_header: str) -> list[list[str]]:
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_dry_run_measures_every_variant_and_writes_the_report_under_out(gpu_check, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path / "out"))
    code = gpu_check.main(["--dry-run", "--skip", "tests,train,nccl", "--methods", "none",
                           "--compile-methods", "none", "--n-images", "4"])
    report = (tmp_path / "out" / "gpu_check.md").read_text()
    assert code == 0, report
    assert "DRY RUN" in report and "failed" not in report
    rows = table_rows(report, "method")
    assert [r[3] for r in rows] == ["fp32", "bf16", "bf16+cl"], rows
    for method, _input, batch, variant, bare, e2e, ratio, dmap, f1, _warm in rows:
        assert method == "resnet_localiser" and batch == "2"
        assert float(bare) > 0 and float(e2e) > 0 and float(ratio) > 0
        assert float(dmap) <= 2e-2, (variant, dmap)  # the documented bf16 tolerance
        assert 0 <= float(f1) <= 1
    assert rows[0][7] == "0.0e+00"  # fp32 is the reference


def test_methods_whose_packages_do_not_import_are_skipped_with_a_line(gpu_check, tmp_path,
                                                                      monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(gpu_check.importlib.util, "find_spec",
                        lambda name, *a: None if name == "jpeglib" else real(name, *a))
    out = tmp_path / "r.md"
    code = gpu_check.main(["--dry-run", "--out", str(out), "--skip", "tests,train,nccl",
                           "--methods", "cat_net", "--compile-methods", "none", "--n-images", "2",
                           "--bare-images", "2"])
    report = out.read_text()
    assert code == 0, report
    assert "optional packages missing: jpeglib" in report
    assert "- skipped cat_net: needs jpeglib, which does not import here" in report
    assert not any(r[0] == "cat_net" for r in table_rows(report, "method"))


@pytest.mark.slow  # the whole dry run: pytest --collect-only, a compile row, MPC steps, torchrun
@pytest.mark.timeout(900)  # 2-4 minutes on 2 busy cores
def test_the_script_itself_dry_runs(tmp_path):
    out = tmp_path / "report.md"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run",
                           "--out", str(out)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=800)
    report = out.read_text()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "failed" not in report.lower(), report
    assert re.search(r"--collect-only` → exit 0", report), report
    assert "bf16+cl+compile" in report and "| ncl |" in report
    assert len(table_rows(report, "stage")) == 6
    assert re.search(r"backend gloo; images 7 \(1 process\) vs 7 \(2 processes\); largest metric "
                     r"difference \S+ \(tolerance 1e-6\): OK", report), report
