"""Training-step throughput of VUNet against the machine's own limits, and where the time goes.

One step = forward (train mode) + color_L1 + KL loss + backward + Adam step (fused), batch 8,
at 64 px (box 2, bottleneck 2) and 128 px (box 1, bottleneck 1), for the original widths
(``full``: base 32, max 128) and the CPU recipe's (``recipe``: 16 -> 64), in fp32 and under
bf16 autocast (``training/precision bf16``). ``--sizes 32 --widths recipe --threads 1`` is
the step every default-sweep trial runs (configs/cpu_32.yaml: 32 px, box 2, bottleneck 2).

FLOPs of a step are counted once with ``torch.utils.flop_counter.FlopCounterMode``
(convolutions and matmuls, forward and backward). Two yardsticks are measured in the same
run, interleaved with the steps so a busy machine affects all alike: a 3x3 convolution
forward + backward (8 x 128 x 32 x 32, the model's most common layer shape; oneDNN, the
practical limit of this machine's convolution kernels) and a 2048^2 matmul, each in the
row's precision. ``frac conv`` / ``frac mm`` are the step's GFLOP/s over theirs.

``--against PATH`` imports a second checkout of the project (e.g. ``git worktree add
/tmp/main main``) into the same process and times its step in alternating rounds with this
one's, so the speed-up is a ratio measured under the same load. ``--breakdown`` profiles
a few steps per row and splits the time into pose encoder, appearance encoder (+ posterior
head), decoder, AR priors, weight norm, losses, optimizer and the rest (forward and
backward of each module are attributed to it through the autograd sequence numbers).
``--concurrency`` compares 1 trial x 2 threads with 2 trials x 1 thread on the 32 px recipe, in
each of ``--precisions`` (what a sweep's ``resources/cpu`` and ``max_concurrent_trials`` choose between).
``--perceptual`` adds rows with a VGG19 perceptual term on random weights (its cost only).
Run: ``python benchmarks/train_step.py`` (about 5 min on 2 cores).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.vgg import cfgs, make_layers

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {32: (2, 2), 64: (2, 2), 128: (1, 1)}  # spatial size -> (box_factor, bottleneck_factor)
WIDTHS = {"full": (32, 128), "recipe": (16, 64)}  # base_channels, max_channels
PRECISIONS = ("fp32", "bf16")
MODULES = ("pose encoder", "appearance encoder", "decoder", "AR priors", "weight norm", "losses", "optimizer")


# --------------------------------------------------------------------------- the project under test


PROJECT_MODULES = ("vunet_core.config", "vunet_core.losses", "vunet_core.model", "vunet_core.perceptual")


def import_project(path: Path | None, names: tuple[str, ...] = PROJECT_MODULES) -> dict[str, ModuleType]:
    """The vunet_core modules of the checkout at `path` (None: this one), without disturbing this one's.

    A second checkout is imported under the same package name with its directory first on
    sys.path, its modules taken out of sys.modules afterwards: the step functions built
    from it keep their own module globals, so both versions run side by side in one process.
    """
    if path is None:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        return {n.rsplit(".", 1)[1]: importlib.import_module(n) for n in names}
    saved = {k: v for k, v in sys.modules.items() if k == "vunet_core" or k.startswith("vunet_core.")}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(path.resolve()))
    try:
        mods = {n.rsplit(".", 1)[1]: importlib.import_module(n) for n in names}
        if not Path(mods["model"].__file__ or "").resolve().is_relative_to(path.resolve()):
            raise SystemExit(f"--against {path}: no vunet_core package there")
        return mods
    finally:
        sys.path.remove(str(path.resolve()))
        for k in [k for k in sys.modules if k == "vunet_core" or k.startswith("vunet_core.")]:
            del sys.modules[k]
        sys.modules.update(saved)


@dataclass
class Step:
    run: Callable[[], None]
    model: torch.nn.Module
    params: int


@dataclass(frozen=True)
class StepSpec:
    """Which training step to build: image side (a SETTINGS key), widths (a WIDTHS key), batch, device,
    bf16 autocast, memory format, and a VGG19 weights file for the perceptual objective (None: color_L1 + KL)."""

    size: int
    widths: str
    batch: int
    device: torch.device
    bf16: bool = False
    channels_last: bool = False
    vgg_file: str | None = None


def make_step(mods: dict[str, ModuleType], spec: StepSpec) -> Step:
    config, losses_mod, model_mod = mods["config"], mods["losses"], mods["model"]
    size, batch, device, bf16, vgg_file = spec.size, spec.batch, spec.device, spec.bf16, spec.vgg_file
    box, bottleneck = SETTINGS[size]
    base, top = WIDTHS[spec.widths]
    cfg = config.ModelConfig(
        spatial_size=size, box_factor=box, bottleneck_factor=bottleneck, base_channels=base, max_channels=top
    )
    torch.manual_seed(0)
    model = model_mod.VUNet(cfg).to(device)
    fmt = torch.channels_last if spec.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    pose = torch.rand(batch, 3, size, size, device=device).mul(2).sub(1).contiguous(memory_format=fmt)
    sc = model_mod.crop_size(cfg)
    crops = torch.rand(batch, model_mod.appearance_channels(cfg), sc, sc, device=device).mul(2).sub(1)
    crops = crops.contiguous(memory_format=fmt)
    target = torch.rand(batch, 3, size, size, device=device).mul(2).sub(1)
    model.data_dependent_init(pose, crops)
    model.train()
    term = config.LossTerm
    losses = config.LossesConfig(color_L1=term(weight=637.5), KL=term(weight=1.0))
    perceptual = None
    if vgg_file is not None:
        vgg_term = config.PerceptualTerm(weight=5.0, vgg_weights=vgg_file)  # the reference objective, spec §6.1
        losses = config.LossesConfig(color_L1=term(weight=0.0), KL=term(weight=1.0), perceptual=vgg_term)
        perceptual = mods["perceptual"].PerceptualLoss(losses.perceptual).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.9), eps=1e-8, fused=True)

    def run() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(pose, crops, "train")
            if bf16:  # as vunet_core.training: the loss terms see fp32 outputs
                out = out.float()
            with record_function("losses"):
                loss = losses_mod.compute_losses(losses, 0, target, out, perceptual)["batch"]["total"]
        with record_function("optimizer"):
            opt.zero_grad(set_to_none=True)
        loss.backward()
        with record_function("optimizer"):
            opt.step()

    return Step(run, model, model_mod.count_parameters(model))


# --------------------------------------------------------------------------- yardsticks


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 3) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def conv_gflops(device: torch.device, dtype: torch.dtype, reps: int = 3) -> float:
    """3x3 SAME convolution 128 -> 128 channels on (8, 128, 32, 32): forward + both gradients."""
    x = torch.randn(8, 128, 32, 32, device=device, dtype=dtype, requires_grad=True)
    w = (torch.randn(128, 128, 3, 3, device=device, dtype=dtype) * 0.05).requires_grad_()
    grad = torch.randn(8, 128, 32, 32, device=device, dtype=dtype)

    def once() -> None:
        F.conv2d(x, w, padding=1).backward(grad)

    once()
    flops = 3 * 2 * 8 * 32 * 32 * 128 * 128 * 9  # forward, input gradient, weight gradient
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        once()
    _sync(device)
    return flops * reps / (time.perf_counter() - start) / 1e9


def count_flops(step: Callable[[], None]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


# --------------------------------------------------------------------------- measuring


@dataclass
class Row:
    label: str
    size: int
    widths: str
    precision: str
    batch: int
    params: int
    flops: int
    times: list[float] = field(default_factory=list)
    conv_rates: list[float] = field(default_factory=list)
    matmul_rates: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(self.times)

    @property
    def img_per_s(self) -> float:
        return self.batch / self.seconds

    @property
    def gflop_per_s(self) -> float:
        return self.flops / self.seconds / 1e9

    @property
    def conv(self) -> float:
        return statistics.median(self.conv_rates)

    @property
    def matmul(self) -> float:
        return statistics.median(self.matmul_rates)


def measure(cases: list[tuple[Row, Step]], rounds: int, steps_per_round: int, device: torch.device) -> None:
    """Time every case for `rounds` rounds, alternating cases within a round, with its yardsticks."""
    for row, step in cases:
        step.run()  # warm-up (allocator, oneDNN kernel choice)
        row.flops = count_flops(step.run)
    for r in range(rounds):
        for row, step in cases:
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps_per_round):
                step.run()
            _sync(device)
            row.times.append((time.perf_counter() - start) / steps_per_round)
            dtype = torch.bfloat16 if row.precision == "bf16" else torch.float32
            row.conv_rates.append(conv_gflops(device, dtype))
            row.matmul_rates.append(matmul_gflops(device, dtype))
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- where the time goes


def _scope_hooks(model: torch.nn.Module) -> list[Any]:
    """record_function scopes around the model's parts (innermost wins when they nest)."""
    parts: list[tuple[str, torch.nn.Module]] = [
        ("pose encoder", model.pose_encoder),
        ("appearance encoder", model.appearance_encoder),
        ("appearance encoder", model.posterior),
        ("decoder", model.decoder),
        *(("AR priors", prior) for prior in model.decoder.priors),
    ]
    handles = []
    for name, module in parts:
        stack: list[Any] = []

        def pre(_m: Any, _a: Any, name: str = name, stack: list[Any] = stack) -> None:
            ctx = record_function(f"scope::{name}")
            ctx.__enter__()
            stack.append(ctx)

        def post(_m: Any, _a: Any, _o: Any, stack: list[Any] = stack) -> None:
            stack.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return handles


def _scope_of(event: Any) -> str | None:
    while event is not None:
        name = event.name
        if name.startswith("scope::"):
            return str(name.removeprefix("scope::"))
        if name in ("losses", "optimizer"):
            return str(name)
        event = event.cpu_parent
    return None


def breakdown(step: Step, steps: int = 3) -> dict[str, float]:
    """Milliseconds per step per part; backward ops count for the part whose forward created them."""
    events, wall = _profile(step, steps)
    out = _time_per_part(events)
    measured = sum(out.values())
    out["python / framework"] = max(0.0, wall * 1e6 - measured)
    return {k: v / 1e3 / steps for k, v in out.items()}


def _profile(step: Step, steps: int) -> tuple[list[Any], float]:
    """The profiler events of `steps` steps (after a warm-up) with the model's scopes marked, and their wall seconds."""
    handles = _scope_hooks(step.model)
    try:
        for _ in range(2):  # warm-up: allocator and oneDNN caches, as in the timed rounds
            step.run()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(steps):
                step.run()
            wall = time.perf_counter() - start
    finally:
        for h in handles:
            h.remove()
    return list(prof.events()), wall


def _time_per_part(events: list[Any]) -> dict[str, float]:
    """Microseconds per part over all events: backward nodes by their forward's sequence number,
    top-level forward ops by their scope."""
    scope_of_seq: dict[int, str] = {}
    out: dict[str, float] = defaultdict(float)
    for e in events:
        if e.name.startswith("autograd::engine::evaluate_function") or e.sequence_nr < 0:
            continue
        scope = _scope_of(e)
        if scope is not None:
            scope_of_seq.setdefault(e.sequence_nr, scope)
    for e in events:
        if e.name.startswith("autograd::engine::evaluate_function"):  # one backward node, with its kernels
            scope = "weight norm" if "WeightNorm" in e.name else scope_of_seq.get(e.sequence_nr, "other")
            out[scope] += e.cpu_time_total
        elif e.name.startswith("aten::") and not (e.cpu_parent and e.cpu_parent.name.startswith("aten::")):
            # a top-level forward op (its children are inside its cpu_time_total)
            if _in_backward(e):
                continue
            scope = "weight norm" if "weight_norm" in e.name else _scope_of(e) or "other"
            out[scope] += e.cpu_time_total
    return out


def _in_backward(event: Any) -> bool:
    while event is not None:
        if event.name.startswith("autograd::engine::evaluate_function"):
            return True
        event = event.cpu_parent
    return False


# --------------------------------------------------------------------------- 1x2 vs 2x1


def _worker(args: tuple[int, int, int, bool]) -> float:
    threads, steps, batch, bf16 = args
    torch.set_num_threads(threads)
    step = make_step(import_project(None), StepSpec(32, "recipe", batch, torch.device("cpu"), bf16))
    step.run()
    start = time.perf_counter()
    for _ in range(steps):
        step.run()
    return time.perf_counter() - start


def concurrency(steps: int, batch: int, precision: str) -> list[tuple[str, float]]:
    """Aggregate images/s of the 32 px recipe step (configs/cpu_32.yaml): 1 process x 1 thread, 1 x 2, 2 x 1."""
    ctx = mp.get_context("spawn")
    results = []
    for label, procs, threads in (
        ("1 trial x 1 thread", 1, 1),
        ("1 trial x 2 threads", 1, 2),
        ("2 trials x 1 thread", 2, 1),
    ):
        with ctx.Pool(procs) as pool:
            times = pool.map(_worker, [(threads, steps, batch, precision == "bf16")] * procs)
        results.append((label, procs * steps * batch / max(times)))
    return results


# --------------------------------------------------------------------------- output


def tune_glibc_malloc() -> bool:
    """Keep freed memory in the process (no mmap/trim per step); opt-in, no measured gain when idle."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's maximum
    ok &= libc.mallopt(m_trim_threshold, 1 << 34)
    ok &= libc.mallopt(m_top_pad, 256 << 20)
    return bool(ok)


@contextlib.contextmanager
def random_vgg_file() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vgg19_random.pth"
        torch.save(make_layers(cfgs["E"]).state_dict(), path)
        yield str(path)


def print_table(rows: list[Row], header: str, against: dict[int, Row]) -> None:
    print(header)
    print("medians over rounds; conv / mm = the same round's 3x3 conv fwd+bwd and matmul GFLOP/s in that precision")
    cols = f"{'run':<30} {'size':>4} {'widths':>6} {'prec':>4} {'params':>11} {'img/s':>6} {'GFLOP/s':>8}"
    cols += f" {'conv':>6} {'mm':>6} {'frac conv':>9} {'frac mm':>7}"
    print(cols + ("  vs --against" if against else ""))
    for i, r in enumerate(rows):
        line = f"{r.label:<30} {r.size:>4} {r.widths:>6} {r.precision:>4} {r.params:>11,} {r.img_per_s:>6.2f}"
        line += f" {r.gflop_per_s:>8.1f} {r.conv:>6.0f} {r.matmul:>6.0f} {r.gflop_per_s / r.conv:>9.0%}"
        line += f" {r.gflop_per_s / r.matmul:>7.0%}"
        if i in against:
            line += f"  {r.img_per_s / against[i].img_per_s:.2f}x"
        print(line)


def print_breakdown(parts: dict[str, dict[str, float]]) -> None:
    names = [*MODULES, "other", "python / framework"]
    print("\nwhere a step's time goes (ms per step; forward + backward of each part, profiled)")
    print(f"{'part':<20}" + "".join(f" {label[:22]:>22}" for label in parts))
    for name in names:
        print(
            f"{name:<20}"
            + "".join(
                f" {p.get(name, 0.0):>15.1f} ({p.get(name, 0.0) / sum(p.values()):>3.0%})" for p in parts.values()
            )
        )
    print(f"{'total':<20}" + "".join(f" {sum(p.values()):>22.1f}" for p in parts.values()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128], choices=sorted(SETTINGS))
    p.add_argument("--widths", nargs="+", default=["full", "recipe"], choices=sorted(WIDTHS))
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (median reported)")
    p.add_argument("--steps", type=int, default=0, help="steps per round (0: 8 at 32 px, 3 at 64 px, 2 at 128 px)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--against", type=Path, default=None, help="another checkout, timed alternately (fp32 rows)")
    p.add_argument("--breakdown", action="store_true", help="per-module time of each row (profiler)")
    p.add_argument("--concurrency", action="store_true", help="1 trial x 2 threads vs 2 trials x 1 thread")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--malloc-tuning", action="store_true", help="glibc: no trim/mmap per step (no page faults)")
    p.add_argument("--perceptual", action="store_true", help="also time a step with a random-weight VGG19 term")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    return p.parse_args(argv)


@dataclass
class Bench:
    """One run: its arguments, device and checkouts (this one, --against's), and the rows, --against
    twins and breakdowns it collects."""

    args: argparse.Namespace
    device: torch.device
    here: dict[str, ModuleType]
    there: dict[str, ModuleType] | None
    rows: list[Row] = field(default_factory=list)
    against: dict[int, Row] = field(default_factory=dict)
    parts: dict[str, dict[str, float]] = field(default_factory=dict)

    def cases(self, size: int, vgg: str | None) -> list[tuple[Row, Step]]:
        """The steps to time at one image size: every widths x precision x objective, each with its twin."""
        args = self.args
        objectives = [("color_L1 + KL", None)] + ([("5*perceptual + KL", vgg)] if vgg else [])
        cases: list[tuple[Row, Step]] = []
        for widths in args.widths:
            for precision in args.precisions:
                for label, vgg_file in objectives:
                    bf16 = precision == "bf16"
                    spec = StepSpec(size, widths, args.batch, self.device, bf16, args.channels_last, vgg_file)
                    cases += self._row_cases(label, precision, spec)
        return cases

    def _row_cases(self, label: str, precision: str, spec: StepSpec) -> list[tuple[Row, Step]]:
        """One row's step, and the --against checkout's fp32 step beside it (colour-and-KL rows only)."""
        args = self.args
        step = make_step(self.here, spec)
        row = Row(label, spec.size, spec.widths, precision, spec.batch, step.params, 0)
        cases = [(row, step)]
        self.rows.append(row)
        if self.there is not None and spec.vgg_file is None:
            old = make_step(self.there, replace(spec, bf16=False))
            old_row = Row("  --against, fp32", spec.size, spec.widths, "fp32", spec.batch, old.params, 0)
            cases.append((old_row, old))
            self.against[len(self.rows) - 1] = old_row
            if args.breakdown and precision == args.precisions[0]:
                self.parts[f"against {spec.size} {spec.widths} fp32"] = breakdown(old)
        if args.breakdown:
            self.parts[f"{spec.size} {spec.widths} {precision}"] = breakdown(step)
        return cases


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = args.malloc_tuning and tune_glibc_malloc()
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    here = import_project(None)
    bench = Bench(args, device, here, import_project(args.against) if args.against else None)
    with contextlib.ExitStack() as stack:
        vgg = stack.enter_context(random_vgg_file()) if args.perceptual else None
        for size in args.sizes:
            cases = bench.cases(size, vgg)
            steps = args.steps or {32: 8, 64: 3}.get(size, 2)
            print(f"timing {len(cases)} steps at {size} px ...", file=sys.stderr, flush=True)
            measure(cases, args.rounds, steps, device)
            del cases
    report(bench, use_cuda, tuned)


def report(bench: Bench, use_cuda: bool, tuned: bool) -> None:
    """The table, the breakdowns (--breakdown) and the 1x2 vs 2x1 comparison (--concurrency, CPU only)."""
    args = bench.args
    where = torch.cuda.get_device_name() if use_cuda else f"CPU, {torch.get_num_threads()} threads"
    extra = f"batch {args.batch}, channels_last={args.channels_last}, malloc tuning={tuned}, Adam fused"
    print_table(
        bench.rows,
        f"VUNet training step (forward + backward + Adam), {where}, {extra}; torch {torch.__version__}",
        bench.against,
    )
    if bench.parts:
        print_breakdown(bench.parts)
    if args.concurrency and not use_cuda:
        for precision in args.precisions:
            print(f"\nrecipe step at 32 px, {precision}, aggregate images/s")
            for label, rate in concurrency(6, args.batch, precision):
                print(f"  {label:<22} {rate:6.1f} img/s")


if __name__ == "__main__":
    main()
