"""The enrolment database: speakers, each with its recordings' embeddings, in SQLite.

One file (``enrolments.sqlite``); tables ``meta`` (schema version, the model's fingerprint and
embedding size), ``speakers`` (name, time added) and ``recordings`` (speaker, file name,
duration, speech seconds, time added, embedding as float32 bytes). Every change is one
transaction (``BEGIN IMMEDIATE``, with a busy timeout), so processes enrolling into the same
file at the same time wait for each other and lose nothing. A database made with one model
refuses another (their fingerprints differ): embeddings of two models are not comparable.

A speaker's profile is the normalised mean of its recordings' unit embeddings.

A database is data from whoever made it, never trusted: one that is a symbolic link is
refused (SQLite would create or change the file it points to), and an existing one is used
only when its schema is ours: the three tables and our index, no trigger, no view, nothing
else (an ``AFTER INSERT`` trigger could rewrite every new enrolment). A recording's id is
never given again after it is removed (``AUTOINCREMENT``; databases of schema 1 are moved to
it), so a stale id removes nothing or fails. Embeddings that are not finite are refused
before they are stored, and a stored one that is not (or has the wrong size) is a one-line
error naming the database.

>>> import tempfile, torch
>>> db = EnrolmentDB(f"{tempfile.mkdtemp()}/e.sqlite", fingerprint="m1", dim=2)
>>> _ = db.add("ann", "a.wav", torch.tensor([1.0, 0.0]), duration=3.0, speech_seconds=2.5)
>>> _ = db.add("ann", "b.wav", torch.tensor([0.0, 1.0]), duration=2.0, speech_seconds=2.0)
>>> names, profiles = db.profiles()
>>> names, [round(v, 4) for v in profiles[0].tolist()]
(['ann'], [0.7071, 0.7071])
"""

import logging
import os
import re
import sqlite3
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from custom_modules.errors import InputError
from custom_modules.inference.pretrained import read_tensor_file
from custom_modules.scoring.scores import speaker_means

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
RECORDINGS = """CREATE TABLE {name} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    speaker INTEGER NOT NULL REFERENCES speakers(id) ON DELETE CASCADE,
    file TEXT NOT NULL, duration REAL NOT NULL, speech_seconds REAL NOT NULL,
    added REAL NOT NULL, embedding BLOB NOT NULL)"""
SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE speakers (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
    "added REAL NOT NULL)",
    RECORDINGS.format(name="recordings"),
    "CREATE INDEX recordings_by_speaker ON recordings(speaker)",
]
# Everything an enrolment database may hold (SQLite's own: the unique names' index, the
# AUTOINCREMENT counter); anything else is refused.
EXPECTED = {("table", "meta"), ("table", "speakers"), ("table", "recordings"),
            ("index", "recordings_by_speaker"), ("index", "sqlite_autoindex_meta_1"),
            ("index", "sqlite_autoindex_speakers_1"), ("table", "sqlite_sequence")}


def _normalised(sql: str) -> str:
    """A ``CREATE`` statement as compared: white space and identifier quotes left out."""
    return re.sub(r"\s*([(),])\s*", r"\1", re.sub(r"\s+", " ", sql.replace('"', ""))).strip()


# And each object as we create it (schema 1's recordings too, until it is moved): a table of
# the right name but other columns, collation or constraints is not ours either.
EXPECTED_SQL = {_normalised(statement) for statement in [
    *SCHEMA, "CREATE TABLE sqlite_sequence(name,seq)",
    RECORDINGS.format(name="recordings").replace(" AUTOINCREMENT", "")]}


class Recording(NamedTuple):
    id: int
    speaker: str
    file: str
    duration: float
    speech_seconds: float
    added: float


class Speaker(NamedTuple):
    name: str
    recordings: int
    speech_seconds: float
    added: float


class EnrolmentDB:
    """Speakers and their recordings' embeddings for one model (``fingerprint``, ``dim``).

    Arguments
    ---------
    path : str or Path
        The SQLite file (created with its folder when missing).
    fingerprint : str
        The model's (``Embedder.fingerprint()``); a file made with another is refused.
    earlier_fingerprint : str, optional
        The same model's fingerprint in earlier versions (``Embedder.weights_fingerprint()``):
        a file made then is taken over, its fingerprint updated.
    dim : int
        Embedding size.
    """

    def __init__(self, path: str | os.PathLike, fingerprint: str, dim: int,
                 earlier_fingerprint: str | None = None):
        self.path, self.fingerprint, self.dim = Path(path), fingerprint, dim
        if self.path.is_symlink():
            raise InputError(f"{self.path}: a symbolic link; an enrolment database must be a "
                             f"file of its own")
        meta = self._meta()
        if not meta:                           # a new database: made once, in a transaction
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._write() as db:
                if not self._objects(db):
                    for statement in SCHEMA:
                        db.execute(statement)
                    db.execute("INSERT INTO meta VALUES ('schema_version', ?), "
                               "('model_fingerprint', ?), ('embedding_dim', ?)",
                               (str(SCHEMA_VERSION), fingerprint, str(dim)))
            meta = self._meta()
        if meta.get("schema_version") == "1":
            self._upgrade()
        elif meta.get("schema_version") != str(SCHEMA_VERSION):
            raise InputError(f"{self.path}: enrolment database schema "
                             f"{meta.get('schema_version')!r}, not {SCHEMA_VERSION}")
        if earlier_fingerprint is not None and meta.get("model_fingerprint") == \
                earlier_fingerprint and meta.get("embedding_dim") == str(dim):
            with self._write() as db:         # made by an earlier version with these weights
                db.execute("UPDATE meta SET value = ? WHERE key = 'model_fingerprint'",
                           (fingerprint,))
            meta = self._meta()
        if meta.get("model_fingerprint") != fingerprint or \
                meta.get("embedding_dim") != str(dim):
            raise InputError(f"{self.path}: made with another model (fingerprint "
                             f"{str(meta.get('model_fingerprint'))[:12]}, "
                             f"{meta.get('embedding_dim')}-d), not this one "
                             f"({fingerprint[:12]}, {dim}-d); use another database for "
                             f"this model")

    def _objects(self, db: sqlite3.Connection) -> set[tuple[str, str]]:
        """The database's objects; one whose SQL is not ours is named ``(kind, name*)``."""
        try:
            rows = db.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
        except sqlite3.DatabaseError as error:
            raise InputError(f"{self.path}: not an enrolment database ({error})") from None
        return {(kind, name if (kind, name) not in EXPECTED or sql is None or
                 _normalised(sql) in EXPECTED_SQL else f"{name} (not as we make it)")
                for kind, name, sql in rows}

    def _meta(self) -> dict[str, str]:
        """The ``meta`` table (empty for a file that does not exist yet) of a database whose
        schema is ours (see the module's docstring), read without locking it."""
        if not self.path.is_file():
            return {}
        with closing(self._connect()) as db:
            objects = self._objects(db)
            if not objects:
                return {}
            unknown = objects - EXPECTED
            if unknown or not {("table", t) for t in ("meta", "speakers", "recordings")} \
                    <= objects:
                shown = ", ".join(f"{kind} {name}" for kind, name in sorted(unknown)) or \
                    f"tables {', '.join(sorted(n for k, n in objects if k == 'table'))}"
                raise InputError(f"{self.path}: not an enrolment database of ours ({shown}); "
                                 f"it is not used")
            try:
                return {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
            except sqlite3.DatabaseError as error:
                raise InputError(f"{self.path}: not an enrolment database ({error})") from None

    def _upgrade(self) -> None:
        """Schema 1 to 2: the recordings' ids are never given again (``AUTOINCREMENT``)."""
        with self._write() as db:
            if db.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                          ).fetchone()[0] != "1":
                return                          # another process did it
            db.execute(RECORDINGS.format(name="recordings_new"))
            db.execute("INSERT INTO recordings_new SELECT * FROM recordings")
            db.execute("DROP TABLE recordings")
            db.execute("ALTER TABLE recordings_new RENAME TO recordings")
            db.execute("CREATE INDEX recordings_by_speaker ON recordings(speaker)")
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                       (str(SCHEMA_VERSION),))

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            db.execute("PRAGMA trusted_schema = OFF")
            db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as error:
            raise InputError(f"{self.path}: cannot open the enrolment database "
                             f"({error})") from None
        return db

    @contextmanager
    def _read(self):
        """A connection for reading; a damaged file is an ``InputError``."""
        with closing(self._connect()) as db:
            try:
                yield db
            except sqlite3.DatabaseError as error:
                raise InputError(f"{self.path}: cannot be read ({error})") from None

    @contextmanager
    def _write(self):
        """One transaction: committed when the block ends, rolled back on an exception. A
        database locked by another writer for a minute, or read-only, is an ``InputError``."""
        with closing(self._connect()) as db:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                raise InputError(f"{self.path}: cannot write ({error})") from None
            try:
                yield db
            except sqlite3.DatabaseError as error:
                db.execute("ROLLBACK")
                raise InputError(f"{self.path}: cannot write ({error})") from None
            except BaseException:
                db.execute("ROLLBACK")
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.OperationalError as error:
                raise InputError(f"{self.path}: cannot write ({error})") from None

    def add(self, name: str, file: str, embedding: torch.Tensor, duration: float,
            speech_seconds: float) -> int:
        """Add one recording of ``name`` (a new speaker when the name is new); its id."""
        return self.add_recordings(name, [(file, embedding, duration, speech_seconds)])[0]

    def add_recordings(self, name: str,
                       recordings: list[tuple[str, torch.Tensor, float, float]]) -> list[int]:
        """Add ``(file, embedding, duration, speech_seconds)`` recordings of ``name`` in one
        transaction (all or none); their ids."""
        if not name.strip():
            raise InputError("a speaker's name cannot be empty")
        vectors = [embedding.detach().float().reshape(-1).cpu().numpy()
                   for _, embedding, _, _ in recordings]
        if any(v.shape != (self.dim,) for v in vectors):
            raise ValueError(f"embeddings must have {self.dim} values, the database's size")
        for (file, _, _, _), vector in zip(recordings, vectors, strict=True):
            if not np.isfinite(vector).all() or not np.abs(vector).sum():
                raise InputError(f"{file}: its embedding is not finite (or zero); nothing "
                                 f"was enrolled")
        now = time.time()
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO speakers (name, added) VALUES (?, ?)", (name, now))
            speaker = db.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()[0]
            return [int(db.execute(
                "INSERT INTO recordings (speaker, file, duration, speech_seconds, added, "
                "embedding) VALUES (?, ?, ?, ?, ?, ?)",
                (speaker, str(file), float(duration), float(speech), now,
                 vector.astype(np.float32).tobytes())).lastrowid)
                for (file, _, duration, speech), vector in zip(recordings, vectors, strict=True)]

    def speakers(self) -> list[Speaker]:
        """Every speaker, by name, with its number of recordings and speech seconds."""
        with self._read() as db:
            rows = db.execute(
                "SELECT s.name, COUNT(r.id), COALESCE(SUM(r.speech_seconds), 0), s.added "
                "FROM speakers s LEFT JOIN recordings r ON r.speaker = s.id "
                "GROUP BY s.id ORDER BY s.name").fetchall()
        return [Speaker(*row) for row in rows]

    def recordings(self, name: str | None = None) -> list[Recording]:
        """The recordings of ``name`` (every speaker's when ``None``), oldest first."""
        query = ("SELECT r.id, s.name, r.file, r.duration, r.speech_seconds, r.added "
                 "FROM recordings r JOIN speakers s ON s.id = r.speaker")
        with self._read() as db:
            rows = db.execute(query + " WHERE s.name = ? ORDER BY r.id", (name,)).fetchall() \
                if name is not None else db.execute(query + " ORDER BY r.id").fetchall()
            if name is not None and not rows:
                self._known(name, db)
        return [Recording(*row) for row in rows]

    def rename(self, old: str, new: str) -> None:
        if not new.strip():
            raise InputError("a speaker's name cannot be empty")
        with self._write() as db:
            self._known(old, db)
            taken = db.execute("SELECT 1 FROM speakers WHERE name = ?", (new,)).fetchone()
            if new != old and taken:
                raise InputError(f"a speaker named {new!r} is already enrolled")
            db.execute("UPDATE speakers SET name = ? WHERE name = ?", (new, old))

    def remove_speaker(self, name: str) -> int:
        """Remove a speaker and its recordings; how many recordings went."""
        with self._write() as db:
            self._known(name, db)
            count = db.execute("SELECT COUNT(*) FROM recordings r JOIN speakers s ON "
                               "s.id = r.speaker WHERE s.name = ?", (name,)).fetchone()[0]
            db.execute("DELETE FROM speakers WHERE name = ?", (name,))
            return int(count)

    def remove_recording(self, recording: int) -> None:
        """Remove one recording (its speaker too when it was the last one)."""
        if not 0 < recording < 2 ** 63:
            raise InputError(f"no recording {recording} in {self.path}")
        with self._write() as db:
            row = db.execute("SELECT speaker FROM recordings WHERE id = ?",
                             (recording,)).fetchone()
            if row is None:
                raise InputError(f"no recording {recording} in {self.path}")
            db.execute("DELETE FROM recordings WHERE id = ?", (recording,))
            db.execute("DELETE FROM speakers WHERE id = ? AND NOT EXISTS (SELECT 1 FROM "
                       "recordings WHERE speaker = ?)", (row[0], row[0]))

    def profiles(self) -> tuple[list[str], torch.Tensor]:
        """Speaker names and their profiles ``(speakers, dim)``: the normalised mean of each
        speaker's unit embeddings."""
        with self._read() as db:
            rows = db.execute("SELECT s.name, r.embedding FROM recordings r JOIN speakers s ON "
                              "s.id = r.speaker ORDER BY s.name, r.id").fetchall()
        if not rows:
            return [], torch.empty(0, self.dim)
        embeddings = np.stack([self._vector(blob) for _, blob in rows])
        owners = [name for name, _ in rows]
        return sorted(set(owners)), F.normalize(
            speaker_means(torch.from_numpy(embeddings), owners), dim=1)

    def _vector(self, blob: bytes) -> np.ndarray:
        vector = np.frombuffer(blob, dtype=np.float32) if isinstance(blob, bytes) and \
            len(blob) == 4 * self.dim else None
        if vector is None or not np.isfinite(vector).all():
            raise InputError(f"{self.path}: a stored embedding is damaged (not {self.dim} "
                             f"finite float32 values); remove that recording or the database")
        return vector

    def _known(self, name: str, db: sqlite3.Connection) -> None:
        if not db.execute("SELECT 1 FROM speakers WHERE name = ?", (name,)).fetchone():
            raise InputError(f"no speaker named {name!r} in {self.path}")


def default_store(fingerprint: str) -> Path:
    """Where a model's enrolments are kept when no folder is given:
    ``$ECAPA_SPEAKER_DATA`` (else ``$XDG_DATA_HOME/ecapa-speaker``, else
    ``~/.local/share/ecapa-speaker``) ``/enrolments/<fingerprint>.sqlite``."""
    root = os.environ.get("ECAPA_SPEAKER_DATA") or Path(
        os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share", "ecapa-speaker")
    return Path(root, "enrolments", f"{fingerprint[:16]}.sqlite")


def import_old_store(store: Path, database: EnrolmentDB) -> None:
    """Move an earlier version's ``enrolled.pt`` (one profile per name) into the database,
    once: each profile becomes one recording named after the file; the old file is renamed
    ``enrolled.pt.imported``. A file that is not such profiles (finite, of the database's
    size) is a one-line error and stays where it is."""
    if not store.is_file():
        return
    profiles = read_tensor_file(store)
    if not isinstance(profiles, dict) or not all(
            isinstance(n, str) and isinstance(p, torch.Tensor) and p.numel() == database.dim
            and bool(torch.isfinite(p).all()) for n, p in profiles.items()):
        raise InputError(f"{store}: not an earlier version's enrolments (names with finite "
                         f"{database.dim}-d profiles); move it away to go on")
    imported = store.with_name(store.name + ".imported")
    try:                       # whichever process renames it first imports it
        os.replace(store, imported)
    except FileNotFoundError:
        return
    known = {speaker.name for speaker in database.speakers()}
    for name, profile in profiles.items():
        if name not in known:
            database.add(name, f"{store.name} (imported)", profile, 0.0, 0.0)
    logger.warning("imported %d speakers of %s into %s (its model is not recorded: check they "
                   "were enrolled with this one)", len(profiles), store, database.path)
