"""Fuzz a running ``rigstyle serve --echo`` with 100,000 generated malformed messages (issue 4 acceptance).

Prints how many were sent, how many replies came back (each message must get exactly one), the error codes
seen, the throughput, and whether ``health`` still answers. Exits 1 on any shortfall or ``internal`` error.
The generator is ``tests/malformed.py`` (the test suite sends 20,000 of the same).

    .venv/bin/python benchmarks/bench_socket_fuzz.py [--count 100000] [--seed 0]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

# tests/ holds shared fixtures; the repository root goes first so that tests/neural_backend/ (a plain
# directory) cannot shadow the neural_backend package.
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

from malformed import fuzz_server  # noqa: E402

from neural_backend.client.blocking import Client, wait_until_healthy  # noqa: E402
from neural_backend.serving.ports import free_port  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    address = f"tcp://127.0.0.1:{free_port()}"
    command = [
        sys.executable,
        "-m",
        "neural_backend",
        "serve",
        "--echo",
        "--queue-size",
        "2",
        "--address",
        address,
    ]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_healthy(address, 60, is_alive=lambda: server.poll() is None)
        report = fuzz_server(address, args.count, args.seed, timeout=600)
        with Client(address, timeout=10) as client:
            status = client.health()["status"]
        alive = server.poll() is None
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    print(
        f"sent {report.sent} malformed messages, {report.replies} replies in {report.seconds:.1f} s "
        f"({report.sent / report.seconds:.0f} msg/s)"
    )
    print(f"reply codes: {dict(report.codes.most_common())}")
    print(f"server alive afterwards: {alive}; health: {status}; exit code on SIGTERM: {server.returncode}")
    ok = report.replies == report.sent == args.count and not report.codes["internal"] and alive
    if report.codes["internal"]:
        print(
            "server log (internal errors):\n"
            + "\n".join(line for line in log.splitlines() if "Error" in line)
        )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
