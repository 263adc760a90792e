"""The test probe's service calls: a reply lost in discovery is made up for by sending the request again."""
from __future__ import annotations

import os
import threading

import pytest
import rclpy
from lifecycle_msgs.srv import GetState
from rclpy.executors import SingleThreadedExecutor

from sgdepth_ros.ros.launcher import ros_environment
from sgdepth_ros.ros.probe import Probe


@pytest.fixture
def server_losing_the_first_reply():
    """A GetState service on its own executor thread that answers every request but the first (its callback returns
    nothing, so no reply is sent: what a client sees when the server's DDS layer drops a response). Yields the list
    of requests it received."""
    env = ros_environment()
    saved = dict(os.environ)
    os.environ.update(env)
    rclpy.init(domain_id=int(env["ROS_DOMAIN_ID"]))
    server = rclpy.create_node("lossy_server")
    received: list[int] = []
    dropped: list[str] = []

    def answer(request, response):
        received.append(len(received) + 1)
        if len(received) == 1:
            return None
        response.current_state.label = f"reply to request {len(received)}"
        return response

    server.create_service(GetState, "/lossy/get_state", answer)
    executor = SingleThreadedExecutor()
    executor.add_node(server)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            try:
                executor.spin_once(timeout_sec=0.05)
            except TypeError as error:  # rclpy refuses to send the missing reply
                dropped.append(repr(error))

    thread = threading.Thread(target=spin)
    thread.start()
    yield received
    stop.set()
    thread.join()
    assert len(dropped) == 1  # exactly the first reply was lost
    executor.shutdown()
    server.destroy_node()
    rclpy.try_shutdown()
    os.environ.clear()
    os.environ.update(saved)


def test_a_lost_reply_is_made_up_for_by_sending_again(server_losing_the_first_reply):
    probe = Probe([])
    response = probe.call_service(GetState, "/lossy/get_state", GetState.Request(), timeout=60, resend_after=1.0)
    assert response is not None and response.current_state.label == "reply to request 2"
    assert server_losing_the_first_reply == [1, 2]
    again = probe.call_service(GetState, "/lossy/get_state", GetState.Request(), timeout=60, resend_after=1.0)
    assert again.current_state.label == "reply to request 3"  # the same client, answered at once
    probe.destroy_node()


def test_a_request_sent_once_reports_a_lost_reply_as_none(server_losing_the_first_reply):
    probe = Probe([])
    assert probe.call_service(GetState, "/lossy/get_state", GetState.Request(), timeout=2, resend_after=None) is None
    assert server_losing_the_first_reply == [1]
    probe.destroy_node()
