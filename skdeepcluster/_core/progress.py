"""A dependency-free progress bar on standard error."""

import sys
import time


class Progress:
    """One line per phase, redrawn after every epoch when ``verbose > 0``."""

    def __init__(self, phase, total, verbose, stream=None):
        self.phase = phase
        self.total = max(int(total), 1)
        self.enabled = verbose > 0
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.perf_counter()
        self._drawn = False

    def update(self, done, loss=None, delta_label=None, width=24):
        if not self.enabled:
            return
        filled = int(width * done / self.total)
        bar = "#" * filled + "." * (width - filled)
        line = f"\r{self.phase:<12} {done:>5}/{self.total} [{bar}]"
        if loss is not None:
            line += f" loss={loss:.5g}"
        if delta_label is not None:
            line += f" changed={delta_label:.2%}"
        line += f" {time.perf_counter() - self.start:.1f}s"
        self.stream.write(line)
        self.stream.flush()
        self._drawn = True

    def note(self, message):
        """One line about the phase (e.g. that it was read from a cache)."""
        if self.enabled:
            self.stream.write(f"{self.phase:<12} {message}\n")
            self.stream.flush()

    def close(self):
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
