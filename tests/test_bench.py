"""`python -m sdelab bench --quick --only <cheap rows>`: the table, the JSON structure, the markdown table, the
throughput rows in their tiny CPU mode, and the sampler rows (no timing asserted)."""
import json
from pathlib import Path

import pytest

from sdelab.bench import NO_GPU, ROWS, SAMPLING_NFE, markdown_table
from sdelab.bench_images import evals_per_step, sampling_samplers, sampling_steps
from sdelab.bench_timing import TIMING_FIELDS
from sdelab.cli import main


def test_quick_bench_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--quick", "--only", "mnist_throughput", "mnist_fid", "sampling", "classifier",
            "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    res = json.loads(out.read_text())
    for key in ("date", "device", "torch", "python", "threads", "cpu_count", "load_avg_start", "quick", "cuda",
                "rows"):
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
    # sampling: one measured row per sampler (rk45 is left out of the quick run), all at the same NFE
    sampling = [r for r in res["rows"] if r["row"].startswith("sampling:")]
    assert {r["row"] for r in sampling} == {f"sampling:{n}" for n in sampling_samplers()}
    for r in sampling:
        name, d = r["row"].split(":")[1], r["details"]
        assert r["status"] == "measured" and r["value"] > 0
        assert d["nfe"] == SAMPLING_NFE == d["steps"] * evals_per_step(name), r  # counted by a forward hook
        assert f"{SAMPLING_NFE} NFE" in r["metric"]
        assert set(TIMING_FIELDS) <= set(d) and d["repeats"] == 3 and d["warmup"] == 1
        assert d["wall_spread_s"][0] <= d["wall_s"] <= d["wall_spread_s"][1]
        assert d["max_abs_pixel"] > 0 and "fid" not in d  # no FID from 2 images
        assert 0 <= d["confident"] <= 1 and 0 <= d["label_match"] <= 1 and "confident" in d["quality"]
        assert d["grid"] in ("uniform", "logsnr", "karras", "angle", "blend"), r  # read off the times the network was called at
    assert "classifier" in names
    assert str(out) in table
    # the markdown table from that JSON: one line per row, through the CLI
    assert main(["bench", "--markdown", str(out)]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0] == "| row | target | measured | device, date |" and len(md) == 2 + len(res["rows"])
    assert all(line.startswith("| ") and line.endswith(f"{res['date'][:10]} (quick mode: small budgets) |")
               for line in md[2:])


def test_markdown_table_from_a_hand_made_result(tmp_path):
    timing = {"wall_s": 7.6, "wall_spread_s": [7.1, 8.0], "cpu_s": 7.5, "load_avg": [0.5, 1.25], "repeats": 3,
              "warmup": 1}
    result = {"date": "2026-12-06T01:00:00+00:00", "device": "CPU (x86_64, 2 cores, 1 threads)", "rows": [
        {"row": "ring", "metric": "time to SW <= 1.5x floor", "value": 7.6, "unit": "s", "target": "<= 30 s",
         "status": "measured", "details": {**timing, "floor": 0.02}},
        {"row": "mnist_throughput", "metric": "training img/s", "value": None, "unit": "img/s",
         "target": ">= 20,000 img/s", "status": NO_GPU, "details": {}},
        {"row": "mnist_throughput:ratio", "metric": "train() / plain loop", "value": 0.97, "unit": "x",
         "target": ">= 0.9", "status": "measured", "details": {"device": "NVIDIA H100", "ratio_spread": [0.9, 1.0]}},
        {"row": "ring", "metric": "again", "value": None, "unit": "s", "target": "",
         "status": "not reached in 3000 steps", "details": {}},
    ]}
    lines = markdown_table(result).splitlines()
    assert lines[:2] == ["| row | target | measured | device, date |", "|---|---|---|---|"] and len(lines) == 6
    ring, gpu, ratio, missed = lines[2:]
    assert ring == ("| ring: time to SW <= 1.5x floor | <= 30 s | 7.6 s (median of 3: 7.6 s (7.1-8), CPU 7.5 s, "
                    "load 0.5->1.25; SW floor 0.02) | CPU (x86_64, 2 cores, 1 threads), 2026-12-06 |")
    assert f"| {NO_GPU} |" in gpu  # a None value is shown as unmeasured, with the reason
    assert "| unmeasured (not reached in 3000 steps) |" in missed
    assert ratio.endswith("| 0.97 x (spread 0.9-1) | NVIDIA H100, 2026-12-06 |")  # the row's own device
    with pytest.raises(ValueError, match="missing"):
        markdown_table({"rows": []})
    assert main(["bench", "--markdown", str(tmp_path / "absent.json")]) == 2  # one-line error, no traceback


def test_throughput_on_cpu_in_tiny_mode():
    import torch

    from sdelab.bench_mnist import bench_mnist_throughput

    assert [r["status"] for r in bench_mnist_throughput(True, torch.device("cpu"))] == [NO_GPU]
    rows = {r["row"]: r for r in bench_mnist_throughput(True, torch.device("cpu"), cpu_tiny=True)}
    assert set(rows) == {"mnist_throughput", "mnist_throughput:plain", "mnist_throughput:ratio",
                         "mnist_throughput:tutorial", "mnist_throughput:tutorial_ratio"}
    for r in rows.values():
        assert r["status"] == "measured" and r["value"] > 0
        assert "CPU" in r["details"]["device"] and "not a GPU figure" in r["details"]["device"]
        assert "[CPU, tiny sizes]" in r["metric"] and r["target"] == ""  # the targets are GPU targets
    same, tutorial = rows["mnist_throughput"]["details"], rows["mnist_throughput:tutorial"]["details"]
    assert same["batch"] == rows["mnist_throughput:plain"]["details"]["batch"] == 16
    assert same["precision"] == rows["mnist_throughput:plain"]["details"]["precision"] == "fp32"
    assert tutorial["batch"] == 32 and tutorial["precision"] == "fp32"
    for name in ("mnist_throughput", "mnist_throughput:plain", "mnist_throughput:tutorial"):
        assert set(TIMING_FIELDS) <= set(rows[name]["details"])
    # the ratio rows are the img/s of the rows they compare (1 % for the rounding of img/s to integers and 3 digits)
    expect = rows["mnist_throughput"]["value"] / rows["mnist_throughput:plain"]["value"]
    assert rows["mnist_throughput:ratio"]["value"] == pytest.approx(expect, rel=0.01)
    lo, hi = rows["mnist_throughput:ratio"]["details"]["ratio_spread"]
    assert lo <= rows["mnist_throughput:ratio"]["value"] <= hi


def test_sampling_steps():
    assert sampling_steps("heun", 20) == 10 and sampling_steps("pc", 20) == 10 and sampling_steps("ddim", 20) == 20
    with pytest.raises(ValueError, match="nfe must be"):
        sampling_steps("heun", 7)
    with pytest.raises(ValueError, match="sampler must be"):
        sampling_steps("rk45")
    with pytest.raises(ValueError, match="sampler must be one of"):
        evals_per_step("euler")


def test_sampling_counts_come_from_the_one_table():
    # every name generate accepts maps, through the function it runs, to sdelab.grids.EVALS_PER_STEP; rk45 has none
    from sdelab.grids import EVALS_PER_STEP
    from sdelab.recipes import SAMPLER_NAMES, sampler_function

    assert sampling_samplers() == [n for n in SAMPLER_NAMES if n != "rk45"] and evals_per_step("rk45") is None
    assert {n: evals_per_step(n) for n in sampling_samplers()} == {
        n: EVALS_PER_STEP[sampler_function(n).__name__] for n in sampling_samplers()}
    assert evals_per_step("heun") == evals_per_step("pc") == 2 and evals_per_step("ddim") == 1


def test_minimal_loops_are_the_same_algorithms_as_the_samplers():
    # The overhead rows compare each sampler with a minimal loop; the ratio means something only if both compute
    # the same thing: same seed, same output (up to float64 rounding).
    import itertools

    import torch

    from sdelab.bench_samplers import PACKAGE, EPS_BASED, minimal_loops
    from sdelab.grids import default_grid
    from sdelab.sde import VPSDE
    from sdelab.toy import ring

    sde, mix = VPSDE(), ring(dtype=torch.float64)
    x = sde.prior_sample((32, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loops = minimal_loops(sde)
    assert set(loops) == set(PACKAGE)   # every sampler has its overhead row
    for (name, loop), steps in itertools.product(loops.items(), (12, 20)):   # below / above lower_order_final's 15
        fn = mix.eps_fn(sde) if name in EPS_BASED else mix.score_fn(sde)
        tc = default_grid(name, sde, steps)
        a = PACKAGE[name](fn, sde, x, tc, generator=torch.Generator().manual_seed(1))
        b = loop(fn, x, tc, torch.Generator().manual_seed(1))
        assert torch.allclose(a, b, atol=1e-9), (name, steps)


def test_overhead_and_quality_rows_structure():
    from sdelab.bench_samplers import PACKAGE, overhead_rows, quality_rows

    rows = overhead_rows(batch=8, steps=4, repeats=1)
    assert {(r["sampler"], r["score"]) for r in rows} == {(s, k) for s in PACKAGE for k in ("near-free", "ring")}
    for r in rows:
        assert r["ratio"] > 0 and r["ratio_spread"][0] <= r["ratio"] <= r["ratio_spread"][1]
        assert set(TIMING_FIELDS) <= set(r["package"]) <= set(TIMING_FIELDS)
    q = quality_rows(8, n=200, repeats=1)
    assert all(r["nfe"] == 8 and r["sliced_w2"] > 0 for r in q)


def test_nfe_rows_measure_each_default_grid_and_the_bench_names_the_best(monkeypatch):
    import sdelab.bench_samplers as bs
    from sdelab.bench import bench_sampler_nfe, markdown_table
    from sdelab.grids import DEFAULT_GRID

    rows = bs.nfe_rows(n=400, nfes=[10, 20])
    assert [r["sampler"] for r in rows] == list(bs.PACKAGE) and all(r["grid"] == DEFAULT_GRID[r["sampler"]] for r in rows)
    for r in rows:   # predictor-corrector takes 2 evaluations per step: both budgets still divide
        assert r["strict_from"] in (None, 10, 20) and r["max_nfe"] == 20
        assert r["strict_from"] is None or r["first_strict"] <= r["strict_from"]
    # the bench rows from made-up measurements: targets on Heun, DDIM and the best; an unreached sampler says so
    fake = [{"sampler": s, "grid": "logsnr", "n": 9, "strict_from": v, "loose": 6, "first_strict": v, "max_nfe": 1024,
             "sweep_s": 1.0} for s, v in (("unipc", 18), ("pf_ode_heun", 40), ("ddim_sample", 768),
                                           ("predictor_corrector", None), ("dpm_solver_3m", 32))]
    monkeypatch.setattr(bs, "nfe_rows", lambda n, nfes: fake)
    out = {r["row"]: r for r in bench_sampler_nfe(False, None)}
    assert out["sampler_nfe:best"]["value"] == 18 and out["sampler_nfe:best"]["details"]["sampler"] == "unipc"
    assert out["sampler_nfe:best"]["target"] == "<= 20"
    assert (out["sampler_nfe:pf_ode_heun"]["target"], out["sampler_nfe:ddim_sample"]["target"]) == ("<= 48", "<= 64")
    assert out["sampler_nfe:unipc"]["target"] == ""
    pc = out["sampler_nfe:predictor_corrector"]
    assert pc["value"] is None and pc["status"].startswith("not strict at 1,024 NFE")
    md = markdown_table({"date": "2026-12-06", "device": "CPU", "rows": list(out.values())})
    assert "| <= 20 | 18 NFE (by unipc) |" in md and "| not strict at 1,024 NFE (the largest tried) |" in md


def test_readme_performance_table_is_generated_from_the_committed_bench_json():
    from sdelab.bench import README_MARK, readme_with_table

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    m = README_MARK.search(readme)
    assert m is not None and (root / m["path"]).is_file(), "README must name a committed bench JSON"
    assert json.loads((root / m["path"]).read_text())["quick"] is False   # a full run, not the quick one
    assert readme_with_table(readme, root) == readme, "run: python -m sdelab bench --readme README.md"


def test_committed_bench_nfe_rows_agree_with_the_grid_tables():
    # grids.MEASURED_NFE (tools/measure_grids.py) chose the defaults; the bench measures the same thing on its own
    from sdelab.bench import README_MARK
    from sdelab.grids import DEFAULT_GRID, MEASURED_NFE

    root = Path(__file__).resolve().parents[1]
    res = json.loads((root / README_MARK.search((root / "README.md").read_text())["path"]).read_text())
    rows = {r["row"].split(":")[1]: r for r in res["rows"] if r["row"].startswith("sampler_nfe:")}
    assert set(rows) == set(MEASURED_NFE) | {"best"}
    for name, by_kind in MEASURED_NFE.items():
        loose, strict = by_kind[DEFAULT_GRID[name]]
        assert (rows[name]["value"], rows[name]["details"]["loose"]) == (strict, loose), name
    best = min((v[DEFAULT_GRID[n]][1], n) for n, v in MEASURED_NFE.items() if v[DEFAULT_GRID[n]][1])
    assert (rows["best"]["value"], rows["best"]["details"]["sampler"]) == best


def test_readme_with_table_rewrites_only_the_marked_block(tmp_path):
    from sdelab.bench import markdown_table, readme_with_table

    result = {"date": "2026-12-06T01:00:00+00:00", "device": "CPU", "rows": [
        {"row": "ring", "metric": "time", "value": 7.6, "unit": "s", "target": "<= 30 s", "status": "measured",
         "details": {}}]}
    (tmp_path / "b.json").write_text(json.dumps(result))
    text = "# T\n\nbefore\n<!-- bench: b.json -->\n| stale |\n<!-- /bench -->\nafter\n"
    out = readme_with_table(text, tmp_path)
    assert out.startswith("# T\n\nbefore\n<!-- bench: b.json -->\n| row | target |") and out.endswith("<!-- /bench -->\nafter\n")
    assert "| ring: time | <= 30 s | 7.6 s |" in out and "stale" not in out
    with pytest.raises(ValueError, match="bench: FILE.json"):
        readme_with_table("no marks\n", tmp_path)
    # a quick run's small budgets must not pose as the figures: marked in its table, refused for README
    (tmp_path / "b.json").write_text(json.dumps({**result, "quick": True}))
    with pytest.raises(ValueError, match="quick-mode run"):
        readme_with_table(text, tmp_path)
    assert "| CPU, 2026-12-06 (quick mode: small budgets) |" in markdown_table({**result, "quick": True})
    assert "quick" not in markdown_table(result)
