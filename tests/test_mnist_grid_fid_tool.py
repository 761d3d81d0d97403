"""tools/mnist_grid_fid.py: one line per network, sampler and budget, each with both grids' FID and stray fraction."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "mnist_grid_fid.py"


def test_tool_prints_both_grids_for_every_network_sampler_and_budget(capsys):
    spec = importlib.util.spec_from_file_location("mnist_grid_fid", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(["--n", "12"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 8, lines
    pattern = re.compile(r"logsnr: FID (\d+\.\d+), beyond 1\.5 (0\.\d{4}) \| blend: FID (\d+\.\d+), beyond 1\.5 (0\.\d{4})")
    for line, (model, sampler, nfe) in zip(lines, [(m, s, k) for m in ("mnist_unet ", "mnist_unet_eps")
                                                    for s in ("unipc", "dpm_solver_3m") for k in (10, 20)]):
        assert line.startswith(model) and sampler in line and f" {nfe} NFE" in line, line
        m = pattern.search(line)
        assert m and all(float(v) >= 0 for v in m.groups()), line
