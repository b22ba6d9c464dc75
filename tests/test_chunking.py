"""Splitting replies for Signal's 2000-byte bodies: boundaries, code fences, UTF-8, attachments."""

from __future__ import annotations

import base64

from claude_signal.rules.chunking import SIGNAL_MAX_BYTES, plan, size, split_text, to_styled


def test_short_text_is_one_plain_part() -> None:
    delivery = plan("All tests pass.")
    assert [(p.text, p.text_mode) for p in delivery.parts] == [("All tests pass.", "normal")]
    assert delivery.attachment is None


def test_splits_at_paragraphs_and_keeps_every_word() -> None:
    paragraphs = [f"Paragraph {n}. " + "word " * 150 for n in range(8)]
    parts = split_text("\n\n".join(paragraphs), limit=2000)
    assert len(parts) > 1
    assert all(size(p) <= 2000 for p in parts)
    for paragraph in paragraphs:  # no paragraph is cut when each fits
        assert sum(paragraph.strip() in p for p in parts) == 1


def test_multibyte_text_is_cut_between_characters() -> None:
    text = "🙂" * 1500  # 6000 bytes, no spaces or newlines
    parts = split_text(text, limit=2000)
    assert all(size(p) <= 2000 for p in parts)
    assert "".join(parts) == text


def test_a_code_block_cut_in_two_stays_code_on_both_sides() -> None:
    code = "\n".join(f"line_{n} = {n}  # some comment to make it longer" for n in range(120))
    text = f"Here is the file:\n\n```python\n{code}\n```\n\nDone."
    parts = split_text(text, limit=2000)
    assert len(parts) >= 3
    for part in parts:
        assert part.count("```") % 2 == 0, part[:80]
    body = "\n".join(line for p in parts for line in p.splitlines() if line.startswith("line_"))
    assert body == code


def test_numbered_parts_fit_the_limit() -> None:
    text = "\n\n".join("x" * 1900 for _ in range(3))
    delivery = plan(text)
    assert [p.text.splitlines()[-1] for p in delivery.parts] == ["(1/3)", "(2/3)", "(3/3)"]
    assert all(size(p.text) <= SIGNAL_MAX_BYTES for p in delivery.parts)


def test_very_long_text_goes_as_an_attachment_with_a_preview() -> None:
    text = "\n\n".join(f"Section {n}: " + "data " * 300 for n in range(10))
    delivery = plan(text, attachment_over=8000)
    assert delivery.count() == 1 and delivery.attachment is not None
    assert delivery.attachment.startswith("data:text/plain;filename=reply.txt;base64,")
    assert base64.b64decode(delivery.attachment.rsplit(",", 1)[1]).decode() == text
    assert "full text is attached" in delivery.parts[0].text
    assert size(delivery.parts[0].text) <= SIGNAL_MAX_BYTES


def test_styled_mode_turns_fences_into_monospace() -> None:
    text = "Run this:\n\n```sh\npytest -q\n```\n\nand `ruff` too."
    assert to_styled(text) == "Run this:\n\n`pytest -q`\n\nand `ruff` too."
    delivery = plan(text, styled=True)
    assert delivery.parts[0].text_mode == "styled"


def test_styled_is_only_used_when_there_is_code() -> None:
    assert plan("5 * 3 = 15, and *that* is all", styled=True).parts[0].text_mode == "normal"
