"""How the sweep driver's own cost grows with the number of trials (issue 33).

Runs the real sweep (``sweeps.run.main``: Ray Tune, the Optuna searcher, the successive-halving
scheduler, the trial events, the MLflow outbox and store, the final report) with one thing
swapped: the trainable. The stand-in trial trains nothing; it sleeps ``--epoch-s`` seconds per
epoch and then reports like a real trial of the default recipe (configs/cpu_32.yaml): the same
metric keys, and the same files, at the sizes a real trial writes (a 60 KB sample grid; eval
outputs of 120 validation pairs x 8 kinds of 32 px PNGs, 962 files, ~1.5 MB; a model state).
The stand-in writes those files through ``sweeps.epoch_output`` when the tree under test has it
(the trial's own per-epoch files, sparse model states), else the way ``sweeps.trainable`` did
before it (every report a checkpoint with the model state, the sample grid and the eval outputs).
It imports neither torch nor vunet_core, so a worker costs ~100 MB, not ~400 MB.

The model state the stand-in writes is small (``--state-mb``, default 1 MB); the bytes a trial
writes per epoch are printed as measured and scaled to the real state (119.6 MB of weights and
Adam state on the 32 px recipe) by counting the states written.

Concurrency: 2 cores cannot start hundreds of Ray workers, so above ``--max-workers`` the
benchmark emulates N trials reporting every S seconds with W = max-workers trials reporting
every S * W / N seconds (the same reports per second into the driver; what grows with the number
of trials *running at once* inside Tune is then under-measured). Each line says which it ran.

Per N it prints: driver CPU ms per report (the driver process's CPU over the stage, all its
threads, divided by the reports; of it, "main": Tune's event-loop thread with our callbacks,
Optuna and the scheduler), "outbox": the CPU ms per report of the MLflow sender, a process of its
own (not in the driver's figure), reports/s sustained, the outbox's lag (most calls queued,
oldest queued call's age), how long the final report took, the driver's peak RSS, the sizes of
optuna.db and mlflow.db, Ray's `process_trial_save` warnings in sweep.log, and the bytes per
trial-epoch. The last line is ``driver_cpu_ms_per_report=<x> outbox_lag_s=<y> concurrent=<n>``
for the largest N.

    python benchmarks/driver_scale.py --quick                 # < 5 min on 2 cores
    python benchmarks/driver_scale.py --concurrent 8,32,128,256 --trials 2000 --epoch-s 20
    python benchmarks/driver_scale.py --quick --profile       # + cProfile of the driver (top 30)
    python benchmarks/driver_scale.py --concurrent 32 --trials 2000 --epochs 2 --epoch-s 1 --eval-pairs 4  # final report
    PYTHONPATH=/tmp/main_before python benchmarks/driver_scale.py --quick   # another tree
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REAL_STATE_BYTES = 119_571_555  # last.pt of configs/cpu_32.yaml after one epoch (model + Adam + RNG)
GRID_BYTES = 60_050  # samples.png of the same run
EVAL_PAIRS = 120
EVAL_KINDS = (
    "appearance", "pose", "target", "reconstruction", "transfer", "other_appearance", "other_transfer", "prior"
)  # fmt: skip
METRIC_KEYS = (
    "perf/train_img_per_s", "time/data_fraction", "time/epoch_s", "train/loss/KL", "train/loss/color_L1",
    "train/loss/total", "train/lr", "train/weight/KL", "train/weight/color_L1", "train/weight/color_L2",
    "train/weight/color_gradient", "train/weight/perceptual", "val/floor/copy_appearance_l1",
    "val/floor/mean_image_l1", "val/loss/KL", "val/loss/color_L1", "val/loss/color_L2", "val/loss/color_gradient",
    "val/loss/total", "val/transfer/appearance_gain", "val/transfer/l1", "val/transfer/l1_wrong_appearance",
    "val/transfer/ssim",
)  # fmt: skip
SPACE = """name: {name}
description: driver scale benchmark (stand-in trials)
base: [{base}]
parameters:
  losses/KL/start_ramp_it: {{distribution: uniform, min: 0, max: 1, step: 0.0625}}
  losses/KL/end_ramp_it: {{distribution: uniform, min: 0, max: 1, step: 0.0625}}
  losses/KL/start_ramp_val: {{distribution: log_uniform, min: 1.0e-6, max: 1.0e-2}}
  losses/KL/end_ramp_val: {{distribution: log_uniform, min: 1.0e-3, max: 1.0}}
metric: {{name: val/transfer/l1, mode: min}}
num_samples: {trials}
max_concurrent_trials: {workers}
max_epochs: {epochs}
scheduler: {{type: asha, grace_period: {grace}, reduction_factor: 2}}
resources: {{cpu: {cpu}, gpu: 0}}
seed: 0
max_failures: 0
baseline: true
{confirm}"""


# ---------------------------------------------------------------------------- the stand-in trial (Ray worker)


def make_template(root: Path, pairs: int = EVAL_PAIRS) -> Path:
    """Files of a real epoch's sizes: samples.png and eval/ (index.json, losses.csv, `pairs` x 8 PNGs)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    eval_dir = root / "eval"
    eval_dir.mkdir(parents=True)
    rows = []
    for n in range(pairs):
        row: dict[str, Any] = {"key": f"p{n:03d}/01->p{n:03d}/00"}
        for kind in EVAL_KINDS:
            # smooth noise: ~1.5 KB per 32 px PNG, as the real outputs
            img = (rng.integers(0, 64, (8, 8, 3)) * 4).astype(np.uint8).repeat(4, 0).repeat(4, 1)
            Image.fromarray(img).save(eval_dir / f"{n:05d}_{kind}.png")
            row[kind] = f"{n:05d}_{kind}.png"
        row["losses"] = {k: float(rng.random()) for k in METRIC_KEYS if k.startswith("val/loss") or "transfer" in k}
        rows.append(row)
    (eval_dir / "index.json").write_text(json.dumps({"step": 0, "image_kinds": list(EVAL_KINDS), "examples": rows}))
    names = sorted(rows[0]["losses"])
    lines = ["key," + ",".join(names)] + [r["key"] + "," + ",".join(str(r["losses"][k]) for k in names) for r in rows]
    (eval_dir / "losses.csv").write_text("\n".join(lines) + "\n")
    grid = (rng.integers(0, 256, (200, 100, 3))).astype(np.uint8)
    Image.fromarray(grid).save(root / "samples.png")
    return root


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _metrics(config: dict[str, Any], epoch: int, step: int) -> dict[str, float]:
    """Every key a real trial reports; the objective depends on the sampled values and the epoch."""
    flat = {k: v for k, v in _flat(config).items() if not k.startswith("sweep/")}
    ramp = abs(float(flat.get("losses/KL/start_ramp_it", 0.5)) - 0.5) + abs(
        float(flat.get("losses/KL/end_ramp_it", 0.75)) - 0.75
    )
    l1 = 0.08 + 0.02 * ramp + 0.01 * float(flat.get("losses/KL/end_ramp_val", 0.05)) + 0.04 / epoch
    values = {k: 0.5 for k in METRIC_KEYS}
    values.update({"val/transfer/l1": l1, "time/epoch_s": 1.0, "train/lr": 1e-3 * (1 - step / 1e4)})
    return values


def standin_trial(config: dict[str, Any], opts: dict[str, Any]) -> None:
    """The trainable: `opts["epochs"]` epochs of `opts["epoch_s"]` s each, reported like a real trial."""
    from ray import tune

    template, state_bytes = Path(opts["template"]), int(opts["state_mb"] * 1e6)
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            start = int(json.loads((Path(d) / "meta.json").read_text())["epoch"])
    with tempfile.TemporaryDirectory(prefix="standin-") as work:
        work_dir = Path(work)
        state = work_dir / "last.pt"
        for epoch in range(start + 1, opts["epochs"] + 1):
            time.sleep(opts["epoch_s"])
            state.write_bytes(b"\0" * state_bytes)
            eval_dir = work_dir / "eval" / f"epoch_{epoch:04d}"
            shutil.copytree(template / "eval", eval_dir)
            step = epoch * 120
            metrics = {**_metrics(config, epoch, step), "epoch": epoch, "step": step}
            written, states = _report(opts, epoch, step, metrics, state, template / "samples.png", eval_dir)
            with open(opts["bytes_log"], "a") as fh:
                fh.write(f"{written} {states}\n")


def _report(opts: dict[str, Any], epoch: int, step: int, metrics: dict[str, Any], *files: Path) -> tuple[int, int]:
    """Report one epoch as the tree under test does; returns (bytes handed to storage, states written)."""
    state, grid, eval_dir = files
    try:
        from sweeps import epoch_output  # the tree under test writes per-epoch files and sparse states
    except ImportError:
        return _report_legacy(epoch, step, metrics, state, grid, eval_dir)
    files = epoch_output.EpochFiles(epoch, step, metrics, grid, eval_dir, state)
    written, states = epoch_output.report_epoch(files, last_epoch=opts["epochs"], extra=opts.get("rungs", ()))
    shutil.rmtree(eval_dir)
    return written, states


def _report_legacy(epoch: int, step: int, metrics: dict[str, Any], *files: Path) -> tuple[int, int]:
    """What sweeps.trainable did before issue 33: every report a checkpoint with everything."""
    from ray import tune

    state, grid, eval_dir = files
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp)
        shutil.move(state, ckpt / "last.pt")
        shutil.copy2(grid, ckpt / "samples.png")
        shutil.copytree(eval_dir, ckpt / "eval")
        (ckpt / "meta.json").write_text(json.dumps({"epoch": epoch, "step": step}))
        size = sum(f.stat().st_size for f in ckpt.rglob("*") if f.is_file())
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(ckpt)))
    shutil.rmtree(eval_dir)
    return size, 1


# ---------------------------------------------------------------------------- one sweep (the driver process)


class Lag:
    """Samples the outbox every 0.5 s: calls queued and the oldest queued call's age, once the sender
    process runs (before: how long the first calls waited for it to start)."""

    def __init__(self) -> None:
        self.outbox: Any = None
        self.max_queued, self.max_age_s = 0, 0.0
        self.up, self.start_lag_s = False, 0.0
        self.series: list[tuple[float, int, float]] = []  # (time, calls queued, oldest call's age)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            if self.outbox is None:
                continue
            try:
                pending = self.outbox.pending()
                age = time.time() - pending[0].stat().st_mtime if pending else 0.0
            except OSError:  # the oldest call was sent while we looked
                continue
            self.up = self.up or not pending  # the sender has drained the queue once: it runs
            if self.up:
                self.max_queued, self.max_age_s = max(self.max_queued, len(pending)), max(self.max_age_s, age)
            else:  # the first calls wait for the sender process to start (it imports MLflow)
                self.start_lag_s = max(self.start_lag_s, age)
            self.series.append((time.monotonic(), len(pending), age))


def one_sweep(args: argparse.Namespace) -> dict[str, Any]:
    """Run one sweep in this process (the driver) and measure it."""
    import resource

    from ray import tune

    import sweeps.driver as driver
    import sweeps.trial_events as trial_events
    import sweeps.tuner as tuner
    from sweeps.contact import milestones
    from sweeps.run import main

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    template = make_template(work / "template", args.eval_pairs)
    bytes_log = work / "bytes.log"
    workers = min(args.n, args.max_workers)
    epoch_s = args.epoch_s * workers / args.n
    opts = {
        "epochs": args.epochs, "epoch_s": epoch_s, "template": str(template), "state_mb": args.state_mb,
        "bytes_log": str(bytes_log),
    }  # fmt: skip
    cpu = round(1.6 / workers, 4)  # leave Ray's own processes some of the 2 cores

    def make_trainable(spec: Any, base_tree: dict[str, Any]) -> Any:
        # the states at the scheduler's rungs too, as sweeps.tuner.make_trainable passes them
        sched = spec.scheduler
        rungs = milestones(spec.max_epochs, sched.type == "asha", sched.grace_period, sched.reduction_factor)
        bound = tune.with_parameters(standin_trial, opts={**opts, "rungs": rungs})
        return tune.with_resources(bound, {"cpu": spec.cpu})

    tuner.make_trainable = make_trainable  # type: ignore[assignment]
    lag, reports, spans = Lag(), [0], {}
    opened = driver._open_tracking  # noqa: SLF001 - the benchmark watches the outbox

    def open_tracking(session: Any) -> Any:
        tracked = opened(session)
        lag.outbox = tracked.outbox
        return tracked

    driver._open_tracking = open_tracking  # type: ignore[assignment]  # noqa: SLF001
    on_result = trial_events.TrialEvents.on_trial_result

    def counted(self: Any, *a: Any, **kw: Any) -> None:
        reports[0] += 1
        on_result(self, *a, **kw)

    trial_events.TrialEvents.on_trial_result = counted  # type: ignore[method-assign]
    for name in ("_run_stage", "close_finished"):
        spans[name] = _timed(driver, name)
    space = work / "space.yaml"
    space.write_text(
        SPACE.format(
            name=f"scale{args.n}",
            base=HERE.parent / "configs" / "cpu_32.yaml",
            trials=args.trials,
            workers=workers,
            epochs=args.epochs,
            grace=max(1, args.epochs // 2),
            cpu=cpu,
            confirm=f"confirm: {args.confirm}\n" if args.confirm else "",
        )  # fmt: skip
    )
    threading.Thread(target=lag.run, daemon=True).start()
    argv = [str(space), "--out-dir", str(work / "out"), "--num-cpus", "2"]
    argv += ["--storage", args.storage] if args.storage else []
    code = _profiled(lambda: main(argv), args.profile, work)
    lag.stop.set()
    start = lag.series[0][0] if lag.series else 0.0
    lines = [f"{t - start:.1f},{q},{a:.2f}" for t, q, a in lag.series]
    (work / "outbox_lag.csv").write_text("\n".join(["s,queued,oldest_age_s", *lines]) + "\n")
    outbox_cpu = lag.outbox.send_cpu_s if lag.outbox is not None else 0.0
    sweep_dir = next((work / "out").iterdir())
    fit_cpu, fit_wall = spans["_run_stage"]["cpu"], spans["_run_stage"]["wall"]
    written = (
        [tuple(map(int, line.split())) for line in bytes_log.read_text().splitlines()] if bytes_log.exists() else []
    )
    measured = sum(w for w, _ in written) / max(1, len(written))
    states = sum(s for _, s in written)
    scaled = measured + states * (REAL_STATE_BYTES - args.state_mb * 1e6) / max(1, len(written))
    log_text = (sweep_dir / "sweep.log").read_text() if (sweep_dir / "sweep.log").exists() else ""
    return {
        "n": args.n, "workers": workers, "epoch_s": round(epoch_s, 3), "exit": code, "reports": reports[0],
        "cpu_ms_per_report": 1000 * fit_cpu / max(1, reports[0]),
        "main_ms_per_report": 1000 * spans["_run_stage"]["thread"] / max(1, reports[0]),
        "outbox_ms_per_report": 1000 * outbox_cpu / max(1, reports[0]),
        "reports_per_s": reports[0] / max(fit_wall, 1e-9),
        "fit_wall_s": fit_wall, "outbox_max_queued": lag.max_queued, "outbox_lag_s": lag.max_age_s,
        "outbox_start_s": lag.start_lag_s,
        "final_report_s": spans["close_finished"]["wall"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "optuna_db_mb": _size(sweep_dir / "optuna.db") / 1e6, "mlflow_db_mb": _size(work / "mlflow.db") / 1e6,
        "save_warnings": log_text.count("process_trial_save"),
        "bytes_per_trial_epoch": measured, "states_per_trial_epoch": states / max(1, len(written)),
        "bytes_per_trial_epoch_real_state": scaled,
    }  # fmt: skip


def _timed(module: Any, name: str) -> dict[str, float]:
    """Wrap module.name to add up its wall, process CPU (all threads) and calling thread's CPU seconds."""
    span = {"wall": 0.0, "cpu": 0.0, "thread": 0.0}
    fn = getattr(module, name)

    def wrapper(*a: Any, **kw: Any) -> Any:
        w, c, t = time.perf_counter(), time.process_time(), time.thread_time()
        try:
            return fn(*a, **kw)
        finally:
            span["wall"] += time.perf_counter() - w
            span["cpu"] += time.process_time() - c
            span["thread"] += time.thread_time() - t

    setattr(module, name, wrapper)
    return span


def _profiled(fn: Any, profile: bool, work: Path) -> Any:
    if not profile:
        return fn()
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    try:
        return prof.runcall(fn)
    finally:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(40)
        (work / "profile.txt").write_text(out.getvalue())
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        (work / "profile_tottime.txt").write_text(out.getvalue())


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


# ---------------------------------------------------------------------------- the sweep over N


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--concurrent", default="8,32,128,256", help="N: trials reporting at once, comma-separated")
    p.add_argument("--trials", type=int, default=2000, help="trials in all, per N")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--epoch-s", type=float, default=20.0, help="seconds between a trial's reports")
    p.add_argument("--max-workers", type=int, default=32, help="most trial processes at once (above: emulated)")
    p.add_argument("--state-mb", type=float, default=1.0, help="size of the stand-in's model state file")
    p.add_argument(
        "--eval-pairs", type=int, default=EVAL_PAIRS, help="validation pairs in the eval outputs (x 8 images each)"
    )
    p.add_argument("--storage", default="", help="passed to the sweep as --storage")
    p.add_argument("--confirm", default="", help="the sweep's `confirm` setting (default: absent, i.e. on)")
    p.add_argument("--quick", action="store_true", help="N = 8, 32 (emulating 128), few trials: < 5 min")
    p.add_argument("--profile", action="store_true", help="cProfile each driver; top entries in <out>/N/profile.txt")
    p.add_argument("--out", default="", help="work directory (default: a temporary one, removed)")
    p.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)  # internal: run one N here
    p.add_argument("--work", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        args.n = args.one
        print("RESULT " + json.dumps(one_sweep(args)), flush=True)
        return 0
    if args.quick:
        quick = "8,128" if args.concurrent == p.get_default("concurrent") else args.concurrent
        args.concurrent, args.trials, args.epochs, args.epoch_s, args.max_workers = quick, 48, 4, 3.0, 16
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="driver-scale-"))
    rows = [_child(args, int(n), out / n) for n in args.concurrent.split(",")]
    _table(rows)
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)
    last = rows[-1]
    print(
        f"driver_cpu_ms_per_report={last['cpu_ms_per_report']:.1f} outbox_lag_s={last['outbox_lag_s']:.1f} "
        f"concurrent={last['n']}"
    )
    return 0


def _child(args: argparse.Namespace, n: int, work: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", str(n), "--work", str(work.resolve()), "--trials", str(args.trials)]
    cmd += ["--epochs", str(args.epochs), "--epoch-s", str(args.epoch_s), "--max-workers", str(args.max_workers)]
    cmd += ["--state-mb", str(args.state_mb), "--eval-pairs", str(args.eval_pairs)] + (
        ["--storage", args.storage] if args.storage else []
    )
    cmd += ["--confirm", args.confirm] if args.confirm else []
    cmd += ["--profile"] if args.profile else []
    # Ray puts the driver's working directory first on its workers' sys.path: run the sweep in the
    # tree under test (PYTHONPATH), or the stand-in trials import this checkout's sweeps package.
    found = importlib.util.find_spec("sweeps")
    tree = Path(found.origin).parents[1] if found is not None and found.origin else HERE.parent
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tree)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"N={n}: the sweep failed (exit {proc.returncode})")
    return dict(json.loads(lines[-1][len("RESULT ") :]))


def _table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'N':>5} {'ran':>9} {'reports':>7} {'cpu ms/rep':>10} {'main':>5} {'outbox':>6} {'rep/s':>6} "
        f"{'queued':>6} {'lag s':>6} {'start s':>7} "
        f"{'final s':>7} {'rss MB':>6} {'optuna MB':>9} {'mlflow MB':>9} {'save warn':>9} "
        f"{'MB/trial-epoch (real state)':>27} {'states/epoch':>12}"
    )
    print(head)
    for r in rows:
        ran = f"{r['workers']}x{r['epoch_s']:g}s"
        print(
            f"{r['n']:>5} {ran:>9} {r['reports']:>7} {r['cpu_ms_per_report']:>10.1f} "
            f"{r.get('main_ms_per_report', 0):>5.0f} {r.get('outbox_ms_per_report', 0):>6.0f} {r['reports_per_s']:>6.2f} "
            f"{r['outbox_max_queued']:>6} {r['outbox_lag_s']:>6.1f} {r.get('outbox_start_s', 0):>7.1f} "
            f"{r['final_report_s']:>7.1f} "
            f"{r['peak_rss_mb']:>6.0f} {r['optuna_db_mb']:>9.2f} {r['mlflow_db_mb']:>9.2f} {r['save_warnings']:>9} "
            f"{r['bytes_per_trial_epoch'] / 1e6:>8.2f} ({r['bytes_per_trial_epoch_real_state'] / 1e6:>7.1f}) "
            f"{r['states_per_trial_epoch']:>12.2f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
