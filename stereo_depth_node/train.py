"""Training with the paper's recipe: three outputs, 0.5/0.7/1.0 smooth L1, Adam, random crops.

Data: the synthetic generator (default, deterministic by seed and step, so a resumed run sees the
same batches) or a dataset folder for fine-tuning. Checkpoints hold model, optimiser, step and RNG
states for an exact resume. Under torchrun (WORLD_SIZE > 1) the model is wrapped in
DistributedDataParallel and each rank draws its own batches; nothing else changes.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from .checkpoints import load_model, load_torch_file, save_checkpoint
from .data.augment import StereoAugmenter
from .data.batch_source import BatchSource, worker_has_cores
from .data.generator import GeneratorConfig, StereoBatch, SyntheticStereo
from .devices import DTYPES, resolve_device, resolve_precision
from .errors import ConfigurationError
from .images import MIN_SIDE_PX, widen_to_full_range
from .models import build_model
from .neural import (IMAGENET_MEAN, IMAGENET_STD, check_memory_format, resolve_memory_format,
                     use_channels_last)
from .training_history import history_of_weights

LOSS_WEIGHTS = (0.5, 0.7, 1.0)


@dataclass
class TrainConfig:
    model: str = "psmnet_dws"
    max_disparity: int = 192
    crop_height: int = 256
    crop_width: int = 512
    batch_size: int = 4
    lr: float = 1e-3
    # Linear ramp from 0 to lr over these steps of the run, for fine-tuning: a fresh Adam's first
    # updates move every weight by about lr at once (docs/training_notes.md).
    lr_warmup_steps: int = 0
    freeze_batch_norm: bool = False      # BatchNorm keeps its running statistics (train_mode)
    betas: tuple[float, float] = (0.9, 0.999)
    steps: int = 10000
    time_budget_s: float = 0.0           # stop earlier when this wall time is spent (0 = off)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"              # autocast on CUDA; fp32 on the CPU
    checkpoint_every: int = 500
    checkpoint_every_s: float = 0.0      # also save every this many seconds (0 = off)
    # Also keep a copy of the state at every multiple of this step (0 = off) as
    # steps/step_N.pt: the copies a run's shipped average is taken over (stereo-depth average).
    keep_every: int = 0
    validate_every: int = 500
    validation_batches: int = 4
    log_every: int = 10
    out_dir: str = "runs/train"
    init_weights: str | None = None      # fine-tune from these weights
    dataset: str | None = None           # "kitti2015:/path" etc.; None = synthetic generator
    eval_root: str | None = None         # ../shared/data/stereo_eval, validated periodically
    min_layers: int = 5
    max_layers: int = 30
    rich_scenes: bool = False            # curved surfaces, wires, highlights... (generator.py)
    augment: bool = False                # asymmetric view augmentation (data/augment.py)
    ground_share: float = 0.0            # rich scenes with a ground plane (generator.py)
    small_range_share: float = 0.0       # scenes with every disparity scaled down (generator.py)
    # Make the next batch in a worker thread while a step trains: true, false, or auto: on CUDA,
    # and on the CPU where cores are left for the worker's threads (a rule measured on one 2-core
    # machine: batch_source.worker_has_cores).
    batches_ahead: bool | str = "auto"
    # The weights' order (neural.MEMORY_FORMATS). auto: channels-last on the CPU, where a step of
    # config/train_cpu_continue.yaml ran 1.10-1.14x faster in it (docs/training_notes.md);
    # torch's order on CUDA, which nothing has measured against it yet.
    memory_format: str = "auto"

    def __post_init__(self) -> None:
        check_memory_format(self.memory_format)
        if not _is_switch(self.batches_ahead):
            raise ConfigurationError(f"batches_ahead must be true, false or auto, not "
                                     f"{self.batches_ahead!r}")
        self._check_ranges()
        if self.dataset:
            synthetic_only = [name for name in ("rich_scenes", "augment", "ground_share",
                                                "small_range_share") if getattr(self, name)]
            if synthetic_only:
                raise ConfigurationError(
                    f"{', '.join(synthetic_only)} shape the synthetic scenes, and training on "
                    f"dataset {self.dataset!r} would ignore them: turn them off (false / 0)")
        if self.keep_every < 0:
            raise ConfigurationError(f"keep_every must be >= 0 (0 keeps no step copies), not "
                                     f"{self.keep_every}")
        for name in ("ground_share", "small_range_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigurationError(f"{name} must lie in [0, 1], not {getattr(self, name)}")
        if self.ground_share > 0 and not self.rich_scenes:
            raise ConfigurationError("ground_share needs rich_scenes: true (ground planes are "
                                     "drawn in rich scenes only)")

    def _check_ranges(self) -> None:
        """Values that would fail only after the run has begun (a division by zero at the
        first log line, numpy's seed range, the hourglass's multiple of 16) or never stop."""
        at_least = {"steps": 1, "batch_size": 1, "log_every": 1, "checkpoint_every": 1,
                    "validate_every": 0, "validation_batches": 1, "lr_warmup_steps": 0}
        for name, minimum in at_least.items():
            if getattr(self, name) < minimum:
                raise ConfigurationError(f"{name} must be >= {minimum}, not "
                                         f"{getattr(self, name)}")
        if not 0 <= self.seed < 2**32:
            raise ConfigurationError(f"seed must lie in [0, 2**32), not {self.seed}")
        for name in ("crop_height", "crop_width"):
            if getattr(self, name) < MIN_SIDE_PX or getattr(self, name) % 16:
                raise ConfigurationError(f"{name} must be a multiple of 16 of at least "
                                         f"{MIN_SIDE_PX} px, not {getattr(self, name)}")
        for name in ("time_budget_s", "checkpoint_every_s"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ConfigurationError(f"{name} must be a number >= 0 (0 = off), not "
                                         f"{getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigurationError(f"lr must be above 0, not {self.lr}")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, **overrides: Any) -> "TrainConfig":
        if not Path(path).is_file():
            raise ConfigurationError(f"training settings file {os.fspath(path)!r} does not "
                                     f"exist (a YAML file of TrainConfig fields, as in config/)")
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            raise ConfigurationError(f"{os.fspath(path)!r} is not valid YAML: "
                                     f"{getattr(error, 'problem', None) or error}{where}"
                                     ) from None
        if not isinstance(values, dict):
            raise ConfigurationError(f"{os.fspath(path)!r} must hold training settings as "
                                     f"'name: value' lines, not a {type(values).__name__}")
        kinds = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = set(values) - set(kinds)
        if unknown:
            raise ConfigurationError(f"unknown training settings in {os.fspath(path)!r}: "
                                     f"{', '.join(sorted(unknown))}")
        for name, value in values.items():
            _check_setting(path, name, value, kinds[name])
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return cls(**values)


def _is_number(value: Any) -> bool:
    # YAML reads `yes` and `true` as booleans, which Python would take for 1.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_switch(value: Any) -> bool:
    return isinstance(value, bool) or value == "auto"


# What a YAML value of each annotated setting type may be (a whole number passes for a float).
_SETTING_VALUES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (lambda v: _is_number(v) and isinstance(v, int), "a whole number"),
    "float": (_is_number, "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool | str": (_is_switch, "true, false or auto"),
    "str | None": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "tuple[float, float]": (lambda v: isinstance(v, list) and len(v) == 2
                            and all(map(_is_number, v)), "a list of two numbers")}


def _check_setting(path: str | os.PathLike, name: str, value: Any, annotation: str) -> None:
    fits, wanted = _SETTING_VALUES[annotation]
    if not fits(value):
        raise ConfigurationError(f"{os.fspath(path)!r}: {name} must be {wanted}, "
                                 f"got {value!r}")


def sequence_loss(predictions: tuple[torch.Tensor, ...], target: torch.Tensor,
                  valid: torch.Tensor) -> torch.Tensor:
    """0.5 / 0.7 / 1.0 weighted smooth L1 of the three outputs over valid pixels."""
    if not valid.any():
        return sum(p.sum() * 0.0 for p in predictions)
    return sum(w * F.smooth_l1_loss(p[valid], target[valid], reduction="mean")
               for w, p in zip(LOSS_WEIGHTS, predictions))


def learning_rate(config: TrainConfig, step: int) -> float:
    """The rate for the update that takes the run from `step` to `step + 1`."""
    if config.lr_warmup_steps <= 0:
        return config.lr
    return config.lr * min(1.0, (step + 1) / config.lr_warmup_steps)


def train_mode(model: torch.nn.Module, freeze_batch_norm: bool) -> None:
    """model.train(); with `freeze_batch_norm`, BatchNorm layers keep normalising with their
    running statistics and do not update them (their scale and shift still learn). For
    fine-tuning on batches of 4: RAFT-Stereo trains with BatchNorm frozen the same way."""
    model.train()
    if freeze_batch_norm:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


def place_for_training(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> str:
    """Moves `model` to `device` in the config's weight order and sets it training; returns the
    order. An optimiser made afterwards keeps its moments in the same order."""
    model.to(device)
    memory_format = resolve_memory_format(config.memory_format, device)
    if memory_format == "channels_last":
        use_channels_last(model)
    train_mode(model, config.freeze_batch_norm)
    return memory_format


@contextmanager
def evaluation_mode(model: torch.nn.Module) -> Iterator[None]:
    """model.eval() inside the block; afterwards every module gets its own mode back, so that a
    frozen BatchNorm (train_mode) stays frozen after validation."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def valid_mask(disparity: torch.Tensor, max_disparity: int) -> torch.Tensor:
    """Ground truth that exists and lies below the max disparity (the rest is not supervised)."""
    return torch.isfinite(disparity) & (disparity > 0) & (disparity < max_disparity)


def _rng_state() -> dict[str, Any]:
    """RNG states as tensors and plain lists, so that checkpoints load with weights_only=True."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
            "python": [version, list(python_state), gauss]}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    version, python_state, gauss = state["python"]
    random.setstate((version, tuple(python_state), gauss))


def save_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        config: TrainConfig, step: int, samples: int, wall_s: float,
                        history: list[dict[str, Any]]) -> None:
    """Weights in the shipped format plus everything needed to continue bit-exactly, and the
    runs behind the weights this run started from (training_history.py)."""
    tmp = path.with_suffix(".tmp")
    device = next(model.parameters()).device
    # The card names the GPU: "cuda" alone does not tell an H100 run from a laptop's.
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    save_checkpoint(tmp, model, config.model, step=step, samples_seen=samples,
                    wall_time_s=wall_s, optimizer=optimizer.state_dict(), rng=_rng_state(),
                    config=dataclasses.asdict(config), history=history, gpu=gpu)
    os.replace(tmp, path)  # a crash mid-write never leaves a broken checkpoint behind


class _Logger:
    """JSON lines always; TensorBoard too when it is installed (extra 'train')."""

    def __init__(self, out_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self._file = open(out_dir / "log.jsonl", "a") if enabled else None
        self._board = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._board = SummaryWriter(os.fspath(out_dir / "tensorboard"))
            except ImportError:
                pass

    def log(self, step: int, **values: float) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps({"step": step, **values}) + "\n")
        self._file.flush()
        if self._board is not None:
            for key, value in values.items():
                self._board.add_scalar(key, value, step)

    def close(self) -> None:
        if self._file:
            self._file.close()
        if self._board:
            self._board.close()


def synthetic_batches(config: TrainConfig, device: torch.device, rank: int
                      ) -> Callable[[int], StereoBatch]:
    seed = config.seed + 7919 * rank
    generator = SyntheticStereo(
        GeneratorConfig(height=config.crop_height, width=config.crop_width,
                        max_disparity=config.max_disparity, min_layers=config.min_layers,
                        max_layers=config.max_layers, rich=config.rich_scenes,
                        ground_share=config.ground_share,
                        small_range_share=config.small_range_share),
        seed=seed, device=device)
    if not config.augment:
        return lambda step: generator.batch(step, config.batch_size)
    augmenter = StereoAugmenter(seed)
    return lambda step: augmenter(generator.batch(step, config.batch_size), step)


def validation_set(config: TrainConfig, device: torch.device) -> list[StereoBatch]:
    """A fixed held-out synthetic set (its own seed, never drawn for training). Always the plain
    generator without augmentation, so runs with other training data log comparable numbers."""
    generator = SyntheticStereo(
        GeneratorConfig(height=config.crop_height, width=config.crop_width,
                        max_disparity=config.max_disparity, min_layers=config.min_layers,
                        max_layers=config.max_layers),
        seed=10_000 + config.seed, device=device)
    return [generator.batch(i, config.batch_size) for i in range(config.validation_batches)]


@torch.inference_mode()
def synthetic_epe(model: torch.nn.Module, batches: list[StereoBatch], max_disparity: int
                  ) -> float:
    errors, count = 0.0, 0
    with evaluation_mode(model):
        for batch in batches:
            prediction = model(normalise(batch.left), normalise(batch.right))
            valid = valid_mask(batch.disparity, max_disparity)
            errors += float((prediction - batch.disparity).abs()[valid].sum())
            count += int(valid.sum())
    return errors / max(count, 1)


def stereo_eval_epe(model: torch.nn.Module, samples: list, device: torch.device
                    ) -> dict[str, float]:
    """Mean EPE per dataset of the stereo_eval pairs (ground truth below the max disparity); a
    dataset none of whose truth lies below it is left out."""
    from .metrics import disparity_metrics, scored_truth
    from .neural import NeuralMatcher

    per_dataset: dict[str, list[float]] = {}
    with evaluation_mode(model):
        matcher = NeuralMatcher(model, "validation", device, "fp32")
        for sample in samples:
            if not scored_truth(sample.disparity, model.max_disparity).any():
                continue  # all its truth lies beyond the range this run trains
            disparity, _ = matcher.match(sample.left, sample.right)
            metrics = disparity_metrics(disparity, sample.disparity, sample.occlusion,
                                        model.max_disparity)
            per_dataset.setdefault(sample.name.split("/")[0], []).append(metrics["all"]["epe"])
    return {f"val_{name}_epe": float(np.mean(values)) for name, values in per_dataset.items()}


def training_step(network: torch.nn.Module, batch: StereoBatch, optimizer: torch.optim.Optimizer,
                  scaler: torch.amp.GradScaler, autocast: Any, max_disparity: int,
                  mark: Callable[[str], None] | None = None) -> torch.Tensor:
    """One update on `batch`; returns the loss (not waited for). `mark(phase)` is called after
    the forward pass with the loss, the backward pass and the optimiser step (bench train-step
    times them)."""
    valid = valid_mask(batch.disparity, max_disparity)
    with autocast:
        outputs = network(normalise(batch.left), normalise(batch.right))
    loss = sequence_loss(tuple(o.float() for o in outputs), batch.disparity, valid)
    if mark:
        mark("forward")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if mark:
        mark("backward")
    scaler.step(optimizer)
    scaler.update()
    if mark:
        mark("optimizer")
    return loss


def training_tools(device: torch.device, precision: str) -> tuple[Any, torch.amp.GradScaler]:
    """The autocast context and the gradient scaler of a run in `precision`, with cuDNN set up
    for training on a GPU."""
    if device.type == "cuda":
        # Every step has the same shapes (fixed crops), so cuDNN's timed choice of convolution
        # algorithms is paid once, as the public PSMNet code does. The first GPU run (20
        # samples/s on an H200) had cuDNN's heuristic picks; the next one says what this gains.
        torch.backends.cudnn.benchmark = True
    autocast = (torch.autocast(device.type, dtype=DTYPES[precision]) if precision != "fp32"
                else torch.autocast(device.type, enabled=False))
    # fp16 gradients underflow without loss scaling; bf16 and fp32 need none.
    return autocast, torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def makes_batches_ahead(config: TrainConfig, device: torch.device) -> bool:
    """Whether the run makes each batch in a worker thread during the step before."""
    if config.batches_ahead == "auto":
        return worker_has_cores(device)
    return config.batches_ahead


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def train(config: TrainConfig, resume: str | os.PathLike | None = None,
          batches: Callable[[int], StereoBatch] | None = None,
          progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or continue) training; returns a summary. `batches(step)` overrides the data."""
    rank, world = _distributed()
    device_name = config.device
    if world > 1 and config.device in ("auto", "cuda") and torch.cuda.is_available():
        device_name = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    device = resolve_device(device_name)
    precision = resolve_precision(config.precision, device)
    state = _training_state(resume, config) if resume is not None else None
    if state is not None:
        config = _continued(config, state, progress)
    out_dir = Path(config.out_dir)
    if state is None and (out_dir / "last.pt").exists():
        # A new run there would overwrite the run's state, append to its log and mix its step
        # copies with those of the run before.
        raise ConfigurationError(f"{os.fspath(out_dir)!r} holds a run (last.pt): --resume "
                                 f"{os.fspath(out_dir / 'last.pt')} continues it; give another "
                                 f"--out-dir for a new one")
    # Read before anything is written, so that missing or wrong weights leave no run folder.
    # Only build_model draws from torch's global generator, which is seeded below for it.
    initial = (load_model(config.init_weights, config.model, config.max_disparity)
               if config.init_weights and state is None else None)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(
            {**dataclasses.asdict(config), "betas": list(config.betas)}, sort_keys=False))
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)

    model = initial if initial is not None else build_model(config.model, config.max_disparity)
    place_for_training(model, config, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas)
    step, samples, wall_before = 0, 0, 0.0
    history = (history_of_weights(config.init_weights)
               if config.init_weights and state is None else [])
    if state is not None:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        step, samples, wall_before = state["step"], state["samples_seen"], state["wall_time_s"]
        history = state.get("history", [])
    network = model
    if world > 1:
        network = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if batches is None:
        batches = (dataset_batches(config, device, rank) if config.dataset
                   else synthetic_batches(config, device, rank))
    validating = rank == 0 and config.validate_every > 0
    validation = validation_set(config, device) if validating else []
    real_pairs = []
    if validating and config.eval_root:
        from .data.datasets import stereo_eval
        real_pairs = list(stereo_eval(config.eval_root))
    logger = _Logger(out_dir, rank == 0)
    autocast, scaler = training_tools(device, precision)
    ahead = makes_batches_ahead(config, device)
    if config.batches_ahead == "auto" and not ahead:
        progress(f"batches are made between steps: {torch.get_num_threads()} torch threads leave "
                 f"no cores for a worker making them ahead (batches_ahead: auto)")
    source = BatchSource(batches, device, ahead=ahead)
    start = time.perf_counter()
    last_checkpoint = start
    # The window's time spent waiting for batches (making them, without batches_ahead), so the
    # log says whether the data or the network bounds the rate.
    window_start, window_samples, losses, window_waited_s = start, 0, [], 0.0
    final = out_dir / "last.pt"
    try:
        while step < config.steps:
            if config.time_budget_s and time.perf_counter() - start >= config.time_budget_s:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            batch = source(step)
            loss = training_step(network, batch, optimizer, scaler, autocast,
                                 config.max_disparity)
            step += 1
            samples += batch.left.shape[0] * world
            window_samples += batch.left.shape[0] * world
            losses.append(loss.item())
            now = time.perf_counter()
            if rank == 0 and (step % config.log_every == 0 or step == config.steps):
                rate = window_samples / max(now - window_start, 1e-9)
                mean_loss = sum(losses) / len(losses)
                excluded = int((torch.isfinite(batch.disparity) &
                                (batch.disparity >= config.max_disparity)).sum())
                data_share = (source.waited_s - window_waited_s) / max(now - window_start, 1e-9)
                logger.log(step, loss=mean_loss, samples_per_s=rate, samples=samples,
                           excluded_above_max=excluded, data_share=data_share)
                progress(f"step {step}/{config.steps}  loss {mean_loss:.3f}  "
                         f"{rate:.2f} samples/s ({100 * data_share:.0f} % waiting for data)  "
                         f"{samples} samples  "
                         f"{now - start + wall_before:.0f} s")
                window_start, window_samples, losses, window_waited_s = (now, 0, [],
                                                                         source.waited_s)
            if validating and step % config.validate_every == 0:
                scores = {"val_synthetic_epe": synthetic_epe(model, validation,
                                                             config.max_disparity),
                          **(stereo_eval_epe(model, real_pairs, device) if real_pairs else {})}
                logger.log(step, **scores)
                progress(f"step {step}: validation EPE (px) " + ", ".join(
                    f"{k[4:-4]} {v:.3f}" for k, v in scores.items()))
            kept = bool(config.keep_every) and step % config.keep_every == 0
            due = kept or step % config.checkpoint_every == 0 or (
                config.checkpoint_every_s and now - last_checkpoint >= config.checkpoint_every_s)
            if rank == 0 and due:
                save_training_state(final, model, optimizer, config, step, samples,
                                    now - start + wall_before, history)
                last_checkpoint = now
                if kept:
                    (out_dir / "steps").mkdir(exist_ok=True)
                    shutil.copyfile(final, out_dir / "steps" / f"step_{step}.pt")
    finally:
        source.close()
        logger.close()
    wall = time.perf_counter() - start + wall_before
    if rank == 0:
        save_training_state(final, model, optimizer, config, step, samples, wall, history)
    return {"step": step, "samples_seen": samples, "wall_time_s": wall, "device": str(device),
            "precision": precision, "batches_ahead": ahead, "checkpoint": os.fspath(final)}


def _training_state(resume: str | os.PathLike, config: TrainConfig) -> dict[str, Any]:
    """The training checkpoint a run resumes from, refused when it cannot continue this run."""
    state = load_torch_file(resume, "training checkpoint",
                            " (--resume takes the last.pt of a stereo-depth train run)")
    if not isinstance(state, dict):
        raise ConfigurationError(f"training checkpoint {os.fspath(resume)!r} holds no training "
                                 f"state (--resume takes the last.pt of a stereo-depth train run)")
    if state.get("model") != config.model:
        raise ConfigurationError(
            f"cannot resume {config.model!r} from {os.fspath(resume)!r}: it holds a "
            f"{state.get('model')!r} network")
    if int(state.get("max_disparity", -1)) != config.max_disparity:
        raise ConfigurationError(
            f"cannot resume with max_disparity {config.max_disparity} from "
            f"{os.fspath(resume)!r}: it was trained with {state.get('max_disparity')}")
    if "optimizer" not in state or "rng" not in state:
        raise ConfigurationError(
            f"{os.fspath(resume)!r} holds weights only, not a training state to resume; "
            f"use --init-weights to start a new run from it")
    return state


# What makes a run the run it is: the seed picks its scenes, augmentations and held-out set, and
# init_weights is where it began (the record a card reads).
RUN_IDENTITY = ("seed", "init_weights")


def _continued(config: TrainConfig, state: dict[str, Any],
               progress: Callable[[str], None]) -> TrainConfig:
    """The settings of a resumed run: its own seed and starting weights, whatever the settings
    given say. A resume reads the same YAML file as a fresh start, whose seed is the file's, so
    taking the given seed would switch a run on a seed of its own to another scene stream."""
    stored = state.get("config", {})
    kept = {key: stored[key] for key in RUN_IDENTITY
            if key in stored and stored[key] != getattr(config, key)}
    if kept:
        progress("resuming keeps the run's " + ", ".join(
            f"{key} {value!r} (the settings say {getattr(config, key)!r})"
            for key, value in kept.items()))
    changed = [f"{key} {stored[key]!r} -> {getattr(config, key)!r}" for key in RUN_RECIPE
               if key in stored and _as_stored(getattr(config, key)) != _as_stored(stored[key])]
    if changed:
        progress("resuming with settings that differ from the run's own, which it goes on "
                 "with from here: " + ", ".join(changed))
    return dataclasses.replace(config, **kept)


# What a resumed run may take from new settings, but should say it does: the recipe and the data.
RUN_RECIPE = ("lr", "lr_warmup_steps", "betas", "batch_size", "crop_height", "crop_width",
              "freeze_batch_norm", "precision", "dataset", "min_layers", "max_layers",
              "rich_scenes", "augment", "ground_share", "small_range_share", "memory_format")


def _as_stored(value: Any) -> Any:
    # A checkpoint keeps betas as the tuple it was given or as the list YAML gave.
    return list(value) if isinstance(value, tuple) else value


def dataset_batches(config: TrainConfig, device: torch.device, rank: int
                    ) -> Callable[[int], StereoBatch]:
    """Random crops from a dataset folder ('kind:path'), for fine-tuning. The folder is listed
    once and each step reads the pairs it draws, so a dataset of any size fits in memory."""
    from .data.datasets import dataset_argument, dataset_pairs

    pairs = dataset_pairs(*dataset_argument(config.dataset))
    if not pairs:
        raise ConfigurationError(f"dataset {config.dataset!r} holds no stereo pairs")
    height, width = config.crop_height, config.crop_width

    def batch(step: int) -> StereoBatch:
        # One stream per (seed, step, rank): an offset per rank made rank r at step s draw what
        # rank 0 drew at step s + 7919 r.
        rng = np.random.default_rng([config.seed, step, rank])
        lefts, rights, disparities = [], [], []
        for _ in range(config.batch_size):
            sample = pairs[int(rng.integers(len(pairs)))].load()
            # As the estimator sees them: 10- and 12-bit data in uint16 widened to full range.
            left_view, right_view = widen_to_full_range(sample.left, sample.right)
            h, w = sample.disparity.shape
            if h < height or w < width:
                raise ConfigurationError(f"{sample.name} is {w}x{h} px, smaller than the "
                                         f"{width}x{height} crop")
            top, left = int(rng.integers(h - height + 1)), int(rng.integers(w - width + 1))
            window = (slice(top, top + height), slice(left, left + width))
            lefts.append(_unit_tensor(left_view[window]))
            rights.append(_unit_tensor(right_view[window]))
            disparities.append(torch.from_numpy(sample.disparity[window].copy()))
        stack = lambda items: torch.stack(items).to(device)  # noqa: E731
        disparity = stack(disparities)
        return StereoBatch(stack(lefts), stack(rights), disparity,
                           torch.zeros_like(disparity, dtype=torch.bool))

    return batch


def _unit_tensor(image: np.ndarray) -> torch.Tensor:
    scale = float(np.iinfo(image.dtype).max)
    tensor = torch.from_numpy(np.ascontiguousarray(image)).float() / scale
    if tensor.dim() == 2:
        tensor = tensor[..., None].expand(-1, -1, 3)
    return tensor.permute(2, 0, 1)
