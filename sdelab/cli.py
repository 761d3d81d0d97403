"""The command line: `python -m sdelab train toy|mnist`, `sample`, `bench`, `train-classifier`, `checkpoints`.

Every subcommand has `--help`. A bad argument prints one line, `sdelab: error: ...`, and exits with status 2
(no traceback; set `SDELAB_DEBUG=1` to see the traceback of an error raised by the library).
`torchrun --nproc_per_node=N -m sdelab train mnist ...` trains with DistributedDataParallel
(`sdelab.distributed`).
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


from .cli_args import UsageError, build_parser  # the parser and its checks


# ---------------------------------------------------------------------- commands
def _train(args) -> int:
    import torch

    from . import distributed
    from .hub import build_model, sde_spec
    from .recipes import mnist_spec, toy_spec
    from .sde import VPSDE
    from .train import train

    if not 0 <= args.ema_decay < 1:
        raise UsageError(f"--ema-decay must lie in [0, 1), got {args.ema_decay}")
    sde = VPSDE()
    if args.what == "toy":
        from .toy import DATASETS

        spec, data, labels, shape = toy_spec(args.hidden, args.depth), DATASETS[args.dataset], None, [2]
        info = {"kind": "toy", "name": args.dataset}
        kw = dict(batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay, warmup=100)
    else:
        from .data import mnist

        spec, shape = mnist_spec(args.base, conditional=not args.unconditional), [1, 28, 28]
        data, labels = mnist("train", root=args.data)
        labels = None if args.unconditional else labels
        info = {"kind": "mnist", "n_train": len(data)}
        kw = dict(batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay, warmup=500, amp=args.amp,
                  checkpoint_every=args.checkpoint_every,
                  loss_kwargs={"prediction": args.prediction, "weighting": "v" if args.prediction == "v" else "sigma2",
                               **({"p_uncond": args.p_uncond} if labels is not None and args.p_uncond > 0 else {})})
    meta = {"model": spec, "sde": sde_spec(sde), "prediction": kw.get("loss_kwargs", {}).get("prediction", "eps"),
            "data": info, "shape": shape}
    torch.manual_seed(args.seed)
    model = build_model(spec)
    kw.update(labels=labels, steps=args.steps, checkpoint=args.out, progress=args.progress, meta=meta,
              compile=getattr(args, "compile", False))
    if distributed.is_distributed():
        device = distributed.setup()
        device = torch.device(args.device) if args.device else device
        try:
            res = distributed.train_ddp(model, sde, data, device=device, seed=args.seed, **kw)
        finally:
            distributed.cleanup()
        if distributed.env()[0] != 0:
            return 0
    else:
        res = train(model, sde, data, device=args.device, generator=torch.Generator().manual_seed(args.seed), **kw)
    if res.step == res.start_step and res.step >= args.steps:  # a finished checkpoint: nothing to do
        print(f"{args.out} already holds {res.step} steps; pass --steps N with N > {res.step} to train further")
        return 0
    tail = res.losses[-100:]
    print(f"trained {res.step} steps ({res.step - res.start_step} in this run, {res.seconds:.1f} s); "
          f"mean loss of the last {len(tail)} steps {sum(tail) / max(len(tail), 1):.4f}; checkpoint: {args.out}")
    return 0


def _save_samples(x, y, out: Path) -> None:
    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".pt":
        torch.save({"samples": x, "labels": y}, out)
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if x.ndim == 2:
        from .plot import scatter2d

        fig, ax = plt.subplots(figsize=(4, 4))
        scatter2d(x, ax=ax)
        fig.savefig(out, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return
    n, c, h, w = x.shape
    cols = min(n, 10 if y is not None else int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / cols))
    grid = torch.full((rows * (h + 2), cols * (w + 2)), -1.0)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[r * (h + 2) + 1:r * (h + 2) + 1 + h, k * (w + 2) + 1:k * (w + 2) + 1 + w] = x[i, 0]
    plt.imsave(out, ((grid.clamp(-1, 1) + 1) / 2).numpy(), cmap="gray", vmin=0, vmax=1)


def _sample(args) -> int:
    import torch

    from . import hub
    from .recipes import generate

    if args.out and Path(args.out).suffix not in (".png", ".pt"):
        raise UsageError(f"--out must end in .png or .pt, got {args.out}")
    from .checkpoint import check_writable

    check_writable(args.out, "--out")  # before sampling, not after
    if args.pretrained:
        model, meta = hub.pretrained(args.pretrained, device=args.device), hub.info(args.pretrained)
    else:
        model, meta = hub.load_file(args.checkpoint, device=args.device), hub.file_meta(args.checkpoint)
    if "sde" not in meta:
        raise UsageError(f"{args.pretrained or args.checkpoint} is not a diffusion model (no SDE in its meta)")
    shape = meta.get("shape") or ([model.dim] if meta["model"]["class"] == "MLPScore" else [1, 28, 28])
    x, y = generate(model, hub.build_sde(meta["sde"]), args.n, sampler=args.sampler, steps=args.steps,
                    shape=tuple(shape), label=args.label, guidance=args.guidance,
                    prediction=meta.get("prediction", "eps"), generator=torch.Generator().manual_seed(args.seed),
                    batch_size=args.batch_size, clip_x0=args.clip_x0)
    bad = int((~torch.isfinite(x.flatten(1))).any(1).sum())
    if bad:
        raise ValueError(f"{bad} of {args.n} samples hold NaN or inf (the sampler diverged; lower --guidance or use "
                         f"more --steps); nothing was written to {args.out}")
    _save_samples(x, y, Path(args.out))
    print(f"{args.n} samples ({args.sampler}, {args.steps} steps) written to {args.out}")
    return 0


def _train_classifier(args) -> int:
    import torch

    from .classifier import accuracy, train_classifier
    from .data import mnist
    from .checkpoint import atomic_write

    images, labels = mnist("train", root=args.data)
    test, test_labels = mnist("test", root=args.data)
    torch.manual_seed(args.seed)
    model = train_classifier(images, labels, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             device=args.device, progress=args.progress,
                             generator=torch.Generator().manual_seed(args.seed))
    acc = accuracy(model, test, test_labels)
    meta = {"model": {"class": "MNISTClassifier", "kwargs": {"channels": [16, 32], "hidden": 128}},
            "metrics": {"test_accuracy": acc}, "data": {"n_train": len(images), "n_test": len(test)}}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    out = Path(args.out)
    atomic_write(out, lambda f: torch.save({"format": "sdelab-weights-v1", "state_dict": state, "meta": meta}, f))
    print(f"held-out accuracy {acc:.4f} on {len(test)} test digits; weights written to {out}")
    return 0


def _checkpoints(args) -> int:
    from . import hub
    from .recipes import RECIPES, make_checkpoints

    if args.list:
        for name in hub.available():
            e = hub.info(name)
            print(f"{name:18s} {e['bytes'] / 1e6:6.2f} MB  {e['model']['class']:16s} {e.get('metrics', {})}")
        return 0
    bad = [n for n in args.only or [] if n not in RECIPES]
    if bad:
        raise UsageError(f"--only: unknown model(s) {', '.join(bad)}; choose from {', '.join(RECIPES)}")
    from .utils import cache_dir

    directory = Path(args.directory) if args.directory else cache_dir("weights")
    make_checkpoints(args.only, device=args.device, progress=args.progress, work=args.work, directory=directory)
    print(f"weights written to {directory}")
    return 0


def _bench(args) -> int:
    import json

    from .bench import markdown_table, readme_with_table, run

    if args.markdown is not None:  # render an earlier run's JSON, measure nothing
        print(markdown_table(json.loads(Path(args.markdown).read_text())), end="")
        return 0
    if args.readme is not None:  # rewrite README's table from the JSON its mark names
        readme = Path(args.readme)
        readme.write_text(readme_with_table(readme.read_text(), readme.parent))
        print(f"{readme}: performance table rewritten")
        return 0
    run(only=args.only, quick=args.quick, out=args.out, device=args.device)
    return 0


_COMMANDS = {"train": _train, "sample": _sample, "bench": _bench, "train-classifier": _train_classifier,
             "checkpoints": _checkpoints}


def _expected(e: RuntimeError) -> bool:
    """A RuntimeError that is the user's situation, not a bug: memory ran out, another run holds the lock."""
    text = str(e)
    return any(k in text for k in ("out of memory", "can't allocate memory", "another run", "not enough memory"))


def _one_line(e: BaseException) -> str:
    if isinstance(e, MemoryError) or "memory" in str(e) and isinstance(e, RuntimeError):
        return "out of memory; use a smaller --batch-size or --n"
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def main(argv=None) -> int:
    """Entry point of `python -m sdelab` and the `sdelab` script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return _COMMANDS[args.command](args)
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except UsageError as e:
        print(f"sdelab: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError, FloatingPointError, MemoryError, RuntimeError) as e:  # found by the library
        if os.environ.get("SDELAB_DEBUG") or (isinstance(e, RuntimeError) and not _expected(e)):
            raise
        print(f"sdelab: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sdelab: interrupted", file=sys.stderr)
        return 130
