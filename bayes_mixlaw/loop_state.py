"""The loop's state on disk: one SQLite file, every event written in its own transaction.

``STATE/state.sqlite`` holds

* ``meta``: the loop's config (as JSON; ``--resume`` reads it from here) and counters;
* ``pilots``: one row per pilot ever suggested: id, round, mixture, params, steps, schedule, seed,
  status (``queued`` -> ``running`` -> ``done`` | ``failed``), attempts, the back end's id of the
  current attempt, its folder, the last error and log;
* ``rows``: the runs-table rows of the pilots that are ``done``, inserted in the same transaction
  that marks the pilot done, so a pilot's rows are in the table whole or not at all, and once;
* ``events``: the log of what happened (suggested, started, retry, done, failed, interrupted, fit);
* ``fits``: after each fit, the best predicted mixture, its loss with interval, the fit's file.

SQLite commits are atomic and durable (journal), so a kill at any moment leaves the last committed
event; :meth:`LoopState.export_runs` writes ``STATE/runs.csv`` through a temporary file and a rename.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from bayes_mixlaw.atomic import write_atomically
from bayes_mixlaw.runners import Pilot

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pilots (
    id TEXT PRIMARY KEY, round INTEGER NOT NULL, mixture TEXT NOT NULL, params INTEGER NOT NULL, steps INTEGER NOT NULL,
    schedule TEXT NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL, spent REAL NOT NULL DEFAULT 0, external_id TEXT, out_dir TEXT, error TEXT, log TEXT,
    acquisition TEXT, created REAL NOT NULL, finished REAL);
CREATE TABLE IF NOT EXISTS rows (pilot TEXT NOT NULL REFERENCES pilots(id), data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, kind TEXT NOT NULL,
    pilot TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS fits (round INTEGER PRIMARY KEY, time REAL NOT NULL, runs INTEGER NOT NULL, path TEXT,
    mixture TEXT, loss REAL, lower REAL, upper REAL, seconds REAL, summary TEXT);
"""

STATUSES = ("queued", "running", "done", "failed")


class LoopState:
    """The state of one loop in ``folder`` (created if absent)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "state.sqlite"
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    @property
    def exists(self) -> bool:
        return self.get("config") is not None

    @contextmanager
    def transaction(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    # meta ------------------------------------------------------------------------------------------
    def get(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set(self, key: str, value, db=None) -> None:
        (db or self.db).execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def _event(self, db, kind: str, pilot: str | None = None, detail=None) -> None:
        db.execute(
            "INSERT INTO events (time, kind, pilot, detail) VALUES (?, ?, ?, ?)", (time.time(), kind, pilot, None if detail is None else json.dumps(detail))
        )

    def event(self, kind: str, pilot: str | None = None, detail=None) -> None:
        with self.transaction() as db:
            self._event(db, kind, pilot, detail)

    # pilots ----------------------------------------------------------------------------------------
    def add_pilots(self, pilots: list[Pilot], round_: int, costs: list[float], acquisition: str, meta: dict | None = None) -> None:
        """Suggested pilots, queued, in one transaction (with ``meta`` keys set in it too)."""
        with self.transaction() as db:
            for key, value in (meta or {}).items():
                self.set(key, value, db)
            for pilot, cost in zip(pilots, costs):
                db.execute(
                    "INSERT INTO pilots (id, round, mixture, params, steps, schedule, seed, status, cost, acquisition, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
                    (pilot.id, round_, json.dumps(pilot.mixture), pilot.params, pilot.steps, pilot.schedule, pilot.seed, cost, acquisition, time.time()),
                )
                self._event(
                    db,
                    "suggested",
                    pilot.id,
                    {"round": round_, "params": pilot.params, "steps": pilot.steps, "mixture": pilot.mixture, "acquisition": acquisition},
                )

    def started(self, pilot_id: str, attempt: int, out_dir: str, external_id: str | None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE pilots SET status = 'running', attempts = ?, out_dir = ?, external_id = ?, spent = spent + cost WHERE id = ?",
                (attempt, out_dir, external_id, pilot_id),
            )
            self._event(db, "started", pilot_id, {"attempt": attempt, "out_dir": out_dir, "external_id": external_id})

    def retry(self, pilot_id: str, attempt: int, reason: str, message: str, log: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE pilots SET error = ?, log = ? WHERE id = ?", (f"{reason}: {message}", log, pilot_id))
            self._event(db, "retry", pilot_id, {"attempt": attempt, "reason": reason, "message": message})

    def done(self, pilot_id: str, rows: pd.DataFrame) -> None:
        """The pilot's rows and its status, together: its rows are in the table once, or not at all."""
        with self.transaction() as db:
            status = db.execute("SELECT status FROM pilots WHERE id = ?", (pilot_id,)).fetchone()
            if status is None or status[0] == "done":
                raise RuntimeError(f"pilot {pilot_id} is {'unknown' if status is None else 'already done'}; its rows are not added twice")
            db.execute("INSERT INTO rows VALUES (?, ?)", (pilot_id, rows.to_json(orient="records")))
            db.execute("UPDATE pilots SET status = 'done', finished = ? WHERE id = ?", (time.time(), pilot_id))
            self._event(db, "done", pilot_id, {"rows": len(rows)})

    def failed(self, pilot_id: str, attempt: int, reason: str, message: str, log: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE pilots SET status = 'failed', finished = ?, error = ?, log = ? WHERE id = ?", (time.time(), f"{reason}: {message}", log, pilot_id)
            )
            self._event(db, "failed", pilot_id, {"attempt": attempt, "reason": reason, "message": message})

    def requeue_running(self, keep: list[str] = ()) -> list[str]:
        """After an interruption: pilots that were running, except those in ``keep`` (jobs followed
        again), go back to the queue (their next attempt starts in a fresh folder); returns their ids."""
        with self.transaction() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM pilots WHERE status = 'running' ORDER BY id") if r[0] not in keep]
            for pid in ids:
                db.execute("UPDATE pilots SET status = 'queued' WHERE id = ?", (pid,))
                self._event(db, "interrupted", pid, None)
        return ids

    def failures(self, pilot_id: str) -> int:
        """Failed attempts of a pilot so far (interrupted ones are not failures)."""
        return int(self.db.execute("SELECT COUNT(*) FROM events WHERE kind = 'retry' AND pilot = ?", (pilot_id,)).fetchone()[0])

    def pilots(self, status: str | None = None) -> pd.DataFrame:
        query = "SELECT * FROM pilots" + (" WHERE status = ?" if status else "") + " ORDER BY created, id"
        return pd.read_sql_query(query, self.db, params=(status,) if status else ())

    def pilot(self, row) -> Pilot:
        return Pilot(row["id"], json.loads(row["mixture"]), int(row["params"]), int(row["steps"]), row["schedule"], int(row["seed"]))

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(dict(self.db.execute("SELECT status, COUNT(*) FROM pilots GROUP BY status").fetchall()))
        return counts

    def spent(self) -> float:
        """Cost of every attempt started so far."""
        return float(self.db.execute("SELECT COALESCE(SUM(spent), 0) FROM pilots").fetchone()[0])

    def committed_cost(self) -> float:
        """Cost spent plus that of the pilots queued or running (what the budget must still pay for)."""
        spent = self.spent()
        pending = self.db.execute("SELECT COALESCE(SUM(cost), 0) FROM pilots WHERE status = 'queued'").fetchone()[0]
        return spent + float(pending)

    def next_id(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM pilots").fetchone()[0]) + 1

    # rows and fits ---------------------------------------------------------------------------------
    def runs_frame(self) -> pd.DataFrame:
        """The runs table of every pilot done, in the order they finished."""
        chunks = [pd.read_json(__import__("io").StringIO(d), orient="records") for (d,) in self.db.execute("SELECT data FROM rows ORDER BY rowid")]
        return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()

    def export_runs(self, path: str | Path | None = None) -> Path:
        """Write the runs table (tidy CSV) atomically: a temporary file renamed over the old one."""
        path = Path(path or self.folder / "runs.csv")
        frame = self.runs_frame()
        return write_atomically(path, lambda partial: frame.to_csv(partial, index=False))

    def add_fit(self, round_: int, runs: int, path: str | None, mixture: dict | None, loss, lower, upper, seconds: float, summary: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO fits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (round_, time.time(), runs, path, json.dumps(mixture), loss, lower, upper, seconds, summary),
            )
            self._event(db, "fit", None, {"round": round_, "runs": runs, "loss": loss, "lower": lower, "upper": upper})

    def last_fit(self) -> dict | None:
        row = self.db.execute("SELECT * FROM fits ORDER BY round DESC LIMIT 1").fetchone()
        if row is None:
            return None
        names = [d[0] for d in self.db.execute("SELECT * FROM fits LIMIT 0").description]
        fit = dict(zip(names, row))
        fit["mixture"] = json.loads(fit["mixture"]) if fit["mixture"] else None
        return fit

    def events(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM events ORDER BY id", self.db)
