"""A busy turn becomes a few messages: by size, by age, and on demand."""

from claude_signal.streaming import Batcher


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
