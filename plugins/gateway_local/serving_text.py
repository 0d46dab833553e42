"""Turning generated token ids into text pieces as they arrive.

Two small state machines, one per request, run by the generation worker:
IncrementalDecoder yields only complete characters (a multi-byte character
split over several tokens is held back until it is whole), and StopMatcher
cuts the text at the first stop string while holding back any tail that may
still turn into one, so a streamed client never sees part of a stop string.
"""

from __future__ import annotations

import threading
from typing import Any

REPLACEMENT = "\ufffd"


class IncrementalDecoder:
    """Decodes a growing list of token ids into new text, piece by piece.

    Decoding a window that starts a few tokens back (prefix_offset) keeps the
    tokenizer's spacing rules intact; text is released only when it does not
    end in a half-finished UTF-8 sequence.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def _decode(self, ids: list[int]) -> str:
        return str(
            self.tokenizer.decode(
                ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        )

    def push(self, token_id: int) -> str:
        """Add one token; return the text it completes (possibly empty)."""
        self.ids.append(token_id)
        prefix_text = self._decode(self.ids[self.prefix_offset : self.read_offset])
        new_text = self._decode(self.ids[self.prefix_offset :])
        if len(new_text) > len(prefix_text) and not new_text.endswith(REPLACEMENT):
            piece = new_text[len(prefix_text) :]
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.ids)
            return piece
        return ""

    def flush(self) -> str:
        """Whatever is still held back (a dangling partial character) at the end."""
        prefix_text = self._decode(self.ids[self.prefix_offset : self.read_offset])
        new_text = self._decode(self.ids[self.prefix_offset :])
        self.prefix_offset = self.read_offset = len(self.ids)
        return new_text[len(prefix_text) :] if len(new_text) > len(prefix_text) else ""


class StopMatcher:
    """Applies stop strings to streamed text."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Take new text; return what is safe to emit now. Sets `stopped` on a match."""
        if not self.stops:
            return text
        if self.stopped:
            return ""
        buffer = self.held + text
        cut = min((i for i in (buffer.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.held = ""
            self.stopped = True
            return buffer[:cut]
        keep = self._partial_tail(buffer)
        self.held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        """The held-back tail, released when generation ends without a stop."""
        held, self.held = self.held, ""
        return "" if self.stopped else held

    def _partial_tail(self, buffer: str) -> int:
        """Length of the longest suffix of buffer that is a proper prefix of a stop string."""
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:size]):
                    longest = size
                    break
        return longest


class LockedTokenizer:
    """The worker's view of the tokenizer: decode under the shared lock."""

    def __init__(self, tokenizer: Any, lock: threading.Lock) -> None:
        self._tokenizer = tokenizer
        self._lock = lock

    def decode(self, ids: list[int], **kwargs: Any) -> str:
        with self._lock:
            return str(self._tokenizer.decode(ids, **kwargs))
