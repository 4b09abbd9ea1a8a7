"""Fixtures: a real servicedesk server on a free loopback port, and helpers to run the examples.

The server binary is $SERVICEDESK_BIN, else target/debug/servicedesk of this repository (build it
with `cargo build` at the repository root).
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

CLIENT_DIR = Path(__file__).resolve().parents[1]  # clients/python
REPO_DIR = CLIENT_DIR.parents[1]
EXAMPLES_DIR = CLIENT_DIR / "examples"

# The tests exercise the working tree's package, installed or not.
sys.path.insert(0, str(CLIENT_DIR))

ADMIN_KEY = "admin-key-456"
TEST_KEY = "test-key-123"

LISTENING = re.compile(r"listening on (\S+):(\d+)")

# A desk whose first tier has no built-in agent: a remote agent attached to L1 gets its work.
L1_REMOTE_CONFIG = """\
[[desk.tiers]]
name = "L1"
agents = 0
instructions = "You are the frontline agent of the test desk. Answer briefly."

[[desk.tiers]]
name = "L2"
agents = 2

[[desk.tiers]]
name = "Expert"
agents = 1
"""
L1_INSTRUCTIONS = "You are the frontline agent of the test desk. Answer briefly."


def server_binary() -> Path:
    configured = os.environ.get("SERVICEDESK_BIN")
    path = Path(configured) if configured else REPO_DIR / "target" / "debug" / "servicedesk"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"servicedesk binary not found at {path}: run `cargo build` in {REPO_DIR}, "
            "or set SERVICEDESK_BIN to the binary",
            pytrace=False,
        )
    return path


class Server:
    """One `servicedesk serve --dev` process with its own data directory."""

    def __init__(self, config: Optional[str] = None) -> None:
        binary = server_binary()  # fails clearly before anything is created
        self.dir = Path(tempfile.mkdtemp(prefix="sd-pytest-"))
        self.log_path = self.dir / "server.log"
        args = [str(binary), "serve", "--dev", "--listen", "127.0.0.1:0",
                "--data-dir", str(self.dir / "data")]
        if config is not None:
            config_path = self.dir / "desk.toml"
            config_path.write_text(config)
            args += ["--config", str(config_path)]
        env = dict(os.environ)
        env.pop("SERVICEDESK_CONFIG", None)
        env.pop("SERVICEDESK_LISTEN", None)
        env.pop("SERVICEDESK_DATA_DIR", None)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=self._log, env=env,
                                     stdin=subprocess.DEVNULL)
        self.host, self.port = self._wait_listening()
        self.target = f"{self.host}:{self.port}"

    def _wait_listening(self, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            match = LISTENING.search(text)
            if match:
                return match.group(1), int(match.group(2))
            if self.proc.poll() is not None:
                self.stop()
                pytest.fail(f"servicedesk exited with {self.proc.returncode}:\n{text}",
                            pytrace=False)
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"servicedesk did not log `listening on` within {timeout}s:\n"
                    f"{self.log_path.read_text(errors='replace')}", pytrace=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """The default desk (3 L1, 2 L2, 1 Expert built-in agents), shared by the session."""
    s = Server()
    yield s
    s.stop()


@pytest.fixture()
def l1_remote_server() -> Iterator[Server]:
    """A fresh desk whose L1 tier has no built-in agents."""
    s = Server(L1_REMOTE_CONFIG)
    yield s
    s.stop()


@pytest.fixture()
def desk(server: Server):
    """An admin connection to the shared server."""
    from servicedesk import connect

    with connect(server.target, ADMIN_KEY) as sd:
        yield sd


def example_env(target: str, api_key: Optional[str] = ADMIN_KEY,
                extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of an example: target and key, the working tree's package, no LLM."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OPENAI_") and not k.startswith("SERVICEDESK_")}
    env["SERVICEDESK_TARGET"] = target
    if api_key is not None:
        env["SERVICEDESK_API_KEY"] = api_key
    env["PYTHONPATH"] = os.pathsep.join(
        [str(CLIENT_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_example(name: str, *args: str, target: str, api_key: Optional[str] = ADMIN_KEY,
                input: Optional[str] = None, extra_env: Optional[Dict[str, str]] = None,
                timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Runs `python examples/NAME.py ARGS` to completion."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / f"{name}.py"), *args],
        cwd=str(CLIENT_DIR), env=example_env(target, api_key, extra_env),
        input=input if input is not None else "", capture_output=True, text=True,
        timeout=timeout,
    )


class Running:
    """An example running in the background, with its output read line by line."""

    def __init__(self, name: str, *args: str, target: str, api_key: Optional[str] = ADMIN_KEY,
                 extra_env: Optional[Dict[str, str]] = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES_DIR / f"{name}.py"), *args],
            cwd=str(CLIENT_DIR), env=example_env(target, api_key, extra_env),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            bufsize=1,
        )
        self.lines: List[str] = []
        self._queue: "queue.Queue[Optional[str]]" = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, pattern: str, timeout: float = 30.0) -> re.Match:
        """Waits for an output line matching the regex; fails with the output so far."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)
                break
            self.lines.append(line)
            match = regex.search(line)
            if match:
                return match
        pytest.fail(f"no line matching {pattern!r} within {timeout}s; output so far:\n"
                    + self.output(), pytrace=False)

    def expect_all(self, *patterns: str, timeout: float = 30.0) -> None:
        """Waits until every regex has matched a line (already read or new), in any order."""
        deadline = time.monotonic() + timeout
        pending = [re.compile(p) for p in patterns]
        pending = [r for r in pending if not any(r.search(line) for line in self.lines)]
        while pending:
            left = deadline - time.monotonic()
            line = None
            if left > 0:
                try:
                    line = self._queue.get(timeout=left)
                except queue.Empty:
                    line = None
            if line is None:
                if left > 0:
                    self._queue.put(None)
                pytest.fail(f"no lines matching {[r.pattern for r in pending]} within "
                            f"{timeout}s; output so far:\n" + self.output(), pytrace=False)
            self.lines.append(line)
            pending = [r for r in pending if not r.search(line)]

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def wait(self, timeout: float = 30.0) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"example did not exit within {timeout}s; output:\n{self.output()}",
                        pytrace=False)
        self._reader.join(timeout=5)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return code

    def output(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture()
def running():
    """Starts examples in the background; kills whatever is still running at the end."""
    started: List[Running] = []

    def start(name: str, *args: str, **kwargs) -> Running:
        r = Running(name, *args, **kwargs)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close_stdin()
        r.kill()


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(3)}"
