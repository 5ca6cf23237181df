"""Following a job's progress in the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from .client import OperatorClient, job_dict

__all__ = ["follow_job"]


def _fmt(key: str, value: Any) -> str:
    if key == "rate_per_s":
        return f"{value:,.0f}/s"
    if key == "eta_s":
        return f"ETA {value:,.0f}s"
    if isinstance(value, float):
        return f"{key}={value:.4f}"
    return f"{key}={value}"


def follow_job(client: OperatorClient, job_id: str, *, console: Console | None, timeout_s: float = 7200.0) -> Any:
    """Poll the job until it ends; show one bar per node if a console is given."""
    if console is None:
        return client.wait(job_id, timeout_s=timeout_s)
    with Progress(TextColumn("{task.description:<34}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                  console=console, transient=False) as bars:
        tasks: dict[str, Any] = {}

        def update(info: Any) -> None:
            d = job_dict(info)
            for node, p in sorted(d["progress"].items()):
                stage = p.get("stage", "")
                detail = p.get("detail", {})
                label = f"{node}: {stage}"
                info_txt = " ".join(_fmt(k, v) for k, v in detail.items() if k not in ("checkpoint",))
                if node not in tasks:
                    tasks[node] = bars.add_task(label, total=p.get("total") or None, info=info_txt)
                bars.update(tasks[node], description=label, completed=p.get("done", 0), total=p.get("total") or None, info=info_txt)

        return client.wait(job_id, timeout_s=timeout_s, on_update=update)
