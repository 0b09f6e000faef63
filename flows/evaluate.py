"""evaluate: colorize the test images, and real photos out of domain, with the trained generator and score it against a
grayscale baseline (data/eval)."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.artifacts import picture
from flows.cli import call_flow, main
from pipeline.config import Params
from pipeline.model.evaluate import GRIDS, OVERVIEW, REAL_PHOTOS, REAL_PHOTOS_GRID, Scores, evaluate_model
from pipeline.model.metrics import METRICS
from pipeline.paths import EVAL, MODEL, SPLIT

MAIN_METRICS = ("psnr", "ssim", "ab_error", "accuracy_eps5")


def _format_mean_std(summary: dict) -> str:
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def _methods_table(summaries: dict) -> list[str]:
    """Markdown rows: every metric, model and baseline side by side."""
    return [
        "| metric | model (mean ± std) | grayscale baseline (mean ± std) |",
        "| --- | --- | --- |",
        *(f"| {m} | {_format_mean_std(summaries['model'][m])} | {_format_mean_std(summaries['baseline'][m])} |" for m in METRICS),
    ]


def metrics_report(metrics: Scores) -> str:
    """Markdown: every metric for the model and the baseline, the main metrics per category (model / baseline), then
    every metric on the real photos out of domain."""
    real = metrics[REAL_PHOTOS]
    lines = [
        f"Test images: {metrics['images']}",
        "",
        *_methods_table(metrics),
        "",
        "| category | " + " | ".join(f"{m} (model / baseline)" for m in MAIN_METRICS) + " |",
        "| --- |" + " --- |" * len(MAIN_METRICS),
    ]
    for category, methods in metrics["per_category"].items():
        cells = (f"{methods['model'][m]['mean']:.3f} / {methods['baseline'][m]['mean']:.3f}" for m in MAIN_METRICS)
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Real photos, out of domain: {real['images']} (scikit-image's, colorized at full resolution; grid: "
        f"{EVAL / GRIDS / REAL_PHOTOS_GRID})",
        "",
        *_methods_table(real),
    ]
    return "\n".join(lines) + "\n"


@flow(name="evaluate")
def evaluate(params: Params) -> Scores:
    metrics = evaluate_model(SPLIT, MODEL, EVAL, device=params.train.device)
    grids = EVAL / GRIDS
    pictures = "\n".join([picture(grids / OVERVIEW, "Test images, two per category: grayscale | colorized | original"),
                           picture(grids / REAL_PHOTOS_GRID, "Real photos, out of domain: grayscale | colorized | original")])
    create_markdown_artifact(key="evaluation", markdown=f"{metrics_report(metrics)}\n{pictures}",
                             description="Colorization metrics and comparison grids on the test images and real photos")
    return metrics


def run(params: Params) -> Scores:
    """The stage: its flow, on the default task runner (it submits no per-item tasks)."""
    return call_flow(evaluate, params)


if __name__ == "__main__":
    main("evaluate", run, __doc__)
