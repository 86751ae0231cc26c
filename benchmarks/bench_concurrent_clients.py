"""Many clients at once against the real backend: every request answered exactly once, a killed client's
work cancelled and its slot freed, throughput against one client in the same run.

A real ``rigstyle serve`` process (the untrained built-in generator at 32 px, few steps: the socket, the
queue and the core are measured, not the GAN) serves:

1. one client refining ``--frames`` frames of a shot, one request at a time (the baseline);
2. ``--clients`` client processes doing the same at once, each on its own shot and connection, each
   checking that every request gets exactly one final reply with its id (a result or a typed error) and
   that nothing else arrives; meanwhile a victim process queues work on a shot of its own and is killed
   with SIGKILL halfway: the time until the backend has dropped its shot and cancelled its work
   (``health``: one shot fewer, queue back to the others' depth) is reported.

    .venv/bin/python benchmarks/bench_concurrent_clients.py [--clients 8] [--frames 100]

Prints per-client counts, ``lost=``, ``duplicated=``, ``victim_freed_s=`` and ``throughput_ratio=``
(frames per second of N clients together over one client alone).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from neural_backend.client.blocking import Client, wait_until_healthy
from neural_backend.protocol.passes import FramePasses
from neural_backend.protocol.wire import decode, encode
from neural_backend.refine.calibrate import demo_frames
from neural_backend.serving.ports import free_port

SERVE = ("--checkpoint", "builtin-untrained", "--gan-resolution", "32", "--steps-first", "4",
         "--steps-warm", "2", "--threads", "2", "--queue-size", "16")  # fmt: skip


def frames_of(base: list[FramePasses], shot: str, count: int) -> list[FramePasses]:
    return [dataclasses.replace(base[n % len(base)], shot=shot, frame=n + 1) for n in range(count)]


def run_client(address: str, shot: str, count: int, base: list[FramePasses], out: mp.Queue) -> None:
    """One connection, one request at a time; tallies final replies by id and anything unexpected."""
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    results, errors, duplicated, lost = 0, {}, 0, 0
    answered: set[int] = set()
    frames = frames_of(base, shot, count)
    started, first = time.monotonic(), time.time()
    for request_id, passes in enumerate(frames, start=1):
        socket.send_multipart(encode(passes.to_message(request_id)))
        while True:
            if not socket.poll(120_000):
                lost += 1
                break
            reply = decode(socket.recv_multipart())
            if reply.id in answered or reply.id != request_id:
                duplicated += 1  # a second reply, or one for no request in flight
                continue
            answered.add(reply.id)
            if reply.type == "result":
                results += 1
            else:
                code = str(reply.fields.get("code"))
                errors[code] = errors.get(code, 0) + 1
            break
    seconds, last = time.monotonic() - started, time.time()
    while socket.poll(300):  # anything after the last reply is a duplicate
        socket.recv_multipart()
        duplicated += 1
    socket.close()
    out.put({"shot": shot, "results": results, "errors": errors, "lost": lost, "duplicated": duplicated,
             "seconds": seconds, "first": first, "last": last})  # fmt: skip


def run_victim(address: str, base: list[FramePasses], ready: mp.Event) -> None:
    """Queues three frames of its own shot and waits to be killed."""
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.connect(address)
    for request_id, passes in enumerate(frames_of(base, "victim", 3), start=1):
        socket.send_multipart(encode(passes.to_message(request_id)))
    ready.set()
    time.sleep(3600)


def health(address: str) -> dict:
    with Client(address, timeout=10) as client:
        return client.health()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--frames", type=int, default=100, help="frames per client")
    args = parser.parse_args()
    base = demo_frames(4, size=64)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="bench-clients-")) / "serve.log"
    command = [sys.executable, "-m", "neural_backend", "serve", "--port", str(port), *SERVE]
    with log.open("wb") as stderr:
        server = subprocess.Popen(command, stderr=stderr, stdin=subprocess.DEVNULL)
    address = f"tcp://127.0.0.1:{port}"
    context = mp.get_context("spawn")
    try:
        wait_until_healthy(address, timeout=120, is_alive=lambda: server.poll() is None)
        out: mp.Queue = context.Queue()

        alone = context.Process(target=run_client, args=(address, "alone", args.frames, base, out))
        alone.start()
        baseline = out.get(timeout=3600)
        alone.join()
        print(f"1 client: {baseline['results']} results in {baseline['seconds']:.1f} s "
              f"({baseline['results'] / baseline['seconds']:.2f} frames/s)")  # fmt: skip

        clients = [
            context.Process(target=run_client, args=(address, f"c{n}", args.frames, base, out))
            for n in range(args.clients)
        ]
        for process in clients:
            process.start()
        victim_ready = context.Event()
        victim = context.Process(target=run_victim, args=(address, base, victim_ready))
        time.sleep(1.0)  # the others are under way
        victim.start()
        victim_ready.wait(60)
        time.sleep(0.3)
        before = health(address)
        victim.kill()  # SIGKILL: no goodbye, the OS closes its socket
        killed = time.monotonic()
        freed = None
        while time.monotonic() - killed < 10:
            now = health(address)
            if now["shots"] == before["shots"] - 1:
                freed = time.monotonic() - killed
                break
            time.sleep(0.01)
        victim.join()
        reports = [out.get(timeout=3600) for _ in clients]
        for process in clients:
            process.join()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    for r in sorted(reports, key=lambda r: r["shot"]):
        print(f"client {r['shot']}: {r['results']} results, errors {r['errors']}, lost {r['lost']}, "
              f"duplicated {r['duplicated']}, {r['seconds']:.1f} s")  # fmt: skip
    frames = sum(r["results"] for r in reports)
    total_s = max(r["last"] for r in reports) - min(
        r["first"] for r in reports
    )  # first request to last reply
    requests = args.clients * args.frames
    answered = frames + sum(sum(r["errors"].values()) for r in reports)
    print(f"{args.clients} clients: {frames} results of {requests} requests in {total_s:.1f} s "
          f"({frames / total_s:.2f} frames/s)")  # fmt: skip
    print(f"answered={answered}/{requests} lost={sum(r['lost'] for r in reports)} "
          f"duplicated={sum(r['duplicated'] for r in reports)}")  # fmt: skip
    print(f"victim: queue before the kill {before['queue']}, shots {before['shots']}; "
          f"victim_freed_s={freed if freed is None else round(freed, 3)}")  # fmt: skip
    log_lines = log.read_text(errors="replace").splitlines()
    cancelled = [line for line in log_lines if "disconnected" in line and "cancelled 0 " not in line]
    print("server log, connections that went away with work:", *cancelled, sep="\n  ")
    ratio = (frames / total_s) / (baseline["results"] / baseline["seconds"])
    print(f"throughput_ratio={ratio:.3f}  ({args.clients} clients together / 1 client alone)")


if __name__ == "__main__":
    main()
