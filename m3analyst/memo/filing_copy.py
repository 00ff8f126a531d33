"""For EDGAR HTML / iXBRL filings: a local copy of the filing beside the memo in which every cited passage or fact is
marked (an id to link to, a highlight), so a citation opens the filing at the cited element, offline.

Passages are found by their letters and digits (the loader's text and the markup's text differ only in spacing);
an inline-XBRL fact by its concept and printed value (`ix:nonFraction name=... >391,035<`), else by its row's text.
"""

from __future__ import annotations

import re
from pathlib import Path

from m3analyst.memo.highlight import norm_token

BLOCKS = {"p", "div", "td", "li", "tr", "table", "h1", "h2", "h3", "h4", "span"}
STYLE = (".m3hl{background:#fff3bf !important} .m3hl *{background:transparent !important} .m3hl:target{background:#ffe066 !important;outline:3px solid #e8590c} "
         ":target{scroll-margin-top:35vh}")


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


class FilingCopy:
    """Marks cited elements of an HTML filing and writes the marked copy into `folder`."""

    def __init__(self, path: Path, folder: Path, link_prefix: str):
        from lxml import etree, html

        self.path, self.folder, self.link_prefix = Path(path), folder, link_prefix
        data = self.path.read_bytes()
        try:
            self.root = etree.fromstring(data, etree.XMLParser(huge_tree=True, recover=False))
            self.xml = True
        except etree.XMLSyntaxError:
            self.root = html.fromstring(data)
            self.xml = False
        self.name = f"filing.{'xhtml' if self.xml else 'html'}"
        self._text, self._owners = self._index()
        self._starts = [o for o, _ in self._owners]
        self._named: dict[str, list] = {}
        for el in self.root.iter():
            if isinstance(el.tag, str) and el.get("name") and el.get("contextref" if not self.xml else "contextRef"):
                self._named.setdefault(el.get("name"), []).append(el)
        self.marked = 0

    @classmethod
    def for_memo(cls, document: dict, folder: Path | None, link_prefix: str) -> "FilingCopy | None":
        src = document.get("source")
        if folder is None or not src or not re.search(r"\.x?html?$", str(src), re.I) or not Path(src).is_file():
            return None
        return cls(Path(src), folder, link_prefix)

    def _index(self) -> tuple[str, list[tuple[int, object]]]:
        """The filing's letters and digits in order, with the element owning each run (start offset, element)."""
        parts, owners, pos = [], [], 0
        for el in self.root.iter():
            if not isinstance(el.tag, str) or _local(el.tag) in ("script", "style", "head", "title"):
                continue
            for text, owner in ((el.text, el), *((c.tail, el) for c in el)):
                n = norm_token(text or "")
                if n:
                    owners.append((pos, owner))
                    parts.append(n)
                    pos += len(n)
        return "".join(parts), owners

    def _block(self, el, prefer: str | None = None):
        node = el
        while node is not None:
            if _local(node.tag) == prefer or (prefer is None and _local(node.tag) in BLOCKS - {"span"}):
                return node
            node = node.getparent()
        return el

    def _find(self, view) -> list:
        """The elements to mark for `view`, the first one to link to ([] when not found)."""
        concept = getattr(view, "concept", "")
        for el in self._named.get(concept, []) if concept else []:
            if norm_token("".join(el.itertext())) == norm_token(view.quote):
                return [self._block(el, "tr")]
        want = norm_token(view.quote)
        for size in (len(want), 80, 40):
            if len(want) < min(size, 12):
                continue
            at = self._text.find(want[:size])
            if at >= 0:
                return self._blocks(at, at + size, "tr" if view.kind == "fact" else None)
        return []

    def _blocks(self, start: int, end: int, prefer: str | None) -> list:
        import bisect

        first = max(bisect.bisect_right(self._starts, start) - 1, 0)
        last = bisect.bisect_left(self._starts, end)
        out: list = []
        for _, owner in self._owners[first:last]:
            block = self._block(owner, prefer)
            if block not in out and not any(block in o.iterancestors() for o in out):
                out.append(block)
        return out

    def anchor(self, view) -> str:
        """The link for `view`: the marked element in the copy ('' when the cited text is not found)."""
        marks = self._find(view) if view.quote else []
        if not marks:
            return ""
        mark_id = marks[0].get("id") or f"m3-{view.id}"
        marks[0].set("id", mark_id)
        for el in marks:
            if "m3hl" not in (el.get("class") or ""):
                el.set("class", ((el.get("class") or "") + " m3hl").strip())
        self.marked += 1
        return f"{self.link_prefix}{self.name}#{mark_id}"

    def write(self) -> Path | None:
        from lxml import etree

        if not self.marked:
            return None
        ns = "{http://www.w3.org/1999/xhtml}" if self.xml and self.root.tag.startswith("{") else ""
        head = next((e for e in self.root.iter() if _local(e.tag) == "head"), None)
        style = etree.Element(f"{ns}style")
        style.text = STYLE
        (head if head is not None else self.root).insert(0, style)
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / self.name
        method = "xml" if self.xml else "html"
        target.write_bytes(etree.tostring(self.root, method=method, encoding="utf-8"))
        return target
