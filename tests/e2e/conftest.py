"""pytest fixtures for the end-to-end tests.

`server` starts a real mdmd (`--listen 127.0.0.1:0 --data-dir <tmp>
--checkin-interval 5`), waits for its `listening on` line, reads the owner
token from <data>/admin.token (which must be mode 0600), and on teardown
sends SIGTERM and requires exit 0 within 10 s and no sanitizer report on
stderr.  The object it yields is mdmtest.Server: .url, .token, .data_dir,
.api(method, path, body=None, token=..., headers=..., raw_body=None) ->
(status, headers, JSON or None), .restart(), .kill9(), .stop(), and views
of the database.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mdmtest  # noqa: E402


def pytest_report_header(config):
    return "mdm e2e: MDM_BIN=%s (sanitized: %s)" % (mdmtest.MDM_BIN,
                                                     mdmtest.SLOW > 1)


@pytest.fixture(scope="session", autouse=True)
def _binaries():
    if not os.access(mdmtest.MDMD, os.X_OK):
        pytest.fail("no mdmd at %s (set MDM_BIN)" % mdmtest.MDMD)


@pytest.fixture
def server_factory(tmp_path):
    """Start more servers (or one with extra flags): factory(args=[...])."""
    made = []

    def make(args=(), name=None, start=True, **kw):
        s = mdmtest.Server(tmp_path / (name or "srv%d" % len(made)),
                           args=args, **kw)
        made.append(s)
        if start:
            s.start()
        return s

    yield make
    errors = []
    for s in made:
        try:
            s.close()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def server(server_factory):
    return server_factory(name="server")


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    """One server shared by a module's tests (for read-only cases)."""
    s = mdmtest.Server(tmp_path_factory.mktemp("mserver"))
    s.start()
    yield s
    s.close()
