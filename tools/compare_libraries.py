r"""Fewest NFE to the quality of EM-1000 for sdelab's samplers, diffusers' schedulers and k-diffusion's samplers,
side by side on `sdelab.grid_measure`'s problem and grading (issue 13).

Problem: exact score of the 8-mode ring, VP linear (beta 0.1..20, T = 1), the same 20,000 standard normal prior
points x_T, float64 where a library allows it. Grades "loose"/"strict" as `grid_measure.grade`, against p_eps
(eps = 1e-3) and, for samplers that end at t = 0 / sigma = 0, also against p_0 (the mixture itself).

* diffusers: discrete `beta_schedule="linear"` (1e-4..0.02, 1000 steps); timestep k <-> t = (k + 1)/1000; the
  model is the exact noise prediction of the noised mixture at that t.
* k-diffusion: `get_sigmas_karras` (rho 7) from sigma(T) to sigma(eps) plus the final 0, VE sigma = std/mean_coeff,
  the model the exact x0 prediction; the VP state is mean_coeff * (VE state). Only its `sampling.py` is loaded.
* sdelab: `grid_measure.run` on each sampler's `DEFAULT_GRID` and on the Karras grid.
* rows named `...@eps`: the library's sampler ending where sdelab's end, at t = eps, graded against p_eps like them
  (diffusers `final_sigmas_type="sigma_min"`, DDIM `set_alpha_to_one=False`; k-diffusion without the final 0). The
  libraries' default end, sigma = 0, applies the denoiser last, whose modes are ~1 % narrower than p_eps's: an
  error that can cancel a sampler's too-wide modes, so equal end points are the like-for-like comparison.

Usage (DIR: a folder the libraries were installed into with `pip install --target DIR`, see INSTALL):
`PYTHONPATH=DIR python tools/compare_libraries.py [--n 20000] [--json out.json] [--only name ...]`
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types

import torch

from sdelab.discrete import ddim_sample
from sdelab.grid_measure import EPS, NFES, SAMPLERS, grade, make_problem, run, strict_from, thresholds
from sdelab.grids import DEFAULT_GRID
from sdelab.metrics import sliced_wasserstein
from sdelab.sde import VPSDE
from sdelab.toy import ring
from sdelab.utils import append_dims

F64 = torch.float64
N_TRAIN, BETA_START, BETA_END = 1000, 1e-4, 0.02
ALPHA_BAR_MISMATCH = 0.066   # max rel. |alphas_cumprod[k] - mean_coeff((k+1)/1000)^2| / mean_coeff^2: 0.0655 (k = 999), measured
INSTALL = ("needs diffusers and k-diffusion: `.venv/bin/pip install --target DIR --no-deps diffusers k-diffusion "
           "huggingface_hub httpx2 httpcore2 truststore torchsde trampoline torchdiffeq`, then PYTHONPATH=DIR")


# ---------------------------------------------------------------------- conversions (no library needed)
def discrete_alphas_cumprod(n_train: int = N_TRAIN, beta_start: float = BETA_START, beta_end: float = BETA_END):
    r"""diffusers' `beta_schedule="linear"`: $\bar\alpha_k = \prod_{j \le k}(1 - \beta_j)$, $\beta$ = linspace(start, end,
    n_train), in float64 (diffusers keeps it in float32)."""
    return torch.cumprod(1 - torch.linspace(beta_start, beta_end, n_train, dtype=F64), 0)


def timestep_to_t(k, n_train: int = N_TRAIN, T: float = 1.0) -> torch.Tensor:
    """Discrete timestep k in [0, n_train - 1] (fractional allowed) -> t = (k + 1) T / n_train (sdelab's DDPM times)."""
    return (torch.as_tensor(k, dtype=F64) + 1) * T / n_train


def schedule_mismatch(sde, n_train: int = N_TRAIN) -> dict:
    """How far diffusers' discrete linear schedule is from `sde` at t_k = (k + 1)/n_train: the largest relative error of
    alpha_bar and of the VE sigma, and the k where alpha_bar's is largest."""
    acp = discrete_alphas_cumprod(n_train)
    t = timestep_to_t(torch.arange(n_train), n_train, sde.T)
    abar = sde.mean_coeff(t).to(F64) ** 2
    rel = (acp - abar).abs() / abar
    sig = ((1 - acp) / acp).sqrt()
    return {"alpha_bar_rel": float(rel.max()), "at_k": int(rel.argmax()),
            "sigma_rel": float(((sig - sde.noise_ratio(t)).abs() / sde.noise_ratio(t)).max())}


def ve_sigma(sde, t) -> torch.Tensor:
    r"""VE noise level of the VP SDE, $\sigma_{VE}(t) = \sigma(t)/\alpha(t)$ (k-diffusion's / Karras' sigma)."""
    return sde.noise_ratio(torch.as_tensor(t, dtype=F64))


def t_of_ve_sigma(sde, sigma) -> torch.Tensor:
    r"""Inverse of `ve_sigma` for the linear VP SDE: $B(t) = \log(1 + \sigma^2)$ solved for $t$ in closed form."""
    sch = getattr(sde, "schedule", None)
    if not isinstance(sde, VPSDE) or sch.kind != "linear":
        raise ValueError(f"sde must be a VPSDE with the linear schedule, got {sde!r}")
    L = torch.log1p(torch.as_tensor(sigma, dtype=F64) ** 2)
    a = 0.5 * (sch.beta_max - sch.beta_min) / sch.T
    return (2 * L / (sch.beta_min + torch.sqrt(sch.beta_min**2 + 4 * a * L))).clamp(0, sch.T)


def eps_model(eps_fn, n_train: int = N_TRAIN, T: float = 1.0):
    """diffusers' model: `(x, timestep) -> eps_fn(x, t)`, t = (timestep + 1) T / n_train for the whole batch."""
    def model(x, timestep):
        t = timestep_to_t(float(timestep), n_train, T).clamp(0, T)
        return eps_fn(x, t.expand(x.shape[0]).contiguous())
    return model


def denoiser(eps_fn, sde):
    r"""k-diffusion's model: VE state $x$ and `sigma` `(B,)` -> exact $\hat x_0 = x - \sigma\,\hat\varepsilon(\alpha x, t(\sigma))$."""
    def model(x, sigma):
        sigma = torch.as_tensor(sigma, dtype=F64).expand(x.shape[0])
        t = t_of_ve_sigma(sde, sigma)
        alpha = append_dims(sde.mean_coeff(t).to(x.dtype), x.ndim)
        return x - append_dims(sigma.to(x.dtype), x.ndim) * eps_fn(alpha * x, t)
    return model


class Counted:
    """A model that counts its calls (the NFE a library actually spent)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


# ---------------------------------------------------------------------- libraries
def load_libraries():
    """`(diffusers, k-diffusion's sampling module)`; prints how to install them and exits 2 when missing."""
    try:
        import diffusers
        spec = importlib.util.find_spec("k_diffusion")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("k_diffusion")
        return diffusers, _load_kdiff_sampling(spec.submodule_search_locations[0])
    except ImportError as exc:
        print(f"{INSTALL} ({exc})", file=sys.stderr)
        raise SystemExit(2)


def _load_kdiff_sampling(folder: str):
    """k-diffusion's `sampling.py` under a stub parent package whose `utils` holds only `append_dims` (its package
    imports torchvision and more at import time)."""
    pkg = types.ModuleType("k_diffusion")
    pkg.__path__ = []
    utils = types.ModuleType("k_diffusion.utils")
    utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
    pkg.utils = utils
    sys.modules.update({"k_diffusion": pkg, "k_diffusion.utils": utils})
    spec = importlib.util.spec_from_file_location("k_diffusion.sampling", f"{folder}/sampling.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["k_diffusion.sampling"] = mod
    spec.loader.exec_module(mod)
    return mod


KARRAS = {"use_karras_sigmas": True}
DPM = {"algorithm_type": "dpmsolver++"}
# name -> (scheduler class, extra config)
DIFFUSERS = {
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {**DPM, "solver_order": 2}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {**DPM, "solver_order": 2, **KARRAS}),
    "dpmpp_3m": ("DPMSolverMultistepScheduler", {**DPM, "solver_order": 3}),
    "dpmpp_3m_karras": ("DPMSolverMultistepScheduler", {**DPM, "solver_order": 3, **KARRAS}),
    "ddim": ("DDIMScheduler", {"clip_sample": False}),   # its default clamps x0 to [-1, 1]; the ring has radius 2
    "heun": ("HeunDiscreteScheduler", {}), "heun_karras": ("HeunDiscreteScheduler", KARRAS),
    "unipc": ("UniPCMultistepScheduler", {}), "unipc_karras": ("UniPCMultistepScheduler", KARRAS),
    "euler": ("EulerDiscreteScheduler", {}), "euler_karras": ("EulerDiscreteScheduler", KARRAS),
}
STATE_F32 = {"EulerDiscreteScheduler", "DPMSolverMultistepScheduler"}   # step() casts the state to float32 (source)
# config that makes a scheduler end at t = eps (alphas_cumprod[0], k = 0) instead of sigma = 0: sdelab's end point
AT_EPS = {"DPMSolverMultistepScheduler": {"final_sigmas_type": "sigma_min"}, "DDIMScheduler": {"set_alpha_to_one": False},
          "UniPCMultistepScheduler": {"final_sigmas_type": "sigma_min"},
          "EulerDiscreteScheduler": {"final_sigmas_type": "sigma_min"}}
VE_STATE = {"EulerDiscreteScheduler", "HeunDiscreteScheduler"}   # their state is x / alpha (k-diffusion's)
KDIFF = {"euler": ("sample_euler", 1), "heun": ("sample_heun", 2), "dpmpp_2m": ("sample_dpmpp_2m", 1),
         "lms": ("sample_lms", 1)}


def make_scheduler(diffusers, name: str, **extra):
    cls, cfg = DIFFUSERS[name]
    return getattr(diffusers, cls)(num_train_timesteps=N_TRAIN, beta_start=BETA_START, beta_end=BETA_END,
                                   beta_schedule="linear", **{**cfg, **extra})


def run_scheduler(sched, steps: int, x_T, eps_fn, **step_kw):
    """diffusers' documented loop from `init_noise_sigma * x_T`; returns the sample and the NFE spent."""
    model = Counted(eps_model(eps_fn))
    sched.set_timesteps(steps)
    x = x_T * sched.init_noise_sigma
    for k in sched.timesteps:
        x = sched.step(model(sched.scale_model_input(x, k), k), k, x, **step_kw).prev_sample
    return x, model.calls


def run_kdiff(sampling, name: str, budget: int, sde, x_T, eps_fn, end: str = "0"):
    """k-diffusion on its Karras sigmas (float64) from `sigma_max * x_T` to sigma = 0 (`end="0"`, its default) or,
    without the final 0, to sigma(eps) (`end="eps"`, sdelab's end point; the VP state alpha(eps) x is returned);
    returns the sample and the NFE spent."""
    fn, per_step = KDIFF[name]
    at_eps = end == "eps"
    steps = budget // 2 if per_step == 2 and at_eps else (budget + 1) // 2 if per_step == 2 else budget
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)   # get_sigmas_karras builds its ramp in the default dtype
    try:
        sigmas = sampling.get_sigmas_karras(steps + at_eps, float(ve_sigma(sde, EPS)), float(ve_sigma(sde, sde.T)), rho=7.0)
    finally:
        torch.set_default_dtype(old)
    sigmas = sigmas[:-1] if at_eps else sigmas
    model = Counted(denoiser(eps_fn, sde))
    x = getattr(sampling, fn)(model, x_T * sigmas[0], sigmas, disable=True)
    return (x * sde.mean_coeff(torch.tensor(EPS, dtype=F64)) if at_eps else x), model.calls


def verify_ddim(diffusers, sde, eps_fn, x_T, steps: int = 32) -> dict:
    """Max |diffusers DDIM - sdelab `ddim_sample`| on diffusers' timesteps t = (k + 1)/1000, then t = 0: with diffusers'
    linear betas, with `sde.exact_discrete_betas` (alphas_cumprod = mean_coeff^2 up to float32), and with both
    clamping x0 to [-1, 1] (diffusers' default `clip_sample`, sdelab's `clip_x0=1`; diffusers then keeps the unclamped
    noise in the direction term unless `use_clipped_model_output=True`, sdelab always uses the consistent one)."""
    exact = {"trained_betas": sde.exact_discrete_betas(N_TRAIN).numpy()}
    out = {}
    clip = {**exact, "clip_sample": True}
    for label, extra, clip_x0, kw in (("linear betas", {}, None, {}), ("exact betas", exact, None, {}),
                                      ("exact betas, clip 1", clip, 1.0, {}),
                                      ("exact betas, clip 1, clipped eps", clip, 1.0, {"use_clipped_model_output": True})):
        sched = make_scheduler(diffusers, "ddim", **extra)
        x_lib, _ = run_scheduler(sched, steps, x_T, eps_fn, **kw)
        ts = torch.cat([timestep_to_t(sched.timesteps.to(F64)), torch.zeros(1, dtype=F64)])
        with torch.no_grad():
            out[label] = float((x_lib - ddim_sample(eps_fn, sde, x_T, ts, clip_x0=clip_x0)).abs().max())
    return out


# ---------------------------------------------------------------------- rows and the scan
def p0_quality(n: int, seed: int = 0):
    """`make_problem`'s quality against p_0 (the mixture itself, spread 0.1) instead of p_eps."""
    mix = ring(dtype=F64)
    fresh = mix.sample(n, generator=torch.Generator().manual_seed(seed + 1))

    def quality(x):
        sw = float(sliced_wasserstein(x, fresh, n_proj=128, generator=torch.Generator().manual_seed(123)))
        k = torch.cdist(x, mix.means).argmin(1)
        return sw, float((x - mix.means[k]).std()) / 0.1 - 1
    return quality


def build_rows(diffusers, sampling, problem, betas: str = "linear"):
    """name -> (library, grid label, ends at, precision, runner(budget) -> (x, nfe)); `betas="exact"` gives diffusers
    `sde.exact_discrete_betas` (no schedule mismatch) instead of its linear betas."""
    sde, score, eps_fn, x_T, _ = problem
    extra = {"trained_betas": sde.exact_discrete_betas(N_TRAIN).numpy()} if betas == "exact" else {}
    rows = {}
    for name, (fn, per_step, _) in SAMPLERS.items():
        for kind in dict.fromkeys((DEFAULT_GRID[name], "karras")):
            rows[f"sdelab:{name}/{kind}"] = ("sdelab", kind, "eps", "float64", lambda b, nm=name, kd=kind, p=per_step:
                                            (run(nm, kd, b, sde, score, eps_fn, x_T), b // p * p))
    for name, (cls, cfg) in DIFFUSERS.items():
        if diffusers is None:
            break
        sched = make_scheduler(diffusers, name)
        grid = sched.config.timestep_spacing + ("+karras" if cfg.get("use_karras_sigmas") else "")
        prec = "f32 coeffs+state" if cls in STATE_F32 else "f32 coeffs"
        heun = cls == "HeunDiscreteScheduler"
        rows[f"diffusers:{name}"] = ("diffusers", grid, "0", prec, lambda b, nm=name, h=heun: run_scheduler(
            make_scheduler(diffusers, nm, **extra), (b + 1) // 2 if h else b, x_T, eps_fn))
        if cls in AT_EPS:   # the same scheduler ending where sdelab's samplers end
            alpha = sde.mean_coeff(torch.tensor(EPS, dtype=F64)) if cls in VE_STATE else 1.0
            rows[f"diffusers:{name}@eps"] = ("diffusers", grid, "eps", prec, lambda b, nm=name, c=cls, a=alpha: (
                lambda x, nfe: (a * x, nfe))(*run_scheduler(make_scheduler(diffusers, nm, **extra, **AT_EPS[c]), b, x_T, eps_fn)))
    for name in KDIFF if sampling is not None else ():
        for end in ("0", "eps"):
            rows[f"k-diffusion:{name}" + ("@eps" if end == "eps" else "")] = (
                "k-diffusion", "karras rho 7", end, "float64",
                lambda b, nm=name, e=end: run_kdiff(sampling, nm, b, sde, x_T, eps_fn, e))
    return rows


def select(names, only):
    """Row names matching `only` (exact names or library prefixes such as "sdelab"); ValueError otherwise."""
    if not only:
        return list(names)
    bad = [o for o in only if not any(n == o or n.startswith(o + ":") for n in names)]
    if bad:
        raise ValueError(f"--only: unknown name(s) {bad}; allowed: a library (sdelab, diffusers, k-diffusion) or one of {list(names)}")
    return [n for n in names if any(n == o or n.startswith(o + ":") for o in only)]


def scan(runner, quality, quality0, ref, ends_at_zero: bool, nfes=NFES) -> dict:
    """Fewest NFE to loose / strict (p_eps, and p_0 for samplers ending at 0) over every budget of `nfes`, and
    `strict_from` (`sdelab.grid_measure.strict_from`: strict at every larger budget too)."""
    row = {"loose": None, "strict": None, "spread_at_strict": None, "loose_p0": None, "strict_p0": None, "runs": []}
    passes = {"": [], "_p0": []}
    for budget in nfes:
        with torch.no_grad():
            x, nfe = runner(budget)
        if not torch.isfinite(x).all():
            row["runs"].append([nfe, None, None, None, None])
            continue
        q, q0 = quality(x.to(F64)), quality0(x.to(F64))
        row["runs"].append([nfe, *q, *q0])
        for key, (ok_loose, ok_strict), spread in (("", grade(q, ref), q[1]), ("_p0", grade(q0, ref), q0[1])):
            passes[key].append((nfe, ok_strict))
            if ok_loose and row["loose" + key] is None:
                row["loose" + key] = nfe
            if ok_strict and row["strict" + key] is None:
                row["strict" + key] = nfe
                if not key:
                    row["spread_at_strict"] = spread
    row["strict_from"], row["strict_from_p0"] = strict_from(passes[""]), strict_from(passes["_p0"])
    return row


ORDER = ("maruyama", "predictor", "ddpm", "3m", "2m", "unipc", "ddim", "heun", "euler", "lms")   # first 3: stochastic


def family(name: str) -> int:
    """Sort key: the row's method's place in `ORDER` (stochastic samplers last), so counterparts print together."""
    i = next((i for i, key in enumerate(ORDER) if key in name), len(ORDER))
    return i + 100 * (i < 3)


def _fmt(v):
    return "-" if v is None else str(v)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--json", default=None)
    p.add_argument("--only", nargs="*", default=None, help="row names or libraries (sdelab, diffusers, k-diffusion)")
    p.add_argument("--betas", choices=("linear", "exact"), default="linear", help="diffusers' betas (exact: no mismatch)")
    a = p.parse_args(argv)
    if a.n < 100:
        p.error(f"--n must be an integer >= 100, got {a.n}")
    torch.set_num_threads(1)
    probe = list(build_rows(None, None, make_problem(2)))
    try:
        libs_rows = [f"diffusers:{k}{e}" for k, (c, _) in DIFFUSERS.items() for e in ("", "@eps")[:1 + (c in AT_EPS)]]
        names = select(probe + libs_rows + [f"k-diffusion:{k}{e}" for k in KDIFF for e in ("", "@eps")], a.only)
    except ValueError as exc:
        p.error(str(exc))
    libs = load_libraries() if any(not n.startswith("sdelab:") for n in names) else (None, None)
    problem, ref = thresholds(a.n)
    sde, _, eps_fn, x_T, quality = problem
    if sde.prior_std() != 1.0:   # x_T = prior_std * N(0, I): the schedulers expect a standard normal
        raise ValueError(f"the problem's x_T must be standard normal, prior_std is {sde.prior_std()}")
    mism = schedule_mismatch(sde)
    print(f"schedule: diffusers linear vs VPSDE at t = (k+1)/1000: alpha_bar rel. error <= {mism['alpha_bar_rel']:.4f} "
          f"(k = {mism['at_k']}), VE sigma rel. error <= {mism['sigma_rel']:.4f}")
    out = {"n": a.n, "betas": a.betas, "reference": ref, "schedule_mismatch": mism, "rows": {}}
    if libs[0] is not None:
        out["ddim_check"] = verify_ddim(libs[0], sde, eps_fn, x_T)
        print("diffusers DDIM vs sdelab ddim_sample, 32 steps, max |diff|:", out["ddim_check"])
    rows, quality0 = build_rows(*libs, problem, a.betas), p0_quality(a.n)
    print(f"{'sampler':34s} {'grid/spacing':16s} {'end':4s} {'precision':16s} {'loose':>5s} {'strict':>6s} "
          f"{'spread@strict':>13s} {'p0 loose':>8s} {'p0 strict':>9s} {'from on':>7s} {'p0 from on':>10s}")
    for name in sorted(names, key=family):
        lib, grid, end, prec, runner = rows[name]
        budgets = [b for b in NFES if b <= N_TRAIN or lib != "diffusers"]   # diffusers refuses > 1000 steps
        r = scan(runner, quality, quality0, ref, end == "0", budgets)
        out["rows"][name] = {"library": lib, "grid": grid, "ends_at": end, "precision": prec, **r}
        sp = "-" if r["spread_at_strict"] is None else f"{r['spread_at_strict']:+.4f}"
        p0 = (_fmt(r["loose_p0"]), _fmt(r["strict_p0"]), _fmt(r["strict_from_p0"])) if end == "0" else ("n/a",) * 3
        print(f"{name:34s} {grid:16s} {end:4s} {prec:16s} {_fmt(r['loose']):>5s} {_fmt(r['strict']):>6s} {sp:>13s} "
              f"{p0[0]:>8s} {p0[1]:>9s} {_fmt(r['strict_from']):>7s} {p0[2]:>10s}", flush=True)
    print(f"EM-1000: sliced W2 {ref['sw']:.4f}, loose bound {ref['sw_max']:.4f}, spread tolerance {ref['spread_tol']:.4f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
