"""The stored side that is never rebuilt: `ls` of this folder lists what a backup must keep.

- `application.py`: `Ledger`, the eventsourcing Application (append, history, scan, verify) and
  `StoreConfig` (every environment read of the store).
- `mapper.py`: stored events <-> event Structs (the topic names the event class).
- `event_index.py`, `event_index_postgres.py`: the ledger-wide event-id index, written in the
  same transaction as the events.
- `access_log.py`: the hash-chained record of who read what.
- `tokens.py`, `web_sessions.py`: API tokens and the pages' sign-in sessions.
- `key_check.py`: the stored check that the configured cipher key is the one the events use.
- `storage_faults.py`: driver errors named as domain `StorageFault`s.
- `db.py`: the SQL drivers (SQLite, PostgreSQL) the side tables and the projections share.

Nothing here imports `projections/`, `api/` or `cli/`.
"""
