"""Bad start-up options of the HTTP server, and the client's bad inputs: each one `error:` line and exit code 2,
never a traceback. Both run in this process (ppir.cli.run around the server's main, the client's own main): the
server refuses these before it listens (its options at once; a taken port, a corrupt program and a GPU it does not
have once its predictor is loaded), so nothing is left running."""
import os
import socket

import pytest

from bad_input_checks import one_error
from ppir.cli import run
from ppir.commands import load

pytest.importorskip("uvicorn", reason="serving needs fastapi and uvicorn (pip install -r requirements.txt)")


@pytest.fixture
def serve(capsys, monkeypatch):
    """serve(*args) -> (exit code, its one error line) of `ppir serve --host 127.0.0.1 <args>` in this process."""
    # main() sets the OpenCV pixel limit in os.environ for itself; put it back afterwards
    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", "1"))

    def call(*args):
        capsys.readouterr()
        try:
            code = run(load("serve").main, ["--host", "127.0.0.1", *map(str, args)])
        except SystemExit as e:  # argparse
            code = e.code
        return code, one_error(capsys.readouterr().err)
    return call


@pytest.fixture
def busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize("args,words", [
    (["--port", "70000"], "--port must be in 0..65535, got 70000"),
    (["--port", "-1"], "--port must be in 0..65535, got -1"),
    (["--queue-size", "-1"], "--queue-size must be at least 0, got -1"),
    (["--cpu-threads", "0"], "--cpu-threads must be at least 1, got 0"),
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--queue-timeout", "0"], "--queue-timeout must be positive, got 0"),
    (["--queue-timeout", "-2"], "--queue-timeout must be positive, got -2"),
    (["--body-timeout", "0"], "--body-timeout must be positive, got 0"),
])
def test_bad_option_values_are_refused_before_anything_loads(serve, tiny_hinet_export, args, words):
    code, line = serve("--model_dir", tiny_hinet_export, "--backend", "onnxruntime", *args)
    assert code == 2 and words in line, line


def test_a_port_in_use_is_one_line(serve, tiny_hinet_export, busy_port):
    code, line = serve("--model_dir", tiny_hinet_export, "--backend", "onnxruntime", "--port", busy_port)
    assert code == 2 and f"cannot listen on 127.0.0.1:{busy_port}" in line, line


def test_use_gpu_on_a_cpu_build_is_one_line(serve, tiny_hinet_export):
    import paddle

    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        pytest.skip("this machine has a GPU")
    code, line = serve("--model_dir", tiny_hinet_export, "--use-gpu", "--predictor-process", "no", "--port", "0")
    assert code == 2 and "--use_gpu True" in line and "no CUDA device" in line, line


@pytest.mark.parametrize("program", [b"{not json", b""])
def test_a_corrupt_paddle_program_is_one_line(serve, tiny_hinet_export, tmp_path, program):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    for name in ("inference.yml", "inference.pdiparams"):
        (folder / name).write_bytes(open(os.path.join(tiny_hinet_export, name), "rb").read())
    (folder / "inference.json").write_bytes(program)
    code, line = serve("--model_dir", folder, "--predictor-process", "no", "--port", "0")
    assert code == 2 and "inference.json" in line and "cannot load the program" in line, line


# --------------------------------------------------------------------------------------------------- client
def client(capsys, *args):
    from ppir.commands.client import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, one_error(capsys.readouterr().err)


def test_client_missing_image_is_one_line(capsys, tmp_path):
    code, line = client(capsys, "--image", tmp_path / "none.png", "--output", tmp_path / "out.png")
    assert code == 2 and "none.png: no such image file" in line, line
    assert not (tmp_path / "out.png").exists()


def test_client_unreachable_server_is_one_line(capsys, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # a free port: nothing listens there
    image = tmp_path / "in.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    code, line = client(capsys, "--url", f"http://127.0.0.1:{port}", "--image", image, "--output",
                        tmp_path / "out.png", "--timeout", 30)
    assert code == 2 and f"127.0.0.1:{port}" in line, line
    assert not (tmp_path / "out.png").exists()
