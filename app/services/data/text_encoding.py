"""Text datasets (CSV, JSON lines) must be UTF-8: checked as their bytes arrive, refused naming the first bad line.

Without the check pyarrow reads a column holding non-UTF-8 bytes as binary, so the upload would succeed and every
later reader (profile, quality check, training) fail on it.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from app.core.errors import AipError, invalid

PIECE_BYTES = 4 << 20  # decoded at a time: bounds the text a check holds
TEXT_FORMATS = frozenset({"csv", "jsonl"})


class Utf8Check:
    """Validates a file's bytes fed in order; `finish` raises a 422 naming the first invalid byte's line."""

    def __init__(self) -> None:
        self._carry = b""  # the start of a character split between blocks
        self._offset = 0  # bytes validated before `_carry`
        self.bad_offset: int | None = None

    def feed(self, block: bytes) -> None:
        if self.bad_offset is not None or not block:
            return
        if not self._carry and block.isascii():  # the common case, ~50x faster than decoding
            self._offset += len(block)
            return
        data = memoryview(self._carry + block if self._carry else block)
        done = 0
        while done < len(data):
            piece = data[done : done + PIECE_BYTES]
            try:
                _, consumed = codecs.utf_8_decode(piece, "strict", False)
            except UnicodeDecodeError as e:
                self.bad_offset = self._offset + done + e.start
                return
            last = done + len(piece) == len(data)
            done += consumed  # short of the piece's end only by a character split there: the next piece has it
            if last:
                break
        self._offset += done
        self._carry = bytes(data[done:])

    def finish(self, path: Path) -> None:
        """Raises the 422 for the file now complete at `path`, if it is not UTF-8 (a character cut off at the
        end included)."""
        if self.bad_offset is None and self._carry:
            self.bad_offset = self._offset
        if self.bad_offset is not None:
            raise not_utf8(path, self.bad_offset)


def check_file(path: Path) -> None:
    """Raises a 422 naming the first line of the file at `path` that is not UTF-8."""
    check = Utf8Check()
    with path.open("rb") as f:
        while check.bad_offset is None and (block := f.read(PIECE_BYTES)):
            check.feed(block)
    check.finish(path)


def not_utf8(path: Path, offset: int) -> AipError:
    line, byte = 1, b""
    with path.open("rb") as f:
        read = 0
        while read < offset and (block := f.read(min(PIECE_BYTES, offset - read))):
            line += block.count(b"\n")
            read += len(block)
        byte = f.read(1)
    return invalid(
        f"The file is not UTF-8 text: line {line} (byte offset {offset}) holds the byte 0x{byte.hex() or '??'}. "
        "Save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`) and upload it again.",
        line=line,
        byte_offset=offset,
    )
