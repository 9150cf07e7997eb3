"""The learned model's half of a replay, in a process of its own (`replay(model_process=True)`).

The replay's two halves need not share a core: the features and rules must see each
transaction in order (they learn as they go), but the model reads only a transaction's
feature row, and what the engine learns never reads the model's score. So one process reads,
learns and rules while this one scores the rows of the batch before.

It is a plain child (`python -m paymesh.fraud.model_process`), not a multiprocessing worker:
nothing of the parent is re-imported or forked (LightGBM's threads included), and no thread
is added to the parent to feed a queue. The two talk over the child's stdin and stdout in
frames (a 4-byte big-endian length, then the bytes): first the model file's text, then for
each batch a request (`<rows>,<columns>` in ASCII, a newline, the rows as float64) answered by
the verdicts as msgpack (`[score, margin, [factor, ...]]` per row). A request is written only
after the answer to the one before has been read, so neither side ever waits on a full pipe
while the other waits on it.
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
from typing import IO, Any

import msgspec

_LENGTH = struct.Struct(">I")
_answers = msgspec.msgpack.Decoder(list[tuple[int, float, tuple[str, ...]]])


class ModelProcessError(RuntimeError):
    """The model's process ended, or a frame from it was cut short."""


def write_frame(out: IO[bytes], payload: bytes) -> None:
    out.write(_LENGTH.pack(len(payload)))
    out.write(payload)
    out.flush()


def read_frame(source: IO[bytes]) -> bytes | None:
    """The next frame, or None at the end of the stream (the other side closed it)."""
    head = source.read(_LENGTH.size)
    if not head:
        return None
    if len(head) != _LENGTH.size:
        raise ModelProcessError("a frame's length was cut short")
    (size,) = _LENGTH.unpack(head)
    payload = source.read(size)
    if len(payload) != size:
        raise ModelProcessError("a frame was cut short")
    return payload


class ModelProcess:
    """The parent's end: starts the child with a model, sends batches, reads their verdicts."""

    def __init__(self, model_json: str) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-m", "paymesh.fraud.model_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._child.stdin is not None and self._child.stdout is not None
        self._to, self._from = self._child.stdin, self._child.stdout
        write_frame(self._to, model_json.encode())

    def send(self, rows: Any) -> None:
        """Hand the child a batch (a 2-D float64 array); `receive` gives its verdicts."""
        n, columns = rows.shape
        try:
            write_frame(self._to, f"{n},{columns}\n".encode() + rows.tobytes())
        except BrokenPipeError as exc:
            raise ModelProcessError(f"the model process ended ({self._child.poll()})") from exc

    def receive(self) -> list[tuple[int, float, tuple[str, ...]]]:
        """The verdicts of the batch sent last, in its order: (score, margin, factors)."""
        payload = read_frame(self._from)
        if payload is None:
            raise ModelProcessError(f"the model process ended ({self._child.wait()})")
        return _answers.decode(payload)

    def close(self) -> None:
        """Close its input and wait for it to end. A replay stopped with a batch in flight
        leaves an answer unread: it is read and dropped, so that a child blocked writing an
        answer larger than the pipe still reaches the end of its input and ends."""
        with contextlib.suppress(BrokenPipeError):  # it may have ended already
            self._to.close()
        self._from.read()
        self._from.close()
        self._child.wait()


def serve(source: IO[bytes], out: IO[bytes]) -> None:
    """The child: a model from the first frame, then a batch's verdicts for each frame after."""
    import numpy as np

    from paymesh.fraud.model import FraudModel

    first = read_frame(source)
    if first is None:
        return
    model = FraudModel.from_json(first.decode())
    encode = msgspec.msgpack.Encoder().encode
    while (request := read_frame(source)) is not None:
        head, _, data = request.partition(b"\n")
        n, columns = (int(part) for part in head.split(b","))
        rows = np.frombuffer(data, dtype=np.float64).reshape(n, columns)
        write_frame(out, encode([(v.score, v.margin, v.factors) for v in model.verdicts(rows)]))


def main() -> None:
    # The frames get the stdout the parent reads; anything else printed here (LightGBM
    # prints its warnings) goes to stderr instead of into a frame.
    frames = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, frames)


if __name__ == "__main__":
    main()
