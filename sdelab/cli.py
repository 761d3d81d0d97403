"""The command line: `python -m sdelab train toy|mnist`, `sample`, `bench`, `train-classifier`, `checkpoints`.

Every subcommand has `--help`. A bad argument prints one line, `sdelab: error: ...`, and exits with status 2
(no traceback; set `SDELAB_DEBUG=1` to see the traceback of an error raised by the library).
`torchrun --nproc_per_node=N -m sdelab train mnist ...` trains with DistributedDataParallel
(`sdelab.distributed`).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    """A bad command-line argument: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + error
        m = re.match(r"argument ([^:]+): (.*)$", message, re.S)
        if m:  # "argument --steps: --steps must be ..." -> "--steps must be ..."
            flags, rest = m.groups()
            message = rest if any(rest.startswith(f) for f in flags.split("/")) else f"{flags}: {rest}"
        raise UsageError(message)


def _number(kind, name, lo=None, lo_open=False, allow_none=False, hi=None):
    def conv(text):
        if allow_none and text.lower() == "none":
            return None
        try:
            v = kind(text)
        except ValueError:
            v = None
        ok = v is not None and (kind is int or math.isfinite(v))
        if ok and lo is not None:
            ok = v > lo if lo_open else v >= lo
        if ok and hi is not None:
            ok = v <= hi
        if not ok:
            what = {(int, 1, False): "a positive integer", (int, 0, False): "an integer >= 0",
                    (float, 0, True): "a number > 0", (float, 0, False): "a number >= 0"}.get(
                (kind, lo, lo_open), f"a {kind.__name__}")
            if hi is not None:
                what = f"an integer in [{lo}, {hi:_}]" if kind is int else f"a number in [{lo}, {hi:_}]"
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {text}")
        return v

    return conv


# Upper bounds: a typo (an extra zero or ten) must give a one-line error, not an allocator failure or a run that
# never ends. They are far above anything the book or the shipped recipes use.
LIMITS = {"--steps": 10**8, "--batch-size": 65_536, "--n": 100_000, "--base": 256, "--hidden": 4096, "--depth": 64,
          "--epochs": 10_000, "--checkpoint-every": 10**8, "--emb-dim": 4096}
SAMPLE_STEPS = _number(int, "--steps", 1, hi=100_000)
POS_INT = {n: _number(int, n, 1, hi=hi) for n, hi in LIMITS.items()}
SEED = _number(int, "--seed", 0)
POS = {n: _number(float, n, 0, True) for n in ("--lr", "--clip-x0")}
NONNEG = {"--p-uncond": _number(float, "--p-uncond", 0, hi=1), "--guidance": _number(float, "--guidance", 0, hi=100)}


def _device(text: str):
    """`--device`: a torch device this machine has (checked here, so a typo or a missing GPU is one line)."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"--device must be cpu, cuda or cuda:N, got {text}") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise argparse.ArgumentTypeError(f"--device {text}: CUDA is not available on this machine (use cpu)")
        if dev.index is not None and dev.index >= n:
            raise argparse.ArgumentTypeError(f"--device {text}: this machine has {n} CUDA device(s), 0..{n - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"--device {text}: MPS is not available on this machine (use cpu)")
    elif dev.type not in ("cpu", "mps"):
        raise argparse.ArgumentTypeError(f"--device must be cpu, cuda or cuda:N, got {text}")
    return text


def _common(p, device=True, seed=True, progress=True):
    if device:
        p.add_argument("--device", type=_device, default=None,
                       help="cpu, cuda, cuda:1, ... (default: CUDA when available)")
    if seed:
        p.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    if progress:
        p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    from .recipes import SAMPLER_NAMES
    from .toy import DATASETS

    parser = _Parser(prog="sdelab", description="Train, sample and benchmark the diffusion models of the book.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    train = sub.add_parser("train", help="train a score model (toy 2-D data or MNIST)",
                           description="Train a score model; --out is resumed from when it exists.")
    tsub = train.add_subparsers(dest="what", metavar="toy|mnist", parser_class=_Parser)
    tsub.required = True
    toy = tsub.add_parser("toy", help="a 2-D MLP on a toy data set", description="Train MLPScore on 2-D toy data.")
    toy.add_argument("--dataset", choices=sorted(DATASETS), default="ring")
    toy.add_argument("--steps", type=POS_INT["--steps"], default=5000)
    toy.add_argument("--batch-size", type=POS_INT["--batch-size"], default=256)
    toy.add_argument("--lr", type=POS["--lr"], default=2e-3)
    toy.add_argument("--hidden", type=POS_INT["--hidden"], default=128)
    toy.add_argument("--depth", type=POS_INT["--depth"], default=3)
    toy.add_argument("--ema-decay", type=float, default=0.999)
    toy.add_argument("--out", default="toy.pt", help="checkpoint path (resumed from if it exists)")
    _common(toy)
    mn = tsub.add_parser("mnist", help="a U-Net on MNIST", description="Train the class-conditional MNIST U-Net "
                         "(bf16 autocast on CUDA). Under torchrun with N processes: DistributedDataParallel.")
    mn.add_argument("--steps", type=POS_INT["--steps"], default=30_000)
    mn.add_argument("--batch-size", type=POS_INT["--batch-size"], default=128)
    mn.add_argument("--lr", type=POS["--lr"], default=5e-4)
    mn.add_argument("--base", type=POS_INT["--base"], default=32, help="U-Net width: channels base, 2 base, 4 base")
    mn.add_argument("--unconditional", action="store_true", help="no class labels (default: class-conditional)")
    mn.add_argument("--p-uncond", type=NONNEG["--p-uncond"], default=0.1,
                    help="label dropout for classifier-free guidance (default 0.1)")
    mn.add_argument("--ema-decay", type=float, default=0.9995)
    mn.add_argument("--prediction", choices=("v", "eps"), default="v",
                    help="what the network predicts (default v, with the v-MSE loss; eps uses L_simple)")
    mn.add_argument("--compile", action="store_true", help="torch.compile the network")
    mn.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                    help="bf16 autocast (default: on for CUDA)")
    mn.add_argument("--checkpoint-every", type=POS_INT["--checkpoint-every"], default=1000)
    mn.add_argument("--data", default=None, help="folder with the MNIST IDX files (default: see sdelab.data)")
    mn.add_argument("--out", default="mnist_unet.pt", help="checkpoint path (resumed from if it exists)")
    _common(mn)

    sp = sub.add_parser("sample", help="draw samples from a checkpoint or a pretrained model",
                        description="Draw samples; writes a PNG (grid of images or a scatter plot) or a .pt file.")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="a checkpoint written by `sdelab train`")
    src.add_argument("--pretrained", help="a shipped model name (see `sdelab checkpoints --list`)")
    sp.add_argument("--sampler", choices=SAMPLER_NAMES, default="euler_maruyama")
    sp.add_argument("--steps", type=SAMPLE_STEPS, default=500, help="sampler steps, at most 100_000 (default 500)")
    sp.add_argument("--n", type=POS_INT["--n"], default=64, help="number of samples, at most 100_000 (default 64)")
    sp.add_argument("--label", type=int, default=None, help="class label (class-conditional models; -1: none)")
    sp.add_argument("--guidance", type=NONNEG["--guidance"], default=None,
                    help="classifier-free guidance weight w, 0 <= w <= 100 (class-conditional models)")
    sp.add_argument("--batch-size", type=POS_INT["--batch-size"], default=500,
                    help="samples per sampler call, at most 65_536 (deterministic samplers give the same samples for "
                         "any batch size; stochastic ones for any batch size >= --n)")
    sp.add_argument("--clip-x0", type=POS["--clip-x0"], default=None,
                    help="clamp the predicted x0 to [-c, c] (ddpm, ddim, dpm2m only; 1.0 for images)")
    sp.add_argument("--out", default="samples.png", help="output .png or .pt")
    _common(sp, progress=False)

    bench = sub.add_parser("bench", help="speed and quality benchmark", description="Run the benchmark: a table "
                           "on screen and a JSON file. GPU rows print 'unmeasured (no GPU)' without CUDA.")
    _bench_args(bench)

    tc = sub.add_parser("train-classifier", help="train the MNIST classifier used by mnist_fid",
                        description="Train the small MNIST CNN whose features define mnist_fid; print its held-out "
                                    "accuracy. `sdelab checkpoints --only mnist_classifier` ships it instead.")
    tc.add_argument("--epochs", type=POS_INT["--epochs"], default=20)
    tc.add_argument("--batch-size", type=POS_INT["--batch-size"], default=128)
    tc.add_argument("--lr", type=POS["--lr"], default=2e-3)
    tc.add_argument("--data", default=None, help="folder with the MNIST IDX files")
    tc.add_argument("--out", default="mnist_classifier.pt", help="output weights file")
    _common(tc)

    ck = sub.add_parser("checkpoints", help="train and ship the book's pretrained models",
                        description="Train the models the book loads with sdelab.pretrained(name), with the "
                                    "package's own code, into a user folder that sdelab.pretrained reads first "
                                    "(`make checkpoints` passes --directory sdelab/weights to ship them).")
    ck.add_argument("--only", nargs="+", metavar="NAME", help="only these models")
    ck.add_argument("--list", action="store_true", help="list the shipped models and exit")
    ck.add_argument("--work", default=None, help="folder for resumable training checkpoints (default: temporary)")
    ck.add_argument("--directory", default=None,
                    help="where the weights and manifest go (default: the user cache, sdelab.utils.cache_dir('weights'))")
    _common(ck, seed=False)
    return parser


def _bench_args(p):
    from .bench import ROWS

    p.add_argument("--quick", action="store_true", help="short version (small budgets)")
    p.add_argument("--only", nargs="+", choices=ROWS, metavar="ROW", help=f"only these rows: {', '.join(ROWS)}")
    p.add_argument("--out", default="bench_results.json", help="JSON output (default bench_results.json)")
    p.add_argument("--device", type=_bench_device, default=None,
                   help="device for the GPU rows (default: CUDA when available)")


def _bench_device(text: str):
    """`bench --device`: any well-formed device (rows needing CUDA say 'unmeasured' without it)."""
    import torch

    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"--device must be cpu, cuda or cuda:N, got {text}") from None
    return text


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
    from .bench import run

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
