"""evaluate: colorize the test images, real photos out of domain and the photos of other collections with the trained
generator, and score it against two baselines: gray, and the training photos' median colour everywhere (data/eval)."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.artifacts import MAX_ARTIFACT_BYTES, pictures
from flows.cli import call_flow, main
from pipeline.config import Params
from pipeline.model.evaluate import COLLECTION_GRID, GRIDS, OVERVIEW, REAL_PHOTOS, REAL_PHOTOS_GRID, Scores, evaluate_model
from pipeline.model.metrics import METRICS
from pipeline.paths import EVAL, MODEL, SPLIT

MAIN_METRICS = ("psnr", "ssim", "ab_error", "accuracy_eps5")


def _format_mean_std(summary: dict) -> str:
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def _methods_table(summaries: dict) -> list[str]:
    """Markdown rows: every metric, the model and both baselines side by side."""
    return [
        "| metric | model (mean ± std) | gray baseline (mean ± std) | tint baseline (mean ± std) |",
        "| --- | --- | --- | --- |",
        *(f"| {m} | " + " | ".join(_format_mean_std(summaries[method][m]) for method in ("model", "gray", "tint")) + " |" for m in METRICS),
    ]


def metrics_report(metrics: Scores) -> str:
    """Markdown: every metric for the model and both baselines, the main metrics per category (model / gray), then every
    metric on the real photos out of domain and on each collection."""
    real = metrics[REAL_PHOTOS]
    lines = [
        f"Test images: {metrics['images']}",
        "",
        *_methods_table(metrics),
        "",
        "| category | " + " | ".join(f"{m} (model / gray)" for m in MAIN_METRICS) + " |",
        "| --- |" + " --- |" * len(MAIN_METRICS),
    ]
    for category, methods in metrics["per_category"].items():
        cells = (f"{methods['model'][m]['mean']:.3f} / {methods['gray'][m]['mean']:.3f}" for m in MAIN_METRICS)
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Real photos, out of domain: {real['images']} (scikit-image's, colorized at full resolution; grid: "
        f"{EVAL / GRIDS / REAL_PHOTOS_GRID})",
        "",
        *_methods_table(real),
    ]
    for name, scores in metrics["collections"].items():
        lines += ["", f"Collection {name}: {scores['images']} photos (grid: {EVAL / GRIDS / COLLECTION_GRID.format(name)})", "", *_methods_table(scores)]
    return "\n".join(lines) + "\n"


@flow(name="evaluate")
def evaluate(params: Params) -> Scores:
    metrics = evaluate_model(SPLIT, MODEL, EVAL, device=params.train.device, rules=params.evaluate, clean=params.clean)
    grids = EVAL / GRIDS
    report = metrics_report(metrics)
    shown = pictures([(grids / OVERVIEW, "Test images, two per category: grayscale | colorized | original"),
                      (grids / REAL_PHOTOS_GRID, "Real photos, out of domain: grayscale | colorized | original"),
                      *((grids / COLLECTION_GRID.format(name), f"Collection {name}: grayscale | colorized | original") for name in metrics["collections"])],
                     MAX_ARTIFACT_BYTES - len(report.encode()))
    create_markdown_artifact(key="evaluation", markdown=f"{report}\n{shown}",
                             description="Colorization metrics and comparison grids on the test images and real photos")
    return metrics


def run(params: Params) -> Scores:
    """The stage: its flow, on the default task runner (it submits no per-item tasks)."""
    return call_flow(evaluate, params)


if __name__ == "__main__":
    main("evaluate", run, __doc__)
