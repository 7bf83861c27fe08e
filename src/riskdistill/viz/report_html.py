"""HTML building blocks shared by the report and its route pages: the style sheet, escaping, number
formatting, inline images and tables (no scripts, no external resources)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

HEADER_COLOR = "#1d3557"  # the header band; the rendering test looks for it at the top of the page

CSS = f"""
* {{ box-sizing: border-box; }}
body {{ margin: 0; font-family: "DejaVu Sans", Arial, sans-serif; font-size: 14px; color: #1b1b1b;
       background: #f4f5f7; }}
header {{ background: {HEADER_COLOR}; color: #ffffff; padding: 18px 28px 14px 28px; min-height: 96px; }}
header h1 {{ margin: 0 0 6px 0; font-size: 24px; }}
header .meta {{ font-size: 12.5px; opacity: 0.92; }}
header .meta span {{ margin-right: 18px; white-space: nowrap; }}
main {{ padding: 8px 28px 40px 28px; }}
section {{ background: #ffffff; border-radius: 6px; padding: 10px 18px 16px 18px; margin: 16px 0;
          box-shadow: 0 1px 2px rgba(0,0,0,0.08); }}
h2 {{ font-size: 18px; margin: 8px 0 10px 0; color: {HEADER_COLOR}; }}
h3 {{ font-size: 15px; margin: 14px 0 6px 0; }}
table {{ border-collapse: collapse; margin: 6px 0 10px 0; font-size: 13px; }}
th, td {{ border: 1px solid #d6d9de; padding: 3px 8px; text-align: right; }}
td {{ white-space: nowrap; }}
section {{ overflow-x: auto; }}
th {{ background: #e9edf3; }}
td.l, th.l {{ text-align: left; }}
tr.fail td {{ background: #fdecec; }}
.note {{ color: #6b4b00; background: #fff6d6; border-left: 4px solid #e0b000; padding: 6px 10px;
        margin: 6px 0; }}
.muted {{ color: #666666; font-size: 12px; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 10px; }}
figure {{ margin: 0; }}
figure img {{ display: block; border: 1px solid #ccd; }}
figcaption {{ font-size: 12px; color: #333333; max-width: 260px; }}
img.plot {{ max-width: 100%; }}
.frame {{ border-top: 1px solid #e3e3e3; padding-top: 8px; margin-top: 8px; }}
.frame img {{ max-width: 100%; margin: 4px 0; }}
.frame img.mosaic {{ width: 880px; image-rendering: auto; }}
td.wrap {{ white-space: normal; min-width: 220px; max-width: 460px; overflow-wrap: anywhere;
           text-align: left; }}
th.wrap {{ text-align: left; }}
td.wrap .q {{ color: #444444; font-size: 12px; }}
.events {{ max-height: 560px; overflow-y: auto; }}
.events td {{ white-space: normal; overflow-wrap: anywhere; }}
.events td:last-child {{ max-width: 640px; }}
pre.tb {{ white-space: pre-wrap; overflow-wrap: anywhere; background: #f6f6f6; padding: 8px;
          font-size: 12px; }}
img.bev {{ max-width: 100%; }}
#drive figcaption {{ max-width: 520px; }}
a {{ color: #1a5fb4; }}
"""


# ------------------------------------------------------------------------------------------ helpers
def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, bool):
        return esc(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "&ndash;" if not math.isfinite(float(v)) else f"{float(v):.{digits}f}"
    return esc(v)


def fmt_ci(stat: tuple[float, float] | None, n: int, digits: int = 2) -> str:
    if stat is None:
        return "&ndash;"
    mean, half = stat
    return f"{mean:.{digits}f}" if n <= 1 else f"{mean:.{digits}f} &plusmn; {half:.{digits}f}"


def img_tag(data: bytes, mime: str, alt: str, cls: str = "", width: int | None = None) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    w = f' width="{width}"' if width else ""
    c = f' class="{cls}"' if cls else ""
    return f'<img{c}{w} alt="{esc(alt)}" src="data:{mime};base64,{b64}">'


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    left_cols: int = 1,
    row_classes: Sequence[str] = (),
    left: Sequence[int] = (),
    wrap: Sequence[int] = (),
) -> str:
    """An HTML table. ``headers`` are escaped here; cells must already be HTML (use :func:`esc` /
    :func:`fmt`). The first ``left_cols`` columns and those in ``left`` are left-aligned; those in ``wrap``
    wrap their text in a bounded width."""

    def cls(i: int) -> str:
        if i in wrap:
            return ' class="wrap"'
        return ' class="l"' if i < left_cols or i in left else ""

    th = "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = []
    for k, row in enumerate(rows):
        rc = row_classes[k] if k < len(row_classes) else ""
        tds = "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row))
        body.append(f'<tr class="{rc}">{tds}</tr>' if rc else f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def note(text: str) -> str:
    return f'<div class="note">{esc(text)}</div>'
