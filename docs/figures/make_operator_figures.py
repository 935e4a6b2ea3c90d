"""Regenerate the figures of docs/operators.md: python docs/figures/make_operator_figures.py"""

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import logitkit.functional as LF

HERE = pathlib.Path(__file__).parent


def softmax_temperature() -> None:
    # Ogun's example: logits of (goes, go, went, comes).
    logits = torch.tensor([38.0, 20.0, 40.0, 39.0], dtype=torch.float64)
    temps = torch.logspace(-2, 3, 200, dtype=torch.float64)
    probs = torch.stack([LF.softmax(logits, 0, temperature=t.item()) for t in temps])
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for i, word in enumerate(["goes (38)", "go (20)", "went (40)", "comes (39)"]):
        ax.plot(temps, probs[:, i], label=word)
    ax.set_xscale("log")
    ax.set_xlabel("temperature τ")
    ax.set_ylabel("softmax(x / τ)")
    ax.set_title("Temperature: one-hot as τ → 0, uniform as τ → ∞")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "softmax_temperature.png", dpi=120)


def smooth_max_error() -> None:
    x = torch.tensor([1.0, 2.0, 1.5, 0.2], dtype=torch.float64)
    temps = torch.logspace(-2.5, 0.5, 100, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for method in ("lse", "pnorm", "loglog"):
        err = [(LF.smooth_max(x, 0, temperature=t.item(), method=method) - 2.0).item() for t in temps]
        ax.plot(temps, [max(e, 1e-17) for e in err], label=method)
    ax.plot(temps, temps * torch.log(torch.tensor(4.0)), "k:", label="τ log n (LSE bound)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("temperature τ = 1/k")
    ax.set_ylabel("smooth max − max")
    ax.set_title("Smooth max of [1, 2, 1.5, 0.2]: error against temperature")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "smooth_max_error.png", dpi=120)


if __name__ == "__main__":
    softmax_temperature()
    smooth_max_error()
