"""Time `userctl validate` as a whole process (DESIGN §6): 10k and 100k users.

For each size: generate the organization (bench/gen_org.py) into a temporary directory and run
`userctl validate -f ORG.yaml` under /usr/bin/time: wall seconds (best of BENCH_RUNS, default 3,
as an installed userctl runs: bytecode cached, see bench_plan.installed_env) and peak RSS. A
second row per size has one mistake in the last user (an unquoted id_number): the fast parser
then hands the file to the precise one, which locates the problem, so it shows what a PR author
waits for an error at that size. Prints a markdown table for the README.

    python bench/bench_validate.py            # 10k and 100k
    python bench/bench_validate.py 50000      # one size
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_plan import installed_env  # noqa: E402
from gen_org import generate  # noqa: E402

# The machine is shared and noisy: BENCH_RUNS=9 gives steadier best-of figures.
RUNS = int(os.environ.get("BENCH_RUNS", "3"))


def measure(cmd: list[str], report: Path) -> tuple[float, float, int, str]:
    """(best wall seconds, peak RSS MB, exit code, the command's last line) over RUNS runs, after
    one untimed run that writes the bytecode cache (as installing does) and warms the page cache."""
    env = installed_env(dict(os.environ))
    subprocess.run(cmd, env=env, capture_output=True, check=False)
    best, peak, code, said = float("inf"), 0.0, 0, ""
    for _ in range(RUNS):
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-v", "-o", str(report), *cmd], env=env, capture_output=True, text=True, check=False)
        best = min(best, time.perf_counter() - start)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report.read_text())
        peak = max(peak, int(rss.group(1)) / 1024 if rss else 0.0)
        code = proc.returncode
        said = (proc.stdout + proc.stderr).strip().splitlines()[-1]
    return best, peak, code, said


def with_one_mistake(text: str) -> str:
    """The same organization with the last id_number unquoted (a number where a string goes)."""
    head, _, tail = text.rpartition('id_number: "')
    number, _, rest = tail.partition('"')
    return f"{head}id_number: 0{number}{rest}"


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [10_000, 100_000]
    userctl = str(Path(sys.executable).with_name("userctl"))
    print(f"| users | file | file MB | validate s (best of {RUNS}) | peak MB | exit |")
    print("|---:|---|---:|---:|---:|---:|")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            text = generate(n, seed=1)
            for label, content in (("valid", text), ("1 problem", with_one_mistake(text))):
                path = Path(tmp) / "org.yaml"
                path.write_text(content, encoding="utf-8")
                seconds, peak, code, said = measure([userctl, "validate", "-f", str(path)], Path(tmp) / "time.txt")
                print(f"| {n:,} | {label} | {path.stat().st_size / 1e6:.1f} | {seconds:.2f} | {peak:.0f} | {code} |", flush=True)
                print(f"<!-- {said[:160]} -->", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
