"""The round-up of an image side to a network's size rules: one formula for padding, tiling and shape checks.

Plain arithmetic with no Paddle, so the runners (and `ppir <command> --help`) use it without loading the networks;
`ppir.models.common` re-exports it for the networks' own checks."""
import math


def padded_size(size: int, multiple: int, min_size: int = 0) -> int:
    """The smallest side >= `size` (and >= `min_size`) that is a multiple of `multiple`: how far the tools pad."""
    return max(int(math.ceil(size / multiple)) * multiple, int(math.ceil(min_size / multiple)) * multiple)
