"""Pieces of PEP 3333 that are plain Python: wsgi.file_wrapper."""

from __future__ import annotations


class FileWrapper:
    """``environ['wsgi.file_wrapper'](filelike, blksize=8192)``: iterates the file in blocks and
    closes it when the server calls ``close()``."""

    __slots__ = ("filelike", "blksize", "close")

    def __init__(self, filelike, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        read = self.filelike.read
        size = self.blksize
        while True:
            block = read(size)
            if not block:
                return
            yield block
