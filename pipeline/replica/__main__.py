"""``python -m pipeline.replica``: serve the replica world until Ctrl-C."""

from __future__ import annotations

import argparse
import threading

from pipeline.replica.world import ReplicaWorld


def main(argv: list[str] | None = None) -> int:
    """Start the world, print its URLs and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.replica", description="Serve the offline replica world."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    args = parser.parse_args(argv)
    world = ReplicaWorld(host=args.host).start()
    try:
        for site in world.SITES:
            print(f"{site:<7} {world.base_urls[site]}", flush=True)
        print(f"index page: {world.index_url}", flush=True)
        print("Serving; press Ctrl-C to stop.", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nStopping.", flush=True)
    finally:
        world.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
