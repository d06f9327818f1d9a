"""`make bench` in quick mode: the benchmark code runs and writes a page with every section."""

from __future__ import annotations

from benchmarks.bench import main


def test_quick_benchmarks_write_the_page(tmp_path, capsys):
    out = tmp_path / "benchmarks.md"
    assert main(["--quick", "--out", str(out)]) == 0
    page = out.read_text()
    for heading in (
        "## Machine",
        "## Hardware",
        "## Quality",
        "## Async",
        "## Neural networks",
        "## Preprocessing",
        "## Scaling",
        "## Solvers",
        "## End to end",
        "## Tuning",
        "## Tuning analysis",
    ):
        assert heading in page
    assert (tmp_path / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "objective / exact optimum" in page and "bare numpy" in page
    assert "(mlp_regression (64, 64)): test R², async | R² |" in page
    assert "(64, 64) relu: worker / bare numpy" in page and "Predict, warm, MLP (64, 64), 1000 instance(s): p50" in page
    assert "diabetes: tuned model's test r2 | r2 |" in page and "breast cancer: tuned model's test accuracy" in page
    assert "diabetes, 4 trials, 2 at a time: estimated AWS cost | USD |" in page
    assert "ONNX export, MLP (64, 64): graph size | kB |" in page
    assert "updates lost of 80 accepted, 8 workers, MLP (64, 64) (compare-and-swap) | updates | 0 | 0 | 0 |" in page
