//! Group commit. SQLite has one writer at a time, and with
//! `synchronous=FULL` every commit waits for an fsync, so committing each
//! write on its own caps writes at one fsync each. Here one task owns the
//! write connection; callers send it their write as a job and wait. The task
//! takes every job queued while the previous commit was on its way to disk,
//! runs them in one transaction, each in its own savepoint, commits once, and
//! only then answers each caller: nobody hears back before the commit that
//! holds their write is durable.
//!
//! A job that fails is rolled back to its savepoint and answered with its
//! error; the others in the batch go on. Jobs run one after another on one
//! connection, so two rotations of one token in one batch behave exactly as
//! in two transactions: the second finds the first's spend. If the batch
//! fails as a whole (its savepoint or the commit fails: SQLite may roll a
//! whole transaction back on its own after a full disk or an I/O error),
//! every job of the batch hears that error, nothing of it was written, and
//! the connection is closed and replaced: sqlx's idea of how deep in a
//! transaction it is may no longer match SQLite's, and a connection that
//! believes it is still inside one would "commit" later batches by releasing
//! a savepoint. A write whose caller has gone (a dropped request) before it
//! started is skipped, as it was when it waited for a pooled connection.

use futures::future::BoxFuture;
use futures::FutureExt as _;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool};
use sqlx::Connection as _;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tessera_store::StoreError;
use tokio::sync::{mpsc, oneshot};

/// Most jobs in one transaction: bounds how long the first waits.
const MAX_BATCH: usize = 256;

/// Answers a job's caller once the batch's fate is known: `None` if the
/// commit succeeded, else its error.
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// A write, type-erased: runs on the connection, reports whether it
/// succeeded (to release or roll back its savepoint) and how to answer.
type Job =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Answer)> + Send>;

/// Writes sent, and batches and writes committed.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    batches: AtomicU64,
    writes: AtomicU64,
}

#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchStats {
    pub sent: u64,
    pub batches: u64,
    pub writes: u64,
}

pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the task that owns the one connection of `pool` (a pool of
    /// one, so a replacement can be had); it ends when the `Writer` is
    /// dropped and the queued jobs are done.
    pub(crate) fn start(pool: SqlitePool) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        tokio::spawn(run_batches(pool, queue, counters.clone()));
        Self { jobs, counters }
    }

    pub(crate) async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            async move {
                if reply.is_closed() {
                    let skipped: Answer = Box::new(|_| {});
                    return (true, skipped);
                }
                // A panicking write fails alone, like any other failing one.
                let result = AssertUnwindSafe(op(conn))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(StoreError::Unexpected("a write panicked".into())));
                let ok = result.is_ok();
                let answer: Answer = Box::new(move |commit: Option<&StoreError>| {
                    let _ = reply.send(match (result, commit) {
                        (Ok(_), Some(e)) => Err(e.clone()),
                        (result, _) => result,
                    });
                });
                (ok, answer)
            }
            .boxed()
        });
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> BatchStats {
        BatchStats {
            sent: self.counters.sent.load(Ordering::Relaxed),
            batches: self.counters.batches.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
        }
    }

    /// Occupies the writer with a job that waits for the returned sender,
    /// so that writes sent meanwhile queue up and commit as one batch.
    #[cfg(test)]
    pub(crate) async fn hold(&self) -> oneshot::Sender<()> {
        let (release, held) = oneshot::channel::<()>();
        let (started, running) = oneshot::channel::<()>();
        let job: Job = Box::new(move |_conn| {
            async move {
                let _ = started.send(());
                let _ = held.await;
                let nobody: Answer = Box::new(|_| {});
                (true, nobody)
            }
            .boxed()
        });
        let _ = self.jobs.send(job);
        let _ = running.await;
        release
    }
}

/// A job's caller heard nothing: the writer stopped, or the batch failed
/// before the job ran.
fn stopped() -> StoreError {
    StoreError::Unexpected("the write did not run: the database writer failed or stopped".into())
}

fn db(e: sqlx::Error) -> StoreError {
    tessera_store::sql::map_db_error(e)
}

async fn run_batches(
    pool: SqlitePool,
    mut queue: mpsc::UnboundedReceiver<Job>,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut conn: Option<PoolConnection<Sqlite>> = None;
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = batch.len() as u64;
        if conn.is_none() {
            match pool.acquire().await {
                Ok(fresh) => conn = Some(fresh),
                Err(e) => {
                    // The jobs are dropped unanswered: their callers hear
                    // that the write did not run. The next batch retries.
                    tracing::error!(error = %e, jobs, "no database connection for writes");
                    batch.clear();
                    continue;
                }
            }
        }
        let Some(open) = conn.as_mut() else { continue };
        let answers = commit_batch(open, batch.drain(..)).await;
        match answers {
            Ok(answers) => {
                counters.batches.fetch_add(1, Ordering::Relaxed);
                counters.writes.fetch_add(jobs, Ordering::Relaxed);
                for answer in answers {
                    answer(None);
                }
            }
            Err((e, answers)) => {
                tracing::error!(error = %e, jobs, "a batch of writes failed to commit");
                if let Some(mut broken) = conn.take() {
                    // Closing it rolls back whatever SQLite still holds open.
                    broken.close_on_drop();
                }
                for answer in answers {
                    answer(Some(&e));
                }
            }
        }
    }
}

/// Runs `jobs` in one transaction and commits it, returning how to answer
/// each job; on a failure that ends the transaction, the error too (the
/// transaction is rolled back when dropped).
async fn commit_batch(
    conn: &mut SqliteConnection,
    jobs: impl Iterator<Item = Job>,
) -> Result<Vec<Answer>, (StoreError, Vec<Answer>)> {
    let mut answers = Vec::new();
    // IMMEDIATE takes the write lock up front: another process writing the
    // file (`tessera admin` on a data directory) makes the batch wait once,
    // not fail part-way with a stale snapshot.
    let mut tx = match conn.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => {
            // Nothing ran: the jobs have not produced answers, so run none
            // and fail them through their dropped reply channels.
            drop(jobs);
            return Err((db(e), answers));
        }
    };
    for job in jobs {
        let mut savepoint = match tx.begin().await {
            Ok(savepoint) => savepoint,
            Err(e) => return Err((db(e), answers)),
        };
        let (ok, answer) = job(&mut savepoint).await;
        answers.push(answer);
        let ended = if ok {
            savepoint.commit().await
        } else {
            savepoint.rollback().await
        };
        if let Err(e) = ended {
            return Err((db(e), answers));
        }
    }
    match tx.commit().await {
        Ok(()) => Ok(answers),
        Err(e) => Err((db(e), answers)),
    }
}
