"""The benchmark's read-only steps run alternately with their floor (A B A B ...) and report the
median of the pairs' CPU ratios: a best run picked by wall time, then its CPU, swung the plan's
ratio at 100k by ±0.1 from one run to the next, wider than the gap it was measuring."""

from __future__ import annotations

from pathlib import Path

from bench import bench


def test_a_step_and_its_floor_run_alternately(tmp_path: Path) -> None:
    log = tmp_path / "log"
    mine, floor = bench.paired(
        ["sh", "-c", f"echo A >> {log}"],
        ["sh", "-c", f"echo B >> {log}"],
        {},
        runs=3,
        min_seconds=0,
    )
    assert log.read_text().split() == ["A", "B", "A", "B", "A", "B"]
    assert len(mine.cpus) == len(floor.cpus) == 3
    assert mine.code == floor.code == 0


def test_a_short_step_runs_more_pairs_until_they_have_taken_long_enough(tmp_path: Path) -> None:
    """Pairs of short processes swing widely: they are run until the pairs have taken
    `min_seconds` (at most MAX_PAIRS), still alternately; a long step stops at `runs`."""
    log = tmp_path / "log"
    mine, floor = bench.paired(
        ["sh", "-c", f"echo A >> {log}; sleep 0.05"],
        ["sh", "-c", f"echo B >> {log}; sleep 0.05"],
        {},
        runs=3,
        min_seconds=0.8,
    )
    ran = log.read_text().split()
    assert ran == ["A", "B"] * (len(ran) // 2)
    assert 3 < len(mine.cpus) == len(floor.cpus) == len(ran) // 2 < 9  # 0.1 s and more a pair
    log.write_text("")
    bench.paired(["sh", "-c", f"echo A >> {log}"], ["true"], {}, runs=2, min_seconds=1e9)
    assert log.read_text().split() == ["A"] * bench.MAX_PAIRS


def test_the_cpu_ratio_is_the_median_of_the_pairs() -> None:
    def measured(*cpus: float) -> bench.Measured:
        return bench.Measured(1.0, 10.0, 0, "", sorted(cpus)[len(cpus) // 2], cpus)

    # Pairs 3.0/1.0, 1.0/2.0, 2.0/1.0: their median is 2.0, which the medians' ratio (2.0/1.0)
    # happens to equal here but not below.
    row = bench.Row("plan", "sqlite", "10k", measured(3.0, 1.0, 2.0), measured(1.0, 2.0, 1.0))
    assert row.cpu_ratio() == "2.00× (0.50-3.00, 3)"
    row = bench.Row("plan", "sqlite", "10k", measured(1.0, 4.0, 4.0), measured(1.0, 4.0, 1.0))
    assert row.cpu_ratio() == "1.00× (1.00-4.00, 3)"  # the medians' ratio would say 4.00×
    # A single run (an apply): its own ratio.
    one = bench.Row("apply", "sqlite", "10k", measured(3.0), measured(1.5))
    assert one.cpu_ratio() == "2.00×"
