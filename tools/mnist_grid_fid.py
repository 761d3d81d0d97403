"""MNIST-FID of the two samplers whose default is the blend grid, on the blend and the log-SNR grid, for both shipped
networks: 1,000 class-conditional samples (labels 0-9 in turn) from the same starting points at 10 and 20 NFE, and
the fraction of pixels beyond +-1.5. A check on real images of the grid chosen on the ring (`sdelab.grids`).

Usage: `SDELAB_DATA=<mnist folder> python tools/mnist_grid_fid.py [--n 1000]` (about 3 minutes on one core).
"""
from __future__ import annotations

import argparse

import torch

from sdelab import hub
from sdelab.classifier import mnist_fid
from sdelab.grid_measure import RANGE_LIMIT
from sdelab.multistep import dpm_solver_3m
from sdelab.param import eps_fn
from sdelab.unipc import unipc


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    for model in ("mnist_unet", "mnist_unet_eps"):
        net, sde = hub.pretrained(model), hub.build_sde(hub.info(model).get("sde"))
        f = eps_fn(net.eval(), sde, None, torch.arange(a.n) % 10, None)
        x_T = sde.prior_sample((a.n, 1, 28, 28), generator=torch.Generator().manual_seed(5))  # shared by every run
        for sampler in (unipc, dpm_solver_3m):
            for nfe in (10, 20):
                row = []
                for kind in ("logsnr", "blend"):
                    with torch.no_grad():
                        x = sampler(f, sde, x_T, sde.time_grid(nfe, 1e-3, kind=kind).to(torch.float64))
                    row.append(f"{kind}: FID {mnist_fid(x):.2f}, beyond 1.5 {float((x.abs() > RANGE_LIMIT).double().mean()):.4f}")
                print(f"{model:15s} {sampler.__name__:14s} {nfe} NFE  " + " | ".join(row), flush=True)


if __name__ == "__main__":
    main()
