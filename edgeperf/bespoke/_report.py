"""Reports of a Bespoke run: the JSON written next to the students, and a latency-vs-fidelity plot."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["plot_target", "write_json"]


def write_json(obj, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=float))
    return path


def plot_target(house, target: str, results: list[dict], path, *, baselines: list[dict] = ()) -> Path:
    """Latency (ms, on ``target``) against top-1 agreement with the teacher: each alternative alone
    (estimated latency), the teacher, the students (measured; before and after fine-tuning) and any
    baselines (measured), with each student's budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = house.latency_[target]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    xs = [lat["teacher_ms"] + c.delta_ms for c in house.candidates(target)]
    ys = [house.fidelity_[c.alt]["agreement"] for c in house.candidates(target)]
    ax.scatter(xs, ys, s=8, c="0.7", label="one block replaced (estimated latency)")
    ax.scatter([lat["teacher_ms"]], [1.0], marker="*", s=160, c="k", label="teacher")
    for i, r in enumerate(results):  # measured students placed by their latency relative to the teacher
        x = r["relative_latency"] * lat["teacher_ms"] if "relative_latency" in r else r["search"]["est_latency_ms"]
        label = "Bespoke student" if i == 0 else None
        if "fidelity_before_finetune" in r:
            ax.scatter([x], [r["fidelity_before_finetune"]["agreement"]], facecolors="none", edgecolors="tab:red", s=50,
                       label="student before fine-tuning" if i == 0 else None)
        ax.scatter([x], [r["fidelity"]["agreement"]], c="tab:red", s=50, label=label)
        ax.axvline(r["budget_ms"], color="tab:red", ls=":", lw=0.8)
    markers = iter("sD^vP")
    for b in baselines:  # measured against the teacher in the same minute: placed by relative latency
        ax.scatter([b["relative_latency"] * lat["teacher_ms"]], [b["fidelity"]["agreement"]], marker=next(markers, "o"),
                   s=50, label=b["name"])
    ax.set_xlabel(f"latency on {target} (ms at the house's teacher latency, batch 1, {house.resolution} px)")
    ax.set_ylabel("top-1 agreement with the teacher (held-out crops)")
    ax.set_title(f"{house.teacher_name} -> Bespoke students on {target}")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
