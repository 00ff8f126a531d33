"""What checkable citations add to rendering an HTML memo (issue 21): render_html with its page images, word boxes
and highlights (cold: empty page cache; warm: cached) against the same render with no source to cite from.

    python benchmarks/outputs_render.py ../shared/corpus/finance/3M_2018_10K.pdf [more files]

Model-free memos (--model none). Prints seconds per file; state the machine's load (/proc/loadavg) with any figure.
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
        t = time.perf_counter()
        render_html.render_html(memo, doc, out / "plain.html")
        plain = time.perf_counter() - t
        pages.PageSource.for_memo, filing_copy.FilingCopy.for_memo = real_pages, real_filing
        source = pages.PageSource.for_memo(memo.document)
        if source is not None:
            shutil.rmtree(source.dir, ignore_errors=True)  # cold: no page rendered yet
        times = []
        for _ in range(2):
            t = time.perf_counter()
            html = render_html.render_html(memo, doc, out / "memo.html")
            times.append(time.perf_counter() - t)
        links = html.count('class="cite"')
        print(f"{Path(name).name}: {links} citation links; render without citations {plain:.2f}s, with them cold "
              f"{times[0]:.2f}s (+{times[0] - plain:.2f}), warm {times[1]:.2f}s (+{times[1] - plain:.2f})")
    shutil.rmtree(out, ignore_errors=True)
    print(f"load {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main(sys.argv[1:])
