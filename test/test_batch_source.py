"""Batches made a step ahead in a worker thread are the batches made in turn, errors reach the
training loop, and nothing is made after close()."""
from __future__ import annotations

import os
import threading

import pytest
import torch

from stereo_depth_node.data.batch_source import BatchSource, worker_has_cores
from stereo_depth_node.data.generator import StereoBatch
from stereo_depth_node.train import TrainConfig, synthetic_batches

CPU = torch.device("cpu")


def rich_config() -> TrainConfig:
    return TrainConfig(max_disparity=16, crop_height=32, crop_width=64, batch_size=2,
                       device="cpu", min_layers=2, max_layers=4, rich_scenes=True, augment=True,
                       ground_share=0.5)


def assert_same(a: StereoBatch, b: StereoBatch) -> None:
    for name in ("left", "right", "disparity", "occlusion"):
        assert torch.equal(getattr(a, name), getattr(b, name)) or (
            name == "disparity" and torch.equal(a.disparity.nan_to_num(-1),
                                                b.disparity.nan_to_num(-1))), name


def test_batches_made_ahead_are_the_batches_made_in_turn():
    make = synthetic_batches(rich_config(), CPU, rank=0)
    # In order, then a jump (a resumed run, or a caller that skips): the batch made ahead for
    # the expected step is dropped and the asked one made.
    order = [0, 1, 2, 7, 8, 3]
    with BatchSource(make, CPU, ahead=True) as ahead:
        got = [ahead(step) for step in order]
        assert ahead.waited_s > 0
    for step, batch in zip(order, got):
        assert_same(batch, make(step))


def test_the_batch_is_made_in_the_worker_thread_while_the_caller_goes_on():
    threads, started = [], threading.Event()

    def make(step: int) -> StereoBatch:
        threads.append((step, threading.current_thread().name))
        if step == 1:
            started.set()
        image = torch.full((1, 3, 4, 4), float(step))
        return StereoBatch(image, image, torch.zeros(1, 4, 4), torch.zeros(1, 4, 4, dtype=bool))

    with BatchSource(make, CPU, ahead=True) as source:
        assert float(source(0).left[0, 0, 0, 0]) == 0
        # Step 1's batch is being made before anybody asks for it.
        assert started.wait(10)
        assert float(source(1).left[0, 0, 0, 0]) == 1
    # Step 2's batch was asked for too; close() cancels it if the worker has not begun it.
    assert [step for step, _ in threads] in ([0, 1], [0, 1, 2])
    assert all(name.startswith("training_batches") for _, name in threads)


def test_an_error_making_a_batch_reaches_the_caller_and_later_steps_still_come():
    def make(step: int) -> StereoBatch:
        if step == 1:
            raise ValueError("crop larger than the image")
        image = torch.full((1, 3, 4, 4), float(step))
        return StereoBatch(image, image, torch.zeros(1, 4, 4), torch.zeros(1, 4, 4, dtype=bool))

    with BatchSource(make, CPU, ahead=True) as source:
        source(0)
        with pytest.raises(ValueError, match="crop larger than the image"):
            source(1)
        assert float(source(2).left[0, 0, 0, 0]) == 2


def test_nothing_is_made_after_close():
    made, begun, release = [], threading.Event(), threading.Event()

    def make(step: int) -> StereoBatch:
        made.append(step)
        if step == 1:
            begun.set()
            release.wait(10)  # step 1 is still being made when close() is called
        image = torch.zeros(1, 3, 4, 4)
        return StereoBatch(image, image, torch.zeros(1, 4, 4), torch.zeros(1, 4, 4, dtype=bool))

    source = BatchSource(make, CPU, ahead=True)
    source(0)
    assert begun.wait(10)
    threading.Timer(0.2, release.set).start()
    source.close()
    assert made == [0, 1]
    assert release.is_set()  # close() waited for the batch in the making


def test_in_turn_counts_the_time_spent_making():
    make = synthetic_batches(rich_config(), CPU, rank=0)
    with BatchSource(make, CPU, ahead=False) as in_turn:
        assert_same(in_turn(4), make(4))
        assert in_turn.waited_s > 0


def test_a_worker_is_used_on_the_cpu_only_where_it_finds_free_cores():
    cores, before = len(os.sched_getaffinity(0)), torch.get_num_threads()
    try:
        torch.set_num_threads(cores)
        assert not worker_has_cores(CPU)
        assert worker_has_cores(torch.device("cuda"))  # the step waits for the GPU there
        if cores >= 2:
            torch.set_num_threads(cores // 2)
            assert worker_has_cores(CPU)
    finally:
        torch.set_num_threads(before)
