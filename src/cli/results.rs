//! `--results`: where runs are stored, for every command that reads or writes the run store — a
//! directory (a SQLite store, `DIR/hallmark.sqlite`) or a PostgreSQL database
//! (`postgres://USER@HOST[:PORT]/DB`, see `hallmark_store::location`). The value is read by clap
//! ([`Location::parse`]), so a bad URL (a password in it, a bad port, an unsupported `sslmode`) is
//! a usage error before anything runs. A location is shown with its `Display`: the directory, or
//! the URL without any password.

use anyhow::Context;
use clap::Args;
use hallmark_coordinator::record::{Record, RecordError, Recorder, Written};
use hallmark_store::db::pg::ConnectError;
use hallmark_store::location::Location;
use hallmark_store::{Store, StoreError};

/// The help of `--results` (with [`LONG_HELP`] for `--help`).
pub const HELP: &str =
    "Where runs are stored: a directory (SQLite) or a PostgreSQL database; the password comes \
     from PGPASSWORD or the password file, never the URL";

/// The long help of `--results`.
pub const LONG_HELP: &str =
    "Where runs are stored: a directory (a SQLite store, DIR/hallmark.sqlite, created if missing) \
     or an existing PostgreSQL database, postgres://USER@HOST[:PORT]/DB (hallmark's tables are \
     created on first write; PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE and PGCONNECT_TIMEOUT \
     fill what the URL leaves out). The password comes from PGPASSWORD, else from the password file (PGPASSFILE, else \
     ~/.pgpass, mode 0600: HOST:PORT:DB:USER:PASSWORD); a password in the URL is refused, since a \
     command line is visible to every user of the machine.";

/// The value name of `--results`.
pub const VALUE_NAME: &str = "DIR|postgres://USER@HOST[:PORT]/DB";

/// `--results` with the default directory `hallmark-results`.
#[derive(Debug, Clone, Args)]
pub struct ResultsArg {
    #[arg(
        long = "results",
        value_name = VALUE_NAME,
        default_value = "hallmark-results",
        value_parser = LocationParser,
        help = HELP,
        long_help = LONG_HELP
    )]
    pub location: Location,
}

/// Reads a `--results` value with [`Location::parse`]. A refused value is a usage error that shows
/// the value only as the parser's message does (a password in it as `***`), never as typed; a
/// value that is not UTF-8 is a directory, as any path.
#[derive(Debug, Clone, Copy)]
pub struct LocationParser;

impl clap::builder::TypedValueParser for LocationParser {
    type Value = Location;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Location, clap::Error> {
        let Some(text) = value.to_str() else {
            return Ok(Location::Dir(value.into()));
        };
        Location::parse(text).map_err(|e| {
            let name = arg.map_or("--results".to_owned(), |a| {
                a.get_long()
                    .map_or(a.get_id().to_string(), |l| format!("--{l}"))
            });
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {name}: {e}\n"),
            )
            .with_cmd(cmd)
        })
    }
}

/// Runs `f`, which uses a store, off the command's async runtime: a PostgreSQL store's client
/// drives a small runtime of its own, which cannot block (connect, query, or close when dropped)
/// on a thread of another runtime. Every store a command opens inside the runtime is opened, used
/// and dropped inside such a call, or on a thread of its own (the recorder, the liveness thread).
/// Outside a multi-threaded runtime it just runs `f`.
pub fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A value holding a store (a [`Store`], or a recorder that writes into one) that may be dropped on
/// the async runtime — by a task that gives up on it — and is then dropped through [`off_runtime`].
pub struct OffRuntime<T>(Option<T>);

impl<T> OffRuntime<T> {
    pub fn new(value: T) -> OffRuntime<T> {
        OffRuntime(Some(value))
    }

    /// The value, to be moved where it is dropped off the runtime (a thread of its own).
    pub fn into_inner(mut self) -> T {
        self.0.take().expect("taken only once")
    }
}

impl<T> std::ops::Deref for OffRuntime<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("taken only on drop")
    }
}

impl<T> std::ops::DerefMut for OffRuntime<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("taken only on drop")
    }
}

impl<T> Drop for OffRuntime<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            off_runtime(|| drop(value));
        }
    }
}

impl<R: Recorder> Recorder for OffRuntime<R> {
    fn record(&mut self, records: Vec<Record>) -> Result<Written, RecordError> {
        (**self).record(records)
    }
}

/// "in DIR" for a directory, the URL (without password) for a PostgreSQL database: what follows
/// "the run store" in a message.
pub fn describe(location: &Location) -> String {
    match location {
        Location::Dir(dir) => format!("in {}", dir.display()),
        Location::Postgres(target) => format!("in PostgreSQL database {target}"),
    }
}

/// What opening the store at `location` is called in an error; a PostgreSQL store's errors name
/// its URL themselves.
fn opening(location: &Location) -> String {
    match location {
        Location::Dir(dir) => format!("opening the run store in {}", dir.display()),
        Location::Postgres(_) => "opening the PostgreSQL run store".into(),
    }
}

/// Opens the store for writing (creating or upgrading it), the error naming where.
pub fn open(location: &Location) -> anyhow::Result<Store> {
    Store::open_location(location).with_context(|| opening(location))
}

/// Opens the store for writing and closes it again: what a command that starts probes checks
/// first, so that a store it cannot write is refused before any load runs.
pub fn check_writable(location: &Location) -> anyhow::Result<()> {
    off_runtime(|| open(location).map(drop))
}

/// Opens an existing store for reading only, the error naming where.
pub fn open_read_only(location: &Location) -> anyhow::Result<Store> {
    Store::open_location_read_only(location).with_context(|| opening(location))
}

/// Whether `e` says the store's schema is older than this build's (SQLite or PostgreSQL).
pub fn needs_upgrade(e: &anyhow::Error) -> bool {
    e.chain().any(|c| match c.downcast_ref::<StoreError>() {
        Some(StoreError::NeedsUpgrade { .. }) => true,
        Some(StoreError::Connect(c)) => matches!(**c, ConnectError::SchemaOlder { .. }),
        _ => false,
    })
}

/// Opens an existing store for writing: a location holding no store is refused without creating
/// one (it is read first), and a store of an older schema is brought up to date.
pub fn open_existing(location: &Location) -> anyhow::Result<Store> {
    if let Err(e) = open_read_only(location) {
        if !needs_upgrade(&e) {
            return Err(e);
        }
    }
    open(location)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        results: ResultsArg,
    }

    #[test]
    fn a_directory_by_default_and_a_url_when_given() {
        let c = Cmd::try_parse_from(["x"]).unwrap();
        assert_eq!(c.results.location, Location::Dir("hallmark-results".into()));
        let c = Cmd::try_parse_from(["x", "--results", "postgres://u@127.0.0.1:5999/db"]).unwrap();
        let Location::Postgres(t) = &c.results.location else {
            panic!("{:?}", c.results.location)
        };
        assert_eq!(t.to_string(), "postgres://u@127.0.0.1:5999/db");
        assert_eq!(
            describe(&c.results.location),
            "in PostgreSQL database postgres://u@127.0.0.1:5999/db"
        );
    }

    #[test]
    fn a_bad_url_is_a_usage_error_that_never_shows_the_password() {
        let e = Cmd::try_parse_from(["x", "--results", "postgres://u:hunter2@h/db"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        let text = e.to_string();
        assert!(
            text.contains("PGPASSWORD") && text.contains("postgres://u:***@h/db"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let e = Cmd::try_parse_from(["x", "--results", "postgres://u@h:99999/db"]).unwrap_err();
        assert!(e.to_string().contains("port 99999"), "{e}");
        let e = Cmd::try_parse_from(["x", "--results", "postgres://u@h/db?sslmode=require"])
            .unwrap_err();
        assert!(e.to_string().contains("sslmode=require"), "{e}");
    }
}
