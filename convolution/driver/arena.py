"""Scratch memory: each thread's block of memory, reused from strip to strip and call to call.

Allocating a few MiB of buffers for every strip, or even every call, means
touching fresh pages, and each first touch is a page fault: in a program that
does anything else between convolutions, that was a third of the time of a
1024 x 1024 call, measured. So each thread carves its strips' buffers out of
one block that it keeps: about one strip's worth per thread, given back when
a strip needed more than ``Settings.keep_bytes``.
"""
import math
import threading

import numpy as np

__all__ = ["Arena", "release_arena"]


class Arena:
    """Scratch memory of one thread, reused from strip to strip and from call to call."""
    _local = threading.local()

    def __init__(self):
        self.memory = np.empty(0, np.uint8)
        self.address = self.memory.ctypes.data     # where the block starts, for alignment
        self.used = self.wanted = 0   # bytes handed out from the block; bytes asked for

    @classmethod
    def start(cls):
        """The calling thread's arena, emptied for a new strip.

        As large as the last strip wanted, for callers that start strip after
        strip without `finish` between them.
        """
        arena = getattr(cls._local, "arena", None)
        if arena is None:
            arena = cls._local.arena = cls()
        arena._grow()
        arena.used = arena.wanted = 0
        return arena

    def _grow(self):
        """The block as large as the last strip wanted, if it was smaller."""
        if self.wanted > self.memory.nbytes:
            self.memory = np.empty(0, np.uint8)      # let go before taking more
            self.memory = np.empty(self.wanted, np.uint8)
            self.address = self.memory.ctypes.data

    @classmethod
    def finish(cls, keep_bytes):
        """After a strip: grow the block to what it wanted, or drop it beyond ``keep_bytes``.

        Growing here, once the strip's own arrays are gone, rather than when
        the next strip starts: a strip of a later call, which may want less,
        then does not pay for this one.
        """
        arena = getattr(cls._local, "arena", None)
        if arena is None:
            return
        if max(arena.memory.nbytes, arena.wanted) > keep_bytes:
            cls._local.arena = None
        else:
            arena._grow()

    def take(self, shape, dtype):
        """An uninitialised C-contiguous array, valid until the next `start`."""
        dtype = np.dtype(dtype)
        size = -(-math.prod(shape) * dtype.itemsize // 64) * 64   # keeps every start aligned
        self.wanted += size + 64 * (self.wanted == 0)   # room to align the block's start
        begin = self.used + (-(self.address + self.used) % 64)
        if begin + size > self.memory.nbytes:   # too small: a block of its own this time
            if self.used == 0:
                # Nothing handed out from the block yet: let it go now rather than hold it
                # beside this strip's buffers (`finish` makes one as large as they were).
                self.memory = np.empty(0, np.uint8)
            return np.empty(shape, dtype)
        self.used = begin + size
        return self.memory[begin:begin + math.prod(shape) * dtype.itemsize].view(
            dtype).reshape(shape)


def release_arena():
    """Give back the calling thread's block (the next strip starts from nothing)."""
    Arena._local.arena = None
