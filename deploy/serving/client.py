#!/usr/bin/env python
"""Send an image to a ppir server and save the restored PNG; see --help.

  python deploy/serving/client.py --url http://127.0.0.1:8080 --image noisy.png --output clean.png

The client is ppir/serving/client.py, standard library only; `import ppir` loads no Paddle, so the ppir source
alone (no paddle, no numpy) is enough on a client machine.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # this checkout's ppir

from ppir.serving.client import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="client.py"))
