"""The training loop: ``train(cfg, run_dir, resume=False) -> TrainResult`` (plain PyTorch).

One optimizer step per batch (per process): forward the observation, ``Student.losses`` against the
targets, backward, gradient clipping, AdamW, the warm-up + cosine schedule. Around it: a run directory
(``riskdistill.runs.create_run_dir``), ``metrics.csv``, a rich progress bar, validation at intervals,
checkpoints (``training.checkpoint``) and resume that refuses config drift.

Data parallel: under ``torchrun`` or :func:`launch` with ``nproc > 1`` every process trains on its share of
each epoch (``DistributedSampler`` order), ``DistributedDataParallel`` averages the gradients, and only
rank 0 writes the run directory, logs and checkpoints.

Resume equivalence: the model is built from ``cfg.seed``; the data order is a function of ``(seed, epoch)``
and the checkpoint stores how many batches of the epoch were consumed; the DataLoader has its own
generator, so no global RNG draw depends on when an iterator is created; the RNG states of every rank,
the optimizer, scheduler and grad-scaler states are restored. Training N steps straight or k steps,
stopping and resuming to N gives the same weights.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import random
import shutil
import signal
import threading
import time
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from riskdistill.contracts.batch import Batch, Observation
from riskdistill.io import atomic_write_json
from riskdistill.models import build_student, save_student
from riskdistill.models.io import load_init_weights
from riskdistill.runs import create_run_dir
from riskdistill.training import distributed as ddp
from riskdistill.training.checkpoint import (
    FINAL,
    CheckpointError,
    TrainerState,
    capture_rng,
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    load_model_weights,
    restore_rng,
    save_checkpoint,
)
from riskdistill.training.config import RESUME_ALLOWED, TrainConfig, config_drift
from riskdistill.training.data import (
    ResumableSampler,
    build_datasets,
    data_signature,
    make_loader,
    process_failure,
    repeat_factors,
    skip_reason,
)
from riskdistill.training.logger import MetricsLogger, risk_map_grid

log = logging.getLogger("riskdistill.training")

RESULT = "result.json"


class TrainingProcessError(RuntimeError):
    """A process started by :func:`launch` failed (the message holds its traceback)."""


class ConfigDriftError(ValueError):
    """Resuming with a config that differs from the checkpoint's in keys outside ``RESUME_ALLOWED``."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    epoch: int
    total_steps: int
    checkpoint: Path | None  # the last checkpoint written (``final`` when the run finished)
    train_losses: dict[str, float] = field(default_factory=dict)  # mean over the last log interval
    val_metrics: dict[str, float] = field(default_factory=dict)  # the last validation
    samples_per_s: float = 0.0  # training throughput of this invocation, all processes together
    wall_s: float = 0.0
    world_size: int = 1
    resumed_from: Path | None = None
    interrupted: bool = False
    replica_max_abs_diff: float = 0.0  # DDP: largest parameter difference between ranks at the end
    skipped_frames: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("run_dir", "checkpoint", "resumed_from"):
            d[k] = None if d[k] is None else str(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainResult:
        d = dict(d)
        for k in ("run_dir", "checkpoint", "resumed_from"):
            d[k] = None if d[k] is None else Path(d[k])
        return cls(**d)


# ------------------------------------------------------------------------------------------ helpers
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def select_device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' but CUDA is not available (use device='cpu' or 'auto')")
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """LR multiplier after ``step`` optimizer steps: linear warm-up, then cosine to ``min_lr_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    t = min(max(step - warmup_steps, 0) / span, 1.0)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices / kernels (``ndim >= 2``), none on biases, norms and embeddings' scales."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def prepare_observation(obs: Observation) -> Observation:
    """uint8 images (``image_dtype="uint8"``) -> float32 in [0, 1] on the device."""
    if obs.images_uint8:
        obs = replace(obs, images=obs.images.float().div_(255.0))
        if obs.prev_images is not None:
            obs = replace(obs, prev_images=obs.prev_images.float().div_(255.0))
    return obs


def bev_grad_norms(
    outputs: dict[str, torch.Tensor], losses: dict[str, torch.Tensor], key: str = "bev"
) -> dict[str, float]:
    """``{"bev_grad_<head>": ||d loss_head / d bev||}``: the L2 norm, over the batch, of the gradient each
    weighted head loss sends into the shared BEV features ``outputs["bev"] [B, C, Hb, Wb]`` (0 for a loss
    that does not reach them, e.g. one on the camera features). How strongly the RiskHead shapes the
    features next to the planner is the study's diagnostic for "did the risk loss matter at all". One
    partial backward per head (through the head only, graph retained), so it is cheap; it changes no
    parameter gradient and draws no random number, so training numbers are the same with or without it.
    ``key="lifted"``: the same at ``outputs["lifted"]``, the BEV encoder's input (``lifted_grad_<head>``),
    where a RiskHead with ``risk_reads="lifted"`` attaches."""
    bev = outputs.get(key)
    if bev is None or not bev.requires_grad:
        return {}
    out: dict[str, float] = {}
    for name, loss in losses.items():
        if name == "total":
            continue
        g = None
        if loss.requires_grad:
            (g,) = torch.autograd.grad(loss, bev, retain_graph=True, allow_unused=True)
        out[f"{key}_grad_{name}"] = 0.0 if g is None else float(g.detach().float().norm())
    return out


def _remove_log_handler(run_dir: Path) -> None:
    lg = logging.getLogger("riskdistill")
    target = str((run_dir / "log.txt").resolve())
    for h in list(lg.handlers):
        if isinstance(h, logging.FileHandler) and str(Path(h.baseFilename).resolve()) == target:
            lg.removeHandler(h)
            h.close()


# ------------------------------------------------------------------------------------------ trainer
class _Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, info: ddp.DistInfo, device):
        self.cfg, self.run_dir, self.info, self.device = cfg, run_dir, info, device
        self.amp_dtype = None
        if cfg.amp != "off":
            if device.type == "cuda":
                self.amp_dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
            elif info.is_main:
                log.info("amp=%s ignored: mixed precision is used on CUDA only", cfg.amp)
        if device.type == "cpu":
            threads = cfg.cpu_threads
            if threads is None and info.enabled:
                local = int(os.environ.get("LOCAL_WORLD_SIZE", str(info.world_size)))
                threads = max(1, (os.cpu_count() or 1) // max(local, 1))
            if threads is not None:
                torch.set_num_threads(threads)

        ckpt = None
        if resume:
            ckpt = latest_checkpoint(run_dir)
            if ckpt is None:
                raise CheckpointError(
                    f"nothing to resume: {run_dir / 'checkpoints' / 'latest.json'} is missing"
                )
        elif latest_checkpoint(run_dir) is not None:
            raise CheckpointError(
                f"{run_dir} already holds checkpoints: resume it (resume=True / --resume) or use a new folder"
            )
        self.loaded = load_checkpoint(ckpt) if ckpt is not None else None
        self.data_signature = data_signature(cfg.data.root, cfg.data.extra_roots)
        if self.loaded is not None:
            self._check_drift(self.loaded.config, self.loaded.trainer)
            self._check_data(self.loaded.trainer.data, self.data_signature)
        if info.is_main:
            if self.loaded is not None and (run_dir / "run.json").is_file():  # keep the earlier invocation's
                shutil.copy2(
                    run_dir / "run.json", run_dir / f"run.before_step_{self.loaded.trainer.step}.json"
                )
            create_run_dir(
                run_dir,
                "train",
                cfg.to_dict(),
                seeds={"seed": cfg.seed, "split_seed": cfg.data.split_seed, "shuffle_seed": cfg.shuffle_seed},
            )
            if ckpt is not None:
                log.info("resuming from %s (step %d)", ckpt, self.loaded.trainer.step)

        # model: built from the seed (identical on every rank), then maybe overwritten by the checkpoint
        seed_everything(cfg.seed)
        self.student = build_student(cfg.model)
        self.grid = cfg.model.bev_grid()
        if self.loaded is not None:
            load_model_weights(self.student, self.loaded.path)
        elif cfg.init_weights is not None:
            copied = load_init_weights(self.student, cfg.init_weights, tuple(cfg.init_weights_prefixes))
            log.info("initialised %d tensors from %s", len(copied), cfg.init_weights)
        self.student.to(device)
        if cfg.channels_last:
            self.student.to(memory_format=torch.channels_last)
        self._losses_take_step = "step" in inspect.signature(self.student.losses).parameters

        # data
        self.train_ds, self.val_ds = build_datasets(cfg, self.student.target_names, self.grid)
        repeats = repeat_factors(self.train_ds, cfg.data.scenario_repeat)
        self.sampler = ResumableSampler(self.train_ds, info.world_size, info.rank, cfg.seed, repeats)
        bs = cfg.data.batch_size
        self.steps_per_epoch = self.sampler.samples_per_epoch // bs
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{cfg.data.root}: {len(self.train_ds)} training frames give "
                f"{self.sampler.samples_per_epoch} per process, fewer than one batch of {bs}: "
                f"lower data.batch_size"
            )
        pin = device.type == "cuda"
        self.train_loader = make_loader(
            self.train_ds, bs, self.sampler, cfg.data.num_workers, drop_last=True, pin_memory=pin,
            persistent=not self.train_ds.epoch_dependent,  # samples follow set_epoch: fresh workers
        )  # fmt: skip
        self.val_loader = None
        if self.val_ds is not None:
            shard = list(range(info.rank, len(self.val_ds), info.world_size))
            self.val_loader = make_loader(
                self.val_ds, cfg.data.val_batch_size or bs, shard, cfg.data.num_workers, drop_last=False,
                pin_memory=pin,
            )  # fmt: skip
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.sched_steps = cfg.schedule.total_steps or self.total_steps

        # optimisation
        o = cfg.optimizer
        self.optimizer = torch.optim.AdamW(
            param_groups(self.student, o.weight_decay), lr=o.lr, betas=tuple(o.betas), eps=o.eps
        )
        s = cfg.schedule
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda k: lr_factor(k, s.warmup_steps, self.sched_steps, s.min_lr_ratio)
        )
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.state = TrainerState(world_size=info.world_size, data=self.data_signature)
        if self.loaded is not None:
            self.optimizer.load_state_dict(self.loaded.optimizer)
            self.scheduler.load_state_dict(self.loaded.scheduler)
            if self.scaler is not None and self.loaded.grad_scaler is not None:
                self.scaler.load_state_dict(self.loaded.grad_scaler)
            self.state = replace(self.loaded.trainer, data=self.data_signature)
            ranks = self.loaded.rng_per_rank
            restore_rng(ranks[info.rank] if info.rank < len(ranks) else ranks[0])

        self.model: torch.nn.Module = self.student
        if info.enabled:
            # depthwise convolutions hand DDP gradients in another memory layout: a copy, not an error
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.student,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=cfg.ddp_find_unused_parameters,
            )
        self.logger = (
            MetricsLogger(run_dir, cfg.tensorboard, resume_step=self.state.step if self.loaded else None)
            if info.is_main
            else None
        )
        self._stop = False
        self._bev_grads: dict[str, float] = {}
        self._lr = self.optimizer.param_groups[0]["lr"]
        self.last_ckpt: Path | None = self.loaded.path if self.loaded is not None else None

    # -------------------------------------------------------------------------------------- resume
    def _check_drift(self, saved: dict[str, Any], trainer: TrainerState) -> None:
        drift = config_drift(saved, self.cfg.to_dict())
        bad = {k: v for k, v in drift.items() if k not in RESUME_ALLOWED}
        if bad:
            lines = "\n".join(f"  {k}: checkpoint {a!r} != now {b!r}" for k, (a, b) in bad.items())
            raise ConfigDriftError(
                f"refusing to resume {self.run_dir}: the config differs from the checkpoint's in "
                f"{sorted(bad)}:\n{lines}\n(keys that may change on resume: {sorted(RESUME_ALLOWED)})"
            )
        if trainer.world_size != self.info.world_size:
            raise ConfigDriftError(
                f"refusing to resume {self.run_dir}: it was trained with {trainer.world_size} process(es), "
                f"now {self.info.world_size} (the data order and the effective batch would change)"
            )
        if self.cfg.max_steps is not None and self.cfg.max_steps < trainer.step:
            raise ConfigDriftError(
                f"refusing to resume {self.run_dir}: max_steps={self.cfg.max_steps} is below the "
                f"checkpoint's step {trainer.step} (max_steps may only be extended)"
            )

    def _check_data(self, saved: dict[str, Any] | None, now: dict[str, Any] | None) -> None:
        """Refuse to resume on a data set that changed since the checkpoint (checkpoints written before the
        signature existed are not checked)."""
        if saved is None or now is None:
            return
        diff = {
            k: (saved.get(k), now.get(k)) for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)
        }
        if diff:
            lines = "\n".join(f"  {k}: checkpoint {a!r} != now {b!r}" for k, (a, b) in diff.items())
            raise ConfigDriftError(
                f"refusing to resume {self.run_dir}: the data set {self.cfg.data.root} differs from the one "
                f"the checkpoint was trained on in {sorted(diff)}:\n{lines}"
            )

    # -------------------------------------------------------------------------------------- steps
    def _autocast(self):
        return torch.autocast(
            device_type=self.device.type,
            dtype=self.amp_dtype or torch.bfloat16,
            enabled=self.amp_dtype is not None,
        )

    def _losses(
        self, outputs: dict[str, torch.Tensor], batch: Batch, step: int | None
    ) -> dict[str, torch.Tensor]:
        if self._losses_take_step:
            return self.student.losses(outputs, batch.targets, step=step)
        return self.student.losses(outputs, batch.targets)

    def _train_step(self, batch: Batch) -> dict[str, float]:
        batch = batch.to(self.device, non_blocking=True)
        obs = prepare_observation(batch.observation)
        self.model.train()
        every = self.cfg.bev_grad_every_steps
        probe = bool(every) and (self.state.step + 1) % every == 0
        captured: dict[str, torch.Tensor] = {}
        encoder = getattr(self.student, "bev_encoder", None)
        # the BEV tensor the heads read, taken inside the module: DDP hands out copies of the outputs
        handle = (
            encoder.register_forward_hook(lambda _m, i, o: captured.update(bev=o, lifted=i[0]))
            if probe and encoder is not None
            else None
        )
        try:
            with self._autocast():
                outputs = self.model(obs)
                losses = self._losses(outputs, batch, self.state.step)
        finally:
            if handle is not None:
                handle.remove()
        self._bev_grads = {}
        if probe:
            self._bev_grads = bev_grad_norms({"bev": captured.get("bev", outputs.get("bev"))}, losses)
            if self.student.cfg.risk_reads == "lifted":  # also where its RiskHead attaches
                self._bev_grads.update(bev_grad_norms(captured, losses, key="lifted"))
        self._log_risk_images(outputs, batch)
        loss = losses["total"]
        self.optimizer.zero_grad(set_to_none=True)
        clip = self.cfg.grad_clip_norm or float("inf")
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
            self.scaler.step(self.optimizer)  # skips the step on inf/NaN gradients and lowers the scale
            self.scaler.update()
        else:
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
            if not torch.isfinite(grad_norm):  # gradients are synchronised: every rank raises together
                raise FloatingPointError(
                    f"non-finite gradient norm at step {self.state.step} (loss {float(loss)}); frames "
                    f"{batch.frame_ids} on rank {self.info.rank}"
                )
            self.optimizer.step()
        self._lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used
        self.scheduler.step()
        out = {k: float(v.detach()) for k, v in losses.items()}
        out["grad_norm"] = float(grad_norm)
        return out

    def _log_risk_images(self, outputs: dict[str, torch.Tensor], batch: Batch) -> None:
        """Every ``tensorboard_images_every_steps`` (rank 0, with TensorBoard): the predicted risk maps of the
        batch's first samples beside the teacher's (``train/risk_maps``)."""
        every, step = self.cfg.tensorboard_images_every_steps, self.state.step + 1  # the step being trained
        if (
            self.logger is None
            or self.logger.tb is None
            or not every
            or step % every
            or "risk" not in outputs
        ):
            return
        target = batch.targets.risk_map
        teacher = None if target is None else target.detach().float().cpu().numpy()
        self.logger.log_image(
            "train/risk_maps", risk_map_grid(outputs["risk"].detach().float().cpu().numpy(), teacher), step
        )

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """``Student.metrics`` and the losses averaged over the validation frames (all ranks' shares)."""
        if self.val_loader is None:
            return {}
        self.student.eval()
        sums: dict[str, float] = defaultdict(float)
        n = 0
        for batch in self.val_loader:
            batch = batch.to(self.device, non_blocking=True)
            obs = prepare_observation(batch.observation)
            with self._autocast():
                outputs = self.student(obs)
                losses = self._losses(outputs, batch, self.state.step)
                metrics = self.student.metrics(outputs, batch.targets)
            b = len(batch)
            for k, v in metrics.items():
                sums[k] += float(v) * b
            for k, v in losses.items():
                sums[f"loss_{k}"] += float(v) * b
            n += b
        parts = ddp.gather_objects((dict(sums), n), self.info)
        total: dict[str, float] = defaultdict(float)
        for s, _ in parts:
            for k, v in s.items():
                total[k] += v
        count = sum(c for _, c in parts)
        return {k: v / count for k, v in sorted(total.items())} if count else {}

    def _save(self, name: str) -> Path:
        rng = ddp.gather_objects(capture_rng(), self.info)  # every rank takes part
        path = self.run_dir / "checkpoints" / name
        if self.info.is_main:
            path = save_checkpoint(
                self.run_dir,
                name,
                save_model=lambda folder: save_student(self.student, folder),
                config=self.cfg.to_dict(),
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                scaler=self.scaler,
                rng_per_rank=rng,
                trainer=self.state,
                keep_last=self.cfg.keep_last_checkpoints,
            )
            log.info("checkpoint %s (step %d)", path, self.state.step)
        ddp.barrier(self.info)
        self.last_ckpt = path
        return path

    # -------------------------------------------------------------------------------------- loop
    def release_loaders(self) -> None:
        """Stop the data loaders' worker processes now. Persistent workers otherwise live until the trainer
        is garbage-collected, which may happen in a process forked later (the pipeline's open-loop loader
        worker), where PyTorch cannot stop them and prints an AssertionError."""
        self.train_loader = self.val_loader = None

    def fit(self) -> TrainResult:
        cfg, st, info = self.cfg, self.state, self.info
        t_start = time.perf_counter()
        result = TrainResult(
            run_dir=self.run_dir,
            step=st.step,
            epoch=st.epoch,
            total_steps=self.total_steps,
            checkpoint=self.last_ckpt,
            world_size=info.world_size,
            resumed_from=self.loaded.path if self.loaded is not None else None,
        )
        if info.is_main:
            n_params = sum(p.numel() for p in self.student.parameters())
            log.info(
                "training %s: %d parameters, %d train / %d val frames, %d steps/epoch, steps %d -> %d, "
                "%d process(es) on %s, risk_targets=%s",
                cfg.model.preset, n_params, len(self.train_ds), len(self.val_ds or []), self.steps_per_epoch,
                st.step, self.total_steps, info.world_size, self.device, cfg.risk_targets,
            )  # fmt: skip
        old_handlers = self._install_signal_handlers()
        acc: dict[str, float] = defaultdict(float)
        acc_steps, acc_samples, acc_time = 0, 0, 0.0
        run_samples, run_time = 0, 0.0
        skipped: list[str] = []
        show = info.is_main and cfg.progress
        progress = Progress(
            TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[status]}"), disable=not show,
        )  # fmt: skip
        try:
            with progress:
                task = progress.add_task("train", total=self.total_steps, completed=st.step, status="")
                while st.step < self.total_steps and not self._stop:
                    self.train_ds.set_epoch(st.epoch)
                    self.sampler.set_epoch(st.epoch, start=st.batch_in_epoch * cfg.data.batch_size)
                    t0 = time.perf_counter()
                    for batch in self.train_loader:
                        losses = self._train_step(batch)
                        for fid in batch.skipped:
                            if fid not in skipped:  # the reason goes to log.txt, once per frame
                                log.warning("skipped frame %s: %s", fid, skip_reason(self.train_ds, fid))
                        skipped += batch.skipped
                        st.step += 1
                        st.batch_in_epoch += 1
                        st.samples_seen += len(batch) * info.world_size
                        if st.batch_in_epoch >= self.steps_per_epoch:
                            st.epoch += 1
                            st.batch_in_epoch = 0
                        dt = time.perf_counter() - t0
                        for k, v in losses.items():
                            acc[k] += v
                        acc_steps += 1
                        acc_samples += len(batch) * info.world_size
                        acc_time += dt
                        run_samples += len(batch) * info.world_size
                        run_time += dt
                        progress.update(task, completed=st.step, status=f"loss {losses['total']:.4f}")

                        last = st.step >= self.total_steps
                        if self._bev_grads:
                            self._log_bev_grads(self._bev_grads)
                        if st.step % cfg.log_every_steps == 0 or last:
                            result.train_losses = self._log_train(acc, acc_steps, acc_samples, acc_time)
                            acc.clear()
                            acc_steps, acc_samples, acc_time = 0, 0, 0.0
                        if cfg.val_every_steps and st.step % cfg.val_every_steps == 0 and not last:
                            result.val_metrics = self._log_val()
                        stop = ddp.broadcast_flag(self._stop, info, self.device)
                        self._stop = stop
                        if (cfg.checkpoint_every_steps and st.step % cfg.checkpoint_every_steps == 0) or (
                            stop and not last
                        ):
                            self._save(checkpoint_name(st.step))
                        if last or stop:
                            break
                        t0 = time.perf_counter()
            if self._stop and st.step < self.total_steps:
                result.interrupted = True
                if info.is_main:
                    log.warning("interrupted at step %d; resume with resume=True / --resume", st.step)
            else:
                result.val_metrics = self._log_val() or result.val_metrics
                self._save(FINAL)
        finally:
            self._restore_signal_handlers(old_handlers)
            if self.logger is not None:
                self.logger.close()
        result.replica_max_abs_diff = ddp.replica_max_abs_diff(self.student, info, self.device)
        result.step, result.epoch, result.checkpoint = st.step, st.epoch, self.last_ckpt
        result.samples_per_s = run_samples / run_time if run_time > 0 else 0.0
        result.wall_s = time.perf_counter() - t_start
        result.skipped_frames = sorted(set(skipped))
        if info.is_main:
            atomic_write_json(self.run_dir / RESULT, result.to_dict())
            log.info("done: step %d, %.2f samples/s, %s", st.step, result.samples_per_s, result.checkpoint)
        return result

    def _log_train(self, acc: dict[str, float], n: int, samples: int, seconds: float) -> dict[str, float]:
        means = {f"loss_{k}" if k != "grad_norm" else k: v / max(n, 1) for k, v in acc.items()}
        means = ddp.all_reduce_sum(means, self.info, torch.device("cpu"))
        means = {k: v / self.info.world_size for k, v in means.items()}
        row = {**means, "lr": self._lr, "samples_per_s": samples / max(seconds, 1e-9)}
        if self.logger is not None:
            self.logger.log(self.state.step, self.state.epoch, "train", row)
            log.info("step %d: %s", self.state.step, ", ".join(f"{k}={v:.4g}" for k, v in row.items()))
        return {k[len("loss_") :]: v for k, v in means.items() if k.startswith("loss_")}

    def _log_bev_grads(self, norms: dict[str, float]) -> None:
        """A ``split="bev_grad"`` row of ``metrics.csv``: :func:`bev_grad_norms` of this step, averaged over
        the processes."""
        means = ddp.all_reduce_sum(norms, self.info, torch.device("cpu"))
        means = {k: v / self.info.world_size for k, v in means.items()}
        if self.logger is not None:
            self.logger.log(self.state.step, self.state.epoch, "bev_grad", means)

    def _log_val(self) -> dict[str, float]:
        metrics = self.validate()
        if metrics and self.logger is not None:
            self.logger.log(self.state.step, self.state.epoch, "val", metrics)
            log.info(
                "val step %d: %s", self.state.step, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
            )
        return metrics

    # -------------------------------------------------------------------------------------- signals
    def _install_signal_handlers(self) -> dict[int, Any]:
        """SIGINT / SIGTERM finish the current step, write a checkpoint and return (resumable)."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame) -> None:
            self._stop = True

        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
        return old

    @staticmethod
    def _restore_signal_handlers(old: dict[int, Any]) -> None:
        for sig, h in old.items():
            signal.signal(sig, h)


# ------------------------------------------------------------------------------------------ entry points
def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False) -> TrainResult:
    """Train (or, with ``resume``, continue from ``<run_dir>/checkpoints/latest.json``) one run.

    Joins the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1). Only rank 0 writes."""
    run_dir = Path(run_dir)
    device = select_device(cfg)
    info = ddp.init_distributed(device.type)
    trainer = None
    try:
        trainer = _Trainer(cfg, run_dir, resume, info, device)
        return trainer.fit()
    finally:
        if trainer is not None:
            trainer.release_loaders()
        ddp.shutdown_distributed(info)
        if info.is_main:
            _remove_log_handler(run_dir)


def _spawned(cfg_dict: dict[str, Any], run_dir: str, resume: bool) -> None:
    train(TrainConfig.from_dict(cfg_dict), run_dir, resume)


def launch(cfg: TrainConfig, run_dir: str | Path, resume: bool = False, nproc: int = 1) -> TrainResult:
    """:func:`train` in this process (``nproc=1``), or in ``nproc`` spawned processes on this machine (gloo
    on the CPU, nccl on CUDA); rank 0's :class:`TrainResult` is read back from ``<run_dir>/result.json``."""
    run_dir = Path(run_dir)
    if nproc <= 1:
        return train(cfg, run_dir, resume)
    if cfg.device != "cpu" and torch.cuda.is_available() and torch.cuda.device_count() < nproc:
        raise ValueError(f"nproc={nproc} but only {torch.cuda.device_count()} CUDA device(s)")
    result_path = run_dir / RESULT
    if result_path.exists():
        result_path.unlink()
    from torch.multiprocessing import ProcessRaisedException

    try:
        ddp.spawn(_spawned, (cfg.to_dict(), str(run_dir), resume), nproc)
    except ProcessRaisedException as exc:  # the child's traceback, ending with its error message
        raise TrainingProcessError(process_failure(str(exc), run_dir)) from None
    from riskdistill.io import load_json_object

    return TrainResult.from_dict(load_json_object(result_path, RuntimeError))
