"""Network namespaces as hosts: several machines' worth of networking on one machine, for tests.

Queue placement (which host reaches Heat, which alone reaches the switches) is
a property of the network, so a test of it needs hosts that really cannot
reach each other's neighbours. A ``Network`` makes one namespace per host,
joins them with a bridge that lives in a namespace of its own ("hub"), and
can join two hosts by a private point-to-point link that no other host has a
route to. Nothing is ever added to the namespace the test runs in, no
namespace forwards, and no namespace has a default route: all traffic stays
between the namespaces the Network made, and leaving the ``with`` block
deletes every one of them (their links go with them), whatever happened.

Processes go into a host with ``inside(host)``: it moves the calling thread
into the host's namespace (setns(2)), so the sockets it opens and the children
it starts (a fork takes the namespaces of the thread that forks) are the
host's. That is what ``ip netns exec`` does, and it also lets the launchers'
readiness probes and the test's own clients run on the host, with no change
to the launchers' argv.
"""
from __future__ import annotations

import ctypes
import ipaddress
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

_CLONE_NEWNET = 0x40000000
_NETNS_DIR = Path("/run/netns")
_LIBC = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    """A namespace or link could not be made; the message carries ip's own error."""


@dataclass(frozen=True)
class Host:
    """One namespace: its name for ``ip netns`` and the addresses given to it."""

    name: str
    netns: str
    ips: tuple[str, ...]

    @property
    def ip(self) -> str:
        """The host's address on the shared LAN (its first address)."""
        return self.ips[0]


def ip(*args: str) -> None:
    """Run ``ip ARGS``; NetnsError with ip's message when it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if done.returncode:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _setns(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _LIBC.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise NetnsError(f"setns {path}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class Network:
    """Hosts on one private /24 behind a bridge, plus private links; ``with`` removes them all.

    ``lan`` is the /24 the hosts share (host i gets address .i+10). Namespace names carry
    ``tag`` (by default this process's pid), so parallel runs never collide.
    """

    def __init__(self, hosts: Sequence[str], lan: str = "10.231.7.0/24", tag: str | None = None) -> None:
        self.tag = tag or f"esiprov{os.getpid()}"
        self._lan = ipaddress.ip_network(lan)
        self._names = list(hosts)
        self.hosts: dict[str, Host] = {}
        self._made: list[str] = []

    def __enter__(self) -> Self:
        try:
            hub = self._add_netns("hub")
            ip("-n", hub, "link", "add", "br0", "type", "bridge")
            ip("-n", hub, "link", "set", "br0", "up")
            for number, name in enumerate(self._names, start=10):
                address = str(self._lan.network_address + number)
                host = Host(name, self._add_netns(name), (address,))
                ip("-n", hub, "link", "add", f"v-{name}"[:15], "type", "veth", "peer", "name", "eth0",
                   "netns", host.netns)
                ip("-n", hub, "link", "set", f"v-{name}"[:15], "master", "br0", "up")
                self._address(host, "eth0", address, self._lan.prefixlen)
                self.hosts[name] = host
        except BaseException:
            self.close()
            raise
        return self

    def add_private(self, behind: str, name: str, subnet: str, ips: Sequence[str]) -> Host:
        """A new host ``name`` with ``ips`` on ``subnet``, linked to host ``behind`` alone.

        ``behind`` gets the subnet's first address on its end; nothing routes between the
        subnet and the LAN, so no other host can reach the new one (as switches on a
        management network only the management hosts reach).
        """
        net = ipaddress.ip_network(subnet)
        host = Host(name, self._add_netns(name), tuple(ips))
        gateway = self.hosts[behind]
        link = f"p-{name}"[:15]
        ip("-n", gateway.netns, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        self._address(gateway, link, str(net.network_address + 1), net.prefixlen)
        for address in ips:
            self._address(host, "eth0", address, net.prefixlen)
        self.hosts[name] = host
        return host

    def _add_netns(self, name: str) -> str:
        netns = f"{self.tag}-{name}"
        ip("netns", "add", netns)
        self._made.append(netns)
        ip("-n", netns, "link", "set", "lo", "up")
        return netns

    def _address(self, host: Host, dev: str, address: str, prefixlen: int) -> None:
        ip("-n", host.netns, "addr", "add", f"{address}/{prefixlen}", "dev", dev)
        ip("-n", host.netns, "link", "set", dev, "up")

    @contextmanager
    def inside(self, name: str) -> Iterator[Host]:
        """Run the ``with`` block's calling thread on host ``name``: its sockets and the processes it
        starts are the host's; the thread's own namespace is back afterwards."""
        host = self.hosts[name]
        with open(f"/proc/self/task/{threading.get_native_id()}/ns/net", "rb") as home:
            _setns(_NETNS_DIR / host.netns)
            try:
                yield host
            finally:
                if _LIBC.setns(home.fileno(), _CLONE_NEWNET) != 0:
                    raise NetnsError(f"setns back: {os.strerror(ctypes.get_errno())}")

    def close(self) -> None:
        """Delete every namespace made (their links with them); carry on past any that is gone."""
        while self._made:
            netns = self._made.pop()
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False, timeout=30)

    def __exit__(self, *exc: object) -> None:
        self.close()

