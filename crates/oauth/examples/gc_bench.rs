//! Garbage collection under load, on the embedded SQLite store (one writer
//! connection, so a long DELETE would stall every login behind it).
//!
//! Seeds ROWS expired sessions (each with a refresh token) and ROWS/4 expired
//! consent challenges in one bulk transaction, then measures the latency of
//! session issuance (a session plus its first refresh token in one commit,
//! the writes a login makes) three ways: with no GC running, while
//! `collect_garbage` runs in batches of BATCH rows, and while it runs as one
//! statement per table (batch = ROWS, what an unbatched purge does). Prints a
//! markdown table for bench/RESULTS.md.
//!
//!     cargo run --release -p tessera-oauth --example gc_bench
//!     ROWS=200000 BATCH=1000 cargo run --release -p tessera-oauth --example gc_bench

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_core::time::now_ms;
use tessera_core::{Client, Realm, Session, User};
use tessera_oauth::gc::{collect_garbage, GcConfig};
use tessera_store::conformance::{client, realm, refresh, session, user};
use tessera_store::{ClientStore, RealmStore, SessionStore, UserStore};
use tessera_store_sqlite::SqliteStore;

type Error = Box<dyn std::error::Error>;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Fixture {
    realm: Realm,
    client: Client,
    user: User,
}

/// Expired rows, written straight into the file in one transaction.
async fn seed(path: &std::path::Path, f: &Fixture, rows: u64, round: u64) -> Result<(), Error> {
    let mut conn = SqliteConnectOptions::new().filename(path).connect().await?;
    let mut tx = conn.begin().await?;
    let past = now_ms() - 60_000;
    for i in 0..rows {
        let id = format!("old-{round}-{i}");
        sqlx::query("INSERT INTO sessions (id, realm_id, user_id, client_id, device_id, scope, auth_time, created_at, last_used_at, expires_at, context_name) VALUES ($1, $2, $3, $4, 'd', '', $5, $5, $5, $6, 'ctx')")
            .bind(&id).bind(&f.realm.id).bind(&f.user.id).bind(&f.client.id)
            .bind(past - 1000).bind(past)
            .execute(&mut *tx).await?;
        sqlx::query("INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $3)")
            .bind(format!("{round:08x}{i:056x}")).bind(&id).bind(past)
            .execute(&mut *tx).await?;
        if i % 4 == 0 {
            sqlx::query("INSERT INTO consent_challenges (hash, realm_id, did, context_name, created_at, expires_at) VALUES ($1, $2, 'did:ethr:0x0', 'ctx', $3, $3)")
                .bind(format!("c{round:08x}{i:055x}")).bind(&f.realm.id).bind(past)
                .execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Issues sessions back to back until `stop`, returning each one's latency.
async fn issue_until(
    store: Arc<SqliteStore>,
    f: Arc<Fixture>,
    stop: Arc<AtomicBool>,
) -> Vec<Duration> {
    let mut out = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let s: Session = session(&f.realm, &f.user, &f.client, now_ms());
        let t = refresh(&s, &format!("live-{}-{i}", s.id), now_ms());
        let started = Instant::now();
        store.create_session(&s, &t).await.expect("issue");
        out.push(started.elapsed());
        i += 1;
    }
    out
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

fn row(label: &str, gc: Option<(Duration, u64)>, mut lat: Vec<Duration>) -> String {
    lat.sort();
    let (gc_time, removed) = gc
        .map(|(d, n)| (format!("{:.2} s", d.as_secs_f64()), n.to_string()))
        .unwrap_or(("-".into(), "-".into()));
    format!(
        "| {label} | {removed} | {gc_time} | {} | {:.1} | {:.1} | {:.1} |",
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let rows = env_num("ROWS", 100_000);
    let batch = env_num("BATCH", GcConfig::default().batch as u64) as i64;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let store = Arc::new(SqliteStore::open(&path).await?);
    let r = realm("bench");
    let f = Arc::new(Fixture {
        client: client(&r, "app"),
        user: user(&r, "alice"),
        realm: r,
    });
    store.create_realm(&f.realm).await?;
    store.create_client(&f.client).await?;
    store.create_user(&f.user).await?;

    let mut lines = vec![
        format!("Expired rows: {rows} sessions + {rows} refresh tokens + {} challenges; SQLite (WAL, synchronous=FULL, one writer).", rows.div_ceil(4)),
        String::new(),
        "| while | rows removed | GC time | sessions issued | p50 ms | p99 ms | max ms |".into(),
        "|---|---|---|---|---|---|---|".into(),
    ];

    // Baseline: 3 s of issuance with nothing else writing.
    let stop = Arc::new(AtomicBool::new(false));
    let issuing = tokio::spawn(issue_until(store.clone(), f.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    lines.push(row("no GC (3 s)", None, issuing.await?));

    for (round, (label, size)) in [
        (format!("GC in batches of {batch}"), batch),
        ("GC as one statement per table".to_string(), rows as i64 * 2),
    ]
    .into_iter()
    .enumerate()
    {
        seed(&path, &f, rows, round as u64).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let issuing = tokio::spawn(issue_until(store.clone(), f.clone(), stop.clone()));
        let started = Instant::now();
        let done = collect_garbage(
            store.as_ref(),
            now_ms(),
            GcConfig {
                batch: size,
                ..GcConfig::default()
            },
        )
        .await?;
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        lines.push(row(&label, Some((took, done.total())), issuing.await?));
        eprintln!("{label}: {done:?} in {took:?}");
    }
    println!("{}", lines.join("\n"));
    Ok(())
}
