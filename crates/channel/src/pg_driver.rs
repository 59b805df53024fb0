//! The PostgreSQL connection behind the socket adapter, made to outlive its
//! database. socketioxide-postgres takes its LISTEN/NOTIFY connection from a
//! `Driver`; the one it ships connects once, so after a database restart the
//! adapter never hears another node again. This driver keeps one connection
//! and, when it is lost, connects again with backoff and LISTENs again on
//! every channel the adapter asked for, feeding the same notification
//! streams: the adapter never sees the outage except as failed publishes.
//!
//! Its state (`Link`) is what `/health/ready` and `/metrics` report, and each
//! reconnection is announced so the channel can re-check its sockets against
//! the database (revocations made elsewhere meanwhile were never heard).
//!
//! TLS follows the database URL as libpq reads it (`tls.rs`).

use crate::tls::PgTls;
use futures::stream::{BoxStream, StreamExt};
use socketioxide_postgres::drivers::tokio_postgres::tokio_postgres_client as tokio_postgres;
use socketioxide_postgres::drivers::Driver;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, Client, Config, Notification};

/// Notifications queued per listener before the oldest are dropped.
const QUEUE: usize = 255;
/// Reconnection backoff: from the first to the largest pause.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// Longest a call on the connection may take. A connection that does not
/// answer within it (half-open after a failover: no reset ever comes) is
/// dropped and made again, and the caller hears an error at once, so a
/// revocation falls back to this node's sockets in seconds, not after the
/// kernel's retransmission timeout (~15 minutes).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the adapter's connection is up, and how many times it came back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub connected: bool,
    pub reconnects: u64,
    /// Notifications dropped because their listener was full.
    pub lost: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("{0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the event channel's database connection is down")]
    Down,
    #[error("the event channel's database did not answer in time")]
    Timeout,
}

/// The connection's client; `None` while it is down.
type Slot = RwLock<Option<Arc<Client>>>;
/// Every channel the adapter listens on, with where its notifications go.
type Listeners = RwLock<Vec<(String, mpsc::Sender<Notification>)>>;

#[derive(Clone)]
pub struct ResilientDriver {
    client: Arc<Slot>,
    listeners: Arc<Listeners>,
    link: watch::Receiver<Link>,
    /// Tells the supervisor to drop the connection and make a new one.
    broken: Arc<tokio::sync::Notify>,
}

impl ResilientDriver {
    /// Connects (failing if the database cannot be reached now), then keeps
    /// the connection up in the background for as long as the driver lives.
    pub async fn connect(mut config: Config, tls: PgTls) -> Result<Self, DriverError> {
        // Notice a dead peer without traffic too (the defaults wait 2 hours),
        // and give up on unacknowledged writes within seconds.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(15));
        config.keepalives_interval(Duration::from_secs(5));
        config.keepalives_retries(3);
        config.tcp_user_timeout(Duration::from_secs(10));
        let (client, connection) = config.connect(tls.clone()).await?;
        let (link_tx, link) = watch::channel(Link {
            connected: true,
            ..Link::default()
        });
        let driver = Self {
            client: Arc::new(RwLock::new(Some(Arc::new(client)))),
            listeners: Arc::default(),
            link,
            broken: Arc::default(),
        };
        let supervisor = Supervisor {
            client: Arc::downgrade(&driver.client),
            listeners: Arc::downgrade(&driver.listeners),
            config,
            tls,
            link: link_tx,
            broken: driver.broken.clone(),
        };
        tokio::spawn(supervisor.run(Box::pin(messages(connection))));
        Ok(driver)
    }

    /// The connection's state, updated as it changes.
    pub fn link(&self) -> watch::Receiver<Link> {
        self.link.clone()
    }

    fn client(&self) -> Result<Arc<Client>, DriverError> {
        read(&self.client).clone().ok_or(DriverError::Down)
    }

    /// Runs `call` on the connection within `CALL_TIMEOUT`; past it, the
    /// connection is given up (callers meanwhile hear `Down`) and made again.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, DriverError>
    where
        F: FnOnce(Arc<Client>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let client = self.client()?;
        match tokio::time::timeout(CALL_TIMEOUT, call(client)).await {
            Ok(done) => Ok(done?),
            Err(_) => {
                *write(&self.client) = None;
                self.broken.notify_one();
                Err(DriverError::Timeout)
            }
        }
    }
}

/// Hands a notification to its listener; one dropped (the listener is
/// full) is counted in `link`, so the channel re-checks its sockets: it may
/// have been a revocation.
fn dispatch(listeners: &Listeners, note: Notification, link: &watch::Sender<Link>) {
    let listeners = read(listeners);
    if let Some((_, tx)) = listeners.iter().find(|(c, _)| c == note.channel()) {
        if tx.try_send(note).is_err() {
            tracing::warn!("event channel notification dropped: its listener is full");
            link.send_modify(|l| l.lost += 1);
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

type Messages = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<AsyncMessage, tokio_postgres::Error>> + Send>,
>;

/// What a connection says until it ends (with an error, or closed).
fn messages<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
) -> impl futures::Stream<Item = Result<AsyncMessage, tokio_postgres::Error>> + Send
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    futures::stream::poll_fn(move |cx| connection.poll_message(cx))
}

/// Keeps the connection up. Holds the driver's parts weakly: it ends once
/// the adapter (every clone of the driver) is gone.
struct Supervisor {
    client: Weak<Slot>,
    listeners: Weak<Listeners>,
    config: Config,
    tls: PgTls,
    link: watch::Sender<Link>,
    broken: Arc<tokio::sync::Notify>,
}

impl Supervisor {
    /// Drives the connection; when it ends, reconnects with backoff, LISTENs
    /// again and goes on.
    async fn run(self, mut connection: Messages) {
        let mut reconnects = 0;
        loop {
            loop {
                let message = tokio::select! {
                    message = connection.next() => message,
                    () = self.broken.notified() => {
                        tracing::warn!("event channel database connection stopped answering");
                        break;
                    }
                };
                match message {
                    Some(Ok(AsyncMessage::Notification(note))) => {
                        let Some(listeners) = self.listeners.upgrade() else {
                            return;
                        };
                        dispatch(&listeners, note, &self.link);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "event channel database connection lost");
                        break;
                    }
                    None => {
                        tracing::warn!("event channel database connection closed");
                        break;
                    }
                }
            }
            drop(connection);
            let Some(client) = self.client.upgrade() else {
                return;
            };
            *write(&client) = None;
            drop(client);
            self.link.send_modify(|l| l.connected = false);
            let mut pause = BACKOFF.0;
            connection = loop {
                tokio::time::sleep(pause).await;
                match self.reconnect().await {
                    Ok(Some(connection)) => break connection,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64,
                            "event channel cannot reach its database");
                        pause = (pause * 2).min(BACKOFF.1);
                    }
                }
            };
            // A call that timed out meanwhile meant the old connection.
            let _ = futures::FutureExt::now_or_never(self.broken.notified());
            reconnects += 1;
            self.link.send_modify(|l| {
                l.connected = true;
                l.reconnects = reconnects;
            });
            tracing::info!(reconnects, "event channel database connection restored");
        }
    }

    /// A new connection with every channel LISTENed to again, installed as
    /// the driver's client; its messages to drive (`None`: the driver is
    /// gone).
    async fn reconnect(&self) -> Result<Option<Messages>, DriverError> {
        let (Some(slot), Some(listeners)) = (self.client.upgrade(), self.listeners.upgrade())
        else {
            return Ok(None);
        };
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        let mut connection: Messages = Box::pin(messages(connection));
        let mut channels: Vec<String> = read(&listeners).iter().map(|(c, _)| c.clone()).collect();
        channels.sort();
        channels.dedup();
        if !channels.is_empty() {
            // Nothing else drives the new connection yet: drive it here
            // until the LISTENs are answered.
            let query = listen_query(&channels, "LISTEN");
            let listen = tokio::time::timeout(CALL_TIMEOUT, client.batch_execute(&query));
            tokio::pin!(listen);
            loop {
                tokio::select! {
                    done = &mut listen => {
                        done.map_err(|_| DriverError::Timeout)??;
                        break;
                    }
                    message = connection.next() => match message {
                        Some(Ok(AsyncMessage::Notification(note))) => {
                            dispatch(&listeners, note, &self.link);
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(e.into()),
                        None => return Err(DriverError::Down),
                    }
                }
            }
        }
        *write(&slot) = Some(Arc::new(client));
        Ok(Some(connection))
    }
}

fn listen_query(channels: &[impl AsRef<str>], verb: &str) -> String {
    channels
        .iter()
        .map(|c| format!(r#"{verb} "{}";"#, c.as_ref().replace('"', "\"\"")))
        .collect()
}

impl Driver for ResilientDriver {
    type Error = DriverError;
    type Notification = Notification;
    type NotificationStream = BoxStream<'static, Notification>;

    async fn init(&self, table: &str) -> Result<(), Self::Error> {
        let table = table.replace('"', "\"\"");
        // The advisory lock keeps nodes starting together from racing on
        // CREATE TABLE (the key socketioxide-postgres's own drivers use).
        let statement = format!(
            r#"BEGIN;
            SELECT pg_advisory_xact_lock({lock});
            CREATE TABLE IF NOT EXISTS "{table}" (
                id BIGSERIAL UNIQUE,
                created_at TIMESTAMPTZ DEFAULT NOW(),
                payload BYTEA
            );
            COMMIT;"#,
            lock = 0x5_0C10_01DE_i64
        );
        self.call(|c| async move { c.batch_execute(&statement).await })
            .await
    }

    async fn listen(&self, channels: &[&str]) -> Result<Self::NotificationStream, Self::Error> {
        let (tx, rx) = mpsc::channel(QUEUE);
        write(&self.listeners).extend(channels.iter().map(|c| (c.to_string(), tx.clone())));
        // Down now: the reconnection LISTENs on every registered channel.
        let query = listen_query(channels, "LISTEN");
        match self
            .call(|c| async move { c.batch_execute(&query).await })
            .await
        {
            Ok(()) | Err(DriverError::Down) => {}
            Err(e) => {
                write(&self.listeners).retain(|(c, _)| !channels.contains(&c.as_str()));
                return Err(e);
            }
        }
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|note| (note, rx))
        })
        .boxed())
    }

    async fn notify(&self, channel: &str, message: &str) -> Result<(), Self::Error> {
        self.call(|c| async move {
            c.execute("SELECT pg_notify($1, $2)", &[&channel, &message])
                .await
        })
        .await?;
        Ok(())
    }

    async fn push_attachment(&self, table: &str, attachment: &[u8]) -> Result<i64, Self::Error> {
        let table = table.replace('"', "\"\"");
        let query = format!("INSERT INTO \"{table}\" (payload) VALUES ($1) RETURNING id");
        self.call(|c| async move { c.query_one(&query, &[&attachment]).await?.try_get(0) })
            .await
    }

    async fn get_attachment(&self, table: &str, id: i64) -> Result<Vec<u8>, Self::Error> {
        let table = table.replace('"', "\"\"");
        let query = format!("SELECT payload FROM \"{table}\" WHERE id = $1");
        self.call(|c| async move { c.query_one(&query, &[&id]).await?.try_get(0) })
            .await
    }

    async fn cleanup_attachments(
        &self,
        table: &str,
        interval: Duration,
    ) -> Result<(), Self::Error> {
        let table = table.replace('"', "\"\"");
        let query = format!(
            "DELETE FROM \"{table}\" WHERE created_at < now() - interval '{} milliseconds'",
            interval.as_millis()
        );
        self.call(|c| async move { c.execute(&query, &[]).await })
            .await?;
        Ok(())
    }

    async fn close(&self, channels: &[&str]) -> Result<(), Self::Error> {
        write(&self.listeners).retain(|(c, _)| !channels.contains(&c.as_str()));
        // Other namespaces share the connection: UNLISTEN only these.
        let query = listen_query(channels, "UNLISTEN");
        self.call(|c| async move { c.batch_execute(&query).await })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::pg_config;

    #[test]
    fn listen_queries_quote_channel_names() {
        assert_eq!(
            listen_query(&["a", "b\"c"], "LISTEN"),
            r#"LISTEN "a";LISTEN "b""c";"#
        );
    }

    /// The PostgreSQL server the tests use; `None` (skip) without one,
    /// a failure under CI.
    fn server() -> Option<String> {
        match std::env::var("TESSERA_TEST_POSTGRES_URL") {
            Ok(url) => Some(
                url.split_once('?')
                    .map_or(url.clone(), |(b, _)| b.to_string()),
            ),
            Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true but TESSERA_TEST_POSTGRES_URL is not set")
            }
            Err(_) => {
                eprintln!("skipped: set TESSERA_TEST_POSTGRES_URL to run the PostgreSQL tests");
                None
            }
        }
    }

    async fn connect(url: &str) -> Result<ResilientDriver, String> {
        let (config, tls) = pg_config(url)?;
        ResilientDriver::connect(config, tls)
            .await
            .map_err(|e| e.to_string())
    }

    async fn one_row(driver: &ResilientDriver, sql: &str) -> tokio_postgres::Row {
        driver
            .client()
            .expect("connected")
            .query_one(sql, &[])
            .await
            .expect("query")
    }

    #[tokio::test]
    async fn tls_is_as_the_url_says() {
        let Some(url) = server() else { return };
        let on = |host: &str, params: &str| {
            let mut u = url::Url::parse(&url).expect("url");
            u.set_host(Some(host)).expect("host");
            format!("{u}?{params}")
        };
        let ssl = |driver: ResilientDriver| async move {
            let row = one_row(
                &driver,
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            )
            .await;
            row.get::<_, bool>(0)
        };
        let plain = connect(&on("127.0.0.1", "sslmode=disable"))
            .await
            .expect("plain");
        assert!(!ssl(plain).await, "sslmode=disable");
        let required = connect(&on("127.0.0.1", "sslmode=require"))
            .await
            .expect("require");
        assert!(ssl(required).await, "sslmode=require");

        // The server's self-signed certificate (for `localhost`) as the root.
        let admin = connect(&on("127.0.0.1", "sslmode=disable"))
            .await
            .expect("plain");
        let cert: String = one_row(&admin, "SHOW ssl_cert_file").await.get(0);
        if std::fs::metadata(&cert).is_err() {
            eprintln!("skipped the verify-* cases: {cert} is not readable");
            return;
        }
        let root = format!("sslrootcert={cert}");
        let full = connect(&on("localhost", &format!("sslmode=verify-full&{root}")))
            .await
            .expect("verify-full for the certificate's name");
        assert!(ssl(full).await);
        let wrong = connect(&on("127.0.0.1", &format!("sslmode=verify-full&{root}"))).await;
        assert!(wrong.is_err(), "verify-full refuses another name");
        let ca = connect(&on("127.0.0.1", &format!("sslmode=verify-ca&{root}")))
            .await
            .expect("verify-ca checks the chain, not the name");
        assert!(ssl(ca).await);
    }

    /// The connection is killed (as by a database restart): the driver
    /// connects again, LISTENs again, and the adapter's stream goes on.
    #[tokio::test]
    async fn a_lost_connection_comes_back_listening() {
        let Some(url) = server() else { return };
        let driver = connect(&url).await.expect("connect");
        let channel = format!("tessera_test_{}", std::process::id());
        let mut notes = driver.listen(&[channel.as_str()]).await.expect("listen");
        let mut link = driver.link();
        let pid: i32 = one_row(&driver, "SELECT pg_backend_pid()").await.get(0);
        let admin = connect(&url).await.expect("second connection");
        admin
            .client()
            .expect("up")
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .expect("terminate");
        let wait = |pred: fn(&Link) -> bool| {
            let mut link = link.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(20), link.wait_for(pred))
                    .await
                    .expect("in time")
                    .map(|l| *l)
                    .expect("link")
            }
        };
        let back = wait(|l| l.reconnects >= 1 && l.connected).await;
        assert_eq!(back.reconnects, 1);
        assert!(link.borrow_and_update().connected);
        let again: i32 = one_row(&driver, "SELECT pg_backend_pid()").await.get(0);
        assert_ne!(again, pid, "a new connection");
        admin.notify(&channel, "after").await.expect("notify");
        let note = tokio::time::timeout(Duration::from_secs(10), notes.next())
            .await
            .expect("the notification arrives")
            .expect("the stream goes on");
        assert_eq!(note.payload(), "after");
    }

    /// A connection that stops answering (here: a call stuck behind a lock,
    /// as a half-open connection would be) is given up after CALL_TIMEOUT:
    /// the caller hears an error at once and a new connection is made.
    #[tokio::test]
    async fn a_connection_that_stops_answering_is_replaced() {
        let Some(url) = server() else { return };
        let driver = connect(&url).await.expect("connect");
        let table = format!("tessera_test_attach_{}", std::process::id());
        driver.init(&table).await.expect("init");
        let admin = connect(&url).await.expect("second connection");
        let (locker, connection) = pg_config(&url)
            .expect("url")
            .0
            .connect(tokio_postgres::NoTls)
            .await
            .expect("locker");
        tokio::spawn(connection);
        locker
            .batch_execute(&format!(
                "BEGIN; LOCK TABLE \"{table}\" IN ACCESS EXCLUSIVE MODE"
            ))
            .await
            .expect("lock");
        let started = std::time::Instant::now();
        let stuck = driver.push_attachment(&table, b"x").await;
        assert!(matches!(stuck, Err(DriverError::Timeout)), "{stuck:?}");
        assert!(started.elapsed() < CALL_TIMEOUT + Duration::from_secs(2));
        let mut link = driver.link();
        tokio::time::timeout(
            Duration::from_secs(20),
            link.wait_for(|l| l.connected && l.reconnects >= 1),
        )
        .await
        .expect("reconnected in time")
        .expect("link");
        locker.batch_execute("ROLLBACK").await.expect("unlock");
        let id = driver
            .push_attachment(&table, b"y")
            .await
            .expect("works again");
        assert_eq!(driver.get_attachment(&table, id).await.expect("read"), b"y");
        admin
            .client()
            .expect("up")
            .batch_execute(&format!("DROP TABLE \"{table}\""))
            .await
            .expect("drop");
    }
}
