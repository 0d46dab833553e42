"""Whether an adapter folder stays inside the allowed roots, every file below it included.

Shared by the server (before it loads a path) and by backends (before they
publish a path again, say after vLLM restarted), so the check is repeated
where the path is used. Stdlib only.
"""

from __future__ import annotations

from pathlib import Path

# An adapter folder with more files than this is not an adapter.
MAX_FILES = 1000


def inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def escape_reason(folder: Path, roots: list[Path]) -> str | None:
    """Why `folder` (already resolved) is not confined to `roots`; None when it is.

    Every entry below it must resolve inside a root, and no file may have a
    second hard link (a link made inside a root may name a file outside).
    """
    roots = [root.resolve() for root in roots]
    if not inside(folder, roots):
        return "is outside the allowed adapter roots"
    for count, entry in enumerate(folder.rglob("*"), start=1):
        if count > MAX_FILES:
            return f"holds more than {MAX_FILES} files"
        try:
            real = entry.resolve()
            links = real.stat().st_nlink if real.is_file() else 1
        except (OSError, RuntimeError):
            return f"holds {entry.name}, which cannot be read"
        if not inside(real, roots):
            return "holds a link to a file outside the allowed adapter roots"
        if links > 1:
            return "holds a file with several hard links (copy it instead)"
    return None
