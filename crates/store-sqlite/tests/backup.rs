//! Backup and restore of the embedded database: a backup taken while a
//! writer commits is intact and holds every row committed before it began;
//! a backup never overwrites a file; a restore refuses files that are not a
//! Tessera database this release can open, an existing database without
//! `replace`, and a database that is open elsewhere; and a database with a
//! migration newer than this binary is refused at open.

use sqlx::{ConnectOptions, Connection};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tessera_store::conformance::{client, realm};
use tessera_store::{ClientStore, RealmStore};
use tessera_store_sqlite::backup::{self, BackupError};
use tessera_store_sqlite::SqliteStore;

async fn raw(path: &Path) -> sqlx::SqliteConnection {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .expect("raw connection")
}

/// A database with one realm and `clients` clients, closed again.
async fn seeded(dir: &Path, clients: usize) -> std::path::PathBuf {
    let path = dir.join("tessera.db");
    let store = SqliteStore::open(&path).await.expect("open");
    let r = realm("demo");
    store.create_realm(&r).await.expect("realm");
    for i in 0..clients {
        store
            .create_client(&client(&r, &format!("c{i}")))
            .await
            .expect("client");
    }
    path
}

#[tokio::test]
async fn backup_while_a_writer_commits_holds_everything_committed_before_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("tessera.db");
    let store = Arc::new(SqliteStore::open(&path).await.expect("open"));
    let r = realm("demo");
    store.create_realm(&r).await.expect("realm");

    // A writer that commits one client after another until told to stop.
    let committed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, r, committed, stop) =
            (store.clone(), r.clone(), committed.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                store
                    .create_client(&client(&r, &format!("c{i}")))
                    .await
                    .expect("client");
                i += 1;
                committed.store(i, Ordering::SeqCst);
            }
        })
    };
    while committed.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let before = committed.load(Ordering::SeqCst);
    let dest = dir.path().join("backup.db");
    let snapshot = backup::backup(&path, &dest).await.expect("backup");
    let after = committed.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.await.expect("writer");
    assert!(after > before, "the writer went on during the backup");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest)
            .expect("backup")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the backup is private");
    }
    assert_eq!(backup::check(&dest).await.expect("check"), snapshot);
    assert!(snapshot.schema_version >= 7);

    // Opened as a database of its own, it holds every client committed
    // before the backup began, and no more than were committed at its end.
    let restored = dir.path().join("restored").join("tessera.db");
    std::fs::create_dir(restored.parent().expect("dir")).expect("mkdir");
    backup::restore(&dest, &restored, false)
        .await
        .expect("restore");
    let copy = SqliteStore::open(&restored).await.expect("open restored");
    let r2 = copy
        .realm_by_name("demo")
        .await
        .expect("read")
        .expect("realm");
    let n = copy.list_clients(&r2.id).await.expect("clients").len();
    assert!((before..=after).contains(&n), "{before} <= {n} <= {after}");
    let mut conn = raw(&restored).await;
    let ok: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .expect("integrity");
    assert_eq!(ok, "ok");
}

#[tokio::test]
async fn backup_of_a_stopped_database_and_never_over_a_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = seeded(dir.path(), 3).await;
    let dest = dir.path().join("exists.db");
    std::fs::write(&dest, b"keep me").expect("write");
    let err = backup::backup(&path, &dest).await.expect_err("must refuse");
    assert!(matches!(err, BackupError::DestinationExists(_)), "{err}");
    assert_eq!(std::fs::read(&dest).expect("read"), b"keep me");

    let fresh = dir.path().join("fresh.db");
    backup::backup(&path, &fresh).await.expect("backup");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let missing = dir.path().join("nothing-here.db");
    let err = backup::backup(&missing, &dir.path().join("x.db"))
        .await
        .expect_err("no source");
    assert!(matches!(err, BackupError::NoDatabase(_)), "{err}");
    assert!(!dir.path().join("x.db").exists());
}

#[tokio::test]
async fn restore_refuses_what_is_not_a_tessera_database_of_a_known_schema() {
    let dir = tempfile::tempdir().expect("tmp");
    let target = dir.path().join("data").join("tessera.db");
    std::fs::create_dir(target.parent().expect("dir")).expect("mkdir");

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"hello, not a database").expect("write");
    let err = backup::restore(&text, &target, false)
        .await
        .expect_err("text");
    assert!(matches!(err, BackupError::NotSqlite(_)), "{err}");

    let other = dir.path().join("other.db");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&other)
        .create_if_missing(true)
        .connect()
        .await
        .expect("other db");
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&mut conn)
        .await
        .expect("table");
    conn.close().await.expect("close");
    let err = backup::restore(&other, &target, false)
        .await
        .expect_err("other");
    assert!(matches!(err, BackupError::NotTessera(_)), "{err}");

    // A backup from a newer release: a migration this binary lacks.
    let source = seeded(&mkdir(dir.path().join("src")), 1).await;
    let newer = dir.path().join("newer.db");
    backup::backup(&source, &newer).await.expect("backup");
    let mut conn = raw(&newer).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .expect("fake migration");
    conn.close().await.expect("close");
    let err = backup::restore(&newer, &target, false)
        .await
        .expect_err("newer");
    assert!(
        matches!(err, BackupError::NewerSchema { found: 9999, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("database schema version 9999 is newer than this tessera knows ("),
        "{err}"
    );
    assert!(!target.exists(), "nothing was restored");
    // A backup copies it all the same: only a restore must open it.
    let copy = backup::backup(&newer, &dir.path().join("newer-copy.db"))
        .await
        .expect("backup of a newer database");
    assert_eq!(copy.schema_version, 9999);
    let leftovers = std::fs::read_dir(target.parent().expect("dir"))
        .expect("ls")
        .count();
    assert_eq!(leftovers, 0);
}

#[tokio::test]
async fn restore_replaces_only_with_replace_and_only_when_unused() {
    let dir = tempfile::tempdir().expect("tmp");
    let source = seeded(&mkdir(dir.path().join("src")), 5).await;
    let file = dir.path().join("backup.db");
    backup::backup(&source, &file).await.expect("backup");

    // The target holds another database, open as a running server would.
    let target = seeded(&mkdir(dir.path().join("data")), 1).await;
    let err = backup::restore(&file, &target, false)
        .await
        .expect_err("exists");
    assert!(matches!(err, BackupError::TargetExists(_)), "{err}");
    let mut server = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&target)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .connect()
        .await
        .expect("server connection");
    sqlx::query("SELECT count(*) FROM realms")
        .execute(&mut server)
        .await
        .expect("read");
    let err = backup::restore(&file, &target, true)
        .await
        .expect_err("in use");
    assert!(matches!(err, BackupError::InUse(_)), "{err}");
    server.close().await.expect("close");

    // Stopped: replaced, with a stale log beside it removed first.
    let mut wal = target.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::write(&wal, b"stale").expect("stale wal");
    backup::restore(&file, &target, true)
        .await
        .expect("restore");
    assert!(!Path::new(&wal).exists(), "stale -wal removed");
    let store = SqliteStore::open(&target).await.expect("open");
    let r = store
        .realm_by_name("demo")
        .await
        .expect("read")
        .expect("realm");
    assert_eq!(store.list_clients(&r.id).await.expect("clients").len(), 5);
}

#[tokio::test]
async fn a_newer_schema_is_refused_at_open() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = seeded(dir.path(), 0).await;
    let mut conn = raw(&path).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', 1, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .expect("fake migration");
    conn.close().await.expect("close");
    let err = match SqliteStore::open(&path).await {
        Ok(_) => panic!("a newer schema must be refused"),
        Err(e) => e.to_string(),
    };
    let known = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations")
        .count();
    assert!(
        err.ends_with(&format!(
            "database schema version 9999 is newer than this tessera knows ({known}); upgrade tessera"
        )),
        "{err}"
    );
}

fn mkdir(path: std::path::PathBuf) -> std::path::PathBuf {
    std::fs::create_dir_all(&path).expect("mkdir");
    path
}
