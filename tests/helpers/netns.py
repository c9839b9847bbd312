"""A second "host" on this machine: a network namespace joined to this one by a veth pair on a
private /30, whose link a test can take down and bring back (the host cut off, then back)."""

from __future__ import annotations

import ipaddress
import os
import subprocess


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def _free_network() -> ipaddress.IPv4Network:
    """A /30 in 10.231.0.0/16 that no address of this machine is in (the pid picks where to start)."""
    taken = ip("-4", "-o", "addr", "show").stdout
    used = [ipaddress.ip_interface(word).network for word in taken.split() if "/" in word and word[0].isdigit()]
    pool = list(ipaddress.ip_network("10.231.0.0/16").subnets(new_prefix=30))
    start = os.getpid() % len(pool)
    for network in pool[start:] + pool[:start]:
        if not any(network.overlaps(other) for other in used):
            return network
    raise RuntimeError("no free /30 in 10.231.0.0/16")


class NetnsHost:
    """A namespace ``tf-<pid>`` with ``lo`` and one end of a veth pair; the other end stays here.

    Only the /30 between the two ends is routed: the namespace has no default route, so
    its processes reach this machine's ``host_address`` and nothing else.
    """

    def __init__(self) -> None:
        tag = str(os.getpid())[-6:]
        self.name = f"tf-{tag}"
        self.host_if, self.ns_if = f"tfh{tag}", f"tfn{tag}"
        network = _free_network()
        self.network = str(network)
        first, second = list(network.hosts())
        self.host_address, self.ns_address = str(first), str(second)

    def create(self) -> None:
        ip("netns", "add", self.name)
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        ip("link", "set", self.ns_if, "netns", self.name)
        ip("addr", "add", f"{self.host_address}/30", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        ip("-n", self.name, "addr", "add", f"{self.ns_address}/30", "dev", self.ns_if)
        ip("-n", self.name, "link", "set", self.ns_if, "up")
        ip("-n", self.name, "link", "set", "lo", "up")

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self) -> None:
        """Take the link down on the namespace's side: its packets go nowhere, and none leave
        this machine by another route (the namespace has none)."""
        ip("-n", self.name, "link", "set", self.ns_if, "down")

    def restore(self) -> None:
        ip("-n", self.name, "link", "set", self.ns_if, "up")

    def delete(self) -> None:
        """Remove the veth pair and the namespace; safe to call twice."""
        ip("link", "del", self.host_if, check=False)
        ip("netns", "del", self.name, check=False)
