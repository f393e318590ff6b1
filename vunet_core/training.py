"""Per-epoch training and validation: the seam between vunet_core and its callers.

:func:`train_epochs` is a generator yielding one :class:`EpochResult` per epoch:
it trains over the train split (Adam with the original betas and LR schedule,
dropout, data-dependent init on a fresh start, loss weights ramped from the global
step), then validates over the whole validation split with no update, writes the
epoch's sample grid, eval outputs and checkpoint, and yields the metrics. The sweep
trainable loops over it and reports; the single-training CLI loops and prints; a
test takes two epochs with ``itertools.islice``. Nothing is logged anywhere but the
run directory: who sends the metrics where is the caller's business.
"""

from __future__ import annotations

import json
import math
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from vunet_core import metrics as m
from vunet_core import schedules
from vunet_core.checkpoint import (
    CHECKPOINT_NAME,
    TrainingState,
    check_same_architecture,
    checkpoint_config,
    read_checkpoint,
    restore,
    save_checkpoint,
)
from vunet_core.config import Config, ConfigError, OptimizerConfig, render_config
from vunet_core.data import Batch, PairDataset, Splits, check_data, iterate_batches, prepare_data
from vunet_core.evaluation import EvalJob, reference_floors, run_evaluation
from vunet_core.grids import sample_grid, save_grid
from vunet_core.losses import compute_losses, linear_window, loss_weights
from vunet_core.model import VUNet, count_parameters
from vunet_core.perceptual import PerceptualLoss, check_vgg_weights


class DivergedError(RuntimeError):
    """A loss became non-finite; the sweep records such trials as diverged."""

    def __init__(self, step: int, term: str, value: float) -> None:
        super().__init__(f"loss {term} became non-finite ({value}) at step {step}")
        self.step, self.term, self.value = step, term, value


@dataclass
class EpochResult:
    epoch: int  # 1-based number of the epoch just finished
    step: int  # optimizer steps completed so far
    metrics: dict[str, float]
    sample_grid: Path
    eval_dir: Path | None
    checkpoint: Path


def lr_at(step: int, opt: OptimizerConfig) -> float:
    """Flat `lr` until lr_decay_begin, then linear to lr_end at lr_decay_end (spec §7.1)."""
    if opt.lr_decay_end <= opt.lr_decay_begin:
        return opt.lr if step <= opt.lr_decay_end else opt.lr_end
    return linear_window(step, opt.lr_decay_begin, opt.lr_decay_end, opt.lr, opt.lr_end)


def make_optimizer(model: torch.nn.Module, opt: OptimizerConfig) -> torch.optim.Adam:
    """Adam with the original betas (spec §7.4); the fused kernel is the same update, faster."""
    return torch.optim.Adam(model.parameters(), lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps, fused=True)


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training/device is cuda but no CUDA device is available")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 natively: a CPU with AVX512-BF16 or AMX (oneDNN's fast kernels)."""
    if device.type != "cpu":
        return False  # CUDA: auto stays fp32 until bf16 is measured there (set precision bf16 to use it)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu has no public form of these
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_precision(name: str, device: torch.device) -> str:
    """`training/precision` on this device: fp32 or bf16 (auto: bf16 where it is native, see native_bf16)."""
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return name


def steps_per_epoch(cfg: Config, num_train: int) -> int:
    return cfg.training.steps_per_epoch or math.ceil(num_train / cfg.training.batch_size)


def run_config(cfg: Config, num_train: int) -> Config:
    """The config training computes with: schedules as steps of this run (vunet_core.schedules)."""
    return schedules.in_steps(cfg, schedules.total_steps(cfg, num_train))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_batches(train: PairDataset, cfg: Config, epoch: int, skip: int) -> Iterator[Batch]:
    """This epoch's batches: passes over a permutation seeded by (seed, epoch), wrapped."""
    rng = np.random.default_rng([cfg.training.seed % 2**32, epoch])
    total = steps_per_epoch(cfg, len(train))
    done = 0
    while done < total:
        for batch in iterate_batches(train, cfg.training.batch_size, shuffle=True, rng=rng, wrap=True):
            if done >= total:
                return
            if done >= skip:
                yield batch
            done += 1


class _Run:
    """Model, optimizer, data and counters of one training run."""

    def __init__(
        self, cfg: Config, out_dir: Path, resume: Path | None, progress: bool, splits: Splits | None = None
    ) -> None:
        self.out_dir = out_dir
        self.progress = progress
        payload = read_checkpoint(resume) if resume is not None else None
        if payload is not None and resume is not None:
            check_same_architecture(cfg, checkpoint_config(payload), resume)
            if payload.get("optimizer") is None:
                raise ConfigError(
                    f"checkpoint {resume}: holds model weights only (its optimizer state was dropped), so "
                    "training cannot continue from it exactly; evaluate it, or train the config from scratch"
                )
        if cfg.training.num_threads:
            torch.set_num_threads(cfg.training.num_threads)
        _seed_everything(cfg.training.seed)
        self.device = select_device(cfg.training.device)
        self.precision = resolve_precision(cfg.training.precision, self.device)
        self.splits: Splits = (
            splits if splits is not None else prepare_data(cfg, progress=progress, report=_note if progress else None)
        )
        # Everything below computes with schedules in this run's steps; the run directory,
        # the checkpoint and the caller keep `cfg` as written (fractions stay fractions).
        self.cfg = run_config(cfg, len(self.splits.train))
        if progress:
            total = schedules.total_steps(cfg, len(self.splits.train))
            _note("schedules: " + "; ".join(schedules.describe_schedules(cfg, total)))
            auto = " (auto)" if cfg.training.precision == "auto" else ""
            _note(f"training step: {self.precision}{auto} on {self.device.type}, {torch.get_num_threads()} threads")
            before = checkpoint_config(payload) if payload is not None else None
            if before is not None and (was := schedules.total_steps(before, len(self.splits.train))) != total:
                lines = schedules.schedule_mapping(before, was, cfg, total)
                _note("the run's length changed since the checkpoint: " + "; ".join(lines))
        self.model = VUNet(cfg.model).to(self.device)
        if cfg.training.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        p = cfg.losses.perceptual
        self.perceptual = PerceptualLoss(p).to(self.device) if p.vgg_weights else None
        self.optimizer = make_optimizer(self.model, cfg.optimizer)
        if payload is not None:
            self.state = restore(payload, self.model, self.optimizer)
            self.state.config = cfg
        else:
            self.state = TrainingState(step=0, epoch=0, steps_into_epoch=0, config=cfg)
            self._data_dependent_init()
        self.floors = reference_floors(self.splits.train, self.splits.val)  # once per run: the data's yardstick
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(render_config(cfg))

    def _data_dependent_init(self) -> None:
        """Spec §2.2: one train-mode pass on init_batches * batch_size training images."""
        n = min(len(self.splits.train), self.cfg.training.init_batches * self.cfg.training.batch_size)
        idx = np.random.default_rng([self.cfg.training.seed % 2**32, 2**31]).permutation(len(self.splits.train))[:n]
        batch = self.splits.train.batch(idx)
        self.model.train()
        self.model.data_dependent_init(self._x(batch.pose), self._x(batch.appearance))

    def _x(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device, non_blocking=True)
        return t.contiguous(memory_format=torch.channels_last) if self.cfg.training.channels_last else t

    def _autocast(self) -> torch.autocast | nullcontext[None]:
        """bf16 autocast of the training forward (convolutions and matmuls in bf16, weights fp32).

        On CPU this uses AVX512-BF16 / AMX through oneDNN where the CPU has them (elsewhere
        bf16 is emulated and slower). Validation and eval outputs always run in fp32.
        """
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def checkpoint(self) -> Path:
        return save_checkpoint(self.out_dir / "checkpoints" / CHECKPOINT_NAME, self.model, self.optimizer, self.state)

    def train_step(self, batch: Batch) -> dict[str, float]:
        step = self.state.step
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(step, self.cfg.optimizer)
        with self._autocast():
            out = self.model(self._x(batch.pose), self._x(batch.appearance), mode="train")
            if self.precision == "bf16":  # the loss terms see fp32 outputs: L1 means and KL sums keep fp32 accuracy
                out = out.float()
            losses = compute_losses(self.cfg.losses, step, self._x(batch.target), out, self.perceptual)
        values = {name: float(v.detach()) for name, v in losses["batch"].items()}
        for name, value in values.items():
            if not math.isfinite(value):
                bad = next((n for n, v in values.items() if n != "total" and not math.isfinite(v)), name)
                raise DivergedError(step, bad, values[bad])
        self.optimizer.zero_grad(set_to_none=True)
        losses["batch"]["total"].backward()
        if self.cfg.optimizer.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optimizer.grad_clip_norm)
        self.optimizer.step()
        self.state.step += 1
        return values

    def train_epoch(self) -> dict[str, float]:
        cfg, epoch = self.cfg, self.state.epoch
        total = steps_per_epoch(cfg, len(self.splits.train))
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        data_s = 0.0
        self.model.train()
        start = time.perf_counter()
        batches = _epoch_batches(self.splits.train, cfg, epoch, self.state.steps_into_epoch)
        bar = tqdm(
            total=total, initial=self.state.steps_into_epoch, desc=f"epoch {epoch + 1}", disable=not self.progress
        )
        try:
            while True:
                t0 = time.perf_counter()
                batch = next(batches, None)
                data_s += time.perf_counter() - t0
                if batch is None:
                    break
                for name, value in self.train_step(batch).items():
                    sums[name] += value
                    counts[name] += 1
                self.state.steps_into_epoch += 1
                bar.update(1)
                bar.set_postfix(total=f"{sums['total'] / counts['total']:.4g}", refresh=False)
        except KeyboardInterrupt:
            self.checkpoint()  # Ctrl-C: keep what was trained; resuming continues mid-epoch exactly
            raise
        finally:
            bar.close()
        train_s = time.perf_counter() - start
        steps = max(1, self.state.steps_into_epoch)
        metrics = {m.train_loss(k): sums[k] / counts[k] for k in sums}
        metrics.update({m.train_weight(k): w for k, w in loss_weights(cfg.losses, self.state.step).items()})
        metrics[m.TRAIN_LR] = lr_at(self.state.step, cfg.optimizer)
        metrics[m.TRAIN_IMG_PER_S] = steps * cfg.training.batch_size / max(train_s, 1e-9)
        metrics[m.DATA_FRACTION] = data_s / max(train_s, 1e-9)
        return metrics

    def write_eval(self, epoch_number: int) -> bool:
        every = self.cfg.eval.every_n_epochs
        last = epoch_number == self.cfg.training.num_epochs
        return last or (every > 0 and epoch_number % every == 0)


def _note(line: str) -> None:
    """Data notes (e.g. images the filter dropped) go to stderr beside the progress bars."""
    print(line, file=sys.stderr, flush=True)


def train_epochs(
    cfg: Config, out_dir: str | Path, *, resume: str | Path | None = None, progress: bool | None = None
) -> Iterator[EpochResult]:
    """Train `cfg.training.num_epochs` epochs (continuing from `resume`), yielding each epoch's result."""
    out = Path(out_dir).resolve()
    run = _Run(
        cfg, out, Path(resume) if resume is not None else None, cfg.training.progress if progress is None else progress
    )
    while run.state.epoch < cfg.training.num_epochs:
        epoch_start = time.perf_counter()
        metrics = run.train_epoch()
        number = run.state.epoch + 1
        eval_dir = out / "eval" / f"epoch_{number:04d}" if run.write_eval(number) else None
        job = EvalJob(run.model, run.splits.val, run.cfg, run.state.step, run.perceptual, run.device)
        metrics.update(run_evaluation(job, eval_dir))
        metrics.update(run.floors)
        grid = sample_grid(run.model, run.splits.val, cfg.eval.num_grid_examples, run.device)
        grid_path = save_grid(grid, out / "samples" / f"epoch_{number:04d}.png")
        run.state.epoch, run.state.steps_into_epoch = number, 0
        metrics[m.EPOCH_S] = time.perf_counter() - epoch_start
        ckpt = run.checkpoint()
        with open(out / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps({"epoch": number, "step": run.state.step, **metrics}) + "\n")
        yield EpochResult(number, run.state.step, metrics, grid_path, eval_dir, ckpt)


def check_inputs(cfg: Config) -> None:
    """Cheap checks of everything a run reads (dataset, VGG weights) before compute starts."""
    check_data(cfg)
    if cfg.losses.perceptual.vgg_weights:
        check_vgg_weights(cfg.losses.perceptual.vgg_weights)


def evaluate_checkpoint(cfg: Config, checkpoint: Path) -> tuple[Path, dict[str, float]]:
    """Evaluate a checkpoint on `cfg`'s validation split; eval outputs next to the checkpoint's run."""
    payload = read_checkpoint(checkpoint)
    check_same_architecture(cfg, checkpoint_config(payload), checkpoint)
    _seed_everything(cfg.training.seed)
    device = select_device(cfg.training.device)
    splits = prepare_data(cfg, progress=cfg.training.progress)
    model = VUNet(cfg.model).to(device)
    state = restore(payload, model, None, restore_rng=False)
    p = cfg.losses.perceptual
    perceptual = PerceptualLoss(p).to(device) if p.vgg_weights else None
    out_dir = checkpoint.resolve().parent.parent / "eval" / f"step_{state.step:07d}"
    job = EvalJob(model, splits.val, run_config(cfg, len(splits.train)), state.step, perceptual, device)
    metrics = run_evaluation(job, out_dir)
    return out_dir, metrics


class StepProbe(NamedTuple):
    seconds: float  # one training step
    num_parameters: int
    peak_gpu_bytes: int = 0  # CUDA memory a training step needs at its peak (0 on CPU)


def probe_step(cfg: Config, splits: Splits, repeats: int = 2) -> StepProbe:
    """Time one training step of `cfg` (model built and initialized; for --dry-run estimates)
    and, on CUDA, measure its peak memory (model, optimizer state, activations, gradients)."""
    with tempfile.TemporaryDirectory() as tmp:
        run = _Run(cfg, Path(tmp), None, progress=False, splits=splits)
        cuda = run.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(run.device)
        batch = next(_epoch_batches(splits.train, cfg, 0, 0))
        run.train_step(batch)  # warm-up (the first step also allocates Adam's state)
        start = time.perf_counter()
        for _ in range(repeats):
            run.train_step(batch)
        if cuda:
            torch.cuda.synchronize(run.device)
        seconds = (time.perf_counter() - start) / repeats
        peak = int(torch.cuda.max_memory_allocated(run.device)) if cuda else 0
        return StepProbe(seconds, count_parameters(run.model), peak)
