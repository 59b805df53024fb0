//! The HTTP server: an accept loop over hyper instead of `axum::serve`, for
//! what `axum::serve` cannot do.
//!
//! - **Drain.** On the first SIGTERM or SIGINT readiness turns 503 at once
//!   (`Health::begin_drain`) while the listener keeps accepting, so a load
//!   balancer has time to notice; connections then answer one request more
//!   and close (keep-alive off). One second before the end of the drain
//!   period (half-way for periods under two seconds) the listener closes;
//!   requests already accepted are answered; at the end of the period the
//!   process exits, whatever is still open (websockets, stalled clients).
//!   A second signal exits at once.
//! - **Slow clients.** A request head must arrive within
//!   `header_read_timeout` of the connection opening or of its first byte;
//!   a keep-alive connection may wait `idle_timeout` for its next request.
//!   Both are enforced by hyper's header-read timer, which runs whenever
//!   hyper waits for a head; `HeadTimer` decides its deadline.
//! - **Connection cap.** At `max_connections` open connections (websockets
//!   included) the loop stops accepting until one closes; the kernel's
//!   backlog holds the rest.
//!
//! Every request carries `ConnectInfo<SocketAddr>`, as
//! `into_make_service_with_connect_info` would give it, and upgrades
//! (websockets for the event channel) are served.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tessera_oauth::Health;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// The limits `serve` enforces; see `Config` for each one's meaning.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub drain: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `app` on `listener` until a shutdown signal and the drain after
/// it. Returns when the drain is over; a second signal exits the process.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, health: Health) {
    let (drain_tx, drain_rx) = watch::channel(false);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let tasks = Tasks::default();
    let mut signals = std::pin::pin!(shutdown_signals());
    let mut full_warned: Option<Instant> = None;
    let stop_accepting = loop {
        tokio::select! {
            () = signals.as_mut() => break Instant::now(),
            (stream, remote, permit) = accept(&listener, &open, &mut full_warned) => {
                let conn = Connection { app: app.clone(), limits, remote, drain: drain_rx.clone() };
                tasks.spawn(conn.serve(stream, permit));
            }
        }
    };

    // Draining: readiness says 503 from now on; connections finish the
    // request they are on, or answer one more, and close.
    health.begin_drain();
    drain_tx.send_replace(true);
    let end = stop_accepting + limits.drain;
    let close_listener = end - Duration::from_secs(1).min(limits.drain / 2);
    tracing::info!(
        drain_ms = limits.drain.as_millis() as u64,
        open_connections = limits.max_connections - open.available_permits(),
        "shutdown signal received: readiness is 503; draining"
    );
    tokio::spawn(async {
        // The first signal's stream is gone with `signals`; a second one
        // means "now".
        shutdown_signals().await;
        tracing::warn!("second shutdown signal: exiting at once");
        std::process::exit(1);
    });
    let until_closed = tokio::time::sleep_until(close_listener);
    tokio::pin!(until_closed);
    loop {
        tokio::select! {
            () = &mut until_closed => break,
            (stream, remote, permit) = accept(&listener, &open, &mut full_warned) => {
                let conn = Connection { app: app.clone(), limits, remote, drain: drain_rx.clone() };
                tasks.spawn(conn.serve(stream, permit));
            }
        }
    }
    drop(listener);
    if tokio::time::timeout_at(end, tasks.idle()).await.is_err() {
        tracing::info!(
            connections = tasks.live(),
            "drain period over: closing connections still open"
        );
    }
}

/// The next connection, once fewer than `max_connections` are open.
async fn accept(
    listener: &TcpListener,
    open: &Arc<Semaphore>,
    full_warned: &mut Option<Instant>,
) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
    let permit = match open.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            if full_warned.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                tracing::warn!("connection cap reached: new connections wait in the backlog");
                *full_warned = Some(Instant::now());
            }
            open.clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed")
        }
    };
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => return (stream, remote, permit),
            // The peer gave up before we took the connection: next one.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors, most likely: wait, don't spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signals() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    app: Router,
    limits: Limits,
    remote: SocketAddr,
    drain: watch::Receiver<bool>,
}

impl Connection {
    async fn serve(mut self, stream: TcpStream, permit: OwnedSemaphorePermit) {
        let clock = Arc::new(HeadClock::new(Instant::now()));
        // The permit lives as long as the socket, an upgraded one too.
        let io = TokioIo::new(Metered {
            stream,
            clock: clock.clone(),
            _permit: permit,
        });
        let remote = self.remote;
        let service = self
            .app
            .map_request(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                req
            });
        let draining = *self.drain.borrow_and_update();
        tracing::trace!(%remote, draining, "connection accepted");
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(HeadTimer {
            clock,
            header: self.limits.header_read_timeout,
            idle: self.limits.idle_timeout,
        })
        .header_read_timeout(self.limits.header_read_timeout)
        // Accepted while draining: answer one request, then close.
        .keep_alive(!draining);
        let conn = http
            .serve_connection(io, TowerToHyperService::new(service))
            .with_upgrades();
        tokio::pin!(conn);
        let mut told = draining;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    match result {
                        // Timeouts and resets by the peer; nothing of the
                        // request (which may hold tokens) is in the error.
                        Err(e) => tracing::debug!(%remote, error = %e, "connection ended"),
                        Ok(()) => tracing::trace!(%remote, "connection closed"),
                    }
                    break;
                }
                _ = self.drain.wait_for(|d| *d), if !told => {
                    // Idle: close now; on a request: answer it, then close.
                    conn.as_mut().graceful_shutdown();
                    told = true;
                }
            }
        }
    }
}

/// When the request head hyper now awaits began: the connection's opening
/// for its first request; the first byte read since, for later ones.
struct HeadClock {
    state: Mutex<HeadState>,
}

struct HeadState {
    /// When hyper began waiting for this head.
    waiting_since: Instant,
    /// When its first byte arrived, if one has.
    first_byte: Option<Instant>,
    /// Whether hyper has waited for a head before on this connection.
    armed: bool,
}

impl HeadClock {
    fn new(opened: Instant) -> Self {
        Self {
            state: Mutex::new(HeadState {
                waiting_since: opened,
                first_byte: Some(opened),
                armed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HeadState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// hyper starts waiting for a request head.
    fn arm(&self) {
        let mut s = self.lock();
        if s.armed {
            // A keep-alive wait for the next request: idle until a byte comes.
            s.waiting_since = Instant::now();
            s.first_byte = None;
        }
        s.armed = true;
    }

    fn read(&self) {
        let mut s = self.lock();
        if s.first_byte.is_none() {
            s.first_byte = Some(Instant::now());
        }
    }

    fn deadline(&self, header: Duration, idle: Duration) -> Instant {
        let s = self.lock();
        match s.first_byte {
            Some(first) => first + header,
            None => s.waiting_since + idle,
        }
    }
}

/// hyper's timer for one connection. hyper only times the wait for a
/// request head with it: `sleep_until` is called (through `reset`, too)
/// each time such a wait begins, and the deadline it passes is ignored in
/// favour of `HeadClock`'s.
#[derive(Clone)]
struct HeadTimer {
    clock: Arc<HeadClock>,
    header: Duration,
    idle: Duration,
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(PlainSleep(Box::pin(tokio::time::sleep(duration))))
    }

    fn sleep_until(&self, _deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.clock.arm();
        let deadline = self.clock.deadline(self.header, self.idle);
        Box::pin(HeadSleep {
            timer: self.clone(),
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
        })
    }
}

struct PlainSleep(Pin<Box<tokio::time::Sleep>>);

impl Future for PlainSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for PlainSleep {}

/// Fires at `HeadClock`'s deadline, which moves earlier when the first
/// byte of a head arrives (hyper polls this again on every read).
struct HeadSleep {
    timer: HeadTimer,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Future for HeadSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self
            .timer
            .clock
            .deadline(self.timer.header, self.timer.idle);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for HeadSleep {}

/// The socket, telling `HeadClock` when bytes arrive, and holding its
/// place under the connection cap until it closes.
struct Metered {
    stream: TcpStream,
    clock: Arc<HeadClock>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Metered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.read();
        }
        polled
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The connection tasks still running, so the drain can wait for them.
#[derive(Clone, Default)]
struct Tasks(Arc<TasksInner>);

#[derive(Default)]
struct TasksInner {
    live: AtomicUsize,
    done: Notify,
}

impl Tasks {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.live.fetch_add(1, Ordering::SeqCst);
        let guard = TaskGuard(self.0.clone());
        tokio::spawn(async move {
            let _guard = guard;
            task.await;
        });
    }

    fn live(&self) -> usize {
        self.0.live.load(Ordering::SeqCst)
    }

    /// Resolves once no task is running.
    async fn idle(&self) {
        loop {
            let done = self.0.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.live() == 0 {
                return;
            }
            done.await;
        }
    }
}

struct TaskGuard(Arc<TasksInner>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.done.notify_waiters();
        }
    }
}
