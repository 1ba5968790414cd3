"""A dataset image is judged by its header before it is decoded (issue 25).

Training crops patches from whole decoded images and evaluation restores them whole, as the protocols do, so a
dataset reader decodes every file it is given: a 1 MB PNG that declares 20000x20000 pixels would take gigabytes
before any check. `read_dataset_image` reads the header first and refuses, with one line naming the file, an image
whose file bytes plus READ_BYTES_PER_PIXEL per pixel exceed DATASET_IMAGE_BUDGET (the default --max-memory of the
runners). That is about 40 M pixels: SIDD's largest photographs (5328x3000, 16 M pixels) pass.
"""
from __future__ import annotations

from ..errors import ImageError
from .image_header import read_header
from .image_io import read_image

# The arrays of reading one image: the decoded copy (up to 16-bit RGBA, 8 bytes), the float32 RGB result (12)
# and one float32 temporary of the conversion (12).
READ_BYTES_PER_PIXEL = 32
DATASET_IMAGE_BUDGET = 1280 << 20  # infer.memory.DEFAULT_BUDGET (not imported: ppir.infer loads ppir.data)


def dataset_image_problem(path: str, budget: int = DATASET_IMAGE_BUDGET) -> str | None:
    """Why the dataset image `path` must not be decoded (one line naming it), or None. An unreadable header is
    left to the decoder, which names the file in its own words."""
    from ..infer.memory import format_bytes, header_need  # here: ppir.infer at load time would be a package cycle
    try:
        head, file_bytes = read_header(path)
    except OSError:
        return None
    size, need = header_need(head, file_bytes, READ_BYTES_PER_PIXEL)
    if need <= budget:
        return None
    if size is None:
        return (f"{path}: the file is {format_bytes(file_bytes)}, over the {format_bytes(budget)} a dataset image "
                "may take to read; not read")
    return (f"{path}: its header says {size[1]}x{size[0]} pixels, which need {format_bytes(need)} to read, over "
            f"the {format_bytes(budget)} a dataset image may take; not decoded")


def read_dataset_image(path: str):
    """`read_image` after the header check (ImageError naming the file when the image is too large to read)."""
    problem = dataset_image_problem(path)
    if problem:
        raise ImageError(problem)
    return read_image(path)
