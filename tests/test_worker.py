"""The worker protocol: JSON-lines progress, one final message, cancellation, errors as messages."""

import io
import json
import os
from pathlib import Path

import pytest

from addon.worker_client import WorkerJob
from core import worker
from core.errors import AtelierError


def serve_with(monkeypatch, command, stdin_text):
    """Serve one request; stdin stays open (as the parent keeps it) until the worker is done."""
    monkeypatch.setattr("core.cli.run_command", command)
    read_end, write_end = os.pipe()
    os.write(write_end, stdin_text.encode())
    stdout = io.StringIO()
    stdin = os.fdopen(read_end)
    code = worker.serve(stdin, stdout)
    os.close(write_end)  # the parent goes away: the worker's stdin watcher sees end of file
    stdin.close()
    return code, [json.loads(line) for line in stdout.getvalue().splitlines()]


def test_progress_then_result(monkeypatch):
    def command(argv, progress):
        for step in range(3):
            progress.update(step + 1)
        return {"argv": argv}
    code, messages = serve_with(monkeypatch, command, json.dumps({"argv": ["nca", "x"]}) + "\n")
    assert code == 0 and messages[-1] == {"type": "result", "summary": {"argv": ["nca", "x"]}}
    assert any(m["type"] == "progress" and m["fraction"] == 1.0 for m in messages)


def test_cancel_line_stops_the_command(monkeypatch):
    def command(argv, progress):
        progress.cancel_event.wait(5)
        progress.update(1)
        return {}
    code, messages = serve_with(monkeypatch, command, json.dumps({"argv": []}) + "\ncancel\n")
    assert code == 130 and messages[-1] == {"type": "cancelled"}


def test_user_errors_are_messages_not_tracebacks(monkeypatch):
    def command(argv, progress):
        raise AtelierError("brick.png: not an image")
    code, messages = serve_with(monkeypatch, command, json.dumps({"argv": []}) + "\n")
    assert code == 2 and messages == [{"type": "error", "message": "brick.png: not an image"}]


def test_malformed_request():
    stdout = io.StringIO()
    assert worker.serve(io.StringIO("hello\n"), stdout) == 2
    assert "argv" in json.loads(stdout.getvalue())["message"]


def test_real_subprocess_reports_bad_arguments():
    job = WorkerJob(["no-such-group"])
    result = job.wait(timeout=60)
    assert result["type"] == "error" and "invalid arguments" in result["message"]
    assert job.done


@pytest.mark.parametrize("argv", [["--help"], ["demo", "run", "--help"]])
def test_cli_help(argv, capsys):
    from core.cli import main
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0 and "usage: atelier" in capsys.readouterr().out


@pytest.mark.parametrize("request_line, message", [
    ('{"argv": "sketch"}', "'argv' list of strings"),
    ('{"argv": [1, 2]}', "'argv' list of strings"),
    ('[1]', "'argv' list of strings"),
    ('{"argv": ' + "[" * 100000 + "]" * 100000 + "}", "nested too deeply"),
    ('{"argv": ["a\\u0000b"]}', "NUL"),
    ('{"argv": ["\\ud800"]}', "invalid character"),
    ('{"argv": ["sketch", "sample", "--help"]}', "only prints text; run 'atelier sketch sample --help'"),
    ('{"argv": ["--vers"]}', "only prints text"),
    ('{"argv": ["x"]}' + " " * (2 << 20), "longer than"),
])
def test_malformed_requests_are_answered_with_one_error(request_line, message):
    stdout = io.StringIO()
    assert worker.serve(io.StringIO(request_line + "\n"), stdout) == 2
    (answer,) = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert answer["type"] == "error" and message in answer["message"]


def test_nothing_a_command_prints_reaches_the_protocol(tmp_path):
    """The real worker process: help text, prints and C-level writes to fd 1 go to the log (no progress
    update here: stdin closes after the request, which asks the worker to cancel)."""
    import subprocess
    import sys
    code = ("import os, sys, core.cli\n"
            "def noisy(argv, progress):\n"
            "    print('python print'); sys.stdout.flush(); os.write(1, b'C-level write\\n')\n"
            "    return {'ok': True}\n"
            "core.cli.run_command = noisy\n"
            "from core import worker\n"
            "sys.exit(worker.main())\n")
    result = subprocess.run([sys.executable, "-c", code], input='{"argv": ["sketch", "sample"]}\n',
                            capture_output=True, text=True, timeout=60, cwd=str(Path(__file__).resolve().parent.parent))
    messages = [json.loads(line) for line in result.stdout.splitlines()]  # every line is JSON
    assert messages[-1] == {"type": "result", "summary": {"ok": True}}
    assert "python print" in result.stderr and "C-level write" in result.stderr


def test_help_in_the_real_worker_is_an_error_message():
    job = WorkerJob(["sketch", "sample", "--help"])
    result = job.wait(timeout=60)
    assert result["type"] == "error" and "only prints text" in result["message"]


def test_os_errors_name_the_file(monkeypatch):
    def command(argv, progress):
        raise PermissionError(13, "Permission denied", "/some/out.png")
    code, messages = serve_with(monkeypatch, command, json.dumps({"argv": ["x"]}) + "\n")
    assert code == 2 and messages == [{"type": "error", "message": "/some/out.png: Permission denied"}]


def test_cli_output_naming_a_folder_is_a_clear_error(tmp_path, capsys):
    from core.cli import main
    (tmp_path / "out.svg").mkdir()
    assert main(["sketch", "sample", "kanji", "-n", "1", "-o", str(tmp_path / "out.svg")]) == 2
    captured = capsys.readouterr()
    assert "is a folder" in captured.err and "Traceback" not in captured.err
