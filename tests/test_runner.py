"""Crash-safe profiling runs: RowWriter durability, resume, sampling, CLI, SIGKILL and Ctrl-C."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeperf import datasets, profilers, spaces
from edgeperf.datasets import Measurement
from edgeperf.datasets._rowwriter import COLUMNS, RowWriter
from edgeperf.errors import ArchitectureError, DataValidationError, DeviceUnavailableError, InvalidParameterError, ProfilingError
from edgeperf.profilers import MeasurementProtocol
from edgeperf.profilers._runner import profile_archs, sample_archs

TINY = MeasurementProtocol(warmup=1, repeats=3, max_rounds=1)
TINY_CLI = ["--warmup", "1", "--repeats", "3", "--max-rounds", "1", "--quiet"]
NB = spaces.get("nasbench201")
#: Wait at most this long for a subprocess to write its first rows (the machine is shared).
SUBPROCESS_WAIT_S = 240


def _m(arch, value=1.5, device="dev"):
    return Measurement(space="nasbench201", arch=arch, device=device, metric="latency_ms", value=value,
                       runtime="onnxruntime", threads=1, runs=3)


def _data_lines(path):
    return [line for line in Path(path).read_text().splitlines()[1:] if line]


# ---- RowWriter ------------------------------------------------------------------------------
def test_rowwriter_writes_header_once_and_reads_back(tmp_path):
    out = tmp_path / "rows.csv"
    archs = NB.sample(3, seed=0)
    with RowWriter(out) as w:
        assert w.append([_m(archs[0]), _m(archs[1], 2.25)]) == 2
    with RowWriter(out) as w:
        w.append(_m(archs[2], 0.1 + 0.2))  # a float that needs all 17 digits
        assert w.existing_keys() == {("nasbench201", a, "dev", "latency_ms") for a in archs}
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS) + ",row_check" and sum(line == lines[0] for line in lines) == 1
    table = datasets.read(out)
    assert len(table) == 3
    assert table.values("dev").loc[archs[2]] == 0.1 + 0.2  # bit-exact round trip


def test_ofa_archs_with_commas_and_quotes_survive(tmp_path):
    ofa = spaces.get("ofa_mbv3")
    arch = ofa.sample(1, seed=0)[0]
    out = tmp_path / "ofa.csv"
    with RowWriter(out) as w:
        w.append(Measurement(space="ofa_mbv3", arch=arch, device="d", metric="latency_ms", value=3.0))
    with RowWriter(out) as w:
        assert ("ofa_mbv3", arch, "d", "latency_ms") in w.existing_keys()
    assert datasets.read(out).archs == [arch]


def test_torn_last_line_is_cut_off_on_reopen(tmp_path):
    out = tmp_path / "rows.csv"
    a, b, c = NB.sample(3, seed=1)
    with RowWriter(out) as w:
        w.append([_m(a), _m(b)])
    with open(out, "ab") as fh:  # what a SIGKILL in the middle of a write leaves behind
        fh.write(b"nasbench201,|nor_conv_3x3~0|+|none~0|sk")
    with RowWriter(out) as w:
        assert w.repaired_bytes == len("nasbench201,|nor_conv_3x3~0|+|none~0|sk")
        assert len(w.existing_keys()) == 2
        w.append(_m(c))
    assert len(_data_lines(out)) == 3
    assert set(datasets.read(out).archs) == {a, b, c}


def test_torn_header_is_rewritten(tmp_path):
    out = tmp_path / "rows.csv"
    out.write_bytes(b"space,arch,dev")
    with RowWriter(out) as w:
        w.append(_m(NB.sample(1, seed=0)[0]))
    assert out.read_text().splitlines()[0] == ",".join(COLUMNS) + ",row_check"
    assert len(datasets.read(out)) == 1


def test_other_header_is_a_clear_error(tmp_path):
    out = tmp_path / "other.csv"
    out.write_text("arch,latency\nx,1.0\n")
    with pytest.raises(DataValidationError, match=r"other\.csv, row 0: expected the header") as err:
        RowWriter(out)
    assert err.value.row == 0 and err.value.path == out
    assert out.read_text() == "arch,latency\nx,1.0\n"  # untouched


def test_edited_complete_row_is_an_error(tmp_path):
    out = tmp_path / "rows.csv"
    with RowWriter(out) as w:
        w.append(_m(NB.sample(1, seed=0)[0]))
    with open(out, "a") as fh:
        fh.write("nasbench201,x,dev\n")
    with pytest.raises(DataValidationError, match="row 2, field 'row_check': the row's row_check does not match"):
        RowWriter(out)
    with pytest.raises(DataValidationError, match="row 2, field 'row_check'"):
        datasets.read(out)


def test_non_csv_path_is_refused(tmp_path):
    with pytest.raises(DataValidationError, match=r"expected a \.csv file"):
        RowWriter(tmp_path / "rows.parquet")


def test_devices_sidecar_is_merged_and_atomic(tmp_path):
    out = tmp_path / "rows.csv"
    a = datasets.DeviceSpec(name="a", cpu_cores=2, runtime="onnxruntime")
    b = datasets.DeviceSpec(name="b", cpu_cores=4)
    RowWriter(out, devices_info={"a": a}).close()
    with RowWriter(out, devices_info=[b]) as w:
        w.append(_m(NB.sample(1, seed=0)[0], device="a"))
        assert w.read_devices() == {"a": a, "b": b}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert datasets.read(out).devices_info["a"] == a


# ---- sampling --------------------------------------------------------------------------------
@pytest.mark.parametrize("space_name", ["nasbench201", "fbnet", "ofa_mbv3"])
def test_sampling_is_prefix_stable_and_distinct(space_name):
    s30 = sample_archs(space_name, 30, seed=7)
    s40 = sample_archs(space_name, 40, seed=7)
    assert s40[:30] == s30
    assert len(set(s40)) == 40
    assert sample_archs(space_name, 30, seed=8) != s30


def test_sampling_more_than_the_space_holds_is_an_error():
    with pytest.raises(ArchitectureError, match="at most 15625"):
        sample_archs("nasbench201", 15626, seed=0)


# ---- profile_archs ---------------------------------------------------------------------------
class _FailingOrt(profilers.get("onnxruntime")):
    """Real ONNX Runtime profiler that fails on chosen archs the way a runtime or phone does."""

    def __init__(self, *, fail=None, gone=None, interrupt=None, **kw):
        super().__init__(**kw)
        self.fail, self.gone, self.interrupt = set(fail or ()), set(gone or ()), set(interrupt or ())
        self.loaded = []
        self.sigints = {}

    def _load(self, space, arch, workdir):
        self.loaded.append(arch)
        if arch in self.fail:
            raise ProfilingError("runtime rejected the model", raw_output="Op XYZ not supported")
        if arch in self.gone:
            raise DeviceUnavailableError("phone unplugged")
        if arch in self.interrupt:
            raise KeyboardInterrupt
        for _ in range(self.sigints.get(arch, 0)):
            os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C arriving mid-measurement
        return super()._load(space, arch, workdir)


def test_failed_arch_is_recorded_not_written_and_run_continues(tmp_path):
    archs = NB.sample(3, seed=2)
    prof = _FailingOrt(fail=[archs[1]], protocol=TINY)
    summary = profile_archs(prof, NB, archs, tmp_path / "o.csv", progress=False)
    assert summary.measured == 2 and list(summary.failed) == [archs[1]]
    assert "runtime rejected the model" in summary.failed[archs[1]]
    table = datasets.read(tmp_path / "o.csv")
    assert set(table.archs) == {archs[0], archs[2]}
    assert (table.frame["value"] > 0).all()
    # A re-run retries only the failed arch.
    prof2 = _FailingOrt(protocol=TINY)
    again = profile_archs(prof2, NB, archs, tmp_path / "o.csv", progress=False)
    assert prof2.loaded == [archs[1]] and again.skipped == 2 and again.complete


def test_device_unavailable_stops_the_run_and_keeps_rows(tmp_path):
    archs = NB.sample(4, seed=3)
    prof = _FailingOrt(gone=[archs[2]], protocol=TINY)
    summary = profile_archs(prof, NB, archs, tmp_path / "o.csv", progress=False)
    assert summary.stopped and "phone unplugged" in summary.stopped
    assert prof.loaded == archs[:3]  # nothing attempted after the device went away
    assert summary.measured == 2 and not summary.complete
    assert set(datasets.read(tmp_path / "o.csv").archs) == set(archs[:2])


def test_keyboard_interrupt_keeps_rows(tmp_path):
    archs = NB.sample(3, seed=4)
    prof = _FailingOrt(interrupt=[archs[1]], protocol=TINY)
    summary = profile_archs(prof, NB, archs, tmp_path / "o.csv", progress=False)
    assert summary.interrupted and summary.rows_written == 1 and summary.rows_in_file == 1
    assert datasets.read(tmp_path / "o.csv").archs == [archs[0]]


def test_ctrl_c_finishes_the_row_in_flight_and_a_second_one_stops_at_once(tmp_path):
    archs = NB.sample(4, seed=5)
    prof = _FailingOrt(protocol=TINY)
    prof.sigints = {archs[1]: 1}
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the tests run in a background job
    summary = profile_archs(prof, NB, archs, tmp_path / "o.csv", progress=False)
    assert summary.interrupted and prof.loaded == archs[:2]  # arch 1 measured, nothing after it
    assert summary.rows_written == summary.rows_in_file == 2
    assert datasets.read(tmp_path / "o.csv").archs == archs[:2]
    assert signal.getsignal(signal.SIGINT) is before  # handler given back

    prof2 = _FailingOrt(protocol=TINY)
    prof2.sigints = {archs[2]: 2}
    again = profile_archs(prof2, NB, archs, tmp_path / "o.csv", progress=False)
    assert again.interrupted and again.rows_written == 0 and prof2.loaded == [archs[2]]
    assert datasets.read(tmp_path / "o.csv").archs == archs[:2]


def test_duplicates_are_measured_once_and_sidecar_names_the_device(tmp_path):
    a, b = NB.sample(2, seed=5)
    prof = _FailingOrt(protocol=TINY)
    summary = profile_archs(prof, NB, [a, b, a], tmp_path / "o.csv", progress=False)
    assert summary.requested == 2 and prof.loaded == [a, b]
    table = datasets.read(tmp_path / "o.csv")
    assert table.devices == [prof.device_name]
    assert table.device_spec(prof.device_name).runtime == "onnxruntime"


# ---- CLI -------------------------------------------------------------------------------------
def _cli_env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _edgeperf(*args):
    return [sys.executable, "-c", "from edgeperf.cli import main; main()", *args]


def _summary_numbers(stderr):
    m = re.search(r"(\d+) measured, (\d+) already in", stderr)
    assert m, stderr
    return int(m.group(1)), int(m.group(2))


@pytest.mark.slow  # 40 ONNX exports + sessions: ~20 s idle, ~60 s on the shared machine
def test_cli_samples_30_then_40_measures_only_10_more(tmp_path):
    from typer.testing import CliRunner

    from edgeperf.cli import app

    out = tmp_path / "nb.csv"
    args = ["profile", "--device", "onnxruntime", "--space", "nasbench201", "--seed", "3", "--out", str(out), *TINY_CLI]
    first = CliRunner().invoke(app, args + ["--samples", "30"])
    assert first.exit_code == 0, first.output
    assert _summary_numbers(first.output) == (30, 0)
    second = CliRunner().invoke(app, args + ["--samples", "40"])
    assert second.exit_code == 0, second.output
    assert _summary_numbers(second.output) == (10, 30)
    table = datasets.read(out)
    assert len(table) == 40
    assert table.archs == sample_archs("nasbench201", 40, seed=3)


def test_cli_rejects_options_a_profiler_does_not_declare(tmp_path):
    from typer.testing import CliRunner

    from edgeperf.cli import app
    from edgeperf.errors import UnknownNameError

    base = ["profile", "-d", "onnxruntime", "-s", "nasbench201", "-n", "1", "-o", str(tmp_path / "x.csv")]
    res = CliRunner().invoke(app, base + ["--serial", "abc"])
    assert isinstance(res.exception, UnknownNameError) and "serial" in str(res.exception)
    res = CliRunner().invoke(app, base + ["--option", "turbo=1"])
    assert isinstance(res.exception, UnknownNameError)
    assert not (tmp_path / "x.csv").exists()


class _FakeAndroid(profilers.Profiler):
    """Stands in for the android profiler (no phone here): only discovery is used."""

    kind = "android"
    options = {"serial": "adb serial"}

    @classmethod
    def discover(cls):
        return [{"serial": "R58M12ABC", "state": "device", "model": "SM_G973F"}]

    def _describe(self):
        raise NotImplementedError

    _load = _warmup = _timed_round = _describe


def test_cli_devices_lists_local_runtimes_and_phones(monkeypatch):
    from typer.testing import CliRunner

    from edgeperf.cli import app

    monkeypatch.setitem(profilers._REGISTRY, "android", _FakeAndroid)
    res = CliRunner().invoke(app, ["devices"], terminal_width=200)
    assert res.exit_code == 0, res.output
    for kind in ("onnxruntime", "torch", "tvm"):
        assert re.search(rf"{kind}\s*.\s*available", res.output), res.output
    assert "R58M12ABC" in res.output and "SM_G973F" in res.output


def test_cli_energy_meter_absent_fails_before_profiling(tmp_path):
    from typer.testing import CliRunner

    from edgeperf.cli import app
    from edgeperf.errors import EnergyMeterUnavailableError
    from edgeperf.profilers import energy

    if energy.get("rapl").availability() is None:
        pytest.skip("this machine has RAPL")
    out = tmp_path / "e.csv"
    res = CliRunner().invoke(app, ["profile", "-d", "onnxruntime", "-s", "nasbench201", "-n", "1", "-o", str(out),
                                   "--energy", "rapl"])
    assert isinstance(res.exception, EnergyMeterUnavailableError)
    assert not out.exists()


def _start_and_wait_for_rows(out, n_samples, min_rows, extra=()):
    proc = subprocess.Popen(
        _edgeperf("profile", "-d", "onnxruntime", "-s", "nasbench201", "-n", str(n_samples), "--seed", "11",
                  "-o", str(out), *TINY_CLI, *extra),
        env=_cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + SUBPROCESS_WAIT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and len(_data_lines(out)) >= min_rows:
            return proc
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"profiling subprocess did not write {min_rows} rows in time: {proc.communicate()}")


@pytest.mark.slow
def test_sigkill_halfway_leaves_a_loadable_file_and_rerun_resumes(tmp_path):
    out = tmp_path / "killed.csv"
    n = 12
    proc = _start_and_wait_for_rows(out, n, min_rows=4)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    kept = datasets.read(out)  # loads as is: at most a torn last line, which read must not see
    assert 4 <= len(kept) < n
    before = set(kept.archs)
    done = subprocess.run(
        _edgeperf("profile", "-d", "onnxruntime", "-s", "nasbench201", "-n", str(n), "--seed", "11",
                  "-o", str(out), *TINY_CLI),
        env=_cli_env(), capture_output=True, text=True, timeout=SUBPROCESS_WAIT_S,
    )
    assert done.returncode == 0, done.stderr
    assert _summary_numbers(done.stderr) == (n - len(before), len(before))
    final = datasets.read(out)
    assert len(final) == n and set(final.archs) == set(sample_archs("nasbench201", n, seed=11))
    assert before <= set(final.archs)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_what_is_saved(tmp_path):
    out = tmp_path / "interrupted.csv"
    proc = _start_and_wait_for_rows(out, 40, min_rows=2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=SUBPROCESS_WAIT_S)
    assert proc.returncode == 130, stderr
    m = re.search(r"interrupted: the (\d+) rows written so far are saved", stderr)
    assert m, stderr
    assert len(datasets.read(out)) == int(m.group(1)) == len(_data_lines(out))
    assert "Traceback" not in stderr


def test_cli_archs_file_and_exactly_one_source(tmp_path):
    from typer.testing import CliRunner

    from edgeperf.cli import app

    a, b = NB.sample(2, seed=9)
    archs_file = tmp_path / "archs.txt"
    archs_file.write_text(f"# two cells\n{a}\n\n{b}\n{a}\n")
    out = tmp_path / "f.csv"
    base = ["profile", "-d", "onnxruntime", "-s", "nasbench201", "-o", str(out), *TINY_CLI]
    res = CliRunner().invoke(app, base + ["--archs", str(archs_file), "--name", "my-laptop"])
    assert res.exit_code == 0, res.output
    table = datasets.read(out)
    assert table.archs == [a, b] and table.devices == ["my-laptop"]
    both = CliRunner().invoke(app, base + ["--archs", str(archs_file), "--samples", "3"])
    assert isinstance(both.exception, InvalidParameterError) and "not both" in str(both.exception)
    bad = tmp_path / "bad.txt"
    bad.write_text("not-a-cell\n")
    res = CliRunner().invoke(app, base + ["--archs", str(bad)])
    assert isinstance(res.exception, ArchitectureError)
    assert len(datasets.read(out)) == 2  # nothing written for the bad file
