"""Safe run folders (issue 16): one writer at a time, a clean stop on Ctrl-C and SIGTERM, and writes
that fail (a full disk, no permission) name the file and keep the previous one."""

from __future__ import annotations

import builtins
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from reszoo import ResNet, ResNetConfig, train
from reszoo.cli import main
from reszoo.errors import (
    FileWriteError,
    InvalidArgumentError,
    NonFiniteLossError,
    RunFolderError,
    TrainingInterrupted,
)
from reszoo.train import runfolder
from reszoo.utils import fileio

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY_ARGS, TINY_OVERRIDES  # noqa: E402

CLI_TINY = [*TINY_ARGS, "--data", "synthetic", "--batch-size", "4", "--synthetic-eval-images", "8", "--no-progress"]


def tiny_recipe(**kw):
    base = dict(data="synthetic", batch_size=4, iterations=6, log_every=1, eval_every=0, checkpoint_every=2)
    return train.Recipe(**{**base, "synthetic_eval_images": 8, "eval_batch_size": 8, **kw})


def tiny_model():
    return ResNet(ResNetConfig(**TINY_OVERRIDES))


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- one writer at a time ------------------------------------------------------------------------


def test_the_lock_is_exclusive_names_the_holder_and_goes_away(tmp_path):
    with fileio.lock_folder(tmp_path / "run") as lock:
        assert lock.read_text().strip() == str(os.getpid())
        assert fileio.lock_holder(tmp_path / "run") == os.getpid()
        busy = rf"{tmp_path / 'run'} is in use by process {os.getpid()}"
        with pytest.raises(RunFolderError, match=busy), fileio.lock_folder(tmp_path / "run"):
            pass
    assert not lock.exists() and fileio.lock_holder(tmp_path / "run") is None
    with fileio.lock_folder(tmp_path / "run"):  # free again
        pass


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    out = tmp_path / "run"
    out.mkdir()
    (out / fileio.LOCK_NAME).write_text(f"{dead.pid}\n")
    assert fileio.lock_holder(out) is None  # a file nobody locks is not a lock
    train.fit(tiny_model(), tiny_recipe(iterations=2), out=out, progress=False)
    assert (out / "model" / "model.safetensors").exists() and not (out / fileio.LOCK_NAME).exists()


HOLD = textwrap.dedent(
    """
    import fcntl, os, sys, time
    fd = os.open(os.path.join(sys.argv[1], ".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()}\\n".encode())
    print("locked", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.timeout(120)
@pytest.mark.skipif(sys.platform == "win32", reason="the holder process locks with fcntl")
def test_a_second_writer_fails_at_once_naming_the_folder_and_the_other_process(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["train", "resnet20", *CLI_TINY, "--iterations", "2", "--out", str(out)]) == 1
        line = one_error_line(capsys.readouterr().err)
        assert f"{out} is in use by process {holder.pid}" in line and "lock file" in line
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written
        assert main(["train", "resnet20", "--resume", str(out), "--no-progress"]) != 0
    finally:
        holder.kill()
        holder.wait(timeout=60)
    assert main(["train", "resnet20", *CLI_TINY, "--iterations", "2", "--out", str(out)]) == 0


def test_claiming_a_folder_checks_what_happened_while_setting_up(tmp_path):
    out = tmp_path / "run"
    train.fit(tiny_model(), tiny_recipe(iterations=2), out=out, progress=False)
    identity = runfolder.checkpoint_identity(out / "checkpoint.pt")
    started = "already holds a run .another process started it"
    with pytest.raises(InvalidArgumentError, match=started), runfolder.claim_folder(out, resume=False, checkpoint=None):
        pass
    with runfolder.claim_folder(out, resume=True, checkpoint=identity):
        pass
    train.fit(tiny_model(), tiny_recipe(iterations=4), out=out, resume=True, progress=False)  # rewrites it
    changed = "checkpoint.pt changed while this run was setting up"
    with pytest.raises(RunFolderError, match=changed), runfolder.claim_folder(out, resume=True, checkpoint=identity):
        pass


# -- Ctrl-C and SIGTERM ----------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_after_the_step_with_a_checkpoint_and_the_run_resumes_exactly(tmp_path, signum, code):
    whole = train.fit(tiny_model(), tiny_recipe(), progress=False)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def stop_at_3(it):
        if it == 3:
            signal.raise_signal(signum)

    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as exc:
        train.fit(tiny_model(), tiny_recipe(), out=out, progress=False, on_step=stop_at_3)
    assert (exc.value.signum, exc.value.exit_code) == (signum, code)
    message = str(exc.value)
    assert f"{signal.Signals(signum).name} at iteration 3 of 6" in message
    assert f"saved in {out / 'checkpoint.pt'}" in message and "resume=True" in message
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert runfolder.load_checkpoint(out)["iteration"] == 3  # between checkpoint_every's 2 and 4
    assert not (out / fileio.LOCK_NAME).exists()
    resumed = train.fit(tiny_model(), tiny_recipe(), out=out, resume=True, progress=False)
    assert train.state_digest(resumed.model) == train.state_digest(whole.model)


def test_a_second_ctrl_c_stops_at_once_and_the_last_checkpoint_stays(tmp_path, python_sigint):
    def twice_at_3(it):
        if it == 3:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train.fit(tiny_model(), tiny_recipe(), out=tmp_path, progress=False, on_step=twice_at_3)
    assert runfolder.load_checkpoint(tmp_path)["iteration"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_stop_after_the_loss_went_non_finite_keeps_the_last_good_checkpoint(tmp_path):
    model = tiny_model()
    poisoned = {"on": False}
    model.fc.register_forward_hook(lambda mod, inp, out: out * float("nan") if poisoned["on"] else out)

    def poison_then_ctrl_c(it):
        poisoned["on"] = it >= 3  # step 4 is non-finite, and no report looks at it before the stop
        if it == 4:
            signal.raise_signal(signal.SIGINT)

    recipe = tiny_recipe(iterations=10, log_every=5, checkpoint_every=3)
    with pytest.raises(NonFiniteLossError, match=r"Stopped by SIGINT at iteration 4, after the training loss"):
        train.fit(model, recipe, out=tmp_path, progress=False, on_step=poison_then_ctrl_c)
    ckpt = runfolder.load_checkpoint(tmp_path)
    assert ckpt["iteration"] == 3
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())


def test_without_a_folder_ctrl_c_is_a_keyboard_interrupt(python_sigint):
    def ctrl_c(it):
        signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train.fit(tiny_model(), tiny_recipe(), progress=False, on_step=ctrl_c)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.1)


@pytest.mark.slow  # a Python process that imports torch and trains: ~5 s each
@pytest.mark.timeout(180)
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_the_command_stops_on_a_signal_with_a_resume_hint_and_exit_code(tmp_path, capsys, signum, code):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "reszoo", "train", "resnet20", *CLI_TINY, "--iterations", "100000"]
    cmd += ["--checkpoint-every", "20", "--eval-every", "0", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_for(out / "checkpoint.pt", proc)
        if signum == signal.SIGINT:  # meanwhile, a second writer is turned away
            assert main(["train", "resnet20", *CLI_TINY, "--iterations", "2", "--out", str(out)]) == 1
            assert f"is in use by process {proc.pid}" in capsys.readouterr().err
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    name = signal.Signals(signum).name
    assert last.startswith(f"reszoo train: stopped: {name} at iteration ")
    assert last.endswith(f"Resume with: reszoo train resnet20 --resume {out}")
    stopped = int(last.split(" at iteration ")[1].split()[0])
    assert runfolder.load_checkpoint(out)["iteration"] == stopped
    assert main(["train", "resnet20", "--resume", str(out), "--iterations", str(stopped + 2), "--no-progress"]) == 0
    assert json.loads((out / "summary.json").read_text())["iterations"] == stopped + 2


# -- failed writes ---------------------------------------------------------------------------------


def _fail_nth_checkpoint(monkeypatch, n: int, code: int) -> None:
    """The n-th checkpoint write fails part-way, as a full disk does."""
    real_save = torch.save
    calls = iter(range(1, 10**6))

    def save(obj, f, *args, **kwargs):
        if next(calls) == n:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(code, os.strerror(code))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(runfolder.torch, "save", save)


def test_a_full_disk_while_checkpointing_names_the_file_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    _fail_nth_checkpoint(monkeypatch, 2, errno.ENOSPC)
    with pytest.raises(FileWriteError) as exc:
        train.fit(tiny_model(), tiny_recipe(), out=tmp_path, progress=False)
    assert exc.value.errno == errno.ENOSPC and isinstance(exc.value, OSError)
    assert str(exc.value) == (
        f"Cannot write {tmp_path / 'checkpoint.pt'}: No space left on device (the previous file is unchanged; "
        "free some space or write elsewhere)."
    )
    assert runfolder.load_checkpoint(tmp_path)["iteration"] == 2
    assert not list(tmp_path.glob(".*.tmp"))
    monkeypatch.undo()  # space again: the run resumes from the surviving checkpoint
    assert train.fit(tiny_model(), tiny_recipe(), out=tmp_path, resume=True, progress=False).iterations == 6


def test_the_command_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys):
    _fail_nth_checkpoint(monkeypatch, 1, errno.ENOSPC)
    out = tmp_path / "run"
    assert main(["train", "resnet20", *CLI_TINY, "--iterations", "2", "--out", str(out)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("reszoo train: error: Cannot write ") and "checkpoint.pt: No space left on device" in line
    assert "inline_container" not in line


def test_permission_denied_while_writing_names_the_file(tmp_path, monkeypatch, capsys):
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == "run.json":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace)
    out = tmp_path / "run"
    assert main(["train", "resnet20", *CLI_TINY, "--iterations", "2", "--out", str(out)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"Cannot write {out / 'run.json'}: Permission denied" in line
    assert not (out / "run.json").exists() and not list(out.glob(".*.tmp"))


def test_a_full_disk_while_logging_names_the_history_file(tmp_path, monkeypatch):
    real_open = builtins.open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

    def opener(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return Full(f) if str(file).endswith("history.jsonl") and "a" in mode else f

    monkeypatch.setattr(builtins, "open", opener)
    with pytest.raises(FileWriteError, match=r"Cannot write .*history.jsonl: No space left on device"):
        train.fit(tiny_model(), tiny_recipe(), out=tmp_path, progress=False)


def test_a_read_only_folder_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    # Tests may run as root, for whom every folder is writable: the permission check is what is faked.
    parent = tmp_path / "ro"
    parent.mkdir()
    monkeypatch.setattr(runfolder.os, "access", lambda path, mode: Path(path) != parent)
    assert main(["train", "resnet20", *CLI_TINY, "--iterations", "2", "--out", str(parent / "run")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"Cannot write the run folder {parent / 'run'}: {parent} is not writable (permission denied)" in line
    assert not any(parent.iterdir())


@pytest.mark.parametrize("where", ["file", "file/sub", "file/sub/deeper"])
def test_out_must_be_a_folder_path(tmp_path, capsys, where):
    (tmp_path / "file").write_text("x")
    assert main(["train", "resnet20", *CLI_TINY, "--out", str(tmp_path / where)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "out must be a folder" in line and str(tmp_path / "file") in line


# -- a run folder and its data are apart (issue 22) ------------------------------------------------------


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(("out", "root"), [("photos", "photos"), ("photos/run", "photos"), ("here", "here/photos")])
def test_the_command_refuses_a_run_folder_that_overlaps_the_image_folder(tmp_path, capsys, out, root):
    from _images import make_image_folder

    make_image_folder(tmp_path / root, per_class=2, val_per_class=1)
    before = _listing(tmp_path)
    argv = ["train", "resnet20", *TINY_ARGS, "--data", "folder", "--root", str(tmp_path / root), "--epochs", "1"]
    assert main([*argv, "--no-progress", "--out", str(tmp_path / out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    how = {"photos": "is the data folder", "photos/run": "is inside the data folder", "here": "holds the data folder"}
    assert f"out={str(tmp_path / out)!r} {how[out]} data_root={str(tmp_path / root)!r}" in line
    assert "an image folder would no longer train" in line and _listing(tmp_path) == before


def test_fit_refuses_overlapping_folders_through_symbolic_links(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    recipe = train.cifar_recipe(data_root=str(data), iterations=2)
    for out in (tmp_path / "link", tmp_path / "link" / "r56", tmp_path):
        with pytest.raises(InvalidArgumentError, match="the run's files would mix with the data it reads"):
            train.fit(tiny_model(), recipe, out=out, progress=False)
    assert _listing(tmp_path) == ["data", "link"]
    runfolder.check_apart(tmp_path / "runs" / "r56", data)  # beside the data: fine


# -- run.json and resuming ---------------------------------------------------------------------------


@pytest.fixture
def finished_run(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "resnet20", *CLI_TINY, "--iterations", "4", "--checkpoint-every", "2", "--out", str(out)]
    assert main(argv) == 0
    return out


def test_resuming_a_finished_run_with_fewer_iterations_changes_nothing(finished_run, capsys):
    files = {name: (finished_run / name).read_bytes() for name in ("recipe.json", "run.json", "checkpoint.pt")}
    capsys.readouterr()
    assert main(["train", "resnet20", "--resume", str(finished_run), "--iterations", "2", "--no-progress"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "iterations must be >= 4 to resume" in line
    assert {name: (finished_run / name).read_bytes() for name in files} == files
    run = json.loads(files["run.json"])
    assert run["recipe"] == json.loads(files["recipe.json"]) and run["recipe"]["iterations"] == 4


def _killed_mid_write(path: Path) -> None:
    """A process that dies (os._exit, as under kill -9) while atomic_path writes ``path``: its temporary stays."""
    code = (
        "import os, sys; from reszoo.utils.fileio import atomic_path\n"
        "tmp = atomic_path(sys.argv[1]).__enter__(); tmp.write_bytes(b'torn' * 1000); os._exit(9)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(runfolder.__file__).parents[2])}
    assert subprocess.run([sys.executable, "-c", code, str(path)], env=env, timeout=60).returncode == 9


def test_a_temporary_torn_by_a_kill_goes_when_the_run_resumes(finished_run, capsys):
    for path in (
        finished_run / "checkpoint.pt",
        finished_run / "history.jsonl",
        finished_run / "model" / "config.json",
    ):
        _killed_mid_write(path)
    torn = sorted(p.name for p in finished_run.rglob(".*.tmp"))
    assert len(torn) == 3 and all(len(name.split(".")[-2]) == 32 for name in torn), torn
    mine = [finished_run / ".notes.tmp", finished_run / ".checkpoint.pt.old.tmp", finished_run / "model" / ".x.tmp"]
    for path in mine:
        path.write_text("the user's")
    argv = ["train", "resnet20", "--resume", str(finished_run), "--iterations", "6", "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    assert sorted(p for p in finished_run.rglob(".*.tmp")) == sorted(mine)  # only reszoo's own names went
    assert runfolder.load_checkpoint(finished_run)["iteration"] == 6


@pytest.mark.parametrize("key", ["model", "model_overrides", "recipe"])
def test_run_json_missing_a_key_is_one_line(finished_run, capsys, key):
    run = json.loads((finished_run / "run.json").read_text())
    del run[key]
    (finished_run / "run.json").write_text(json.dumps(run))
    capsys.readouterr()
    assert main(["train", "resnet20", "--resume", str(finished_run), "--no-progress"]) == 1
    assert "is not a reszoo run record" in one_error_line(capsys.readouterr().err)


class _Payload:
    def __reduce__(self):
        return (print, ("a checkpoint ran code",))


def test_a_checkpoint_holding_code_is_refused_without_advice_to_unpickle_it(tmp_path, capsys):
    torch.save({"format": runfolder.CHECKPOINT_FORMAT, "model": _Payload()}, tmp_path / runfolder.CHECKPOINT_NAME)
    with pytest.raises(InvalidArgumentError) as caught:
        runfolder.load_checkpoint(tmp_path)
    message = str(caught.value)
    assert "GLOBAL print" in message and "never unpickles" in message
    assert "weights_only" not in message and "trust" not in message  # torch's advice to unpickle it anyway
    assert "ran code" not in capsys.readouterr().out
