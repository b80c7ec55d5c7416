"""The language server's latency on a real spec, as an editor sees it.

What: `resdsl lsp` in its own process, driven over stdio by pygls's client (as an editor
would): `specs/dpn92.res` is opened as an unsaved buffer, then edited N times (the default
of `classes` alternates between 1000 and 1001, so every edit changes the network and the
whole buffer is checked and built again). For each edit:
1. didChange → publishDiagnostics: from sending the change to receiving the diagnostics of
   that version (the server checks on every change; with the default settings there is no
   quiet time before a check, only the coalescing of changes that arrive during one);
2. hover on the last statement (`flatten`): from sending the request to its answer, once the
   edit's diagnostics have arrived (hover reads the graph that check built).
Medians over the N edits, with the min and max; timed with `time.perf_counter` (wall). For
reference, the same check in this process (`resdsl.lsp.analysis.analyse`, N runs, median):
the part of the round trip that is the compiler rather than the protocol, with its CPU time
(`time.process_time`), which other people's load on a shared machine inflates less.

Bars (issue 20): didChange → publishDiagnostics median ≤ 50 ms; hover median ≤ 30 ms.

Run: `.venv/bin/python bench/lsp_latency.py [--edits N]` (N = 50, about 10 s).
It prints; it asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "dpn92.res"
BAR_DIAGNOSTICS_MS = 50.0
BAR_HOVER_MS = 30.0


def _ms(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:6.1f} ms  "
            f"(min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})")


async def measure(edits: int) -> tuple[list[float], list[float]]:
    client = LanguageClient("lsp-latency", "1")
    waiting: dict[int, asyncio.Future[types.PublishDiagnosticsParams]] = {}

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)  # type: ignore[untyped-decorator,misc]
    def published(params: types.PublishDiagnosticsParams) -> None:
        future = waiting.pop(params.version or 0, None)
        if future is not None and not future.done():
            future.set_result(params)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    await client.start_io(sys.executable, "-m", "resdsl", "lsp", env=env)
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=(ROOT / "specs").as_uri()))
    client.initialized(types.InitializedParams())

    uri = SPEC.as_uri()
    text = SPEC.read_text(encoding="utf-8")
    lines = text.split("\n")
    last = max(i for i, line in enumerate(lines) if line.strip() == "flatten")
    hover_at = types.Position(last, lines[last].index("flatten") + 2)
    loop = asyncio.get_running_loop()

    async def diagnostics_of(version: int) -> types.PublishDiagnosticsParams:
        return await asyncio.wait_for(waiting[version], 60)

    waiting[1] = loop.create_future()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="resdsl", version=1, text=text)))
    opened = await diagnostics_of(1)
    assert not opened.diagnostics, opened.diagnostics

    change: list[float] = []
    hover: list[float] = []
    for n in range(edits):
        version = n + 2
        edited = text.replace("classes = 1000", f"classes = {1000 + version % 2}", 1)
        waiting[version] = loop.create_future()
        start = time.perf_counter()
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(version=version, uri=uri),
            content_changes=[types.TextDocumentContentChangeWholeDocument(edited)]))
        result = await diagnostics_of(version)
        change.append(time.perf_counter() - start)
        assert not result.diagnostics, result.diagnostics
        start = time.perf_counter()
        answer = await client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri), position=hover_at))
        hover.append(time.perf_counter() - start)
        assert answer is not None and "parameters" in str(answer.contents), answer

    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()  # type: ignore[no-untyped-call]
    return change, hover


def in_process(edits: int) -> tuple[list[float], list[float]]:
    """The check's wall and CPU times in this process."""
    from resdsl.lsp.analysis import analyse

    text = SPEC.read_text(encoding="utf-8")
    analyse(str(SPEC), text)  # warm-up: Lark's tables
    wall, cpu = [], []
    for _ in range(edits):
        start, start_cpu = time.perf_counter(), time.process_time()
        analyse(str(SPEC), text)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--edits", type=int, default=50, help="edits to time (default 50)")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    print(f"resdsl lsp on {SPEC.relative_to(ROOT)}, {args.edits} edits; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    change, hover = asyncio.run(measure(args.edits))
    check, check_cpu = in_process(args.edits)
    print(f"didChange → publishDiagnostics  {_ms(change)}   bar ≤ {BAR_DIAGNOSTICS_MS:.0f} ms: "
          f"{'within' if statistics.median(change) * 1000 <= BAR_DIAGNOSTICS_MS else 'OVER'}"
          " the bar")
    print(f"hover on the last statement     {_ms(hover)}   bar ≤ {BAR_HOVER_MS:.0f} ms: "
          f"{'within' if statistics.median(hover) * 1000 <= BAR_HOVER_MS else 'OVER'} the bar")
    print(f"the check alone, in process      {_ms(check)}")
    print(f"  the same, CPU time               {_ms(check_cpu)}")


if __name__ == "__main__":
    main()
