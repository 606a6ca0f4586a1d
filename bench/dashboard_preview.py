"""A preview of docs/grafana/taskq-dashboard.json drawn with matplotlib from the Prometheus
answers ``bench/dashboard_check.py`` got (each panel where its ``gridPos`` puts it, each series
named by its ``legendFormat``). Not a Grafana screenshot: Grafana is not available here, and
the image says so in its title."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt

BG, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
UNITS = {"s": "s", "ops": "/s", "percentunit": "", "short": ""}


def legend(fmt: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt) or \
        ",".join(f"{k}={v}" for k, v in labels.items() if k != "__name__")


def render(dashboard: dict[str, Any], results: dict[int, list[Any]], path: Path,
           start: float, end: float) -> None:
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    fig = plt.figure(figsize=(20, rows * 0.42), facecolor=BG)
    fig.suptitle(f"Preview of docs/grafana/taskq-dashboard.json drawn with matplotlib from real "
                 f"Prometheus query results ({datetime.fromtimestamp(start):%H:%M:%S} to "
                 f"{datetime.fromtimestamp(end):%H:%M:%S}, bench/dashboard_check.py): "
                 "not a Grafana screenshot", color=TEXT, fontsize=12, y=0.995)
    grid = fig.add_gridspec(rows, 24, left=0.03, right=0.99, top=0.97, bottom=0.01,
                            hspace=1.5, wspace=0.6)
    for p in dashboard["panels"]:
        g = p["gridPos"]
        if p["type"] == "row":
            ax = fig.add_subplot(grid[g["y"], 0:24])
            ax.set_axis_off()
            ax.text(0, 0.2, p["title"], color=TEXT, fontsize=12, weight="bold",
                    transform=ax.transAxes)
            continue
        ax = fig.add_subplot(grid[g["y"]:g["y"] + g["h"], g["x"]:g["x"] + g["w"]])
        ax.set_facecolor(PANEL)
        for side in ax.spines.values():
            side.set_color(GRID)
        ax.set_title(p["title"], color=TEXT, fontsize=10, loc="left")
        unit = UNITS.get(p["fieldConfig"]["defaults"].get("unit", "short"), "")
        targets = results.get(p["id"], [])
        if p["type"] == "stat":
            ax.set_xticks([])
            ax.set_yticks([])
            series = targets[0][1] if targets else []
            last = float(series[0]["values"][-1][1]) if series and series[0]["values"] else None
            text = "no data" if last is None else f"{last:.4g}{' ' + unit if unit else ''}"
            ax.text(0.5, 0.45, text, color="#73bf69", fontsize=22, ha="center", va="center",
                    transform=ax.transAxes, weight="bold")
            continue
        for target, series in targets:
            for s in series:
                xs = [datetime.fromtimestamp(float(t)) for t, _ in s["values"]]
                ys = [float(v) for _, v in s["values"]]
                ax.plot(xs, ys, linewidth=1.2,
                        label=legend(target.get("legendFormat", ""), s["metric"]))
        ax.tick_params(colors=TEXT, labelsize=7)
        ax.grid(color=GRID, linewidth=0.5)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        if unit:
            ax.set_ylabel(unit, color=TEXT, fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="upper left", facecolor=PANEL, edgecolor=GRID,
                      labelcolor=TEXT, ncol=3 if g["w"] >= 12 else 1)
    fig.savefig(path, dpi=80, facecolor=BG)
    plt.close(fig)
