"""``/get``'s checks on a real directory tree: inside the roots, resolved, a regular file, small enough."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_signal.core.files_out import Refused, pick, read


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    roots = tmp_path / "projects"
    (roots / "shop" / "src").mkdir(parents=True)
    (roots / "blog").mkdir()
    (roots / "shop" / "src" / "app.py").write_text("print('hi')\n")
    (roots / "blog" / "post.md").write_text("# Hello\n")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "key.pem").write_text("secret")
    (roots / "shop" / "key.pem").symlink_to(tmp_path / "private" / "key.pem")
    (roots / "shop" / "notes.md").symlink_to(roots / "blog" / "post.md")  # a link that stays inside is fine
    (roots / "shop" / ".claude-signal").mkdir()
    return roots


def get(tree: Path, raw: str, limit: int = 1000, protected: tuple[Path, ...] = ()) -> str:
    found = pick(raw, str(tree / "shop"), [tree], list(protected), limit)
    return f"{found.shown} {found.size}"


def test_relative_absolute_and_linked_paths_inside_the_roots(tree: Path) -> None:
    assert get(tree, "src/app.py") == "src/app.py 12"
    assert get(tree, "./src/../src/app.py") == "src/app.py 12"
    assert get(tree, str(tree / "blog" / "post.md")) == f"{tree / 'blog' / 'post.md'} 8"  # another project
    assert get(tree, "notes.md") == f"{tree / 'blog' / 'post.md'} 8"
    file = read(pick("src/app.py", str(tree / "shop"), [tree], []))
    assert (file.filename, file.content_type, file.size) == ("app.py", "text/x-python", 12)


@pytest.mark.parametrize(("raw", "why"), [
    ("key.pem", "key.pem leads outside the project roots"),
    ("../../private/key.pem", "../../private/key.pem is outside the project roots"),
    ("/etc", "/etc is outside the project roots"),
    ("src", "src is a folder"),
    ("missing.txt", "There is no missing.txt in "),
    ("/nowhere/at/all", "There is no /nowhere/at/all on this host."),
])
def test_refusals_say_why(tree: Path, raw: str, why: str) -> None:
    with pytest.raises(Refused) as refused:
        get(tree, raw)
    assert str(refused.value).startswith(why)


def test_too_big_and_protected(tree: Path) -> None:
    (tree / "shop" / "big.bin").write_bytes(b"x" * 1001)
    with pytest.raises(Refused, match=r"^big.bin is 1001 bytes; Signal takes attachments up to 1000 bytes"):
        get(tree, "big.bin", limit=1000)
    (tree / "shop" / ".claude-signal" / "state").write_text("x")
    with pytest.raises(Refused, match="claude-signal's data or Claude's configuration"):
        get(tree, ".claude-signal/state", protected=(tree / "shop" / ".claude-signal",))
