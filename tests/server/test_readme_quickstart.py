"""The README's quick start, run as written: `decide serve --demo` on a fresh directory, then the `curl` beside
it, which must return a real decision of the consumer-loan policy. Only the port is changed (to a free one), so
the test never collides with a server already on 8080."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import compiler
from tests.conftest import REPO


def _quickstart() -> tuple[str, str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("<!-- serve-quickstart -->", 1)[1].split("<!-- /serve-quickstart -->", 1)[0]
    blocks = re.findall(r"```\n(.*?)\n```", section, flags=re.S)
    assert len(blocks) == 2, blocks
    return blocks[0].strip(), blocks[1].strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_demo_and_the_curl_beside_it_return_a_real_decision(tmp_path: Path) -> None:
    serve_line, curl_line = _quickstart()
    install, _, serve = serve_line.partition(" && ")
    assert install == "pip install -e ." and serve == "decide serve --demo"  # this environment is installed already
    port = _free_port()
    decide = [sys.executable, "-m", "decide_cli"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DECIDE_DATABASE")}
    server = subprocess.Popen(
        [*decide, *serve.split()[1:], "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.2)
        assert curl_line.startswith("curl ") and "127.0.0.1:8080" in curl_line
        completed = subprocess.run(
            ["bash", "-c", curl_line.replace("127.0.0.1:8080", f"127.0.0.1:{port}")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert completed.returncode == 0, completed.stderr
        body = json.loads(completed.stdout)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode()
    # The independent answer: the engine itself on the same record, with the demo blacklist.
    record = json.loads(re.search(r"-d '(.*)'$", curl_line).group(1))["input"]
    policy = compiler.compile_file(REPO / "policies" / "consumer_loan.policy")
    blacklist = (REPO / "policies" / "examples" / "blacklist.txt").read_text().split()
    expected = policy.evaluate(record, lists={"blacklist": blacklist}, as_of=body["as_of"])
    assert body["outputs"] == expected["outputs"] and body["trace"] == expected["trace"]
    assert (body["policy"], body["version"], body["arm"]) == ("consumer_loan", 1, "champion")
    assert "demo API key" in output and "AB123456" not in output
