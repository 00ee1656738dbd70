"""Where a decision request's time goes inside one worker: cProfile of a bounded in-process loop of the Flask test
client against the decision server app (the demo registry in a temporary directory, the service started as in a
worker: refresher, spool and shipper running).

Input: `--requests N` (default 20,000) of the README's request, `--top K`. Output: per request, the wall time, the
CPU time of the process (every thread: the request's and the background ones — shipper, refresher, shadows) and of
the requesting thread; then the K functions with the most own CPU time of the requesting thread, and the K with the
most cumulative. The profile's clock is the thread's CPU time (`time.thread_time`), not the wall: a call that
releases the GIL (os.urandom, a write) would otherwise be charged with whatever another thread ran meanwhile. The
test client skips the socket and gunicorn, so this is the app's share of a request, not the whole of it.

    python benchmarks/http/profile_app.py --requests 20000 --top 25
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.http.run import BODY, PATH  # noqa: E402
from decision_server.bench import temporary_directory  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--shadow", action="store_true", help="Deploy version 2 as a shadow first.")
    arguments = parser.parse_args(argv)
    from benchmarks.http.run import deploy, seed_registry
    from decision_server import create_app

    with temporary_directory("decide-profile-") as directory:
        url, key, registry = seed_registry(directory)
        if arguments.shadow:
            deploy(registry, (2,))
        app = create_app({"database_url": url, "data_dir": str(directory / "data"), "plugins": False})
        service = app.extensions["decide"]
        service.start()
        client = app.test_client()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

        def loop(count: int) -> tuple[float, float, float]:
            """µs per request: wall, process CPU, this thread's CPU."""
            wall, process, thread = time.perf_counter(), time.process_time(), time.thread_time()
            for _ in range(count):
                response = client.post(PATH, data=BODY, headers=headers)
                assert response.status_code == 200, response.data
            time.sleep(2 * service.config.ship_interval_seconds)  # let the shipper catch up: its CPU counts
            return (
                (time.perf_counter() - wall) / count * 1e6,
                (time.process_time() - process) / count * 1e6,
                (time.thread_time() - thread) / count * 1e6,
            )

        loop(500)
        plain = loop(arguments.requests)
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        loop(arguments.requests)
        profiler.disable()
        service.stop()
        registry.dispose()
    print(
        f"{arguments.requests} requests, µs each (no profiler): wall {plain[0]:.1f}, process CPU {plain[1]:.1f}, "
        f"the requesting thread's CPU {plain[2]:.1f} (so the background threads {plain[1] - plain[2]:.1f})\n"
    )
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order).print_stats(arguments.top)
        print(text.getvalue().split("\n", 6)[-1] if order == "tottime" else text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
