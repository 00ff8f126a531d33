"""Files written so that a reader never sees half of one (the CLI's outputs, batch records, caches).

Only a regular file is ever replaced (or created): a symlink, device, FIFO or directory where the output should go is
refused with one line naming the path, as is any OS error (`UsageError`).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from m3analyst.errors import UsageError


def file_kind(mode: int) -> str | None:
    """What a non-regular file is ('a directory', 'a named pipe (FIFO)', ...), or None for a regular file."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write via a temp file in the same folder + rename: readers never see a half-written file."""
    path = Path(path)
    try:
        _check_target(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_replace(path, data)
    except OSError as e:
        raise UsageError(f"{path}: cannot write ({e.strerror or e})") from None
    return path


def _check_target(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise UsageError(f"{path}: cannot write (a file stands where a folder is needed)") from None
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(f"{path}: is a symbolic link; the output replaces only a regular file")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path}: is {file_kind(st.st_mode)}; the output replaces only a regular file")


def _write_replace(path: Path, data: str | bytes) -> None:
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:80]}.", suffix=".tmp", dir=path.parent)  # within NAME_MAX
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
