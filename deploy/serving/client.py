#!/usr/bin/env python
"""Send an image to a ppir server and save the restored PNG; see --help.

  python deploy/serving/client.py --url http://127.0.0.1:8080 --image noisy.png --output clean.png

Standard library only: ppir/serving/client.py is loaded by its path, so neither paddle nor numpy (nor the ppir
package) has to be installed on the client machine; copying these two files is enough.
"""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CANDIDATES = [os.path.join(HERE, "..", "..", "ppir", "serving", "client.py"), os.path.join(HERE, "ppir_client.py")]


def _load():
    for path in CANDIDATES:
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("ppir_serving_client", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    sys.exit("error: cannot find ppir/serving/client.py (copy it beside this script as ppir_client.py)")


if __name__ == "__main__":
    sys.exit(_load().main(prog="client.py"))
