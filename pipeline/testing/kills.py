"""The kill harness: `dvc repro` killed at seeded random moments and run again, as SQLite's crash tests and etcd's
kill-and-restart loops test what they build.

A kill is SIGKILL to a run's whole process group (DVC, the stage, its pool's processes) in the middle of a chosen
write (crash_hook.py) or at a random moment, or SIGTERM at a random moment. After each kill no process of the run may
be left (its temporary Prefect server included) and no run may print a traceback; a SIGTERM ends the run within
seconds, in one line. A chain of kills ends with a run that completes, whose data/ must match an uninterrupted run's:
the dataset stages byte for byte, the training with one history row, one curve point and one sample per epoch."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.fsutil import staging_path
from pipeline.dag import model_stage, stage_names, stages
from pipeline.model.colorizer import Colorizer
from pipeline.model.weights import load_weights
from pipeline.testing.workspace import edit_params, files, make_workspace, run

CRASH_HOOK = Path(__file__).with_name("crash_hook.py")
RUN_TOKEN = "COLORIZE_KILL_HARNESS_RUN"  # in the environment of every process of a run: how its leftovers are found
EPOCHS = 4  # the harness's training: several checkpoints, curve points and samples to be killed in the middle of
GRACE_SECONDS = 10.0  # what a killed run's processes may take to end once the stage is gone
TERM_SECONDS = 10.0  # what a run sent SIGTERM may take to end, all its processes with it
RUN_SECONDS = 600  # a run that takes longer has hung
POLL_SECONDS = 0.05  # how often a run's processes are looked at
DATASET_OUTPUTS = ("raw", "clean", "resized", "split")  # byte for byte as an uninterrupted run's
TERMINATED = ": terminated"  # what a stage says, once, when SIGTERM stops it


@dataclass(frozen=True)
class Kill:
    """When to send `signum` to a run: at the n-th write of a kind (`write`, '<stage>:<kind>:<n>'); or `after` seconds
    into `stage` (once its process runs), or into the run (no stage)."""

    write: str | None = None
    stage: str | None = None
    after: float | None = None
    signum: signal.Signals = signal.SIGKILL

    def __str__(self) -> str:
        if self.write:
            return f"{self.signum.name} at the write {self.write}"
        return f"{self.signum.name} {self.after:.1f} s into {self.stage or 'the run'}"


@dataclass
class Run:
    """One `dvc repro` of the harness and what came of it."""

    kill: Kill | None
    returncode: int
    output: str
    landed: str | None = None  # '<stage>:<kind>' of the write killed, '<stage>' for a moment in it, 'dvc' between stages
    seconds: float | None = None  # from the signal to the end of the run's last process
    left: list[str] = field(default_factory=list)  # the run's processes still alive GRACE_SECONDS after it ended
    stage_seconds: dict[str, float] = field(default_factory=dict)  # how long each stage's process was seen running

    @property
    def problems(self) -> list[str]:
        """What went wrong: a traceback, a process left, a failure, a SIGTERM that took long or said more than a line."""
        found = []
        if "Traceback" in self.output:
            found.append("a traceback: " + _tail(self.output))
        if self.left:
            found.append(f"{len(self.left)} processes left: {'; '.join(self.left)}")
        if self.landed is None and self.returncode != 0:
            found.append(f"failed (exit status {self.returncode}): {_tail(self.output)}")
        if self.kill is not None and self.kill.signum == signal.SIGTERM and self.landed is not None:
            if self.seconds is None or self.seconds > TERM_SECONDS:
                found.append(f"SIGTERM took {self.seconds or GRACE_SECONDS:.1f} s to end the run")
            said = self.output.count(TERMINATED)  # DVC says nothing: between stages (landed 'dvc'), nothing may say it
            if said > 1 or (said == 0 and self.landed.split(":")[0] in stage_names()):
                found.append(f"{said} lines saying the stage was terminated: {_tail(self.output)}")
        return found


def _tail(output: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in output.strip().splitlines()[-lines:])


def processes_of(token: str) -> dict[int, str]:
    """The live processes (by pid) whose environment carries `token`, with their command lines (Linux: /proc)."""
    found = {}
    for folder in Path("/proc").iterdir():
        if folder.name.isdigit():
            try:
                if f"{RUN_TOKEN}={token}".encode() in (folder / "environ").read_bytes().split(b"\0"):
                    found[int(folder.name)] = (folder / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:  # gone, or not ours
                continue
    return found


def staging_folders() -> dict[str, str]:
    """Each staging folder a stage publishes its output from (`.raw.partial` for data/raw), with the stage's name: every
    stage's but the model stage's, which writes in place and resumes from its checkpoint."""
    return {staging_path(out).name: found.name for found in stages() if found != model_stage() for out in found.outputs}


def running_stage(token: str) -> str | None:
    """The stage a run is running (its `python -m flows.<stage>` process), or None between stages."""
    commands = " ".join(processes_of(token).values())
    return next((stage for stage in stage_names() if f"flows.{stage}" in commands), None)


class Harness:
    """Workspaces under `root` (copies of the repository with tiny params), run and killed."""

    def __init__(self, root: Path, prefect_api_url: str | None = None) -> None:
        self.root, self.prefect_api_url = root, prefect_api_url
        self.hook = root / "hook"
        self.hook.mkdir(parents=True, exist_ok=True)
        shutil.copy(CRASH_HOOK, self.hook / "sitecustomize.py")

    def workspace(self, name: str) -> tuple[Path, dict[str, str]]:
        repo, env = make_workspace(self.root / name, self.prefect_api_url)
        edit_params(repo, train={"epochs": EPOCHS, "checkpoint_minutes": 1e-9})  # and a checkpoint after every batch
        return repo, env

    def repro(self, repo: Path, env: dict[str, str], kill: Kill | None = None, census: Path | None = None) -> Run:
        """`dvc repro` in `repo`, killed as `kill` says (None: left to finish)."""
        token = uuid.uuid4().hex
        report, log = repo.parent / f"crash-{token}.jsonl", repo.parent / f"run-{token}.log"
        extra = {RUN_TOKEN: token, "PYTHONPATH": os.pathsep.join(filter(None, [str(self.hook), env.get("PYTHONPATH")])),
                 "COLORIZE_CRASH_REPORT": str(report), "COLORIZE_CRASH_STAGING": json.dumps(staging_folders())}
        if kill is not None and kill.write:
            extra |= {"COLORIZE_CRASH_AT": kill.write, "COLORIZE_CRASH_SIGNAL": kill.signum.name}
        if census is not None:
            extra["COLORIZE_CRASH_CENSUS"] = str(census)
        with open(log, "w") as output:
            process = subprocess.Popen(["dvc", "repro"], cwd=repo, env=env | extra, stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            landed, signalled, stage_seconds = self._watch(process, token, kill)
            returncode = process.wait(timeout=RUN_SECONDS)
        ended = time.monotonic()
        while (left := processes_of(token)) and time.monotonic() - ended < GRACE_SECONDS:
            time.sleep(0.05)
        if report.is_file():  # the crash hook's kill
            record = json.loads(report.read_text().splitlines()[0])
            landed, signalled = record["kind"], record["at"]
        seconds = time.time() - signalled if signalled is not None and not left else None
        for pid in left:  # so that they disturb no later run
            os.kill(pid, signal.SIGKILL)
        return Run(kill, returncode, log.read_text(errors="replace"), landed, seconds,
                   [f"pid {pid}: {command[:120]}" for pid, command in left.items()], stage_seconds)

    @staticmethod
    def _watch(process: subprocess.Popen[bytes], token: str, kill: Kill | None) -> tuple[str | None, float | None, dict[str, float]]:
        """Follow a run's stages until it ends or the time of a timed `kill` comes (then signal its process group):
        where it landed ('<stage>' or 'dvc'), when (time.time()), and the seconds each stage was seen running."""
        timed = kill is not None and kill.after is not None
        started = last = time.monotonic()
        since, seen = None, Counter[str]()
        while process.poll() is None and last - started < RUN_SECONDS:
            stage = running_stage(token)
            now = time.monotonic()
            if stage is not None:
                seen[stage] += now - last
            last = now
            if timed and since is None and (kill.stage is None or stage == kill.stage):
                since = now
            if timed and since is not None and now - since >= kill.after:
                os.killpg(process.pid, kill.signum)
                return stage or "dvc", time.time(), dict(seen)
            time.sleep(POLL_SECONDS)
        return None, None, dict(seen)

    def census(self, repo: Path, env: dict[str, str]) -> tuple[dict[str, int], dict[str, float], float]:
        """An uninterrupted run of `repo`: for each kind of write, the most of them one process made; the seconds of each
        stage, and of the run."""
        counted = repo.parent / "census.jsonl"
        started = time.monotonic()
        result = self.repro(repo, env, census=counted)
        if result.returncode != 0:
            raise AssertionError(f"the uninterrupted run failed: {_tail(result.output)}")
        most: Counter[str] = Counter()
        for line in counted.read_text().splitlines():
            record = json.loads(line)
            most[record["kind"]] = max(most[record["kind"]], record["n"])
        return dict(most), result.stage_seconds, time.monotonic() - started


class KillPlan:
    """Seeded kills, dealt chain by chain from a shuffled deck that holds every kind of write (SIGKILL in the middle of
    its n-th, n at random up to what one process makes), every stage (a random moment of it) and the whole run (a
    random moment, DVC's own work between stages included): each is dealt once before any is dealt again. A kill at a
    random moment is SIGTERM `term_share` of the time, else SIGKILL."""

    def __init__(self, rng: random.Random, writes: dict[str, int], stage_seconds: dict[str, float], seconds: float,
                 term_share: float = 0.5) -> None:
        self.rng, self.writes, self.stage_seconds, self.seconds, self.term_share = rng, writes, stage_seconds, seconds, term_share
        self.deck: list[tuple[str, str]] = []

    def _deal(self) -> Kill:
        if not self.deck:
            self.deck = [("write", kind) for kind in sorted(self.writes)] + [("stage", stage) for stage in sorted(self.stage_seconds)]
            self.deck.append(("run", ""))
            self.rng.shuffle(self.deck)
        card, name = self.deck.pop()
        if card == "write":
            return Kill(write=f"{name}:{self.rng.randint(1, self.writes[name])}")
        signum = signal.SIGTERM if self.rng.random() < self.term_share else signal.SIGKILL
        if card == "stage":
            return Kill(stage=name, after=self.rng.uniform(0, self.stage_seconds[name]), signum=signum)
        return Kill(after=self.rng.uniform(0, self.seconds), signum=signum)

    def chain(self, count: int) -> list[Kill]:
        """`count` kills for one chain, in the order of the stages (a moment of the whole run first)."""
        order = {stage: index for index, stage in enumerate(stage_names())}

        def place(kill: Kill) -> int:
            return order[kill.write.split(":")[0]] if kill.write else order.get(kill.stage or "", -1)

        return sorted((self._deal() for _ in range(count)), key=place)


def _curve_steps(repo: Path) -> dict[str, list[str]]:
    """The steps of each of a workspace's dvclive curves: one per epoch that has the metric (those of the discriminator
    start after the warm-up)."""
    curves = sorted((repo / "data" / "training" / "plots" / "metrics").rglob("*.tsv"))
    return {curve.stem: [line.split("\t")[0] for line in curve.read_text().splitlines()[1:]] for curve in curves}


def differences(baseline: Path, repo: Path, env: dict[str, str]) -> list[str]:
    """How the data/ of `repo` (after its chain of kills) differs from the uninterrupted run's in `baseline`: the
    dataset stages byte for byte; the training's epochs, history, curves and samples; the evaluation's metrics; and
    `dvc status` finds nothing to do."""
    found = [f"data/{name} differs from an uninterrupted run's" for name in DATASET_OUTPUTS
             if files(baseline / "data" / name) != files(repo / "data" / name)]
    found += [f"{path.relative_to(repo)} is left of a write cut short" for path in (repo / "data").rglob("*.tmp")]
    training = repo / "data" / "training"
    try:
        info = Colorizer.load(repo / "data/models/generator.pt", device="cpu").info
        checkpoint = load_weights(repo / "data/models/checkpoint.pt")
    except Exception as exc:  # noqa: BLE001 - whatever it is, it is the finding
        return [*found, f"the model cannot be loaded: {exc}"]
    if info["epochs"] != EPOCHS or len(info["history"]) != EPOCHS or checkpoint["epoch"] != EPOCHS:
        found.append(f"trained {info['epochs']} epochs, {len(info['history'])} history rows, checkpoint at {checkpoint['epoch']}")
    if _curve_steps(repo) != _curve_steps(baseline):
        found.append(f"the curves' steps are {_curve_steps(repo)}, not {_curve_steps(baseline)}")
    samples = sorted(path.name for path in (training / "plots" / "images").rglob("*") if path.is_file())
    if samples != [f"epoch-{epoch:03d}.png" for epoch in range(1, EPOCHS + 1)]:
        found.append(f"the samples are {samples}")
    metrics = json.loads((repo / "data/eval/metrics.json").read_text())
    if set(metrics) != set(json.loads((baseline / "data/eval/metrics.json").read_text())):
        found.append(f"data/eval/metrics.json has the keys {sorted(metrics)}")
    status = run(repo, env, "dvc", "status", check=False).stdout
    if "up to date" not in status:
        found.append(f"dvc status: {' '.join(status.split())[:300]}")
    return found
