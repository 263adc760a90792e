"""The ``~/change_state`` guard: a request with a transition that is not valid in the current state is answered
success=false instead of ending the process.

rclpy 7.1 (Jazzy) checks a transition given by label but not one given by id: an id that is not valid in the
current state (activate while active, 99) raises out of its service callback, ends ``rclpy.spin`` and the process
(ros2/rclpy#1209, fixed in later rclpy).
"""
from __future__ import annotations

from typing import Callable


def guard_change_state(node, report: Callable[[str, str], None], log_error: Callable[[str], None]) -> None:
    """Wrap ``node``'s (a rclpy LifecycleNode) change_state service callback.

    The request is checked against the current state's transitions first (an invalid id: ``report("bad_transition",
    line)``, answered success=false); anything else the callback raises is logged with ``log_error`` and answered
    success=false too. Without that service (another rclpy layout) nothing is wrapped.
    """
    service = getattr(node, "_service_change_state", None)
    machine = getattr(node, "_state_machine", None)
    if service is None or machine is None:
        return
    delegate = service.callback

    def change_state(request, response):
        transition = request.transition
        try:
            if not transition.label:
                valid = {t[0]: t[1] for t in machine.available_transitions}
                if transition.id not in valid:
                    report("bad_transition", f"change_state: transition id {transition.id} is not valid "
                           f"in state '{machine.current_state[1]}' (valid: "
                           f"{', '.join(f'{i} {label}' for i, label in sorted(valid.items()))}); refused")
                    response.success = False
                    return response
            return delegate(request, response)
        except Exception as error:  # never let a service request end the node
            log_error(f"change_state {transition.id} '{transition.label}' failed: "
                      f"{type(error).__name__}: {error}")
            response.success = False
            return response

    service.callback = change_state
