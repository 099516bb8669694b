//! The SQL of each step of the run store's schema, from version `i` to `i + 1` (the tables are
//! documented column by column in `docs/SCHEMA.md`; how and when the steps are applied is in the
//! parent module).

/// Migration `i` takes the schema from version `i` to `i + 1`. The SQL of the step to version 5
/// is only its first part: the conversion of the rows and the dropping of the version 4 tables follow
/// it when a store is opened for writing.
pub const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8];

/// Index of the migration to version 5 in [`MIGRATIONS`]: after its SQL, the stored row telemetry is
/// converted into blobs ([`crate::upgrade_v5::convert_rows`]) and [`V5_FINISH`] drops the row tables.
pub(super) const TO_V5: usize = 4;

const V1: &str = r#"
CREATE TABLE runs (
    run_id            TEXT PRIMARY KEY NOT NULL,
    name              TEXT NOT NULL,
    plan_name         TEXT NOT NULL,
    plan_toml         TEXT NOT NULL,
    plan_sha256       TEXT NOT NULL,
    hall              TEXT,
    started_at_ns     INTEGER NOT NULL,
    ended_at_ns       INTEGER,
    status            TEXT NOT NULL CHECK (status IN ('running', 'complete', 'incomplete', 'aborted')),
    status_reason     TEXT,
    hallmark_version  TEXT NOT NULL,
    sample_hz         REAL NOT NULL CHECK (sample_hz > 0)
);
CREATE INDEX runs_by_start ON runs (started_at_ns);

CREATE TABLE probes (
    node_key              INTEGER PRIMARY KEY,
    run_id                TEXT NOT NULL REFERENCES runs (run_id),
    node_id               TEXT NOT NULL,
    hall                  TEXT NOT NULL,
    row                   TEXT NOT NULL,
    rack                  TEXT NOT NULL,
    backend               TEXT NOT NULL,
    hallmark_version      TEXT NOT NULL,
    remote                TEXT,
    registered_at_ns      INTEGER NOT NULL,
    clock_offset_ns       INTEGER,
    clock_uncertainty_ns  INTEGER,
    clock_rtt_ns          INTEGER,
    clock_measured_at_ns  INTEGER,
    lost_at_ns            INTEGER,
    lost_reason           TEXT,
    UNIQUE (run_id, node_id)
);
CREATE INDEX probes_by_rack ON probes (run_id, hall, row, rack);

CREATE TABLE devices (
    run_id                TEXT NOT NULL,
    node_id               TEXT NOT NULL,
    device                INTEGER NOT NULL,
    kind                  TEXT NOT NULL,
    model                 TEXT NOT NULL,
    uuid                  TEXT NOT NULL,
    serial                TEXT,
    memory_bytes          INTEGER,
    power_limit_w         REAL,
    idle_power_w          REAL,
    slowdown_temp_c       REAL,
    shutdown_temp_c       REAL,
    max_operating_temp_c  REAL,
    PRIMARY KEY (run_id, node_id, device),
    FOREIGN KEY (run_id, node_id) REFERENCES probes (run_id, node_id)
) WITHOUT ROWID;

CREATE TABLE phases (
    run_id              TEXT NOT NULL REFERENCES runs (run_id),
    phase_id            INTEGER NOT NULL,
    name                TEXT NOT NULL,
    workload            TEXT NOT NULL,
    pattern_json        TEXT NOT NULL,
    scheduled_start_ns  INTEGER NOT NULL,
    duration_ms         INTEGER NOT NULL CHECK (duration_ms >= 0),
    PRIMARY KEY (run_id, phase_id)
) WITHOUT ROWID;

CREATE TABLE phase_starts (
    run_id           TEXT NOT NULL,
    phase_id         INTEGER NOT NULL,
    node_id          TEXT NOT NULL,
    actual_start_ns  INTEGER NOT NULL,
    PRIMARY KEY (run_id, phase_id, node_id),
    FOREIGN KEY (run_id, phase_id) REFERENCES phases (run_id, phase_id),
    FOREIGN KEY (run_id, node_id) REFERENCES probes (run_id, node_id)
) WITHOUT ROWID;

CREATE TABLE telemetry_batches (
    run_id                TEXT NOT NULL,
    node_id               TEXT NOT NULL,
    seq                   INTEGER NOT NULL,
    received_at_ns        INTEGER NOT NULL,
    from_ns               INTEGER,
    to_ns                 INTEGER,
    samples               INTEGER NOT NULL,
    first_sample_row      INTEGER NOT NULL,
    node_power            INTEGER NOT NULL,
    first_node_power_row  INTEGER NOT NULL,
    PRIMARY KEY (run_id, node_id, seq),
    FOREIGN KEY (run_id, node_id) REFERENCES probes (run_id, node_id)
) WITHOUT ROWID;
CREATE INDEX telemetry_batches_by_time ON telemetry_batches (run_id, from_ns);

CREATE TABLE sample_rows (
    sample_row        INTEGER PRIMARY KEY,
    node_key          INTEGER NOT NULL,
    device            INTEGER NOT NULL,
    t_ns              INTEGER NOT NULL,
    power_w           REAL,
    energy_j          REAL,
    gpu_temp_c        REAL,
    mem_temp_c        REAL,
    sm_clock_mhz      INTEGER,
    util_pct          REAL,
    throttle_reasons  INTEGER NOT NULL
);

CREATE VIEW samples AS
    SELECT b.run_id, b.node_id, s.device, s.t_ns, s.power_w, s.energy_j, s.gpu_temp_c, s.mem_temp_c,
           s.sm_clock_mhz, s.util_pct, s.throttle_reasons
    FROM telemetry_batches AS b
    JOIN sample_rows AS s
      ON s.sample_row >= b.first_sample_row AND s.sample_row < b.first_sample_row + b.samples;

CREATE TABLE node_power_rows (
    node_power_row  INTEGER PRIMARY KEY,
    node_key        INTEGER NOT NULL,
    t_ns            INTEGER NOT NULL,
    power_w         REAL
);

CREATE VIEW node_power AS
    SELECT b.run_id, b.node_id, n.t_ns, n.power_w
    FROM telemetry_batches AS b
    JOIN node_power_rows AS n
      ON n.node_power_row >= b.first_node_power_row
     AND n.node_power_row < b.first_node_power_row + b.node_power;

CREATE TABLE gaps (
    gap_id   INTEGER PRIMARY KEY,
    run_id   TEXT NOT NULL,
    node_id  TEXT NOT NULL,
    from_ns  INTEGER NOT NULL,
    to_ns    INTEGER NOT NULL,
    reason   TEXT NOT NULL,
    FOREIGN KEY (run_id, node_id) REFERENCES probes (run_id, node_id)
);
CREATE INDEX gaps_by_node ON gaps (run_id, node_id, from_ns);

CREATE TABLE phase_reports (
    run_id         TEXT NOT NULL,
    phase_id       INTEGER NOT NULL,
    node_id        TEXT NOT NULL,
    ended_at_ns    INTEGER NOT NULL,
    stopped_early  TEXT,
    PRIMARY KEY (run_id, phase_id, node_id),
    FOREIGN KEY (run_id, phase_id) REFERENCES phases (run_id, phase_id),
    FOREIGN KEY (run_id, node_id) REFERENCES probes (run_id, node_id)
) WITHOUT ROWID;

CREATE TABLE phase_results (
    run_id          TEXT NOT NULL,
    phase_id        INTEGER NOT NULL,
    node_id         TEXT NOT NULL,
    device          INTEGER NOT NULL,
    gflops          REAL,
    wrong_elements  INTEGER NOT NULL,
    PRIMARY KEY (run_id, phase_id, node_id, device),
    FOREIGN KEY (run_id, phase_id, node_id) REFERENCES phase_reports (run_id, phase_id, node_id)
) WITHOUT ROWID;

CREATE TABLE phase_histograms (
    run_id      TEXT NOT NULL,
    phase_id    INTEGER NOT NULL,
    node_id     TEXT NOT NULL,
    name        TEXT NOT NULL,
    v2_deflate  BLOB NOT NULL,
    PRIMARY KEY (run_id, phase_id, node_id, name),
    FOREIGN KEY (run_id, phase_id, node_id) REFERENCES phase_reports (run_id, phase_id, node_id)
) WITHOUT ROWID;

CREATE TABLE events (
    event_id  INTEGER PRIMARY KEY,
    run_id    TEXT NOT NULL REFERENCES runs (run_id),
    t_ns      INTEGER NOT NULL,
    node_id   TEXT,
    kind      TEXT NOT NULL,
    message   TEXT NOT NULL
);
CREATE INDEX events_by_time ON events (run_id, t_ns);
"#;

/// Version 2: certifications of runs against specs, and their verdicts (`crate::certify`).
const V2: &str = r#"
CREATE TABLE certifications (
    certification_id  INTEGER PRIMARY KEY,
    run_id            TEXT NOT NULL REFERENCES runs (run_id),
    spec_name         TEXT NOT NULL,
    spec_toml         TEXT NOT NULL,
    spec_sha256       TEXT NOT NULL,
    certified_at_ns   INTEGER NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('PASS', 'WARN', 'FAIL', 'INCOMPLETE')),
    hallmark_version  TEXT NOT NULL,
    UNIQUE (run_id, spec_name)
);

CREATE TABLE verdicts (
    certification_id  INTEGER NOT NULL REFERENCES certifications (certification_id) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,
    criterion         TEXT NOT NULL,
    title             TEXT NOT NULL,
    scope             TEXT NOT NULL CHECK (scope IN ('device', 'node', 'rack', 'row', 'hall')),
    subject           TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('PASS', 'WARN', 'FAIL', 'INCOMPLETE')),
    measured          REAL,
    limit_value       REAL,
    comparison        TEXT NOT NULL CHECK (comparison IN ('>=', '<=')),
    unit              TEXT NOT NULL,
    from_ns           INTEGER,
    to_ns             INTEGER,
    subjects_json     TEXT NOT NULL,
    detail            TEXT NOT NULL,
    PRIMARY KEY (certification_id, seq)
) WITHOUT ROWID;
"#;

/// Version 3: fabric phases — their members, latency per directed node pair (HDR histogram blob and
/// percentile columns), collective results per rank, and faults (`crate::fabric_write`). The v1 table
/// `phase_histograms` is dropped by the upgrade when it is empty (see [`drop_empty_legacy`]).
const V3: &str = r#"
CREATE TABLE fabric_members (
    run_id    TEXT NOT NULL,
    phase_id  INTEGER NOT NULL,
    rank      INTEGER NOT NULL CHECK (rank >= 0),
    node_id   TEXT NOT NULL,
    addr      TEXT NOT NULL,
    PRIMARY KEY (run_id, phase_id, rank),
    UNIQUE (run_id, phase_id, node_id),
    FOREIGN KEY (run_id, phase_id) REFERENCES phases (run_id, phase_id),
    FOREIGN KEY (run_id, node_id) REFERENCES probes (run_id, node_id)
) WITHOUT ROWID;

CREATE TABLE fabric_latency (
    run_id       TEXT NOT NULL,
    phase_id     INTEGER NOT NULL,
    src          TEXT NOT NULL,
    dst          TEXT NOT NULL,
    sent         INTEGER NOT NULL CHECK (sent >= 0),
    lost         INTEGER NOT NULL CHECK (lost >= 0 AND lost <= sent),
    rtt_count    INTEGER NOT NULL CHECK (rtt_count >= 0),
    rtt_p50_ns   INTEGER,
    rtt_p99_ns   INTEGER,
    rtt_p999_ns  INTEGER,
    rtt_max_ns   INTEGER,
    rtt_ns_hist  BLOB NOT NULL,
    PRIMARY KEY (run_id, phase_id, src, dst),
    FOREIGN KEY (run_id, phase_id, src) REFERENCES phase_reports (run_id, phase_id, node_id)
) WITHOUT ROWID;

CREATE TABLE fabric_collectives (
    run_id          TEXT NOT NULL,
    phase_id        INTEGER NOT NULL,
    node_id         TEXT NOT NULL,
    op              TEXT NOT NULL,
    size_bytes      INTEGER NOT NULL CHECK (size_bytes >= 0),
    algorithm       TEXT NOT NULL,
    iterations      INTEGER NOT NULL CHECK (iterations >= 0),
    world           INTEGER NOT NULL CHECK (world >= 0),
    mean_ns         INTEGER NOT NULL CHECK (mean_ns >= 0),
    wrong_elements  INTEGER NOT NULL CHECK (wrong_elements >= 0),
    PRIMARY KEY (run_id, phase_id, node_id, op, size_bytes),
    FOREIGN KEY (run_id, phase_id, node_id) REFERENCES phase_reports (run_id, phase_id, node_id)
) WITHOUT ROWID;

CREATE TABLE fabric_faults (
    fault_id  INTEGER PRIMARY KEY,
    run_id    TEXT NOT NULL,
    phase_id  INTEGER NOT NULL,
    node_id   TEXT NOT NULL,
    peer      TEXT,
    message   TEXT NOT NULL,
    FOREIGN KEY (run_id, phase_id, node_id) REFERENCES phase_reports (run_id, phase_id, node_id)
);
CREATE INDEX fabric_faults_by_node ON fabric_faults (run_id, phase_id, node_id);
"#;

const V4: &str = r#"
CREATE TABLE run_coordinators (
    run_id        TEXT PRIMARY KEY NOT NULL REFERENCES runs (run_id),
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL CHECK (pid > 0),
    started_ns    INTEGER NOT NULL,
    heartbeat_ns  INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// Version 5: columnar telemetry. Each stored batch carries its samples and node-power readings as
/// two blobs (`crate::columnar`) in its row of `telemetry_batches`; the row tables `sample_rows` and
/// `node_power_rows` and their views go. The batch table gets a row id (the order batches were
/// stored in) and a unique index on `(run_id, node_id, seq)` (replays). The new table is created as
/// `telemetry_batches_v5`, filled from the old rows, then renamed by [`V5_FINISH`].
const V5: &str = r#"
CREATE TABLE telemetry_batches_v5 (
    batch_row        INTEGER PRIMARY KEY,
    run_id           TEXT NOT NULL,
    node_id          TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    received_at_ns   INTEGER NOT NULL,
    from_ns          INTEGER,
    to_ns            INTEGER,
    samples          INTEGER NOT NULL CHECK (samples >= 0),
    node_power       INTEGER NOT NULL CHECK (node_power >= 0),
    node_power_blob  BLOB NOT NULL,
    samples_blob     BLOB NOT NULL,
    FOREIGN KEY (run_id, node_id) REFERENCES probes (run_id, node_id)
);
"#;

/// The end of the migration to version 5, after the conversion of the rows.
pub(crate) const V5_FINISH: &str = r#"
DROP VIEW samples;
DROP VIEW node_power;
DROP TABLE sample_rows;
DROP TABLE node_power_rows;
DROP TABLE telemetry_batches;
ALTER TABLE telemetry_batches_v5 RENAME TO telemetry_batches;
CREATE UNIQUE INDEX telemetry_batches_by_seq ON telemetry_batches (run_id, node_id, seq);
CREATE INDEX telemetry_batches_by_time ON telemetry_batches (run_id, from_ns);
"#;

/// Version 6: a gap keeps how many sampling instants the probe missed in it (`NULL`: not counted,
/// as for batches that never arrived, and for every gap stored before).
const V6: &str = r#"
ALTER TABLE gaps ADD COLUMN instants INTEGER CHECK (instants >= 0);
"#;

/// Version 7: facility readings. One row of `facility_batches` per stored batch of a facility
/// collector (replays are recognised by its key `(run_id, collector, seq)`), one row of
/// `facility_readings` per reading, keyed by its batch and its position in it. A reading nobody
/// could take has `value` NULL (absent is never 0). `kind`, `scope` and `quantity` hold the
/// protocol's names without a CHECK: a newer hallmark may write names this one does not know,
/// which its reader refuses by name rather than this schema refusing the newer writer.
const V7: &str = r#"
CREATE TABLE facility_batches (
    run_id          TEXT NOT NULL REFERENCES runs (run_id),
    collector       TEXT NOT NULL,
    seq             INTEGER NOT NULL CHECK (seq >= 0),
    received_at_ns  INTEGER NOT NULL,
    readings        INTEGER NOT NULL CHECK (readings >= 0),
    PRIMARY KEY (run_id, collector, seq)
) WITHOUT ROWID;

CREATE TABLE facility_readings (
    run_id          TEXT NOT NULL,
    collector       TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    idx             INTEGER NOT NULL CHECK (idx >= 0),
    source          TEXT NOT NULL,
    kind            TEXT NOT NULL,
    scope           TEXT NOT NULL,
    subject         TEXT NOT NULL,
    point           TEXT NOT NULL,
    quantity        TEXT NOT NULL,
    uri             TEXT NOT NULL,
    t_ns            INTEGER NOT NULL,
    value           REAL,
    device_time_ns  INTEGER,
    latency_us      INTEGER CHECK (latency_us >= 0),
    note            TEXT,
    PRIMARY KEY (run_id, collector, seq, idx),
    FOREIGN KEY (run_id, collector, seq) REFERENCES facility_batches (run_id, collector, seq)
) WITHOUT ROWID;
CREATE INDEX facility_readings_by_time ON facility_readings (run_id, t_ns, collector, seq, idx);
"#;

/// Version 8: per-subject metrics of a run, computed once and stored so that comparisons and
/// histories read them instead of recomputing them. One row of `metric_sets` per run that has its
/// metrics stored; its values in `metric_values`, keyed by the set, the metric and the subject, the
/// last two as integer keys into the dictionaries `metric_names` (a metric's name, its base and
/// unit) and `metric_subjects` (a subject's kind and name), which every run shares. A value nobody
/// measured is NULL (absent is never 0). `kind` has no CHECK: its names are the computing code's.
/// `metric_id` and `subject_id` carry no foreign key: the store takes them from the dictionaries
/// in the same transaction and never deletes an entry, and checking a hall's 200 000 values'
/// keys against them made its insert on PostgreSQL three times slower (about 4 s instead of 1.2).
/// Also `probe_software`: the versions of the software under each probe's load (driver,
/// libraries, kernel) as its Hello listed them (`crate::software`), for the context diff.
const V8: &str = r#"
CREATE TABLE metric_sets (
    set_id            INTEGER PRIMARY KEY,
    run_id            TEXT NOT NULL UNIQUE REFERENCES runs (run_id),
    computed_at_ns    INTEGER NOT NULL,
    hallmark_version  TEXT NOT NULL,
    metrics           INTEGER NOT NULL CHECK (metrics >= 0)
);

CREATE TABLE metric_subjects (
    subject_id  INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind <> ''),
    subject     TEXT NOT NULL,
    UNIQUE (kind, subject)
);
CREATE INDEX metric_subjects_by_name ON metric_subjects (subject);

CREATE TABLE metric_names (
    metric_id  INTEGER PRIMARY KEY,
    metric     TEXT NOT NULL CHECK (metric <> ''),
    base       TEXT NOT NULL,
    unit       TEXT NOT NULL,
    UNIQUE (metric, unit)
);
CREATE INDEX metric_names_by_base ON metric_names (base);

CREATE TABLE metric_values (
    set_id      INTEGER NOT NULL REFERENCES metric_sets (set_id),
    metric_id   INTEGER NOT NULL,
    subject_id  INTEGER NOT NULL,
    value       REAL,
    PRIMARY KEY (set_id, metric_id, subject_id)
) WITHOUT ROWID;

CREATE TABLE probe_software (
    run_id   TEXT NOT NULL,
    node_id  TEXT NOT NULL,
    name     TEXT NOT NULL CHECK (name <> ''),
    version  TEXT NOT NULL,
    PRIMARY KEY (run_id, node_id, name),
    FOREIGN KEY (run_id, node_id) REFERENCES probes (run_id, node_id)
) WITHOUT ROWID;
"#;
