"""Render a run directory: ``report.md`` (mean ± 95% CI, baseline comparison, the claim's verdict) and PNGs.

Everything comes from ``config.json`` and ``results.jsonl``, so ``logitkit report RUN_DIR`` re-renders
a finished or interrupted run at any time. CIs are Student-t intervals over seeds; comparisons with
the baseline and the claim's checks use differences paired by seed.
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np

from logitkit.experiments import metrics as M
from logitkit.experiments._spec import lower_is_better, metric_info
from logitkit.experiments.runner import CONFIG, RESULTS, read_results

__all__ = ["Summary", "index", "render", "summarise"]


def _label(metric: str, spec: dict | None = None) -> str:
    info = metric_info(metric, spec)
    return info.label + (" ↓" if info.lower_is_better else "")


class Summary:
    """Per-method metric values by seed, from a run directory."""

    def __init__(self, run_dir):
        self.dir = pathlib.Path(run_dir)
        config_path = self.dir / CONFIG
        if not config_path.is_file():
            raise FileNotFoundError(f"run_dir: expected a run directory with {CONFIG}, got {self.dir}")
        self.config = json.loads(config_path.read_text())
        self.spec = self.config["experiment"]
        signatures = {m["name"]: m["signature"] for m in self.spec["methods"]}
        by_key: dict[tuple[str, int], dict] = {}
        for record in read_results(self.dir / RESULTS):
            if signatures.get(record["method"]) == record.get("signature"):
                by_key[(record["method"], record["seed"])] = record  # the last line wins
        self.records = by_key
        self.methods = [m["name"] for m in self.spec["methods"] if any(k[0] == m["name"] for k in by_key)]
        self.seeds = sorted({k[1] for k in by_key})

    def values(self, method: str, metric: str) -> dict[int, float]:
        out = {}
        for (m, seed), record in self.records.items():
            if m == method and metric in record["metrics"]:
                value = record["metrics"][metric]
                out[seed] = math.nan if value is None else float(value)
        return out

    def stat(self, method: str, metric: str) -> tuple[float, float, int]:
        vals = list(self.values(method, metric).values())
        mean, half = M.mean_ci(vals)
        return mean, half, len(vals)

    def paired(self, method: str, metric: str, other: str, other_metric: str | None = None):
        """Paired difference (method - other), oriented so that positive = better; mean, half, n."""
        a, b = self.values(method, metric), self.values(other, other_metric or metric)
        common = sorted(set(a) & set(b))
        if not common:
            return math.nan, math.nan, 0
        sign = -1.0 if lower_is_better(metric, self.spec) else 1.0
        mean, half = M.paired_difference([a[s] for s in common], [b[s] for s in common])
        return sign * mean, half, len(common)


def summarise(run_dir) -> Summary:
    return Summary(run_dir)


def _fmt(mean: float, half: float, scale: float = 1.0) -> str:
    if not math.isfinite(mean):
        return "—"
    if not math.isfinite(half):
        return f"{mean * scale:.2f}"
    return f"{mean * scale:.2f} ± {half * scale:.2f}"


def _scale(metric: str, spec: dict | None = None) -> float:
    return 100.0 if metric_info(metric, spec).percent else 1.0


def results_table(summary: Summary) -> str:
    metrics = summary.spec["metrics"]
    head = "| method | n | " + " | ".join(_label(m, summary.spec) for m in metrics) + " |"
    rule = "|---|---:|" + "---:|" * len(metrics)
    rows = [head, rule]
    for method in summary.methods:
        n = len({s for (m, s) in summary.records if m == method})
        cells = []
        for metric in metrics:
            mean, half, _ = summary.stat(method, metric)
            cells.append(_fmt(mean, half, _scale(metric, summary.spec)))
        rows.append(f"| {method} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def baseline_table(summary: Summary) -> str:
    base = summary.spec["baseline"]
    if base not in summary.methods:
        return f"The baseline `{base}` has no results yet."
    metrics = summary.spec["metrics"]
    others = [m for m in summary.methods if m != base]
    if not others:
        return f"Only the baseline `{base}` has results; nothing to compare yet."
    head = "| method | " + " | ".join(_label(m, summary.spec) for m in metrics) + " |"
    rows = [head, "|---|" + "---:|" * len(metrics)]
    for method in others:
        cells = []
        for metric in metrics:
            mean, half, n = summary.paired(method, metric, base)
            scale = _scale(metric, summary.spec)
            if not math.isfinite(mean):
                cells.append("—")
                continue
            mark = ""
            if n >= 2 and math.isfinite(half):
                mark = " ▲" if mean - half > 0 else (" ▼" if mean + half < 0 else "")
            cells.append(
                f"{mean * scale:+.2f} [±{half * scale:.2f}]{mark}"
                if math.isfinite(half)
                else f"{mean * scale:+.2f}"
            )
        rows.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def check_verdicts(summary: Summary) -> tuple[str, list[tuple[str, str]]]:
    """The claim's overall verdict and one line per check."""
    lines = []
    states = []
    for check in summary.spec["claim"]["checks"]:
        method, metric = check["method"], check["metric"]
        versus_metric = check.get("versus_metric") or metric
        available = [v for v in check["versus"] if v in summary.methods]
        missing = [m for m in [method, *check["versus"]] if m not in summary.methods]
        if method not in summary.methods or not available:
            states.append("untested")
            lines.append((check["text"], f"not tested: no results for {', '.join(missing)}"))
            continue

        # Compare with the best competitor by mean.
        sign = -1 if lower_is_better(versus_metric, summary.spec) else 1
        best = max(available, key=lambda v, vm=versus_metric, sg=sign: summary.stat(v, vm)[0] * sg)
        diff, half, n = summary.paired(method, metric, best, versus_metric)
        margin = float(check.get("margin", 0.0))
        holds = diff > margin if check.get("strict") else diff >= -margin
        scale = _scale(metric, summary.spec)
        ci = f" ± {half * scale:.2f}" if math.isfinite(half) else ""
        significant = n >= 2 and math.isfinite(half) and (diff - half > 0 or diff + half < 0)
        detail = (
            f"{'holds' if holds else 'does not hold'}: {method} − {best} "
            f"({metric_info(versus_metric, summary.spec).label}) "
            f"= {diff * scale:+.2f}{ci} points (positive = better, {n} paired seeds"
            f"{', significant at 95%' if significant else ', within noise'})"
        )
        if len(missing) > 0:
            detail += f"; not compared with {', '.join(missing)} (no results)"
        states.append("holds" if holds else "fails")
        lines.append((check["text"], detail))
    if "fails" in states:
        verdict = "DOES NOT HOLD on this run"
    elif states and all(s == "holds" for s in states):
        verdict = "HOLDS on this run"
    elif "holds" in states:
        verdict = "PARTLY TESTED: the tested checks hold, the others lack methods"
    else:
        verdict = "NOT TESTED: the methods the claim is about have no results yet"
    return verdict, lines


def _units(spec: dict) -> str:
    raw = [metric_info(m, spec).label for m in spec["metrics"] if not metric_info(m, spec).percent]
    if not raw:
        return "percent"
    if len(raw) == len(spec["metrics"]):
        return "raw values"
    return f"percent; {', '.join(raw)} as raw values"


def _plots(summary: Summary) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    methods = summary.methods
    if not methods:
        return made
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    metrics = summary.spec["metrics"]
    cols = min(5, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.6 * rows), squeeze=False)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        means, halves = [], []
        for method in methods:
            mean, half, _ = summary.stat(method, metric)
            means.append(mean * _scale(metric, summary.spec))
            halves.append(0.0 if not math.isfinite(half) else half * _scale(metric, summary.spec))
        ax.bar(range(len(methods)), means, yerr=halves, capsize=3, color=colours[: len(methods)])
        ax.set_xticks(range(len(methods)), methods, rotation=35, ha="right", fontsize=7)
        ax.set_title(_label(metric, summary.spec), fontsize=9)
        finite = [m for m in means if math.isfinite(m)]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = (hi - lo) * 0.6 + 1e-3 + max(halves)
            ax.set_ylim(max(0.0, lo - pad) if lo >= 0 else lo - pad, hi + pad)
    for ax in axes.ravel()[len(metrics) :]:
        ax.axis("off")
    fig.suptitle(
        f"{summary.spec['name']} on {summary.config['dataset']['name']}: mean ± 95% CI over seeds",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(summary.dir / "metrics.png", dpi=110)
    plt.close(fig)
    made.append(
        ("metrics.png", f"Each metric per method, mean ± 95% CI over seeds ({_units(summary.spec)}).")
    )

    # Per class / per label, against the training frequency.
    if summary.config["dataset"]["train_counts"] and any(r["per_class"] for r in summary.records.values()):
        counts = np.asarray(summary.config["dataset"]["train_counts"], dtype=np.float64)
        names = summary.config["identity"]["classes"]
        order = np.argsort(-counts, kind="stable")
        multilabel = summary.spec["task"] == "multilabel"
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        for i, method in enumerate(methods):
            per = [r["per_class"] for (m, _), r in summary.records.items() if m == method]
            mean = np.nanmean(np.asarray(per, dtype=np.float64), axis=0)
            ax.plot(
                range(len(order)),
                100 * mean[order],
                marker="o",
                ms=3,
                label=method,
                color=colours[i % len(colours)],
            )
        ax.set_xticks(
            range(len(order)), [f"{names[j]}\n({int(counts[j])})" for j in order], fontsize=6, rotation=60
        )
        ax.set_ylabel("test F1 at the native threshold (%)" if multilabel else "test accuracy (%)")
        ax.set_xlabel(("label" if multilabel else "class") + " (training count), most frequent first")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        name = "per_label.png" if multilabel else "per_class.png"
        fig.savefig(summary.dir / name, dpi=110)
        plt.close(fig)
        made.append(
            (
                name,
                ("Per-label F1" if multilabel else "Per-class accuracy")
                + " by training frequency, mean over seeds.",
            )
        )

    # Validation curve per epoch (percent for the built-in metrics; raw for a custom curve_label).
    made += _training_curves(summary, plt, colours)
    made += _experiment_plots(summary)
    return made


def _experiment(summary: Summary):
    """The registered experiment of a run (None for one this installation does not know)."""
    from logitkit.experiments import get

    try:
        return get(summary.spec["name"])
    except KeyError:
        return None


def _experiment_plots(summary: Summary) -> list[tuple[str, str]]:
    """The plots a custom experiment draws itself (``Experiment.extra_plots``)."""
    experiment = _experiment(summary)
    return list(experiment.extra_plots(summary)) if experiment and experiment.extra_plots else []


def _experiment_markdown(summary: Summary) -> str:
    """A section a custom experiment writes itself (``Experiment.extra_markdown``), e.g. samples."""
    experiment = _experiment(summary)
    return experiment.extra_markdown(summary).strip() if experiment and experiment.extra_markdown else ""


def _training_curves(summary: Summary, plt, colours) -> list[tuple[str, str]]:
    methods = summary.methods
    if not any(r["history"].get("val") for r in summary.records.values()):
        return []
    scale = 1.0 if summary.spec.get("curve_label") else 100.0
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    for i, method in enumerate(methods):
        curves = [r["history"].get("val", []) for (m, _), r in summary.records.items() if m == method]
        curves = [c for c in curves if c]
        if not curves:
            continue
        length = max(len(c) for c in curves)
        padded = np.full((len(curves), length), np.nan)
        for j, c in enumerate(curves):
            padded[j, : len(c)] = c
        ax.plot(
            np.arange(1, length + 1),
            scale * np.nanmean(padded, 0),
            label=method,
            color=colours[i % len(colours)],
        )
    ax.set_xlabel("epoch")
    sel = summary.spec.get("selection_metric", "")
    default_label = f"validation {'mAP' if sel == 'map' else 'balanced accuracy'} (%)"
    ax.set_ylabel(summary.spec.get("curve_label") or default_label)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(summary.dir / "training.png", dpi=110)
    plt.close(fig)
    caption = summary.spec.get("curve_label") or "Validation metric"
    return [("training.png", f"{caption} per epoch (mean over seeds; runs stopped early end sooner).")]


def _setup_lines(spec: dict, config: dict, train: dict) -> list[str]:
    """The setup bullets: the built-in MLP protocol, or a custom experiment's own notes."""
    lines = []
    if config["dataset"]["train_counts"]:
        lines.append(
            f"* Training-set counts per {'label' if spec['task'] == 'multilabel' else 'class'}: "
            f"{', '.join(str(c) for c in config['dataset']['train_counts'])}."
        )
    if spec.get("custom"):
        return [*lines, f"* {spec.get('notes', '')}"] if spec.get("notes") else lines
    lines += [
        f"* Model: MLP, hidden {tuple(train['hidden'])}, dropout {train['dropout']}; Adam lr {train['lr']}, "
        f"weight decay {train['weight_decay']}, batch {train['batch_size']}, {train['epochs']} epochs"
        + (
            f", best validation epoch kept (patience {train['patience']})"
            if train["select"] == "best"
            else ", last epoch"
        )
        + ".",
        f"* Features standardised with training mean / std. {spec.get('notes', '')}",
    ]
    return lines


def render(run_dir, *, plots: bool = True) -> tuple[str, str]:
    """Write ``report.md`` (and PNGs) for a run directory; return (the markdown, the console summary)."""
    summary = Summary(run_dir)
    spec, config = summary.spec, summary.config
    identity, run = config["identity"], config["run"]
    verdict, check_lines = check_verdicts(summary)
    table = results_table(summary)
    train = identity["train"]
    seeds_done = ", ".join(str(s) for s in summary.seeds) or "none"
    pending = spec.get("pending", [])
    lines = [
        f"# {spec['title']}",
        "",
        f"**Experiment** `{spec['name']}` on **{config['dataset']['describe']}**"
        + (" (--quick)" if identity["quick"] else ""),
        "",
        f"**Claim.** {spec['claim']['text']}. *Source:* {spec['claim']['source']}.",
        "",
        f"**Verdict: {verdict}.**",
        "",
    ]
    lines += [f"* {text} — {detail}" for text, detail in check_lines]
    lines += [
        "",
        "## Results",
        "",
        f"Test-set metrics ({_units(spec)}), mean ± 95% CI (Student t) over seeds {seeds_done}.",
        "↓ marks lower-is-better metrics.",
        "",
        table,
        "",
        f"## Versus the baseline `{spec['baseline']}`",
        "",
        "Paired by seed; positive = better than the baseline (sign flipped for ↓ metrics); "
        "▲ / ▼ = the 95% CI excludes 0.",
        "",
        baseline_table(summary),
        "",
        "## Methods",
        "",
    ]
    for m in spec["methods"]:
        params = ", ".join(f"{k}={v}" for k, v in m["params"].items())
        status = "" if m["name"] in summary.methods else " *(no results yet)*"
        lines.append(f"* `{m['name']}` — {m['description']}" + (f" ({params})" if params else "") + status)
    if pending:
        lines += ["", "Not run here:", ""]
        lines += [f"* `{p['name']}` — needs {p['needs']} (issue #{p['issue']})" for p in pending]
    lines += [
        "",
        "## Setup",
        "",
        f"* Data: {config['dataset']['describe']}. Split: {identity['split']}.",
        *_setup_lines(spec, config, train),
        f"* logitkit {run['logitkit']}, torch {run['torch']}, device {run['device']}, "
        f"{run['threads']} threads, {run['world_size']} process(es).",
    ]
    plot_lines = _plots(summary) if plots else []
    if plot_lines:
        lines += ["", "## Plots", ""]
        for name, caption in plot_lines:
            lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    extra = _experiment_markdown(summary) if summary.records else ""
    if extra:
        lines += ["", extra]
    markdown = "\n".join(lines).rstrip() + "\n"
    (summary.dir / "report.md").write_text(markdown, encoding="utf-8")
    console = "\n".join(
        [
            f"{spec['name']} on {config['dataset']['describe']}",
            "",
            table,
            "",
            f"Claim: {spec['claim']['text']}.",
            f"Verdict: {verdict}.",
            *[f"  - {text}: {detail}" for text, detail in check_lines],
            "",
            f"Report: {summary.dir / 'report.md'}",
        ]
    )
    return markdown, console


def index(run_dirs, *, relative_to=None) -> str:
    """One markdown page summarising several run directories (results table + verdict for each)."""
    parts = [
        "# Recorded experiment runs",
        "",
        "Generated by `bash docs/experiments/record.sh`; each section links its full report.",
        "",
    ]
    for run_dir in run_dirs:
        summary = Summary(run_dir)
        verdict, checks = check_verdicts(summary)
        link = pathlib.Path(run_dir) / "report.md"
        if relative_to is not None:
            link = link.relative_to(relative_to)
        parts += [
            f"## `{summary.spec['name']}` on {summary.config['dataset']['name']}",
            "",
            f"{summary.config['dataset']['describe']}. [Full report]({link.as_posix()}).",
            "",
            results_table(summary),
            "",
            f"**Claim:** {summary.spec['claim']['text']}. **Verdict: {verdict}.**",
            "",
            *[f"* {text} — {detail}" for text, detail in checks],
            "",
        ]
    return "\n".join(parts).rstrip() + "\n"
