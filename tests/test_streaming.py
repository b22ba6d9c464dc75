"""A busy turn becomes a few messages: by size, by age, and on demand."""

from claude_signal.rules.batching import FULL_GRACE, Batcher


def test_small_items_wait_for_age() -> None:
    b = Batcher(max_chars=1000, max_age=4)
    assert b.add_text("Looking at the tests.", 0.0) == []
    assert b.add_tool("Bash: pytest -q", 1.0) == []
    assert b.add_tool("Read tests/test_app.py", 2.0) == []
    assert b.due(3.9) == []
    assert b.due(4.0) == ["Looking at the tests.\n\n› Bash: pytest -q\n› Read tests/test_app.py"]
    assert b.due(100) == []


def test_size_releases_early_and_keeps_order() -> None:
    b = Batcher(max_chars=50, max_age=60)
    out = b.add_text("a" * 30, 0) + b.add_text("b" * 30, 0) + b.add_text("c" * 10, 0)
    out += b.flush()
    assert out == ["a" * 30, "b" * 30 + "\n\n" + "c" * 10]


def test_a_full_batch_waits_a_moment_for_the_end_of_the_turn() -> None:
    """A long final answer is still in the batch when the turn ends, so its cost line joins it."""
    b = Batcher(max_chars=50, max_age=60)
    assert b.add_text("x" * 60, 10.0) == []
    assert b.due(10.0 + FULL_GRACE / 2) == []
    assert b.finish() == ["x" * 60]


def test_a_full_batch_goes_when_the_next_part_comes_or_the_grace_is_over() -> None:
    b = Batcher(max_chars=50, max_age=60)
    assert b.add_text("x" * 60, 0.0) == []
    assert b.add_tool("Bash: pytest -q", 0.1) == ["x" * 60]
    assert b.add_text("y" * 60, 2.0) == ["› Bash: pytest -q"]
    assert b.due(2.0 + FULL_GRACE / 2) == []
    assert b.due(2.0 + FULL_GRACE) == ["y" * 60]


def test_hundreds_of_tool_uses_make_few_messages() -> None:
    b = Batcher()
    messages: list[str] = []
    for i in range(300):
        messages += b.add_tool(f"Edit src/module_{i}.py", i * 0.01)
    messages += b.flush()
    assert 3 <= len(messages) <= 10
    assert sum(m.count("›") for m in messages) == 300


def test_blank_text_is_ignored() -> None:
    b = Batcher()
    assert b.add_text("   \n", 0) == []
    assert b.flush() == []


def test_quiet_folds_tool_lines_into_one_line_at_the_end() -> None:
    b = Batcher(quiet=True)
    assert b.add_tool("Bash: ls", 0.0) == [] and b.add_text("Looking around.", 0.1) == []
    b.add_tool("Read /p/a.py", 0.2)
    b.add_tool("Bash: pytest -q", 0.3)
    assert b.due(100.0) == ["Looking around."]  # prose streams as usual; no tool line went out
    assert b.finish() == ["› 3 tools: Bash ×2, Read"]


def test_quiet_keeps_a_tool_that_did_not_run_on_its_own_line() -> None:
    b = Batcher(quiet=True)
    b.add_tool("Bash: git push --force", 0.0)
    assert b.withdraw("Bash: git push --force")  # its approval request shows it instead
    b.add_tool("✗ Bash: git push --force (denied)", 1.0)
    b.add_tool("Edit /p/a.py", 1.1)
    b.add_text("Done.", 1.2)
    assert b.finish() == ["Done.\n\n› 1 tool: Edit\n› ✗ Bash: git push --force (denied)"]


def test_finish_without_quiet_is_a_flush() -> None:
    b = Batcher()
    b.add_tool("Bash: ls", 0.0)
    assert b.finish() == ["› Bash: ls"] and b.finish() == []
