"""Regenerate the figures of docs/soft_topk.md, docs/smoothing.md and docs/perturb.md:

python docs/figures/make_smooth_figures.py
"""

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import logitkit.functional as LF

HERE = pathlib.Path(__file__).parent


def soft_topk_temperature() -> None:
    x = torch.tensor([2.0, 1.5, 1.0, 0.2, -0.5, -1.0], dtype=torch.float64)
    k = 2
    temps = torch.logspace(-2, 1, 200, dtype=torch.float64)
    methods = [
        ("smooth", "smooth (default): Laplace threshold, C¹"),
        ("exp", "exp: min(1, eᵗ) threshold, softmax at k = 1"),
        ("sigmoid", "sigmoid: σ threshold, C^∞"),
        ("esp", "esp: gradient of log Σ_|S|=k exp(Σ_S z)"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True, sharey=True)
    for ax, (method, title) in zip(axes.flat, methods, strict=True):
        masks = torch.stack([LF.soft_topk(x, k, temperature=t.item(), method=method) for t in temps])
        for i in range(len(x)):
            ax.plot(temps, masks[:, i], label=f"x = {x[i].item():g}")
        ax.axhline(k / len(x), color="k", lw=0.5, ls=":")
        ax.set_xscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_ylim(-0.03, 1.03)
    for ax in axes[1]:
        ax.set_xlabel("temperature τ")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"soft top-{k} mask")
    axes[0, 0].legend(fontsize=7, loc="center left")
    fig.suptitle("Soft top-2 of [2, 1.5, 1, 0.2, -0.5, -1]: hard mask as τ → 0, k/n as τ → ∞", fontsize=10)
    fig.tight_layout()
    fig.savefig(HERE / "soft_topk_temperature.png", dpi=110)


def smoothing() -> None:
    x = torch.linspace(-2.5, 2.5, 501, dtype=torch.float64)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    ax = axes[0]
    ax.plot(x, x.clamp_min(0), "k", lw=1, label="ReLU")
    for kernel in ("logistic", "gaussian"):
        ax.plot(x, LF.smooth_relu(x, temperature=0.5, kernel=kernel), label=f"{kernel} * ReLU")
        ax.plot(
            x,
            LF.smooth_relu(x, temperature=0.5, kernel=kernel, form="step"),
            ls="--",
            label=f"x · {kernel} step",
        )
    ax.set_title("smooth_relu, τ = 0.5 (solid: convolution ≥ ReLU; dashed ≤)", fontsize=8)
    ax.legend(fontsize=7)
    ax = axes[1]
    xf = torch.linspace(-2.2, 2.2, 881, dtype=torch.float64)
    ax.plot(xf, torch.floor(xf), "k", lw=1, label="floor")
    for tau in (0.3, 0.1, 0.03):
        ax.plot(xf, LF.smooth_floor(xf, temperature=tau), label=f"τ = {tau}")
    ax.set_title("smooth_floor (logistic kernel)", fontsize=8)
    ax.legend(fontsize=7)
    ax = axes[2]
    for kernel in ("logistic", "gaussian", "cauchy"):
        ax.plot(x, LF.smooth_sign(x, temperature=0.3, kernel=kernel), label=kernel)
    ax.plot(x, torch.sign(x), "k", lw=1, label="sign")
    ax.set_title("smooth_sign, τ = 0.3: the kernels' tails", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "smoothing.png", dpi=110)


def perturb() -> None:
    gaps = torch.linspace(-4, 4, 161, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for noise in ("gumbel", "normal", "logistic"):
        # Three classes [g, 0, 0]: the probability that the first one is the perturbed argmax.
        mu = torch.stack([gaps, torch.zeros_like(gaps), torch.zeros_like(gaps)], -1)
        ax.plot(gaps, LF.perturb_argmax_probs(mu, noise=noise)[:, 0], label=f"{noise} noise")
    ax.set_xlabel("logit of class 1 (the other two at 0)")
    ax.set_ylabel("P[argmax(μ + ε) = 1]")
    ax.set_title("Perturb-and-argmax: Gumbel noise is softmax; normal noise is EXACT's", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "perturb_argmax.png", dpi=110)


if __name__ == "__main__":
    soft_topk_temperature()
    smoothing()
    perturb()
