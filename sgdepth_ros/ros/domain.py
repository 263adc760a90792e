"""Which ROS_DOMAIN_ID a private graph (live replay, benchmarks, tests) runs on (ROS-free).

An explicit ``ROS_DOMAIN_ID`` in the environment is the caller's choice and is kept. Without one, a domain that no
DDS participant on this machine uses is picked at random: a participant ``p`` of domain ``d`` binds the UDP
metatraffic port ``7410 + 250·d + 2·p`` (the DDSI-RTPS default port mapping that Fast DDS and Cyclone DDS follow), so
a domain whose first participant ports can be bound here has nobody on it. Domain 0 (most hosts' default graph) and
ids above 101 (whose ports reach into Linux's ephemeral range) are never picked.
"""
from __future__ import annotations

import random
import socket
from collections.abc import Mapping

PICKED_RANGE = range(1, 102)
MAX_DOMAIN_ID = 232  # the largest id whose ports fit below 65536
_PORT_BASE, _DOMAIN_GAIN, _METATRAFFIC_UNICAST, _PARTICIPANT_GAIN = 7400, 250, 10, 2


def explicit_domain_id(environ: Mapping[str, str]) -> int | None:
    """The ``ROS_DOMAIN_ID`` set in ``environ`` (None when unset or empty); ValueError naming the valid range when
    it is not an integer in 0..232."""
    text = environ.get("ROS_DOMAIN_ID", "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_DOMAIN_ID:
        raise ValueError(f"ROS_DOMAIN_ID={text!r} is not an integer in 0..{MAX_DOMAIN_ID}")
    return value


def domain_in_use(domain_id: int, participants: int = 4) -> bool:
    """Whether any of the first ``participants`` DDS participants of ``domain_id`` holds its UDP port here."""
    for participant in range(participants):
        port = _PORT_BASE + _DOMAIN_GAIN * domain_id + _METATRAFFIC_UNICAST + _PARTICIPANT_GAIN * participant
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("", port))
            except OSError:  # EADDRINUSE; anything else: count it as taken too
                return True
    return False


def free_domain_id(rng: random.Random | None = None) -> int:
    """A random domain id in 1..101 that no participant on this machine uses (RuntimeError if all are used)."""
    rng = rng or random.Random()
    candidates = list(PICKED_RANGE)
    rng.shuffle(candidates)
    for domain_id in candidates:
        if not domain_in_use(domain_id):
            return domain_id
    raise RuntimeError(f"every ROS domain {PICKED_RANGE.start}..{PICKED_RANGE.stop - 1} has DDS participants on "
                       "this machine; set ROS_DOMAIN_ID to choose one")


def replay_domain_id(environ: Mapping[str, str]) -> tuple[int, str]:
    """(domain id, where it came from): the caller's ``ROS_DOMAIN_ID`` ("ROS_DOMAIN_ID"), else a free one
    ("free")."""
    explicit = explicit_domain_id(environ)
    return (explicit, "ROS_DOMAIN_ID") if explicit is not None else (free_domain_id(), "free")
