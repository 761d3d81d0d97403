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


def test_minimal_loops_are_the_same_algorithms_as_the_samplers():
    # The overhead rows compare each sampler with a minimal loop; the ratio means something only if both compute
    # the same thing: same seed, same output (up to float64 rounding).
    import torch

    from sdelab.bench_samplers import PACKAGE, EPS_BASED, minimal_loops
    from sdelab.grids import default_grid
    from sdelab.sde import VPSDE
    from sdelab.toy import ring

    sde, mix = VPSDE(), ring(dtype=torch.float64)
    x = sde.prior_sample((32, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name, loop in minimal_loops(sde).items():
        fn = mix.eps_fn(sde) if name in EPS_BASED else mix.score_fn(sde)
        tc = default_grid(name, sde, 12)
        a = PACKAGE[name](fn, sde, x, tc, generator=torch.Generator().manual_seed(1))
        b = loop(fn, x, tc, torch.Generator().manual_seed(1))
        assert torch.allclose(a, b, atol=1e-9), name


def test_overhead_and_quality_rows_structure():
    from sdelab.bench_samplers import overhead_rows, quality_rows

    rows = overhead_rows(batch=8, steps=4, repeats=1)
    assert {r["score"] for r in rows} == {"near-free", "ring"} and len(rows) == 12
    for r in rows:
        assert r["ratio"] > 0 and r["ratio_spread"][0] <= r["ratio"] <= r["ratio_spread"][1]
        assert {"median_s", "min_s", "max_s", "cpu_s", "load_avg"} <= set(r["package"])
    q = quality_rows(8, n=200, repeats=1)
    assert all(r["nfe"] == 8 and r["sliced_w2"] > 0 for r in q)
