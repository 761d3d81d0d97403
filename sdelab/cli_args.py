"""The command line's parser: subcommands, their arguments and the bounds every number is checked against.

`sdelab.cli` runs the commands; this module only turns `argv` into checked values (one-line errors, exit 2).
"""
from __future__ import annotations

import argparse
import math
import re

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
                    help="clamp the predicted x0 to [-c, c] (ddpm, ddim, dpm2m, dpm3m, unipc only; 1.0 for images)")
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
    p.add_argument("--markdown", metavar="FILE.json", default=None,
                   help="print README's performance table from a bench JSON file and exit (runs nothing)")
    p.add_argument("--readme", metavar="README.md", default=None,
                   help="rewrite the table between README's '<!-- bench: FILE.json -->' and '<!-- /bench -->' "
                        "marks from that JSON file and exit (runs nothing)")


def _bench_device(text: str):
    """`bench --device`: any well-formed device (rows needing CUDA say 'unmeasured' without it)."""
    import torch

    try:
        torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"--device must be cpu, cuda or cuda:N, got {text}") from None
    return text
