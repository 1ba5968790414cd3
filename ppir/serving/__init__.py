"""HTTP serving of an exported ppir network: FastAPI + uvicorn over the Paddle Inference or ONNX Runtime runner.

Paddle Serving's C++ server cannot be installed on current Python (it downloads a prebuilt binary at run time,
and that binary's Paddle cannot read PIR programs), so ppir serves the way PaddleX's basic serving does:

* ``protocol``  parsing and validation of the two request formats (PaddleX envelope, Paddle Serving pipeline),
                base64 in short GIL-releasing steps, image headers checked before decoding (too many pixels -> 413
                without decoding);
* ``pool``      a fixed pool of predictor threads, each owning one backend, behind a bounded queue (full, or a
                wait longer than --queue-timeout expected -> 503);
* ``budget``    the bytes of request bodies held at once, across requests (over -> 503 before reading a body);
* ``child``     restoring one image (decode, run, encode PNG), in a predictor thread or a predictor's child
                process (Paddle Inference, whose runs hold the GIL);
* ``stats``     request counters and latency percentiles for ``GET /metrics``;
* ``app``       the FastAPI application (``create_app``: module-level routes reading ``app.state``);
* ``server``    a whole server run in short steps (``run(ServerSettings)``; its command line is
                ppir/commands/serve.py, ``ppir serve``, ``deploy/serving/server.py``);
* ``client``    a standard-library client (``ppir client``, ``deploy/serving/client.py``,
                ``benchmarks/bench_serving.py``).
* ``launch``    start the server as a child process and wait until it listens (tests, benchmarks).

``ppir serve --engine ray`` keeps all of this as its HTTP front and restores on Ray Serve replicas
(``ppir.scaleout.serving``).

Only ``app`` and ``server.run`` need fastapi/uvicorn; the rest is standard library + numpy/OpenCV.
"""

# the pool's default queue; here (a light module) so `ppir serve --help` shows it without loading the server
DEFAULT_QUEUE_SIZE = 64  # a burst of a few dozen clients waits its turn instead of being refused
