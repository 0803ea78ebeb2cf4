"""Training batches by step, made one step ahead in a worker thread.

On a GPU the synthetic generator is thousands of small kernels and, per layer, a wait for the
device (is the layer visible anywhere?); made between training steps it kept an H200 idle for
26-34 % of a training window (docs/device_log.md). Made in a thread of its own, on a CUDA stream
of its own, batch s + 1 is rendered while step s trains. A batch depends only on its step (the
generator and the augmenter seed themselves from it), so the batches, and the trained weights,
are the same with and without the thread.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable

import torch

from ..devices import finished_clock
from .generator import StereoBatch

_Made = tuple[StereoBatch, "torch.cuda.Event | None"]


def worker_has_cores(device: torch.device) -> bool:
    """Whether a batch made in a worker thread runs beside the step instead of taking cores from
    it. On CUDA the step mostly waits for the GPU. On the CPU the worker runs torch's operators
    with as many threads as the step, so it pays only where both fit on the cores: a step of
    config/train_cpu_continue.yaml on the 2-core machine took 8-14 % less time with the worker at
    one thread, and 7-14 % more at two (docs/training_notes.md)."""
    if device.type == "cuda":
        return True
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 * torch.get_num_threads() <= (cores or 1)


class BatchSource:
    """`source(step)` gives the batch of `step`; `waited_s` is the time the caller has spent
    waiting for batches (making them, with `ahead=False`): the share of a training window that
    the data cost the network."""

    def __init__(self, make: Callable[[int], StereoBatch], device: torch.device,
                 ahead: bool = True) -> None:
        self._make = make
        self._device = device
        self._stream = torch.cuda.Stream(device) if ahead and device.type == "cuda" else None
        self._workers = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="training_batches")
                         if ahead else None)
        self._next: tuple[int, Future[_Made]] | None = None
        self.waited_s = 0.0

    def __call__(self, step: int) -> StereoBatch:
        asked = time.perf_counter()
        if self._workers is None:
            batch = self._make(step)
            self.waited_s += finished_clock(self._device) - asked
            return batch
        if self._next is None or self._next[0] != step:
            self._drop_next()
            self._next = (step, self._workers.submit(self._made, step))
        batch, ready = self._next[1].result()
        if ready is not None:
            # Wait on the host too, so that waited_s is the time until the batch exists.
            ready.synchronize()
            training_stream = torch.cuda.current_stream(self._device)
            training_stream.wait_event(ready)
            for tensor in (batch.left, batch.right, batch.disparity, batch.occlusion):
                # The allocator must not hand the memory back to the worker's stream while the
                # training stream may still read it.
                tensor.record_stream(training_stream)
        self.waited_s += time.perf_counter() - asked
        self._next = (step + 1, self._workers.submit(self._made, step + 1))
        return batch

    def _made(self, step: int) -> _Made:
        if self._stream is None:
            return self._make(step), None
        with torch.cuda.stream(self._stream):
            batch = self._make(step)
            ready = torch.cuda.Event()
            ready.record(self._stream)
        return batch, ready

    def _drop_next(self) -> None:
        if self._next is not None:
            future = self._next[1]
            if not future.cancel():
                # A batch already being made is waited for, so that nothing runs after close().
                wait([future])
            self._next = None

    def close(self) -> None:
        if self._workers is not None:
            self._drop_next()
            self._workers.shutdown(wait=True)

    def __enter__(self) -> "BatchSource":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
