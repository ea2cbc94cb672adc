"""smartreco.ports: a port handed out is not handed out again while recent, even when the kernel offers it."""

from __future__ import annotations

import socket

import pytest

from smartreco import ports

pytestmark = pytest.mark.unit


class _KernelOffering:
    """A socket stand-in whose bind(port 0) gets the next number of a fixed sequence (repeats included)."""

    def __init__(self, offers: list[int]) -> None:
        self.offers = iter(offers)

    def __call__(self, *args, **kwargs) -> _KernelOffering:
        return self

    def __enter__(self) -> _KernelOffering:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def bind(self, address: tuple[str, int]) -> None:
        self.port = next(self.offers)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(ports, "_recent", ports.deque())
    monkeypatch.setattr(ports, "_reserved", set())


def test_a_port_the_kernel_offers_twice_is_handed_out_once(fresh, monkeypatch):
    monkeypatch.setattr(ports.socket, "socket", _KernelOffering([42851, 42851, 40000, 42851, 40000, 40001]))
    assert [ports.free_port(), ports.free_port(), ports.free_port()] == [42851, 40000, 40001]


def test_only_the_recent_ports_stay_reserved(fresh, monkeypatch):
    monkeypatch.setattr(ports, "RECENT", 2)
    monkeypatch.setattr(ports.socket, "socket", _KernelOffering([1, 2, 3, 1]))
    assert [ports.free_port() for _ in range(4)] == [1, 2, 3, 1]  # 1 left the window when 3 came


def test_no_port_outside_the_window_is_an_error_naming_the_host(fresh, monkeypatch):
    monkeypatch.setattr(ports, "RECENT", 3)
    monkeypatch.setattr(ports.socket, "socket", _KernelOffering([7, 7, 7, 7]))
    assert ports.free_port() == 7
    with pytest.raises(OSError, match="127.0.0.1"):
        ports.free_port()


def test_real_ports_are_distinct_and_bindable(fresh):
    got = [ports.free_port() for _ in range(30)]
    assert len(set(got)) == 30
    with socket.socket() as s:
        s.bind((ports.LOOPBACK, got[-1]))
