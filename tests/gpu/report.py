"""The short Markdown report of a GPU check run (tests/gpu/run.sh) from its JUnit XML: where it ran, the counts,
and one line per failure and per skip with its reason. Usage:
    python tests/gpu/report.py --junit JUNIT.xml --exit-code N --time-limit S --output REPORT.md
"""
import argparse
import os
import platform
import sys
import xml.etree.ElementTree as ET


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} threads"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} threads"


def machine() -> str:
    """The device and build the checks ran on (a few seconds: imports paddle)."""
    try:
        import paddle

        build = "CUDA" if paddle.device.is_compiled_with_cuda() else "CPU-only"
        gpus = paddle.device.cuda.device_count() if build == "CUDA" else 0
        names = ", ".join(paddle.device.cuda.get_device_name(i) for i in range(gpus)) or "none visible"
        return f"Paddle {paddle.__version__} ({build} build); GPUs: {names}; CPU: {cpu_name()}"
    except Exception as e:  # noqa: BLE001 - the report must be written even when paddle is broken
        return f"paddle could not be imported ({type(e).__name__}: {e})"


def first_line(text) -> str:
    return (str(text or "").strip().splitlines() or [""])[0][:300]


def cases(path):
    """(test id, outcome, message) for every test case in the JUnit XML."""
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome, message = tag, el.get("message") or el.text
                break
        yield name, outcome, first_line(message)


def report(junit: str, exit_code: int, time_limit: int) -> str:
    env = {k: os.environ.get(k, "") for k in ("PPIR_GPU_SUITE_DEVICE", "PPIR_REQUIRE_GPU", "NVIDIA_TF32_OVERRIDE")}
    lines = ["# GPU check report", "", f"- machine: {machine()}",
             "- settings: " + ", ".join(f"{k}={v or '(unset)'}" for k, v in env.items()),
             f"- time limit: {time_limit} s"]
    if exit_code == 124:
        lines.append(f"- **stopped at the time limit** ({time_limit} s): the results below are incomplete")
    if not os.path.isfile(junit):
        return "\n".join(lines + [f"- **no JUnit XML** at {junit} (exit code {exit_code})", ""])
    root = ET.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    rows = list(cases(junit))
    count = {k: sum(1 for _, o, _ in rows if o == k) for k in ("passed", "failure", "error", "skipped")}
    verdict = "PASSED" if exit_code == 0 else "FAILED"
    lines += [f"- result: **{verdict}** (exit code {exit_code}): {count['passed']} passed, {count['failure']} failed, "
              f"{count['error']} errors, {count['skipped']} skipped in {float(suite.get('time', 0)):.0f} s", ""]
    for title, kinds in (("Failures", ("failure", "error")), ("Skipped", ("skipped",))):
        picked = [(n, m) for n, o, m in rows if o in kinds]
        if picked:
            lines += [f"## {title}", ""] + [f"- `{n}`: {m}" for n, m in picked] + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--junit", required=True)
    p.add_argument("--exit-code", type=int, required=True)
    p.add_argument("--time-limit", type=int, required=True)
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    text = report(args.junit, args.exit_code, args.time_limit)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
