"""What checkable citations add to rendering an HTML memo (issue 21): render_html with its page images, word boxes
and highlights (cold: empty page cache; warm: cached) against the same render with no source to cite from.

    python benchmarks/outputs_render.py ../shared/corpus/finance/3M_2018_10K.pdf [more files]

Model-free memos (--model none). Prints wall and CPU seconds per file (CPU time of this process: what the render
costs, less sensitive to other sessions' load than wall time); state the machine's load (/proc/loadavg) with any figure.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(files: list[str]) -> None:
    from m3analyst.domains import detect_domain
    from m3analyst.ingest import load_document
    from m3analyst.memo import write_memo
    from m3analyst.memo import filing_copy, pages, render_html
    from m3analyst.settings import Settings

    settings = Settings()
    settings.engine.model = "none"
    out = Path(tempfile.mkdtemp(prefix="m3render-"))
    real_pages, real_filing = pages.PageSource.for_memo, filing_copy.FilingCopy.for_memo
    print(f"load {open('/proc/loadavg').read().split()[:3]}")
    for name in files:
        doc = load_document(Path(name))
        memo = write_memo(doc, detect_domain(doc), settings, engine=None)
        render_html.charts(memo)  # matplotlib's import and first figure, paid by every HTML memo before this issue too
        pages.PageSource.for_memo = classmethod(lambda cls, d: None)
        filing_copy.FilingCopy.for_memo = classmethod(lambda cls, *a: None)
        t, c = time.perf_counter(), time.process_time()
        render_html.render_html(memo, doc, out / "plain.html")
        plain, plain_cpu = time.perf_counter() - t, time.process_time() - c
        pages.PageSource.for_memo, filing_copy.FilingCopy.for_memo = real_pages, real_filing
        source = pages.PageSource.for_memo(memo.document)
        if source is not None:
            shutil.rmtree(source.dir, ignore_errors=True)  # cold: no page rendered yet
        times, cpu = [], []
        for _ in range(2):
            t, c = time.perf_counter(), time.process_time()
            html = render_html.render_html(memo, doc, out / "memo.html")
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        links = html.count('class="cite"')
        print(f"{Path(name).name}: {links} citation links; render without citations {plain:.2f}s wall / {plain_cpu:.2f}s CPU; "
              f"with them cold {times[0]:.2f}s / {cpu[0]:.2f}s CPU (+{cpu[0] - plain_cpu:.2f}s CPU), "
              f"warm {times[1]:.2f}s / {cpu[1]:.2f}s CPU (+{cpu[1] - plain_cpu:.2f}s CPU)")
    shutil.rmtree(out, ignore_errors=True)
    print(f"load {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main(sys.argv[1:])
