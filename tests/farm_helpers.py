"""A farm of fake phones (tests/fake_adb/adb with FAKE_ADB_SERIALS) for the farm tests."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "adb"
FAKE_ADB_DIR = HERE / "fake_adb"
SPACE = "nasbench201"
#: Model file size: the fake's latency is base_us + 40 us/KB, so about 6 ms per run here, and one
#: runner invocation (3 warm-up + 20 timed runs, FAKE_ADB_REALTIME) takes about 0.15 s.
MODEL_KB = 100


class FakeFarm:
    """Phones ``serials`` behind one fake adb; ``base_us`` differs per phone so rows are traceable."""

    def __init__(self, root: Path, serials: list[str]):
        self.root, self.serials = root, serials

    def state(self, serial: str) -> Path:
        return self.root / "phones" / serial

    def base_us(self, serial: str) -> float:
        return 1000.0 * (1 + self.serials.index(serial))

    def configure(self, serial: str, **settings) -> None:
        path = self.state(serial) / "config.json"
        cfg = json.loads(path.read_text()) if path.exists() else {}
        cfg.update(settings)
        path.write_text(json.dumps(cfg))

    def replug(self, serial: str) -> None:
        path = self.state(serial) / "config.json"
        cfg = json.loads(path.read_text())
        cfg.pop("unplug_after_runs", None)
        path.write_text(json.dumps(cfg))
        (self.state(serial) / "unplugged").unlink(missing_ok=True)

    def runs(self, serial: str) -> list[dict]:
        """Runner invocations as ``{"pid", "start", "end"}`` (end = hang-up time for a killed one)."""
        path = self.state(serial) / "log.jsonl"
        by_pid: dict[int, dict] = {}
        for line in path.read_text().splitlines() if path.exists() else []:
            e = json.loads(line)
            if "run" in e:
                key = "start" if e["run"] == "start" else "end"
                by_pid.setdefault(e["pid"], {"pid": e["pid"]})[key] = e["t"]
        return list(by_pid.values())

    def finished_runs(self) -> int:
        return sum(1 for s in self.serials for r in self.runs(s) if "end" in r)


def make_farm(tmp_path: Path, monkeypatch, serials: list[str]) -> FakeFarm:
    root = tmp_path / "adb"
    farm = FakeFarm(root, serials)
    for serial in serials:
        shutil.copytree(DATA / "fs", farm.state(serial) / "fs")
        farm.configure(serial, realtime=True, base_us=farm.base_us(serial))
    fake = FAKE_ADB_DIR / "adb"
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{FAKE_ADB_DIR}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_STATE", str(root))
    monkeypatch.setenv("FAKE_ADB_SERIALS", ",".join(serials))
    for var in ("ADB", "FAKE_ADB_SERIAL", "FAKE_ADB_UNPLUG_AFTER", "FAKE_ADB_MALFORMED", "FAKE_ADB_NO_SU", "FAKE_ADB_REALTIME"):
        monkeypatch.delenv(var, raising=False)
    return farm


def phone_options(tmp_path: Path, archs: list[str]) -> dict[str, str]:
    """Android options as a user gives them: a runner file and ``model_paths`` (JSON) of .tflite models."""
    runner = tmp_path / "benchmark_model"
    runner.write_bytes(b"\x7fELF fake runner")
    runner.chmod(0o644)
    models = {}
    for i, arch in enumerate(archs):
        p = tmp_path / "models" / f"m{i}.tflite"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"\0" * MODEL_KB * 1024)
        models[arch] = str(p)
    mapping = tmp_path / "models.json"
    mapping.write_text(json.dumps(models))
    return {"runner": str(runner), "model_paths": str(mapping)}


def expected_ms(farm: FakeFarm, serial: str) -> float:
    return (farm.base_us(serial) + 40.0 * MODEL_KB) / 1000.0


def overlaps(intervals: list[tuple[float, float]]) -> list[tuple]:
    iv = sorted(intervals)
    return [(a, b) for a, b in zip(iv, iv[1:]) if b[0] < a[1]]
