"""The data half (scrape → split) at scale, in both layouts: per-stage time, DVC's share of it and peak memory, then
what DVC costs on the result (`dvc status`, `dvc checkout` into an empty data/, `dvc push` to a local remote) and a
rerun after 1 % more photos.

    python benchmarks/bench_scale.py [--photos 10000 100000] [--side 64 200] [--layouts folders shards]
                                     [--source synthetic|folder] [--work DIR]
                                     [--prefect-api-url URL] [--no-rerun]

Photos come from the synthetic source (offline; 10 categories, with its default 10 % of defective files), of 1.5 to 3
times `--side` pixels a side, resized to `--side`. With `--source folder`, they are rendered once (untimed) into a
folder of category sub-folders, and the data half imports them with the folder source, as one does with photos already
downloaded: its scrape then copies files instead of rendering scenes, which costs the same in both layouts. Each configuration runs in its own copy of the repository, whose
stages run their flow under a timer (`--timed`): a stage's DVC share is its `dvc repro --single-item` time less its
flow's. Peak RSS is the largest of the flow's processes. Training at scale is bench_loader.py's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.dag import data_stages
from pipeline.testing.workspace import make_workspace  # noqa: E402

DATA_STAGES = data_stages()
OUTPUTS = ("data/raw", "data/clean", "data/resized", "data/split")
TIMES = ".bench-times.jsonl"


def timed(stage: str) -> int:
    """Run the stage's flow as its DVC command would, recording its wall time and peak RSS in TIMES."""
    start = time.perf_counter()
    code = subprocess.run([sys.executable, "-m", f"flows.{stage}"]).returncode
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    with open(TIMES, "a", encoding="utf-8") as times:
        times.write(json.dumps({"stage": stage, "seconds": seconds, "peak_mib": peak_mib}) + "\n")
    return code


def configure(repo: Path, env: dict[str, str], photos: int, side: int, layout: str, remote: Path, folder: Path | None = None) -> None:
    """Params for `photos` at `side` px in `layout`, from the synthetic source (or the photos in `folder`), with the
    data stages timed and `remote` the default DVC remote."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    committed = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params["source"] = committed["source"] | {"per_category": photos // len(committed["source"]["categories"])}
    params["source"]["synthetic"].update(min_side=math.ceil(1.5 * side), max_side=3 * side)
    if folder is not None:
        params["source"] |= {"kind": "folder", "folder": {"path": str(folder)}}
    params["clean"]["min_side"] = min(params["clean"]["min_side"], side)
    params["resize"]["size"] = side
    params["split"]["test_per_category"] = 10
    params["data"] = {"layout": layout, "shard_size": committed["data"]["shard_size"]}
    params["workers"] = "auto"
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())
    for stage in DATA_STAGES:
        stages["stages"][stage]["cmd"] = f"python benchmarks/bench_scale.py --timed {stage}"
    (repo / "dvc.yaml").write_text(yaml.safe_dump(stages, sort_keys=False))
    remote.mkdir(parents=True)
    seconds(repo, env, "dvc", "remote", "add", "-f", "-d", "bench", str(remote))


def render_photos(work: Path, photos: int, side: int, api_url: str | None) -> Path:
    """The synthetic source's photos for `photos` and 1 % more (defects included), as a folder of category
    sub-folders whose names sort in the order rendered; rendered once, untimed."""
    target = work / f"photos-{photos}-{side}px"
    if not target.exists():
        print(f"\nrendering {math.ceil(photos * 1.01)} photos at {side} px into {target} (untimed)", flush=True)
        repo, env = make_workspace(work / "render", api_url)
        configure(repo, env, math.ceil(photos * 1.01), side, "folders", work / "render" / "remote")
        seconds(repo, env, sys.executable, "-m", "flows.scrape")
        for path in (repo / "data" / "raw").glob("*/*"):  # <slug>_<index>: zero-padded to 7 digits, to sort at any count
            path.rename(path.with_name(re.sub(r"_(\d+)", lambda number: f"_{int(number[1]):07d}", path.name, count=1)))
        (repo / "data" / "raw").rename(target)
        shutil.rmtree(work / "render")
    return target


def seconds(repo: Path, env: dict[str, str], *command: str) -> tuple[float, str]:
    """Run `command` in repo (no time limit: a stage at scale takes long); its wall time and output."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {repo}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - start, result.stdout


def flow_times(repo: Path) -> dict[str, dict[str, float]]:
    lines = (repo / TIMES).read_text().splitlines() if (repo / TIMES).exists() else []
    (repo / TIMES).unlink(missing_ok=True)
    return {row["stage"]: row for row in map(json.loads, lines)}


class Figures(dict[str, float]):
    """A configuration's figures by name, each printed as it is measured."""

    def __setitem__(self, key: str, value: float) -> None:
        print(f"  {key:20s} {value:10.1f}", flush=True)
        super().__setitem__(key, value)


def measure(work: Path, photos: int, side: int, layout: str, api_url: str | None, rerun: bool, folder: Path | None) -> dict[str, float]:
    """One configuration: its figures by name."""
    name = f"{layout}-{photos}-{side}px"
    print(f"\n{layout}, {photos} photos at {side} px, from {folder or 'the synthetic source'}:", flush=True)
    repo, env = make_workspace(work / name, api_url)
    configure(repo, env, photos, side, layout, work / name / "remote", folder)
    figures = Figures()
    for stage in DATA_STAGES:
        wall, _ = seconds(repo, env, "dvc", "repro", "--single-item", stage)
        flow = flow_times(repo)[stage]
        figures[f"{stage} s"], figures[f"{stage} dvc s"], figures[f"{stage} peak MiB"] = wall, wall - flow["seconds"], flow["peak_mib"]
    figures["data half s"] = sum(figures[f"{stage} s"] for stage in DATA_STAGES)
    figures["dvc share %"] = 100 * sum(figures[f"{stage} dvc s"] for stage in DATA_STAGES) / figures["data half s"]
    figures["files"] = sum(1 for output in OUTPUTS for path in (repo / output).rglob("*") if path.is_file())
    figures["dvc status s"], _ = seconds(repo, env, "dvc", "status", "split")
    wall, output = seconds(repo, env, "dvc", "repro", "split")
    figures["no-op repro s"] = wall
    assert "Running stage" not in output, f"{name}: a second dvc repro ran a stage"
    figures["dvc push s"], _ = seconds(repo, env, "dvc", "push", *DATA_STAGES)
    for output in OUTPUTS:
        shutil.rmtree(repo / output)
    figures["dvc checkout s"], _ = seconds(repo, env, "dvc", "checkout", *DATA_STAGES)
    if rerun:
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["source"]["per_category"] = math.ceil(params["source"]["per_category"] * 1.01)
        (repo / "params.yaml").write_text(yaml.safe_dump(params))
        figures["+1% repro s"], _ = seconds(repo, env, "dvc", "repro", "split")
        flow_times(repo)
        figures["+1% push s"], _ = seconds(repo, env, "dvc", "push", *DATA_STAGES)
    shutil.rmtree(work / name)  # 100k photos take tens of GB (outputs, DVC cache, remote)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--side", type=int, nargs="+", default=[64, 200])
    parser.add_argument("--layouts", nargs="+", choices=["folders", "shards"], default=["folders", "shards"])
    parser.add_argument("--source", choices=["synthetic", "folder"], default="synthetic",
                        help="render scenes in scrape (synthetic), or import photos rendered beforehand (folder)")
    parser.add_argument("--work", type=Path, help="where the copies go, each removed once measured (default: a temporary folder)")
    parser.add_argument("--prefect-api-url", help="a running Prefect server for the stages (default: one started for the run)")
    parser.add_argument("--no-rerun", action="store_true", help="leave out the rerun with 1 %% more photos (a whole data half more)")
    parser.add_argument("--timed", metavar="STAGE", help=argparse.SUPPRESS)  # the stages' command in the copies
    args = parser.parse_args()
    if args.timed:
        sys.exit(timed(args.timed))
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if args.prefect_api_url is None:  # one server for every stage, started before any timing, outside their memory
            from prefect.settings import PREFECT_API_URL
            from prefect.testing.utilities import prefect_test_harness

            stack.enter_context(prefect_test_harness(server_startup_timeout=60))
            args.prefect_api_url = PREFECT_API_URL.value()
        work = args.work or Path(tmp)
        results = {}
        for photos in args.photos:
            for side in args.side:
                folder = render_photos(work, photos, side, args.prefect_api_url) if args.source == "folder" else None
                for layout in args.layouts:
                    results[(photos, side, layout)] = measure(work, photos, side, layout, args.prefect_api_url, not args.no_rerun, folder)
                if folder is not None:
                    shutil.rmtree(folder)
        for (photos, side, layout), figures in results.items():
            if layout == "shards" and (folders := results.get((photos, side, "folders"))):
                print(f"\nshards ÷ folders, {photos} photos at {side} px:")
                for key, value in figures.items():
                    print(f"  {key:20s} {value / folders[key]:6.2f}" if folders[key] else f"  {key:20s}      -")


if __name__ == "__main__":
    main()
