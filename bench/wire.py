"""Counting requests on the loopback wire: a packet socket with a BPF filter on one destination port.

Nothing is put in the path of the traffic (no proxy, no extra latency): the kernel hands
the bench a copy of each matching packet. That needs root (CAP_NET_RAW); ``wire_counter``
returns None without it, and the caller reports the figure as not measured.

- UDP (SNMP): every datagram sent to the port is one request PDU, retries included.
- TCP (HTTP to Heat): a segment whose payload starts with an HTTP method is one request;
  its request line is kept, so requests can be told apart by method and path.
"""
from __future__ import annotations

import ctypes
import socket
import struct
import time
from collections import Counter

#: HTTP methods a request line starts with
METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ", b"HEAD ")
SO_ATTACH_FILTER = 26


class WireCounter:
    """Counts requests sent to ``port`` on loopback (``protocol``: socket.IPPROTO_UDP or IPPROTO_TCP)."""

    def __init__(self, port: int, protocol: int = socket.IPPROTO_UDP) -> None:
        self.protocol = protocol
        # Classic BPF on the IP header: the protocol, then the transport header's destination
        # port (the IP header's length from its first byte); keep the packet or drop it.
        program = [(0x30, 0, 0, 9), (0x15, 0, 4, protocol), (0xb1, 0, 0, 0), (0x48, 0, 0, 2),
                   (0x15, 0, 1, port), (0x06, 0, 0, 0xFFFF), (0x06, 0, 0, 0)]
        self._filter = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in program))
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024 * 1024)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                             struct.pack("HL", len(program), ctypes.addressof(self._filter)))
        self.sock.bind(("lo", 0))
        self.sock.setblocking(False)

    def take(self) -> int:
        """Requests seen since the last call."""
        return sum(self.take_requests().values())

    def take_requests(self) -> Counter[str]:
        """Requests seen since the last call: UDP as {"datagram": n}; HTTP as {"<METHOD> <path kind>": n}
        (path kinds as bench.heatsim counts them: stacks, lookup, stack, outputs)."""
        time.sleep(0.05)  # let the last packets reach the socket
        found: Counter[str] = Counter()
        while True:
            try:
                packet, address = self.sock.recvfrom(512)
            except BlockingIOError:
                return found
            if address[2] == socket.PACKET_OUTGOING:
                continue  # loopback shows each packet twice: leaving and arriving
            if self.protocol == socket.IPPROTO_UDP:
                found["datagram"] += 1
                continue
            ip_length = (packet[0] & 0x0F) * 4
            payload = packet[ip_length + (packet[ip_length + 12] >> 4) * 4:]
            if payload.startswith(METHODS):
                method, path = payload.split(b" ", 2)[:2]
                found[f"{method.decode()} {path_kind(path.decode(errors='replace'))}"] += 1

    def close(self) -> None:
        self.sock.close()


def path_kind(path: str) -> str:
    """``/v1/<tenant>/stacks[/<name>[/<id>[/outputs...]]]`` -> stacks, lookup, stack or outputs."""
    rest = path.split("?")[0].strip("/").split("/")[3:]
    return ["stacks", "lookup", "stack"][len(rest)] if len(rest) < 3 else "outputs"


def wire_counter(port: int, protocol: int = socket.IPPROTO_UDP) -> WireCounter | None:
    """A WireCounter, or None when this process may not open a packet socket."""
    try:
        return WireCounter(port, protocol)
    except PermissionError:
        return None
