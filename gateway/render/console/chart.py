"""The dashboard's chart of daily collections per channel, drawn on the server as SVG (no
script, no library): one stacked bar a day, a segment a channel, a y axis in yen with round
steps, day numbers below. Pure: :func:`daily_chart` turns the figures into the shapes that
``_chart.html`` writes as ``<svg>`` (autoescaped, presentation attributes only, so the
console's CSP holds: no inline style).

Each segment carries a ``<title>`` (day, channel, yen, count) and the whole chart a title and a
description; the dashboard also lists the same figures in a table for screen readers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 84, 12, 16, 44  # the plot's margins (axis labels, legend)
TICKS = 4  # y-axis steps above zero
#: Each channel's colour (a contrast of 3:1 or more against white) and its order in a stack.
COLOURS = {"cvs": "#0b5cad", "payeasy": "#1a7f37", "transfer": "#9a6700"}


@dataclass(frozen=True)
class Segment:
    x: float
    y: float
    width: float
    height: float
    colour: str
    tip: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class DayLabel:
    x: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    bottom: float  # the y of the x axis
    right: float
    segments: tuple[Segment, ...]
    ticks: tuple[Tick, ...]
    days: tuple[DayLabel, ...]
    legend: tuple[tuple[str, str], ...]  # (channel, colour)
    empty: bool


def nice_step(top: int) -> int:
    """The smallest of 1, 2, 2.5 or 5 × 10^k yen such that :data:`TICKS` steps reach ``top``."""
    raw = max(1, -(-top // TICKS))
    magnitude = 1
    while magnitude * 10 <= raw:
        magnitude *= 10
    for factor in (1, 2, 2.5, 5, 10):
        step = int(factor * magnitude)
        if step >= raw and step == factor * magnitude:
            return step
    return 10 * magnitude


def yen_short(amount: int) -> str:
    return f"¥{amount:,}"


def daily_chart(
    days: Sequence[date],
    amounts: Mapping[tuple[date, str], tuple[int, int]],
    channel_names: Mapping[str, str],
) -> Chart:
    """The chart of ``days``: ``amounts[(day, channel)]`` is (count, yen); ``channel_names``
    the channels shown, in stacking order, with their names."""
    totals = [sum(amounts.get((d, ch), (0, 0))[1] for ch in channel_names) for d in days]
    step = nice_step(max(totals, default=0))
    top = step * TICKS
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    base = TOP + plot_h
    slot = plot_w / max(1, len(days))
    bar = slot * 0.7
    segments = []
    for i, d in enumerate(days):
        x = LEFT + i * slot + (slot - bar) / 2
        y: float = base
        for channel, name in channel_names.items():
            count, amount = amounts.get((d, channel), (0, 0))
            if amount <= 0:
                continue
            h = plot_h * amount / top
            y -= h
            tip = f"{d.month}/{d.day} {name} {yen_short(amount)}（{count}件）"
            segments.append(
                Segment(round(x, 1), round(y, 1), round(bar, 1), round(h, 1), COLOURS[channel], tip)
            )
    ticks = tuple(
        Tick(round(base - plot_h * k / TICKS, 1), yen_short(step * k)) for k in range(TICKS + 1)
    )
    every = 1 if len(days) <= 10 else 5
    labels = tuple(
        DayLabel(round(LEFT + i * slot + slot / 2, 1), str(d.day))
        for i, d in enumerate(days)
        if d.day == 1 or d.day % every == 0 or i == len(days) - 1
    )
    return Chart(
        WIDTH,
        HEIGHT,
        LEFT,
        base,
        WIDTH - RIGHT,
        tuple(segments),
        ticks,
        labels,
        tuple((name, COLOURS[ch]) for ch, name in channel_names.items()),
        not segments,
    )
