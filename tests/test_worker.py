"""The worker protocol: JSON-lines progress, one final message, cancellation, errors as messages."""

import io
import json
import os

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
