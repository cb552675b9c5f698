"""``newsstream top``, the drawing: one :class:`streamer.top.Frame` as rich tables, live or printed once.

The numbers are all computed in :mod:`streamer.top`; this module only lays them out. ``rich`` is imported
here and nowhere else, and only when ``newsstream top`` runs.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from datetime import datetime

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from streamer.top import Frame, Scraper

NONE = "—"
#: lag rows shown before "… N more" (largest lag first when cut)
MAX_LAG_ROWS = 12
#: labels shown per head in the label mix, the rest summed as "other"
TOP_LABELS = 4


def fmt_rate(value: float | None) -> str:
    if value is None:
        return NONE
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def fmt_count(value: float | None) -> str:
    return NONE if value is None else f"{value:,.0f}"


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return NONE
    ms = value * 1000
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"
    return f"{value:.2f} s"


def fmt_ratio(spread: tuple[float, float] | None) -> str:
    if spread is None:
        return NONE
    lo, hi = spread
    if math.isnan(lo):
        return "pending"
    return f"{lo:.3f}" if abs(hi - lo) < 5e-4 else f"{lo:.3f}–{hi:.3f}"


def fmt_model(model: tuple[str, str] | None) -> str:
    return NONE if model is None else f"{model[0]} {model[1]}"


def bar(share: float, width: int = 12) -> str:
    eighths = round(max(0.0, min(1.0, share)) * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + ("" if part == 0 else " ▏▎▍▌▋▊▉"[part])


def _short_url(url: str) -> str:
    return url.removeprefix("http://").removesuffix("/metrics")


def header(frame: Frame, interval: float) -> Text:
    text = Text()
    text.append("newsstream top", style="bold")
    up, total = frame.up, len(frame.workers)
    text.append(f"  {up}/{total} worker{'s' if total != 1 else ''} up", style="green" if up == total else "red")
    text.append(f"  in {fmt_rate(frame.rate_in)}/s  out {fmt_rate(frame.rate_out)}/s")
    text.append(f"  dead {fmt_rate(frame.rate_dead)}/s", style="yellow" if frame.rate_dead else "")
    text.append(f"  p50 {fmt_seconds(frame.p50)}  p99 {fmt_seconds(frame.p99)}")
    text.append(f"  lag {fmt_count(frame.total_lag)}")
    models = frame.models
    text.append("  model " + (", ".join(fmt_model(m) for m in models) if models else NONE),
                style="magenta" if len(models) > 1 else "")
    text.append(f"\n{datetime.now():%H:%M:%S}, every {interval:g} s", style="dim")
    text.append(f" (rates over the last {frame.elapsed:.1f} s)" if frame.elapsed else " (rates from the next scrape)",
                style="dim")
    return text


def workers_table(frame: Frame) -> Table:
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False)
    table.add_column("worker", overflow="fold", max_width=40)
    table.add_column("status", overflow="fold", ratio=1)
    table.add_column("model", no_wrap=True)
    table.add_column("ready")
    table.add_column("parts", justify="right")
    for name in ("in/s", "out/s", "dead/s", "consumed", "produced", "dead"):
        table.add_column(name, justify="right")
    for w in frame.workers:
        if not w.up:
            table.add_row(_short_url(w.url), Text(f"down: {w.error}", style="bold red"), NONE, NONE, NONE,
                          *([NONE] * 6))
            continue
        ready = NONE if w.ready is None else Text("yes", style="green") if w.ready else Text("no", style="red")
        table.add_row(_short_url(w.url), Text("up", style="green"), fmt_model(w.model), ready,
                      fmt_count(w.partitions), fmt_rate(w.rate_in), fmt_rate(w.rate_out), fmt_rate(w.rate_dead),
                      fmt_count(w.consumed), fmt_count(w.produced), fmt_count(w.dead))
    return table


def lag_table(frame: Frame) -> RenderableType:
    if not frame.lag:
        return Text("no partitions assigned", style="dim")
    several = len({row.url for row in frame.lag}) > 1
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False)
    table.add_column("topic", overflow="fold")
    table.add_column("partition", justify="right")
    table.add_column("lag", justify="right")
    if several:
        table.add_column("worker", overflow="fold")
    rows = frame.lag
    if len(rows) > MAX_LAG_ROWS:
        rows = sorted(rows, key=lambda r: -r.lag)[:MAX_LAG_ROWS]
    for row in sorted(rows, key=lambda r: (r.topic, r.partition, r.url)):
        lag = Text(fmt_count(row.lag), style="yellow" if row.lag else "")
        cells: list[RenderableType] = [row.topic, str(row.partition), lag]
        if several:
            cells.append(_short_url(row.url))
        table.add_row(*cells)
    more = len(frame.lag) - len(rows)
    table.add_section()
    table.add_row(f"total ({len(frame.lag)} partitions)" + (f", {more} not shown" if more else ""), "",
                  Text(fmt_count(frame.total_lag), style="bold"), *([""] if several else []))
    return table


def dead_letters_table(frame: Frame) -> RenderableType:
    if not frame.dead_letters:
        return Text("none", style="dim")
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False)
    table.add_column("reason", overflow="fold")
    table.add_column("/s", justify="right")
    table.add_column("total", justify="right")
    for row in frame.dead_letters:
        table.add_row(Text(row.reason, style="yellow"), fmt_rate(row.rate), fmt_count(row.total))
    return table


def latency_table(frame: Frame) -> RenderableType:
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False, show_header=False)
    table.add_column("what", overflow="fold")
    table.add_column("value", justify="right", no_wrap=True)
    table.add_row("p50, poll → commit", fmt_seconds(frame.p50))
    table.add_row("p99, poll → commit", fmt_seconds(frame.p99))
    window = {"interval": "last interval", "cumulative": "since start"}.get(frame.latency_window or "", "")
    table.add_row(Text(f"records, {window}" if window else "records", style="dim"),
                  Text(fmt_count(frame.latency_count), style="dim"))
    table.add_section()
    table.add_row(Text("loop phase, mean per batch", style="dim"), "")
    for phase, mean in frame.phases:
        table.add_row(f"  {phase}", fmt_seconds(mean))
    return table


def mix_table(frame: Frame) -> RenderableType:
    if not frame.mix:
        return Text("no predictions yet", style="dim")
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False)
    table.add_column("head (predictions)", no_wrap=True)
    table.add_column("label", ratio=1, overflow="ellipsis", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True, width=12)
    for i, head in enumerate(frame.mix):
        if i:
            table.add_section()
        seen = [(label, share) for label, share in head.shares if share > 0]
        shown = seen[:TOP_LABELS]
        rest = sum(share for _, share in seen[TOP_LABELS:])
        label_rows = [*shown, *([("other", rest)] if rest > 0 else [])] or [(NONE, 0.0)]
        for j, (label, share) in enumerate(label_rows):
            first = Text.assemble((head.head, "bold"), (f" ({fmt_count(head.count)})", "dim")) if j == 0 else ""
            table.add_row(first, label, f"{share:.0%}", Text(bar(share), style="cyan"))
    return table


def health_table(frame: Frame) -> RenderableType:
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False)
    table.add_column("head")
    table.add_column("drift", justify="right")
    table.add_column("shadow agreement", justify="right")
    for h in frame.health:
        table.add_row(h.head, fmt_ratio(h.drift), fmt_ratio(h.shadow))
    if not frame.health:
        table.add_row(NONE, NONE, NONE)
    return Group(
        Text("model " + (", ".join(fmt_model(m) for m in frame.models) or NONE), style="bold"),
        table,
        Text("drift: Jensen–Shannon distance of the recent label mix from training's (0 = same, 1 = disjoint; "
             "pending until enough predictions). shadow agreement: share of recent articles where the shadow "
             "model's top label is the live one's. —: the worker does not export it.", style="dim"),
    )


def render(frame: Frame, interval: float) -> RenderableType:
    top = Table.grid(expand=True, padding=(0, 1))
    for ratio in (4, 3, 3):
        top.add_column(ratio=ratio)
    top.add_row(Panel(lag_table(frame), title="consumer lag per partition", title_align="left"),
                Panel(dead_letters_table(frame), title="dead letters by reason", title_align="left"),
                Panel(latency_table(frame), title="latency", title_align="left"))
    bottom = Table.grid(expand=True, padding=(0, 1))
    for ratio in (5, 4):
        bottom.add_column(ratio=ratio)
    windows = {m.window for m in frame.mix}
    mix_title = "label mix" + (" (last interval)" if windows == {"interval"} else
                               " (since start)" if windows == {"cumulative"} else "")
    bottom.add_row(Panel(mix_table(frame), title=mix_title, title_align="left"),
                   Panel(health_table(frame), title="model", title_align="left"))
    return Group(header(frame, interval),
                 Panel(workers_table(frame), title="workers", title_align="left"),
                 top, bottom)


def make_console(color: bool) -> Console:
    console = Console(no_color=not color, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(no_color=not color, highlight=False, width=140)
    return console


def run(urls: Sequence[str], interval: float = 1.0, once: bool = False, color: bool = True,
        timeout_s: float = 1.0) -> int:
    """The view until Ctrl-C (0), or with ``once`` one frame after two scrapes: 0 if any worker was up, else 1.

    On a terminal the frame is redrawn in place (the alternate screen, restored on exit); piped, frames follow
    one another on stdout."""
    console = make_console(color)
    with Scraper(urls, timeout_s=timeout_s) as scraper:
        try:
            if once:
                scraper.frame()
                time.sleep(interval)
                frame = scraper.frame()
                console.print(render(frame, interval))
                return 0 if frame.up else 1
            if not console.is_terminal:  # piped or redirected: one frame after another, no screen control
                while True:
                    console.print(render(scraper.frame(), interval))
                    time.sleep(interval)
            with Live(console=console, screen=True, auto_refresh=False, redirect_stderr=False) as live:
                started = time.monotonic()
                ticks = 0
                while True:
                    live.update(render(scraper.frame(), interval), refresh=True)
                    ticks += 1
                    # Keep the cadence: a slow scrape shortens the next wait rather than drifting the clock.
                    wait = started + ticks * interval - time.monotonic()
                    if wait < 0:
                        started, ticks = time.monotonic(), 0
                        wait = 0
                    time.sleep(wait)
        except KeyboardInterrupt:
            return 0 if not once else 130

