"""Opening a study's Optuna storage: SQLite in the study directory, or a database a team shares.

`--optuna-storage postgresql://user@host/db` reaches PostgreSQL through psycopg 3 (the
``postgresql`` extra); SQLAlchemy would otherwise pick psycopg2 for a bare ``postgresql://``.
A storage that cannot be opened (wrong password, nothing listening, a missing driver) is
reported as one `StudyError` before Ray starts, with any password in the URL masked.
"""

from __future__ import annotations

import optuna
import sqlalchemy.engine
import sqlalchemy.exc

from study.tune.plan import StudyError

DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
"""URL schemes a user may write -> the SQLAlchemy driver name the study uses."""
CONNECT_TIMEOUT_S = 10
"""Seconds a network database may take to answer before the study gives up."""
INSTALL_HINT = {"postgresql": 'pip install -e ".[postgresql]" (psycopg 3)'}


def driver_url(url: str) -> str:
    """``url`` with psycopg 3 named as the driver of a bare ``postgresql://`` URL."""
    parsed = sqlalchemy.engine.make_url(url)
    driver = DRIVERS.get(parsed.drivername)
    if driver is None:
        return url
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def masked(url: str) -> str:
    """``url`` with its password, if any, shown as ``***`` (for messages and plans)."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def is_network_database(url: str) -> bool:
    """Whether ``url`` names a database server (not a SQLite file)."""
    return not url.startswith("sqlite")


def check(url: str) -> list[str]:
    """Fail with one `StudyError` when a database server named by ``url`` cannot be opened
    (a SQLite file is created in the study directory later, and checked as it is written);
    returns warning lines for the user (a password written into the URL)."""
    if not is_network_database(url):
        return []
    open_storage(url).remove_session()
    if sqlalchemy.engine.make_url(url).password is None:
        return []
    return [f"warning: --optuna-storage {masked(url)} holds a password, which study.json "
            "keeps in plain text; give it through PGPASSWORD or ~/.pgpass instead"]


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage for ``url`` (tables created if the database is empty).

    Raises:
        StudyError: the database cannot be reached or refuses the login, or its driver is
            not installed; the message names the (masked) URL and the reason.
    """
    engine_kwargs = {}
    if is_network_database(url):
        engine_kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S},
                         "pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(driver_url(url), engine_kwargs=engine_kwargs)
    except ModuleNotFoundError as exc:
        backend = sqlalchemy.engine.make_url(url).get_backend_name()
        hint = INSTALL_HINT.get(backend, f"install the Python driver of {backend}")
        raise StudyError(f"--optuna-storage {masked(url)}: the database driver is missing "
                         f"({exc.name}); {hint}") from None
    except sqlalchemy.exc.ArgumentError as exc:
        raise StudyError(f"--optuna-storage {masked(url)} is not a database URL ({exc}); "
                         "e.g. postgresql://USER@HOST:5432/DB or sqlite:///ABS/PATH.db") from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise StudyError(f"cannot open the Optuna storage {masked(url)}: {reason(exc)}. "
                         "Check host, port, user and database; give the password through "
                         "PGPASSWORD or ~/.pgpass rather than in the URL") from None


def reason(exc: sqlalchemy.exc.SQLAlchemyError) -> str:
    """The database's own first line of ``exc`` (e.g. ``password authentication failed for
    user "x"``, ``connection refused``), without SQLAlchemy's wrapping and links."""
    original = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("(Background", "[SQL"))]
    return (useful or lines or [type(exc).__name__])[0]
