"""The ``logitkit`` command: ``list``, ``data``, ``run``, ``report`` (and ``demo``)."""

from __future__ import annotations

import os
import sys


def _require_click():
    try:
        import click
    except ImportError:  # the CLI needs the experiments extra
        sys.exit(
            'logitkit: the command line needs the experiments extra: pip install "logitkit[experiments]"'
        )
    return click


click = _require_click()

import logitkit  # noqa: E402


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(logitkit.__version__, prog_name="logitkit")
def main() -> None:
    """logitkit: from logits to decisions. Run `logitkit COMMAND --help` for each command.

    \b
    logitkit list                      experiments, their datasets, methods and claims
    logitkit data                      datasets with provenance, licence and status
    logitkit run multilabel            train, report mean ± 95% CI and the claim's verdict
    logitkit report runs/multilabel-yeast   re-render a run's report.md and plots
    """


@main.command("list")
def list_() -> None:
    """List the experiments: datasets (default first), methods, pending methods and the claim."""
    from logitkit import data as lkdata
    from logitkit import experiments

    for name in experiments.names():
        exp = experiments.get(name)
        click.echo(f"{exp.name}: {exp.title}")
        sets = []
        for i, ds in enumerate(exp.datasets):
            # A custom experiment may read data of its own (its prepare()), not a registry entry.
            own = exp.prepare is not None and ds not in lkdata.names()
            ok = own or lkdata.get(ds).available()
            sets.append(f"{ds}{' (default)' if i == 0 else ''}{'' if ok else ' [missing]'}")
        click.echo(f"  datasets: {', '.join(sets)}")
        click.echo(f"  methods:  {', '.join(m.name for m in exp.methods)} (baseline {exp.baseline})")
        if exp.pending:
            click.echo(f"  pending:  {', '.join(f'{p.name} (#{p.issue})' for p in exp.pending)}")
        click.echo(f"  claim:    {exp.claim.text}")
        click.echo("")


@main.command()
@click.argument("name", required=False)
def data(name: str | None) -> None:
    """List every registry dataset with its status, or show one dataset in full.

    Nothing is downloaded: a missing dataset shows the exact apt-get / pip command that obtains
    it. Parsed arrays are cached under $LOGITKIT_DATA (default ~/.cache/logitkit).
    """
    from logitkit import data as lkdata

    if name:
        try:
            info = lkdata.get(name)
        except KeyError as error:
            raise click.BadParameter(str(error.args[0]), param_hint="NAME") from None
        ok = info.available()
        for key, value in (
            ("dataset", info.name),
            ("title", info.title),
            ("task", info.task),
            ("size", info.shape),
            ("split", info.split),
            ("source", info.source),
            ("licence", info.licence),
            ("citation", info.citation),
            ("status", "available" + (" (embedded)" if info.embedded else "") if ok else "missing"),
        ):
            click.echo(f"{key:9s} {value}")
        if info.params:
            click.echo(f"{'params':9s} {info.params}")
        click.echo(f"{'obtain':9s} " + "\n          ".join(info.obtain))
        return
    rows = []
    for info, ok in lkdata.status():
        state = ("embedded" if info.embedded else "available") if ok else "missing"
        rows.append((info.name, info.task, state, info.shape, info.licence.split(";")[0]))
    widths = [
        max(len(r[i]) for r in [*rows, ("dataset", "task", "status", "size", "licence")]) for i in range(5)
    ]
    header = ("dataset", "task", "status", "size", "licence")
    click.echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    missing = [info for info, ok in lkdata.status() if not ok]
    if missing:
        click.echo("")
        click.echo("Obtain the missing ones with:")
        seen = []
        for info in missing:
            if info.obtain[0] not in seen:
                seen.append(info.obtain[0])
                click.echo(f"  {info.obtain[0]}    # {info.name}")
    click.echo(
        f"\nCache: {lkdata.cache_dir()} (set LOGITKIT_DATA to move it). `logitkit data NAME` shows one entry."
    )


@main.command()
@click.argument("name")
@click.option(
    "--dataset", "-d", default=None, help="Registry name or a .csv / .npz file (default: the experiment's)."
)
@click.option("--seeds", "-s", default=5, show_default=True, type=click.IntRange(1), help="Seeds 0 .. N-1.")
@click.option("--epochs", "-e", default=None, type=click.IntRange(1), help="Override the number of epochs.")
@click.option("--quick", is_flag=True, help="Smoke version: few epochs, capped split sizes.")
@click.option(
    "--out", "-o", default=None, type=click.Path(file_okay=False), help="Run directory [runs/NAME-DATASET]."
)
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]))
@click.option(
    "--threads",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="torch.set_num_threads for the run (the small models train fastest on one thread per process).",
)
@click.option(
    "--imbalance", default=None, type=float, help="Imbalance ratio of a long-tail dataset (e.g. 10)."
)
@click.option("--target", default=None, help="Target column(s) of a CSV dataset, comma-separated.")
@click.option("--methods", default=None, help="Run only these methods (comma-separated).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def run(
    name, dataset, seeds, epochs, quick, out, device, threads, imbalance, target, methods, no_progress
) -> None:
    """Run experiment NAME over methods x seeds, then print the report table and the verdict.

    Every finished (method, seed) result is appended to RUN_DIR/results.jsonl at once; re-running
    the same command resumes (Ctrl-C loses only the pair in progress). Multi-process:
    torchrun --nproc-per-node 2 -m logitkit run NAME ...
    """
    from logitkit import experiments
    from logitkit.data import DatasetMissing
    from logitkit.experiments.report import render
    from logitkit.experiments.runner import RunConflict, default_out

    try:
        exp = experiments.get(name)
    except KeyError as error:
        raise click.BadParameter(str(error.args[0]), param_hint="NAME") from None
    params = {"imbalance": imbalance} if imbalance is not None else None
    out_dir = out or default_out(exp.name, dataset or exp.default_dataset, quick)
    try:
        run_dir = experiments.run(
            exp,
            dataset=dataset,
            seeds=seeds,
            epochs=epochs,
            quick=quick,
            out=out_dir,
            device=device,
            threads=threads,
            progress=not no_progress,
            dataset_params=params,
            target=target,
            methods=[m.strip() for m in methods.split(",")] if methods else None,
        )
    except KeyboardInterrupt:
        click.echo(
            f"\nInterrupted. Finished results are kept in {out_dir}/results.jsonl; "
            "re-run the same command to resume.",
            err=True,
        )
        sys.exit(130)
    except (DatasetMissing, RunConflict, KeyError, ValueError, TypeError, RuntimeError) as error:
        raise click.ClickException(str(error.args[0]) if error.args else str(error)) from None
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 reports
        _, console = render(run_dir)
        click.echo(console)


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--no-plots", is_flag=True, help="Only report.md, no PNGs.")
def report(run_dir, no_plots) -> None:
    """Re-render RUN_DIR/report.md and its PNG plots from config.json and results.jsonl."""
    from logitkit.experiments.report import render

    try:
        _, console = render(run_dir, plots=not no_plots)
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from None
    click.echo(console)


@main.command()
@click.option("--seed", default=0, show_default=True, help="Split and initialisation seed.")
@click.option("--epochs", default=300, show_default=True, help="Full-batch training steps.")
def demo(seed: int, epochs: int) -> None:
    """Temperature scaling on scikit-learn's bundled digits (real data, seconds on a CPU).

    Trains a linear softmax classifier with logitkit.functional.cross_entropy, fits one
    temperature on a validation split, and reports test accuracy, NLL and calibration error.
    """
    from logitkit.experiments.calibration_demo import run as run_demo

    r = run_demo(seed=seed, epochs=epochs)
    click.echo(
        f"digits (UCI optical digits via scikit-learn): train {r.n_train}, val {r.n_val}, test {r.n_test}"
    )
    click.echo(
        f"fitted temperature: {r.temperature:.3f}   test accuracy: {r.accuracy:.4f} (unchanged by scaling)"
    )
    click.echo("")
    click.echo("| metric (test)  | raw logits | temperature-scaled |")
    click.echo("|----------------|-----------:|-------------------:|")
    click.echo(f"| NLL            | {r.nll_before:10.4f} | {r.nll_after:18.4f} |")
    click.echo(f"| ECE (15 bins)  | {r.ece_before:10.4f} | {r.ece_after:18.4f} |")


if __name__ == "__main__":
    main()
