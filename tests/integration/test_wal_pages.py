"""`benchmarks/wal_pages.py` reads a real WAL: its counts of frames and commits, and the
B-tree it gives each frame, must be SQLite's, or the figures it prints are not."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from benchmarks.wal_pages import read_frames, wal_frame_count


def test_frames_and_commits_are_read_from_the_wal_by_the_tree_owning_each_page(
    tmp_path: Path,
) -> None:
    db = tmp_path / "w.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE rows (k INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("CREATE INDEX rows_by_v ON rows (v)")
    wal = Path(f"{db}-wal")
    start = wal_frame_count(wal)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO rows VALUES (?, ?)", [(k, "x" * 900) for k in range(40)])
    conn.execute("COMMIT")
    conn.execute("UPDATE rows SET v = 'y' WHERE k = 0")  # a commit of its own
    end = wal_frame_count(wal)
    owner = {page: name for name, page in conn.execute("SELECT name, pageno FROM dbstat")}
    frames = read_frames(wal, start, end, owner)
    # SQLite's own count of the WAL's frames (the WAL goes when the connection closes).
    _busy, in_wal, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    conn.close()

    assert frames.commits == 2
    assert frames.frames == end - start == in_wal - start
    assert set(frames.by_tree) <= {"rows", "rows_by_v", "sqlite_schema", "?"}
    # 40 rows of 900 bytes fill about ten table pages, and their index its own pages.
    assert frames.by_tree["rows"] >= 10 and frames.by_tree["rows_by_v"] >= 10
