"""What an approval request shows: enough to decide from the phone, no more."""

from __future__ import annotations

from pathlib import Path

from claude_signal.rules import previews


def test_edit_shows_removed_and_added_lines() -> None:
    body = previews.preview("Edit", {"file_path": "/p/app.py", "old_string": "x = 1\ny = 2",
                                     "new_string": "x = 1\ny = 3"})
    assert body.splitlines() == [" x = 1", "-y = 2", "+y = 3"]


def test_multi_edit_shows_each_edit() -> None:
    body = previews.preview("MultiEdit", {"file_path": "/p/a", "edits": [
        {"old_string": "a", "new_string": "b"}, {"old_string": "c", "new_string": "d"}]})
    assert body.splitlines() == ["-a", "+b", "…", "-c", "+d"]


def test_write_diffs_against_the_file_it_replaces(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("one\ntwo\nthree\n")
    body = previews.preview("Write", {"file_path": str(target), "content": "one\n2\nthree\n"})
    assert "-two" in body.splitlines() and "+2" in body.splitlines()
    new = previews.preview("Write", {"file_path": str(tmp_path / "new.txt"), "content": "hello\n"})
    assert new.splitlines() == ["(new file, 1 line)", "+hello"]


def test_long_diffs_are_cut_with_a_count() -> None:
    body = previews.preview("Write", {"file_path": "/nonexistent/x", "content": "\n".join(map(str, range(100)))})
    assert body.splitlines()[-1] == f"… {101 - previews.MAX_LINES} more lines"


def test_bash_shows_a_long_command_whole_and_once() -> None:
    command = "for f in *.py; do\n  ruff check $f\ndone && " + "x" * 200
    text = previews.request_text("Bash", "Bash: clipped…", {"command": command})
    assert text == f"Bash:\n{command}"
    assert previews.request_text("Bash", "Bash: ls", {"command": "ls"}) == "Bash: ls"
