"""FrameScheduler: newest frame per camera, the camera waiting longest first, fairness by construction."""
from __future__ import annotations

import threading

import pytest

from sgdepth_ros.ros.frame_scheduler import FrameScheduler


def test_one_camera_keeps_only_the_newest_frame():
    scheduler = FrameScheduler()
    assert scheduler.put("cam", 1) is None
    assert scheduler.put("cam", 2) == 1  # 1 dropped
    assert scheduler.take(timeout=0.1) == [("cam", 2)]
    assert scheduler.take(timeout=0.01) == []
    scheduler.close()
    assert scheduler.take() == []  # closed: returns at once
    scheduler.reopen()
    scheduler.put("cam", 3)
    assert scheduler.take(timeout=0.1) == [("cam", 3)]


def test_cameras_are_taken_in_the_order_they_started_waiting():
    scheduler = FrameScheduler()
    scheduler.put("front", "f1")
    scheduler.put("left", "l1")
    assert scheduler.put("front", "f2") == "f1"  # replaced, but front keeps its place before left
    scheduler.put("rear", "r1")
    assert scheduler.take(limit=2) == [("front", "f2"), ("left", "l1")]
    scheduler.put("front", "f3")  # front waits again: behind rear now
    assert scheduler.take(limit=4) == [("rear", "r1"), ("front", "f3")]


def test_under_overload_every_camera_is_served_in_turn():
    """Whatever the cameras' rates, once a camera has a frame waiting at most cameras − 1 frames of others are taken
    before it; cameras that keep a frame waiting are served equally often (round-robin)."""
    cameras = ["front", "left", "right", "rear"]
    scheduler = FrameScheduler()
    served = {camera: 0 for camera in cameras}
    started = {}
    taken = rear_dropped = 0
    for step in range(400):
        for camera in ["front"] * 3 + cameras[: 1 + step % len(cameras)]:  # front sends most, rear every 4th step
            replaced = scheduler.put(camera, step)
            if replaced is None:
                started[camera] = taken
            elif camera == "rear":
                rear_dropped += 1
        [(camera, _)] = scheduler.take(limit=1)
        assert taken - started[camera] <= len(cameras) - 1
        served[camera] += 1
        taken += 1
    # front and left always have a frame waiting: served alike (within one round), however fast front sends
    assert abs(served["front"] - served["left"]) <= len(cameras) - 1
    assert rear_dropped == 0  # rear sends a frame every 4th take, slower than a round: it loses none


def test_a_batch_takes_each_waiting_camera_once():
    scheduler = FrameScheduler()
    for camera in ("a", "b", "c"):
        scheduler.put(camera, camera.upper())
    assert scheduler.waiting() == 3
    assert scheduler.take(limit=8) == [("a", "A"), ("b", "B"), ("c", "C")]
    with pytest.raises(ValueError):
        scheduler.take(limit=0)


def test_close_wakes_a_waiting_worker_and_drops_what_waits():
    scheduler = FrameScheduler()
    result = []
    worker = threading.Thread(target=lambda: result.append(scheduler.take()))
    worker.start()
    scheduler.close()
    worker.join(timeout=5)
    assert not worker.is_alive() and result == [[]]
    scheduler.reopen()
    scheduler.put("a", 1)
    scheduler.close()
    scheduler.reopen()
    assert scheduler.take(timeout=0.01) == []  # closing dropped the waiting frame
