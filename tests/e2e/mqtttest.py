"""A real mosquitto with mdm's auth plugin for the e2e tests: configured by
deploy/mosquitto/mdm-mosquitto-init on a free loopback port in a temp dir,
started and stopped by the tests (test_push.py, test_agent_push.py)."""
import os
import shutil
import subprocess
import time

import mdmtest
from mdmtest import free_port_closed

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.join(HERE, "..", "..", "deploy", "mosquitto")
INIT = os.path.join(DEPLOY, "mdm-mosquitto-init")

PLUGIN = os.path.abspath(os.path.join(mdmtest.MDM_BIN, "..", "lib",
                                      "mdm_mosquitto_auth.so"))

HAVE_MOSQUITTO = bool(shutil.which("mosquitto") and
                      shutil.which("mosquitto_sub"))


class Broker:
    """mosquitto with mdm's auth plugin on 127.0.0.1:<port>."""

    def __init__(self, workdir):
        self.dir = str(workdir)
        self.port = free_port_closed()
        env = dict(os.environ, MDM_MOSQUITTO_PLUGIN=PLUGIN,
                   MDM_MOSQUITTO_USER=os.environ.get("USER") or
                   __import__("pwd").getpwuid(os.getuid()).pw_name)
        subprocess.run([INIT, self.dir, str(self.port)], check=True, env=env)
        self.password_file = os.path.join(self.dir, "mdmd-mqtt.password")
        self.revoked_file = os.path.join(self.dir, "revoked")
        self.proc = None
        self.starts = 0

    def start(self):
        log = open(os.path.join(self.dir, "mosquitto.%d.log" % self.starts),
                   "wb")
        self.starts += 1
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", os.path.join(self.dir, "mosquitto.conf")],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        mdmtest.wait_for(self._listening, what="mosquitto listening")

    def _listening(self):
        import socket
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", self.port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def sub(self, user, password, topic, count=1, client_id=None):
        """mosquitto_sub as user (client id = user unless given); returns
        the Popen (stdout: payloads)."""
        p = subprocess.Popen(
            ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1",
             "-p", str(self.port), "-i", client_id or user,
             "-u", user, "-P", password, "-t", topic, "-q", "1",
             "-C", str(count), "-d"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        return p

    def wait_subscribed(self, p):
        """Read -d output until the SUBACK; returns its granted QoS line."""
        while True:
            line = p.stdout.readline().decode()
            assert line, "mosquitto_sub exited early (rc %s)" % p.wait()
            if line.startswith("Subscribed"):
                return line.strip()


def read_payload(p, timeout):
    """The next non-debug line of mosquitto_sub within timeout, or None."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            return None
        line = p.stdout.readline().decode()
        if not line:
            return None
        if line.startswith("{"):
            return line.strip()
