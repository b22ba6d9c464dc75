"""Files sent with a reply: kept in the outbox row as base64, posted as ``data:`` URIs with their names."""

from __future__ import annotations

from claude_signal.rules.attachments_out import (
    OutFile,
    human_size,
    pack,
    picture,
    safe_filename,
    unpack,
    upload_allowance,
)
from tests.fakes.signal_rest import SentFile


def test_a_file_survives_the_outbox_row_and_reaches_the_phone_whole() -> None:
    raw = bytes(range(256)) * 3
    row = pack([OutFile.of("report; final,v2.pdf", "application/pdf", raw)])
    (back,) = unpack(row)
    assert back.size == len(raw) and back.filename == "report_final_v2.pdf"
    assert SentFile.parse(back.data_uri()) == SentFile("application/pdf", "report_final_v2.pdf", raw)


def test_malformed_rows_and_names() -> None:
    assert pack([]) is None and unpack(None) == [] and unpack({"files": [{"filename": "x"}, "junk"]}) == []
    assert safe_filename("../../etc/passwd") == "passwd" and safe_filename("...") == "file"
    assert [OutFile.of("a", "text/plain", b"x" * n).size for n in (0, 1, 2, 3, 4)] == [0, 1, 2, 3, 4]


def test_sizes_and_upload_time() -> None:
    assert [human_size(n) for n in (12, 2048, 5 * 1048576)] == ["12 bytes", "2.0 KB", "5.0 MB"]
    assert upload_allowance([]) == 0
    assert upload_allowance([OutFile.of("a", "text/plain", b"x" * 1048576)]) == 2.0  # 512 KB a second


def test_a_tools_picture_becomes_a_numbered_file() -> None:
    png = picture("IMAGE/PNG", "iVBORw0K", 3)
    assert png is not None and (png.filename, png.content_type, png.size) == ("picture-3.png", "image/png", 6)
    assert picture("image/svg+xml", "PHN2Zz4=", 1) is None  # not a picture a phone shows as one
    assert picture("image/png", "not base64!", 1) is None
