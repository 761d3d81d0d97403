"""`python -m sdelab bench --quick --only <cheap rows>`: the table and the JSON structure (no timing asserted)."""
import json

from sdelab.bench import NO_GPU, ROWS, SAMPLER_STEPS
from sdelab.cli import main


def test_quick_bench_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--quick", "--only", "mnist_throughput", "mnist_fid", "sampling", "classifier",
            "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    res = json.loads(out.read_text())
    for key in ("date", "device", "torch", "python", "threads", "quick", "cuda", "rows"):
        assert key in res, key
    assert res["quick"] is True and res["cuda"] is False and res["device"].startswith("CPU")
    names = [r["row"] for r in res["rows"]]
    for r in res["rows"]:
        assert set(r) == {"row", "metric", "value", "unit", "target", "status", "details"}
        assert r["row"].split(":")[0] in ROWS
        assert r["metric"][:40] in table
    # GPU rows on the CPU: printed as unmeasured, never a number
    for gpu_row in ("mnist_throughput", "mnist_fid"):
        row = next(r for r in res["rows"] if r["row"] == gpu_row)
        assert row["status"] == NO_GPU and row["value"] is None
    assert table.count(NO_GPU) == 2
    # sampling: one measured row per sampler (rk45 is left out of the quick run)
    sampling = [r for r in res["rows"] if r["row"].startswith("sampling:")]
    assert {r["row"] for r in sampling} == {f"sampling:{n}" for n in
                                            ("euler_maruyama", "pc", "pf_euler", "heun", "ddpm", "ddim", "dpm2m")}
    for r in sampling:
        assert r["status"] == "measured" and r["value"] > 0
        assert r["details"]["max_abs_pixel"] > 0 and "fid" not in r["details"]  # no FID from 2 images
    for r in sampling:  # network evaluations: one per step, two for Heun and predictor-corrector
        name = r["row"].split(":")[1]
        k = max(5, SAMPLER_STEPS[name] // 25)
        assert r["details"]["nfe"] == (2 * k if name in ("pc", "heun") else k), r
    assert "classifier" in names
    assert str(out) in table
