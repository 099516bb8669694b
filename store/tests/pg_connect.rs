//! Connecting to PostgreSQL for real: unreachable servers, missing databases, wrong credentials,
//! databases of other applications, newer schemas, and migrations serialised between connections.

mod common;

use hallmark_store::db::pg::{self, ConnectError, MetaState, Migration, Timeouts, META_TABLE};
use hallmark_store::db::{Db, DbError, Value};
use hallmark_store::location::{Password, PgTarget};
use hallmark_store::testing::pg::{ClusterOptions, PgServer, Unavailable};
use std::time::Duration;

fn create_t1(db: &mut Db) -> Result<(), DbError> {
    db.execute_batch("CREATE TABLE t1 (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
}
fn create_t2(db: &mut Db) -> Result<(), DbError> {
    db.execute_batch("CREATE TABLE t2 (k INTEGER NOT NULL, v REAL)")
}
const TWO: [Migration; 2] = [create_t1, create_t2];

fn version(db: &mut Db) -> MetaState {
    pg::inspect(db).expect("inspect")
}

#[test]
fn an_unreachable_server_is_named_with_the_fix() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = PgTarget {
        host: "127.0.0.1".into(),
        port,
        user: "u".into(),
        dbname: "d".into(),
        password: Some(Password::new("not-shown")),
        connect_timeout: Duration::from_secs(5),
        application_name: None,
    };
    let started = std::time::Instant::now();
    let err = pg::connect(&target, &Timeouts::default())
        .err()
        .expect("nobody listens there");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("postgres://u@127.0.0.1:{port}/d: cannot reach")),
        "{text}"
    );
    assert!(text.contains("PGHOST and PGPORT"), "{text}");
    assert!(!text.contains("not-shown"), "{text}");
}

#[test]
fn a_missing_database_is_named() {
    let Some(server) = common::server() else {
        return;
    };
    let mut target = server.admin().clone();
    target.dbname = "hallmark_no_such_db".into();
    let err = pg::connect(&target, &Timeouts::default())
        .err()
        .expect("no such database");
    assert!(matches!(err, ConnectError::NoDatabase { .. }), "{err:?}");
    assert!(
        err.to_string().contains("createdb hallmark_no_such_db"),
        "{err}"
    );
}

#[test]
fn a_new_database_is_marked_and_migrated_once() {
    let Some(test_db) = common::database() else {
        return;
    };
    let mut db = pg::open(&test_db.target, &Timeouts::default(), &TWO).expect("open");
    assert_eq!(version(&mut db), MetaState::Hallmark { version: 2 });
    db.execute("INSERT INTO t1 (name) VALUES (?1)", &[Value::from("a")])
        .unwrap();
    drop(db);
    // Opening again runs no migration (a second CREATE TABLE t1 would fail).
    let mut db = pg::open(&test_db.target, &Timeouts::default(), &TWO).expect("reopen");
    assert_eq!(version(&mut db), MetaState::Hallmark { version: 2 });
    let app = db
        .query_opt(
            &format!("SELECT value FROM {META_TABLE} WHERE key = 'application_id'"),
            &[],
            |r| r.text(0),
        )
        .unwrap();
    assert_eq!(app.as_deref(), Some("HLMK"));
    // An older binary's store is migrated up: version 1 → 2 runs only the second step.
    let test_db2 = common::database().unwrap();
    drop(pg::open(&test_db2.target, &Timeouts::default(), &TWO[..1]).expect("open at 1"));
    let mut db = pg::open(&test_db2.target, &Timeouts::default(), &TWO).expect("migrate to 2");
    assert_eq!(version(&mut db), MetaState::Hallmark { version: 2 });
}

#[test]
fn another_applications_database_is_refused_untouched() {
    let Some(test_db) = common::database() else {
        return;
    };
    let mut db = test_db.connect();
    db.execute_batch("CREATE TABLE invoices (id INTEGER); CREATE TABLE customers (id INTEGER)")
        .unwrap();
    let err = pg::open(&test_db.target, &Timeouts::default(), &TWO)
        .err()
        .expect("foreign");
    assert!(matches!(err, ConnectError::Foreign { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with(&test_db.target.to_string()), "{text}");
    assert!(
        text.contains("customers, invoices") && text.contains("new, empty database"),
        "{text}"
    );
    let tables = db
        .query_map(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
            &[],
            |r| r.i64(0),
        )
        .unwrap();
    assert_eq!(tables, [2], "nothing was created");

    let other = common::database().unwrap();
    let mut db = other.connect();
    db.execute_batch(&format!(
        "CREATE TABLE {META_TABLE} (key TEXT PRIMARY KEY, value TEXT)"
    ))
    .unwrap();
    db.execute(
        &format!("INSERT INTO {META_TABLE} VALUES ('application_id', 'ABCD')"),
        &[],
    )
    .unwrap();
    let err = pg::open(&other.target, &Timeouts::default(), &TWO)
        .err()
        .expect("other app");
    assert!(
        matches!(err, ConnectError::ForeignApplication { ref found, .. } if found == "ABCD"),
        "{err:?}"
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let Some(test_db) = common::database() else {
        return;
    };
    drop(pg::open(&test_db.target, &Timeouts::default(), &TWO).expect("open at 2"));
    let err = pg::open(&test_db.target, &Timeouts::default(), &TWO[..1])
        .err()
        .expect("newer");
    assert!(
        matches!(
            err,
            ConnectError::SchemaNewer {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("newer than this hallmark supports (1)"),
        "{err}"
    );
}

#[test]
fn concurrent_opens_migrate_once() {
    let Some(test_db) = common::database() else {
        return;
    };
    let target = test_db.target.clone();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let target = target.clone();
            std::thread::spawn(move || pg::open(&target, &Timeouts::default(), &TWO).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join()
            .expect("thread")
            .expect("every concurrent open succeeds");
    }
    let mut db = test_db.connect();
    assert_eq!(version(&mut db), MetaState::Hallmark { version: 2 });
}

#[test]
fn a_held_migration_lock_is_waited_for_boundedly() {
    let Some(test_db) = common::database() else {
        return;
    };
    let mut holder = test_db.connect();
    let timeouts = Timeouts {
        migration_lock: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let target = test_db.target.clone();
    let result = holder.transaction(|h| {
        h.execute(
            "SELECT pg_advisory_xact_lock(?1)",
            &[Value::I64(pg::MIGRATION_LOCK)],
        )?;
        let started = std::time::Instant::now();
        let err = pg::open(&target, &timeouts, &TWO)
            .err()
            .expect("the lock is held");
        assert!(started.elapsed() < Duration::from_secs(5));
        Ok::<_, DbError>(err)
    });
    let err = result.unwrap();
    assert!(
        matches!(err, ConnectError::MigrationLocked { .. }),
        "{err:?}"
    );
    // Released with the holder's transaction: now the open goes through.
    pg::open(&test_db.target, &timeouts, &TWO).expect("open after the lock is released");
}

#[test]
fn wrong_or_missing_passwords_are_refused() {
    let options = ClusterOptions {
        superuser_password: Some("super-secret".into()),
        ..ClusterOptions::default()
    };
    let server = match PgServer::start(&options) {
        Ok(s) => s,
        Err(Unavailable::Missing(why)) => return common::prereq::missing(&why),
        Err(Unavailable::Broken(why)) => panic!("a password-protected test server: {why}"),
    };
    let test_db = server
        .database()
        .expect("database as the superuser, with its password");
    let mut admin = test_db.connect();
    admin
        .execute_batch("CREATE ROLE alice LOGIN PASSWORD 'right-one'")
        .unwrap();
    let mut alice = test_db.target.clone();
    alice.user = "alice".into();

    alice.password = Some(Password::new("wrong-one"));
    let err = pg::connect(&alice, &Timeouts::default())
        .err()
        .expect("wrong password");
    assert!(
        matches!(err, ConnectError::Credentials { ref user, .. } if user == "alice"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("PGPASSWORD") && !text.contains("wrong-one"),
        "{text}"
    );

    alice.password = None;
    let err = pg::connect(&alice, &Timeouts::default())
        .err()
        .expect("no password");
    assert!(matches!(err, ConnectError::NoPassword { .. }), "{err:?}");

    alice.password = Some(Password::new("right-one"));
    let db = pg::connect(&alice, &Timeouts::default()).expect("right password");
    let who = db
        .query_opt("SELECT current_user::text", &[], |r| r.text(0))
        .unwrap();
    assert_eq!(who.as_deref(), Some("alice"));
}
