"""Put models trained outside `make checkpoints` into the shipped folder (issue 12), with the recipe's manifest entry.

    python tools/mnist_export.py convert                       # every shipped .pt -> .safetensors, meta kept
    SDELAB_DATA=... python tools/mnist_export.py classifier STATE.pt MINUTES
    python tools/mnist_export.py merge METRICS.json EVAL1.json [EVAL2.json ...]   # tools/mnist_eval.py outputs
    python tools/mnist_export.py unet v|eps EMA.pt DONE.json METRICS.json
    python tools/mnist_export.py metrics mnist_unet METRICS.json   # new metrics for a shipped model

`classifier` takes a state dict trained with the recipe's settings (`recipes._mnist_classifier`) and adds the
FID reference statistics and floors; `unet` takes the EMA weights and the record of a run of
`recipes.train_mnist_unet` with `recipes.mnist_unet_config("cpu")` (the background run of issue 12) and the
metrics measured by `tools/mnist_eval.py`.
"""
from __future__ import annotations

import datetime
import json
import sys

import torch

from sdelab import hub, recipes


def convert():
    for name in hub.available(directory=hub.WEIGHTS_DIR):
        entry = hub.info(name, directory=hub.WEIGHTS_DIR)
        if not entry["file"].endswith(".pt"):
            continue
        model = hub.pretrained(name, directory=hub.WEIGHTS_DIR)
        meta = {k: v for k, v in entry.items() if k not in ("file", "sha256", "bytes")}
        new = hub.export_weights(name, model, meta, directory=hub.WEIGHTS_DIR)
        print(name, "->", new["file"], new["bytes"])


def classifier(state_path, minutes):
    from sdelab.classifier import MNISTClassifier
    from sdelab.data import mnist

    images, _ = mnist("train")
    test, test_labels = mnist("test")
    model = MNISTClassifier()
    model.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True)["state"])
    meta = recipes.classifier_meta(model.eval(), images, test, test_labels, device="cpu", minutes=float(minutes))
    meta["training"]["threads"] = 1
    extra = meta.pop("_extra")
    print(json.dumps(hub.export_weights("mnist_classifier", model, meta, directory=hub.WEIGHTS_DIR, extra=extra), indent=1))


def unet(pred, ema_path, done_path, metrics_path):
    done = json.load(open(done_path))
    cfg = recipes.mnist_unet_config("cpu")
    if pred == "eps":
        cfg = {**cfg, "prediction": "eps", "weighting": "sigma2"}
    for k in ("batch_size", "lr", "ema_decay", "warmup", "p_uncond", "prediction", "weighting"):
        if k in done and done[k] != cfg[k]:
            raise SystemExit(f"the run's {k} = {done[k]!r} differs from the recipe's {cfg[k]!r}")
    model = hub.build_model(recipes.mnist_spec(cfg["base"]))
    model.load_state_dict(torch.load(ema_path, map_location="cpu", weights_only=True))
    metrics = json.load(open(metrics_path)) if metrics_path != "-" else {}
    meta = recipes.mnist_unet_meta(cfg, steps=done["steps"], seconds=done["seconds"], device="cpu", n_train=60000,
                                   metrics=metrics)
    meta["training"]["device_name"] = "CPU, 1 thread of a shared 2-core machine (torch CPU build)"
    meta["training"]["time_budget_minutes"] = round(cfg["seconds"] / 60)
    name = "mnist_unet" if pred == "v" else "mnist_unet_eps"
    print(json.dumps(hub.export_weights(name, model, meta, directory=hub.WEIGHTS_DIR), indent=1)[:2000])


def merge(out, *evals):
    """The manifest's metrics from `tools/mnist_eval.py` outputs, with the date, device and the floor."""
    from sdelab import hub

    m = {"date": datetime.date.today().isoformat(),
         "device": "CPU (2 cores shared with other jobs, 1 thread per run; torch CPU build)",
         "measured_by": "tools/mnist_eval.py"}
    for path in evals:
        e = json.load(open(path))
        fid = {**m.get("fid", {}), **e.pop("fid", {})}
        m.update(e)
        if fid:
            m["fid"] = fid
    judge = m.pop("judge")
    m["judge"] = {"what": "a LeNet-like CNN defined and trained in tools/mnist_eval.py on the 60,000 training digits",
                  "test_accuracy": judge["test_accuracy"], "real_test_confident_rate": judge["real_confident_rate"]}
    floor = hub.info("mnist_classifier", directory=hub.WEIGHTS_DIR)["fid_reference"]["floor"]["n1000"]
    if "ddim" in m.get("fid", {}):
        m.update(mnist_fid=round(m["fid"]["ddim"]["mnist_fid"], 3), sampler="ddim", sampler_steps=50)
    m["fid_floor_n1000"] = {"mean": floor["mean"], "sd": floor["sd"]}
    m["note"] = ("samples: labels 0-9 in turn unless said (uncond: the null label); MNIST-FID against the shipped "
                 "statistics of the 10,000 test digits; guided accuracies by the package's mnist_classifier")
    json.dump(m, open(out, "w"), indent=1)
    print(json.dumps(m, indent=1))


def metrics(name, metrics_path):
    """Replace the shipped model `name`'s metrics by METRICS.json (`merge`'s output); the weights are re-exported
    unchanged (float16 in, float16 out), so the file's header carries the same metadata as the manifest."""
    entry = hub.info(name, directory=hub.WEIGHTS_DIR)
    if entry.get("extra"):
        raise SystemExit(f"{name} carries extra tensors; re-export it with its own command")
    before = hub.pretrained(name, directory=hub.WEIGHTS_DIR).state_dict()
    meta = {k: v for k, v in entry.items() if k not in ("file", "sha256", "bytes")}
    meta["metrics"] = json.load(open(metrics_path))
    hub.export_weights(name, hub.pretrained(name, directory=hub.WEIGHTS_DIR), meta, directory=hub.WEIGHTS_DIR)
    after = hub.pretrained(name, directory=hub.WEIGHTS_DIR).state_dict()
    if any(not torch.equal(before[k], after[k]) for k in before):
        raise SystemExit(f"{name}: the re-exported weights differ from the shipped ones")
    print(f"{name}: metrics replaced, weights unchanged")


if __name__ == "__main__":
    {"convert": convert, "classifier": classifier, "unet": unet, "merge": merge,
     "metrics": metrics}[sys.argv[1]](*sys.argv[2:])
