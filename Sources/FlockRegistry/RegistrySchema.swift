import GRDB

/// The registry's tables, as named, append-only migrations (GRDB `DatabaseMigrator`).
///
/// A migration that shipped is never edited: a change of shape is a new migration. Every table that refers to
/// a version does so by foreign key, and GRDB turns foreign keys on for every connection.
enum RegistrySchema {
    /// The migrator that brings an empty or older file to the current schema.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: versions, artifacts, tags, aliases, events, analyses, evidence") { db in
            try db.execute(sql: """
                CREATE TABLE artifact (
                    hash TEXT PRIMARY KEY NOT NULL CHECK (length(hash) = 64),
                    bytes INTEGER NOT NULL CHECK (bytes > 0),
                    stored_at REAL NOT NULL,
                    collected_at REAL
                );
                CREATE TABLE version (
                    id INTEGER PRIMARY KEY,
                    hash TEXT NOT NULL REFERENCES artifact(hash),
                    signature TEXT NOT NULL CHECK (length(signature) = 128),
                    parent INTEGER REFERENCES version(id),
                    model TEXT NOT NULL,
                    parameters INTEGER NOT NULL,
                    round_first INTEGER,
                    round_last INTEGER,
                    participants INTEGER NOT NULL,
                    strategy TEXT NOT NULL,
                    codec TEXT NOT NULL,
                    accuracy REAL,
                    loss REAL,
                    federated_accuracy REAL,
                    federated_loss REAL,
                    upload_bytes INTEGER NOT NULL,
                    download_bytes INTEGER NOT NULL,
                    created_at REAL NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('candidate', 'accepted', 'rejected', 'retired')),
                    status_reason TEXT
                );
                CREATE INDEX version_hash ON version(hash);
                CREATE TABLE tag (
                    version INTEGER NOT NULL REFERENCES version(id),
                    key TEXT NOT NULL,
                    value TEXT NOT NULL,
                    PRIMARY KEY (version, key)
                );
                CREATE TABLE event (
                    id INTEGER PRIMARY KEY,
                    at REAL NOT NULL,
                    kind TEXT NOT NULL,
                    version INTEGER REFERENCES version(id),
                    alias TEXT,
                    previous_version INTEGER REFERENCES version(id),
                    actor TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    evidence TEXT
                );
                CREATE INDEX event_alias ON event(alias, id);
                CREATE INDEX event_version ON event(version, id);
                CREATE TABLE alias (
                    name TEXT PRIMARY KEY NOT NULL,
                    version INTEGER NOT NULL REFERENCES version(id),
                    pinned INTEGER NOT NULL DEFAULT 0,
                    event INTEGER NOT NULL REFERENCES event(id)
                );
                CREATE TABLE analysis (
                    id INTEGER PRIMARY KEY,
                    kind TEXT NOT NULL CHECK (kind IN ('shadow', 'rollback')),
                    treatment INTEGER NOT NULL REFERENCES version(id),
                    control INTEGER NOT NULL REFERENCES version(id),
                    state TEXT NOT NULL CHECK (state IN ('running', 'passed', 'failed', 'inconclusive')),
                    looks INTEGER NOT NULL DEFAULT 0,
                    started_at REAL NOT NULL,
                    decided_at REAL,
                    reason TEXT
                );
                CREATE TABLE evidence (
                    analysis INTEGER NOT NULL REFERENCES analysis(id),
                    edge TEXT NOT NULL,
                    both_right INTEGER NOT NULL,
                    only_control INTEGER NOT NULL,
                    only_treatment INTEGER NOT NULL,
                    both_wrong INTEGER NOT NULL,
                    unlabelled INTEGER NOT NULL,
                    agreements INTEGER NOT NULL,
                    loss_difference_sum REAL NOT NULL,
                    loss_difference_squares REAL NOT NULL,
                    loss_pairs INTEGER NOT NULL,
                    control_p50_ms REAL NOT NULL,
                    control_p99_ms REAL NOT NULL,
                    treatment_p50_ms REAL NOT NULL,
                    treatment_p99_ms REAL NOT NULL,
                    treatment_errors INTEGER NOT NULL,
                    updated_at REAL NOT NULL,
                    PRIMARY KEY (analysis, edge)
                );
                """)
        }
        migrator.registerMigration("v2: paired latency differences in evidence") { db in
            try db.execute(sql: "ALTER TABLE evidence ADD COLUMN latency_difference_ms REAL NOT NULL DEFAULT 0")
        }
        return migrator
    }
}
