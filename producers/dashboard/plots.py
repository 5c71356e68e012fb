"""The dashboard's plots as inline SVG, rendered on the server (pure: plain numbers in, markup out).

No JavaScript plotting library and no CDN: an SVG of a few dozen rectangles is small, prints, needs no
script to appear and is testable as text. Every label is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

STATUS_COLOURS: Mapping[str, str] = {
    "succeeded": "#2e7d32",
    "duplicate": "#9e9e9e",
    "rejected": "#ef6c00",
    "expired": "#8d6e63",
    "dead": "#c62828",
    "cancelled": "#546e7a",
}

WIDTH, HEIGHT, PAD = 600, 160, 28


def stacked_bars(minutes: Sequence[Mapping[str, int]], *, title: str) -> str:
    """Outcomes per minute by status, one stacked bar a minute, oldest on the left.

    Args:
        minutes: per minute, status -> count (missing statuses are 0).
        title: the plot's accessible name.
    """
    top = max([sum(m.get(s, 0) for s in STATUS_COLOURS) for m in minutes] + [1])
    slot = (WIDTH - PAD) / max(len(minutes), 1)
    bars: list[str] = []
    for index, minute in enumerate(minutes):
        y = float(HEIGHT - PAD)
        for status, colour in STATUS_COLOURS.items():
            count = minute.get(status, 0)
            if not count:
                continue
            h = (HEIGHT - 2 * PAD) * count / top
            y -= h
            x = PAD + index * slot
            bars.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(slot - 1, 1):.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{escape(status)}: {count}</title></rect>'
            )
    legend = "".join(
        f'<rect x="{PAD + i * 95}" y="4" width="10" height="10" fill="{c}"/>'
        f'<text x="{PAD + i * 95 + 14}" y="13">{escape(s)}</text>'
        for i, (s, c) in enumerate(STATUS_COLOURS.items())
    )
    return _svg(title, legend + "".join(bars) + _axis(top, len(minutes)))


def line(values: Sequence[float | None], *, title: str, unit: str, colour: str = "#1565c0") -> str:
    """A line over the minutes (None: no sample that minute, the line breaks)."""
    known = [v for v in values if v is not None]
    top = max([*known, 1.0])
    slot = (WIDTH - PAD) / max(len(values), 1)
    segments: list[list[str]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            segments.append([])
            continue
        x = PAD + index * slot + slot / 2
        y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * value / top
        segments[-1].append(f"{x:.1f},{y:.1f}")
    paths = "".join(
        f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>'
        for points in segments
        if points
    )
    # a dot on every minute with a sample: a lone minute has no line to draw
    paths += "".join(
        f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" fill="{colour}"/>'
        for points in segments
        for p in points
    )
    label = f'<text x="{PAD}" y="13">{escape(unit)}</text>'
    return _svg(title, label + paths + _axis(top, len(values)))


def _axis(top: float, count: int) -> str:
    base = HEIGHT - PAD
    return (
        f'<line x1="{PAD}" y1="{base}" x2="{WIDTH}" y2="{base}" stroke="#999"/>'
        f'<text x="2" y="{PAD + 4}">{top:g}</text><text x="2" y="{base}">0</text>'
        f'<text x="{PAD}" y="{HEIGHT - 8}">-{count} min</text>'
        f'<text x="{WIDTH - 30}" y="{HEIGHT - 8}">now</text>'
    )


def _svg(title: str, body: str) -> str:
    return (
        f'<svg class="plot" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="10"><title>{escape(title)}</title>{body}</svg>'
    )
