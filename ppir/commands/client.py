"""Send an image to a ppir server and save the restored PNG (`ppir client`, deploy/serving/client.py).

Standard library only, as ppir.serving.client (the requests and retries) and ppir.paths (the atomic write): no
paddle or numpy is needed on the client machine.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

from ppir.cli import ArgumentParser, prog as cli_prog
from ppir.paths import atomic_target, output_file_problem
from ppir.serving.client import FORMATS, ServingError, check_url, restore_bytes


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=prog, description="Send an image to a ppir server and save the restored PNG.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Examples:\n"
               "  python deploy/serving/client.py --url http://127.0.0.1:8080 --image noisy.png --output clean.png\n"
               "  python deploy/serving/client.py --url http://127.0.0.1:8080 --format pipeline --image in.jpg "
               "--output out.png      # Paddle Serving request format")
    p.add_argument("--url", default="http://127.0.0.1:8080",
                   help="server address (default: %(default)s), or a full endpoint URL")
    p.add_argument("--image", required=True, help="image file to restore (PNG, JPEG, BMP, TIFF, WebP)")
    p.add_argument("--output", required=True, help="where to write the restored image (PNG bytes)")
    p.add_argument("--format", choices=FORMATS, default="paddlex",
                   help="paddlex: POST /image-restoration (default); pipeline: Paddle Serving's "
                        "POST /<service>/prediction")
    p.add_argument("--service", default="image_restoration",
                   help="service name in /<service>/prediction for --format pipeline (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the answer (default: %(default)s)")
    return p


def main(argv=None, prog: str | None = None) -> int:
    """The command line; ServingError -> 'error: ...' on stderr, exit code 2."""
    args = build_parser(prog or cli_prog()).parse_args(argv)
    try:
        return restore_file(args.url, args.image, args.output, args.format, args.service, args.timeout)
    except ServingError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


def restore_file(url: str, image: str, output: str, fmt: str, service: str, timeout: float) -> int:
    check_url(url)
    if not os.path.isfile(image):
        raise ServingError(f"{image}: no such image file")
    try:
        data = pathlib.Path(image).read_bytes()
    except OSError as e:
        raise ServingError(f"{image}: cannot read: {e.strerror or e}") from None
    problem = output_file_problem(output)  # before the request: the server's work would be thrown away
    if problem:
        raise ServingError(problem)
    t0 = time.perf_counter()
    png = restore_bytes(url, data, fmt, service, timeout)
    elapsed = time.perf_counter() - t0
    try:  # a unique temporary beside the output, renamed over it: nothing half-written remains on failure
        with atomic_target(output) as tmp:
            with open(tmp, "wb") as f:
                f.write(png)
    except OSError as e:
        raise ServingError(f"{output}: cannot write: {e.strerror or e}") from None
    print(f"restored {image} -> {output} ({len(png)} bytes, {elapsed * 1000:.0f} ms)", file=sys.stderr)
    return 0
