"""Scale-out on Ray: `--engine ray` of ``ppir serve`` (Ray Serve replicas) and of ``ppir infer`` / ``infer-onnx`` /
``predict`` (a Ray Data actor pool).

* ``cluster``  importing Ray (one line saying how to install it when it is missing) and joining a cluster;
* ``batch``    the restoring worker of a batch job and the driver that merges its results (the one per-image loop,
               ``ppir.infer.loop``, runs inside each worker);
* ``serving``  the Serve deployment holding one predictor per replica, and the adapter that lets the local
               server's predictor pool forward requests to it (the HTTP app is ``ppir.serving.app``, unchanged).

Nothing here is imported by ``import ppir``, and only these modules import ``ray``, inside functions.
docs/scale_out.md describes the design, the benchmarks and running on an existing cluster.
"""
