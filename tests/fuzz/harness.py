"""Running fuzz cases in resource-limited worker processes.

A worker is a long-lived Python process that runs case after case through `resdsl.cli.main`
in-process (so a case costs what `check` costs, not an interpreter start), with its address
space capped once at start (RLIMIT_AS, as `ulimit -v`). Before each case it resets the
kernel's peak-RSS mark (`/proc/self/clear_refs`), so the peak it reports after the case is
that case's own. The parent sends one case at a time and waits for the answer at most
`timeout` seconds; a worker that overruns is killed and one that dies (a crash, the memory
cap) is restarted, and the case is recorded as a timeout or a crash.

Outcomes: `ok` (exit 0), `diagnosed` (exit 1, no traceback), and the failures: `internal`
(exit 3, an E9000 or a traceback), `timeout`, `crash`, `memory` (peak RSS over the
contract's 1 GB, or a MemoryError), `unexpected` (a hostile case without its code).
"""

from __future__ import annotations

import io
import json
import os
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The resource contract of docs/language.md §Limits.
CONTRACT_SECONDS = 5.0
CONTRACT_RSS = 1 << 30
# The worker's address-space cap: what the acceptance runs under (`ulimit -v 2000000`).
ADDRESS_SPACE = 2_000_000 * 1024
FAILURES = ("internal", "timeout", "crash", "memory", "unexpected")


@dataclass
class Result:
    name: str
    outcome: str
    code: int | None
    wall: float
    cpu: float
    peak_rss: int  # bytes; 0 when unknown (the worker died)
    codes: list[str] = field(default_factory=list)
    detail: str = ""


# ---------------------------------------------------------------------- the worker


def _peak_rss() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:  # not Linux, or not allowed: the peak is then the worker's so far
        pass


def worker(address_space: int) -> None:
    """Serve cases from stdin (one JSON line each) until it closes."""
    proto = sys.stdout
    sys.stdout = sys.stderr
    if address_space:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    from resdsl.cli import main

    for line in sys.stdin:
        req = json.loads(line)
        out, err = io.StringIO(), io.StringIO()
        _reset_peak()
        c0, t0 = time.process_time(), time.perf_counter()
        detail = ""
        try:
            code = main([req["command"], req["path"]], out, err)
        except MemoryError:
            code, detail = -2, "MemoryError"
        except BaseException:  # anything that escapes the CLI is a finding
            code, detail = -1, traceback.format_exc()[-2000:]
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        text = err.getvalue()
        if "Traceback" in text or "E9000" in text:
            detail = detail or text[-2000:]
        codes = sorted({t[6:11] for t in text.split("\n") if t.startswith("error[")})
        reply = {"code": code, "wall": wall, "cpu": cpu, "rss": _peak_rss(), "codes": codes,
                 "detail": detail}
        proto.write(json.dumps(reply) + "\n")
        proto.flush()


# ---------------------------------------------------------------------- the parent


class Pool:
    """One worker process, restarted when it dies or overruns."""

    def __init__(self, timeout: float = 20.0, address_space: int = ADDRESS_SPACE,
                 nice: int = 0) -> None:
        self.timeout = timeout
        self.address_space = address_space
        self.nice = nice
        self.proc: subprocess.Popen[str] | None = None
        self.restarts = 0
        # The workers' stderr, kept for the run's whole life (closed by `close`).
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115

    def _start(self) -> subprocess.Popen[str]:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="0")
        nice = self.nice

        def lower_priority() -> None:
            if nice:
                os.nice(nice)

        return subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.harness", "--worker", str(self.address_space)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, text=True, preexec_fn=lower_priority,
        )

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.restarts += 1

    def run(self, name: str, path: Path, command: str = "check",
            expect: Iterable[str] = ()) -> Result:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        start = time.perf_counter()
        try:
            self.proc.stdin.write(json.dumps({"path": str(path), "command": command}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self._kill()
            return Result(name, "crash", None, 0.0, 0.0, 0, detail="worker gone")
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not ready:
            self._kill()
            return Result(name, "timeout", None, time.perf_counter() - start, 0.0, 0)
        line = self.proc.stdout.readline()
        if not line:
            self._kill()
            return Result(name, "crash", None, time.perf_counter() - start, 0.0, 0,
                          detail="the worker died (killed, or out of memory)")
        r = json.loads(line)
        outcome = _outcome(r, tuple(expect))
        return Result(name, outcome, r["code"], r["wall"], r["cpu"], r["rss"], r["codes"],
                      r["detail"])

    def close(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
            self.proc = None
        self.stderr.close()

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self._kill()
        self.close()


def _outcome(r: dict[str, object], expect: tuple[str, ...]) -> str:
    code, codes, detail = r["code"], r["codes"], r["detail"]
    assert isinstance(codes, list) and isinstance(detail, str) and isinstance(r["rss"], int)
    if code == -2 or r["rss"] > CONTRACT_RSS:
        return "memory"
    if code not in (0, 1) or detail or "E9000" in codes:
        return "internal"
    if expect and not set(expect) & set(codes):
        return "unexpected"
    return "ok" if code == 0 else "diagnosed"


class Scratch:
    """A folder for one case at a time, emptied between cases."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="resdsl-fuzz-"))
        self.n = 0

    def fresh(self) -> Path:
        self.n += 1
        folder = self.root / f"c{self.n % 2}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        return folder

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def run_texts(pool: Pool, scratch: Scratch, cases: Iterable[tuple[str, str]],
              command: str = "check") -> Iterator[Result]:
    """Run (name, text) cases, each as `main.res` in a fresh folder."""
    for name, text in cases:
        folder = scratch.fresh()
        path = folder / "main.res"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        yield pool.run(name, path, command)


@dataclass(frozen=True)
class Process:
    """One `resdsl` process: its exit code, wall and CPU seconds, peak RSS and output."""

    code: int
    wall: float
    cpu: float
    rss: int
    text: str

    @property
    def first_line(self) -> str:
        if "Traceback" in self.text:
            return "TRACEBACK: " + self.text.strip().splitlines()[-1]
        lines = self.text.splitlines()
        return next((ln for ln in lines if ln.startswith(("error", "warning"))),
                    lines[0] if lines else "")


# `resdsl COMMAND SPEC` that writes its own peak RSS (VmHWM) to $RESDSL_HWM as it exits.
# The kernel's ru_maxrss of a child also counts the parent's memory copied at fork (before
# exec): run from a test session that has loaded torch, it would report gigabytes.
_REPORTING_MAIN = """
import os, sys
from resdsl.cli import main
try:
    code = main(sys.argv[1:])
finally:
    with open("/proc/self/status", encoding="ascii") as f:
        hwm = next((line.split()[1] for line in f if line.startswith("VmHWM:")), "0")
    with open(os.environ["RESDSL_HWM"], "w", encoding="ascii") as f:
        f.write(hwm)
sys.exit(code)
"""


def run_process(command: str, spec: Path, address_space: int = ADDRESS_SPACE) -> Process:
    """`resdsl COMMAND SPEC` in a fresh process, as a user runs it, under an address-space
    cap (`ulimit -v`); CPU time is that process's own (`os.wait4`), peak RSS its own VmHWM
    (or ru_maxrss, an overestimate, if it died before it could say)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryDirectory() as tmp:
        hwm_file = Path(tmp) / "hwm"
        env = dict(os.environ, PYTHONPATH=str(ROOT), RESDSL_HWM=str(hwm_file))
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", _REPORTING_MAIN, command, str(spec)],
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=limit,
                                cwd=spec.parent, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        reported = hwm_file.read_text("ascii") if hwm_file.exists() else ""
    rss = int(reported) * 1024 if reported.isdigit() else usage.ru_maxrss * 1024
    return Process(proc.returncode, wall, usage.ru_utime + usage.ru_stime, rss, text)


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    worker(int(sys.argv[2]))
