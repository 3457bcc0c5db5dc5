"""Many connections at once: mdmd serves past FD_SETSIZE (1024
descriptors) and raises its own open-files limit to fit them.

libmicrohttpd watched each connection with select(), which cannot take a
descriptor of 1024 or more: with a thousand agents connected, the next one
was reset whatever the open-files limit.  mdmd now asks for poll(), and
raises its soft RLIMIT_NOFILE towards the hard one (a service manager's
default soft limit is 1024), saying so when the hard limit is too low."""
import os
import socket

import mdmtest
from mdmtest import (HTTP_TIMEOUT, http_request, raise_nofile,
                     recv_until_closed, wait_for)

MAX_CONNECTIONS = 4096          # mdmd's connection limit
WANT_NOFILE = MAX_CONNECTIONS + 256


def _with_nofile(server, soft, hard):
    """Start server under prlimit --nofile=SOFT:HARD."""
    argv = server.argv
    server.argv = lambda: ["prlimit", "--nofile=%d:%d" % (soft, hard),
                           "--"] + argv()
    return server.start()


def _nofile(pid):
    """(soft, hard) open-files limits of process pid."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no 'Max open files' in /proc/%d/limits" % pid)


def _open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_soft_limit_raised(server_factory):
    s = server_factory(name="raise", start=False)
    _with_nofile(s, 1024, 8192)
    assert _nofile(s.proc.pid) == (WANT_NOFILE, 8192)
    assert "open files are limited" not in s.stderr()


def test_hard_limit_too_low_is_said(server_factory):
    s = server_factory(name="low", start=False)
    _with_nofile(s, 1024, 1024)
    assert _nofile(s.proc.pid) == (1024, 1024)
    assert ("open files are limited to 1024: fewer than 4096 connections at "
            "a time will be served (raise the hard limit, e.g. "
            "LimitNOFILE=4352)") in s.stderr()
    # It still serves.
    st, _, body = http_request(s.host, s.port, "GET", "/healthz")
    assert (st, body) == (200, {"status": "ok"})


def test_serves_past_fd_setsize(server_factory):
    """1,100 idle connections held open, then a request on one more (its
    descriptor is past 1024 in mdmd): 200, and every held connection
    still answers."""
    n = 1100
    raise_nofile(n)
    s = server_factory(name="many", start=False)
    _with_nofile(s, 1024, 8192)
    held = []
    try:
        for _ in range(n):
            held.append(socket.create_connection((s.host, s.port),
                                                 timeout=HTTP_TIMEOUT))
        # Every one accepted: mdmd holds a descriptor for each.
        wait_for(lambda: _open_fds(s.proc.pid) > n, timeout=30 * mdmtest.SLOW,
                 what="mdmd to accept %d connections" % n)
        st, _, body = http_request(s.host, s.port, "GET", "/healthz")
        assert (st, body) == (200, {"status": "ok"})
        # The first and the last held connection are served too.
        for c in (held[0], held[-1]):
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n")
            got = recv_until_closed(c)
            assert got.startswith(b"HTTP/1.1 200 "), got[:80]
    finally:
        for c in held:
            c.close()
