"""Independent measurements of a diffusion model on MNIST (issue 12): a judge the package did not train.

The judge is a small CNN defined and trained HERE, on the 60,000 training digits, with nothing from
`sdelab.classifier`; the package's classifier is only used where the target names it (MNIST-FID and the
accuracy of guided samples). Usage (the data through the loader's own variables):

    SDELAB_DATA=<mnist folder> SDELAB_OFFLINE=1 python tools/mnist_eval.py judge --out WORK/judge.pt
    SDELAB_DATA=... python tools/mnist_eval.py eval --judge WORK/judge.pt --what uncond,cond,fid,guided \\
        [--model mnist_unet | --weights FILE] --out WORK/eval.json

`eval` prints and writes JSON with what it measured; every part is bounded by its sample count.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn
from torch.nn import functional as F

CONFIDENT = 0.9  # a digit is "confident" when the judge's top softmax probability is at least this


class Judge(nn.Module):
    """LeNet-like: conv5(1->20), pool, conv5(20->40), pool, fc 640->200, fc 200->10 (no padding, no BatchNorm)."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 20, 5), nn.Conv2d(20, 40, 5)
        self.f1, self.f2 = nn.Linear(40 * 16, 200), nn.Linear(200, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.f2(F.dropout(F.relu(self.f1(x.flatten(1))), 0.25, self.training))


def train_judge(epochs: int = 2, seed: int = 1) -> tuple[Judge, dict]:
    from sdelab.data import mnist

    x, y = mnist("train")
    xt, yt = mnist("test")
    if len(x) < 60000:
        raise SystemExit(f"the judge needs the full MNIST (got {len(x)} training digits); set SDELAB_DATA")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net, t0 = Judge(), time.perf_counter()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    steps = epochs * (len(x) // 100)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(100):
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    acc = float((predict(net, xt)[0] == yt).double().mean())
    return net, {"epochs": epochs, "seed": seed, "test_accuracy": acc, "minutes": (time.perf_counter() - t0) / 60,
                 "real_confident_rate": confident_rate(net, xt)}


@torch.no_grad()
def predict(net, x, batch: int = 1000):
    p = torch.cat([F.softmax(net(x[i:i + batch].clamp(-1, 1)), 1) for i in range(0, len(x), batch)])
    return p.argmax(1), p.max(1).values


def confident_rate(net, x) -> float:
    return float((predict(net, x)[1] >= CONFIDENT).double().mean())


def load_judge(path) -> tuple[Judge, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    net = Judge()
    net.load_state_dict(ck["state"])
    return net.eval(), ck["record"]


DEFAULT_STEPS = {"ddim": 50, "dpm2m": 25, "heun": 25, "ddpm": 50, "euler_maruyama": 100}
"""Step count per sampler for the FID table (Heun: 2 NFE per step)."""


def _model(a):
    from sdelab import hub

    if a.weights:
        return hub.load_file(a.weights), hub.build_sde(hub.file_meta(a.weights).get("sde"))
    return hub.pretrained(a.model), hub.build_sde(hub.info(a.model).get("sde"))


def grid_of(sampler: str) -> str:
    """The default grid kind `generate` runs `sampler` (one of its names) on."""
    from sdelab.grids import DEFAULT_GRID
    from sdelab.recipes import sampler_function

    return DEFAULT_GRID[sampler_function(sampler).__name__]


def run_parts(a, judge, record) -> dict:
    from sdelab.classifier import accuracy, load_classifier, mnist_fid
    from sdelab.recipes import generate

    model, sde = _model(a)
    what, n, out = a.what.split(","), a.n, {"judge": record, "n": a.n, "confident_threshold": CONFIDENT,
                                           "grids": {s: grid_of(s) for s in DEFAULT_STEPS}}

    def gen(sampler, steps, seed, **kw):
        t0 = time.perf_counter()
        x, y = generate(model, sde, n if "n" not in kw else kw.pop("n"), sampler=sampler, steps=steps,
                        generator=torch.Generator().manual_seed(seed), **kw)
        print(f"{sampler} {steps} steps {kw}: {time.perf_counter() - t0:.0f} s", flush=True)
        return x, y

    if "uncond" in what:  # DDIM 50 with the null label: does a stranger read digits?
        x, _ = gen("ddim", 50, 10, label=-1)
        cls, conf = predict(judge, x)
        ok = conf >= CONFIDENT
        out["uncond_ddim50"] = {"confident_rate": float(ok.double().mean()),
                                "ratio_to_real": float(ok.double().mean()) / record["real_confident_rate"],
                                "class_counts_confident": torch.bincount(cls[ok], minlength=10).tolist(),
                                "class_counts": torch.bincount(cls, minlength=10).tolist()}
    if "cond" in what:  # DDIM 50, labels 0..9 in turn, w = 0: label accuracy by the judge; FID
        x, y = gen("ddim", 50, 11)
        out["cond_ddim50_w0"] = {"judge_label_accuracy": float((predict(judge, x)[0] == y).double().mean()),
                                 "package_classifier_accuracy": accuracy(load_classifier(), x.clamp(-1, 1), y)}
        out.setdefault("fid", {})["ddim"] = {"steps": 50, "nfe": 50, "mnist_fid": mnist_fid(x)}
    if "fid" in what:
        for name in [s for s in DEFAULT_STEPS if s != "ddim"]:
            steps = DEFAULT_STEPS[name]
            x, _ = gen(name, steps, 12)
            out.setdefault("fid", {})[name] = {"steps": steps, "nfe": 2 * steps if name == "heun" else steps,
                                               "mnist_fid": mnist_fid(x)}
    if "guided" in what:  # the package's (new) classifier on guided DDIM-50 samples
        clf = load_classifier()
        for w in (1.0, 3.0):
            x, y = gen("ddim", 50, 13, guidance=w, n=a.n_guided)
            out[f"guided_ddim50_w{w:g}"] = {"n": a.n_guided, "package_classifier_accuracy": accuracy(clf, x.clamp(-1, 1), y),
                                            "judge_label_accuracy": float((predict(judge, x)[0] == y).double().mean())}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["judge", "eval"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--judge")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--model", default="mnist_unet")
    ap.add_argument("--weights", help="a training checkpoint or weights file instead of the shipped --model")
    ap.add_argument("--what", default="uncond,cond,fid,guided")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--n-guided", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.cmd == "judge":
        net, rec = train_judge(a.epochs)
        torch.save({"state": net.state_dict(), "record": rec}, a.out)
        print(json.dumps(rec, indent=1))
        return
    res = run_parts(a, *load_judge(a.judge))
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
