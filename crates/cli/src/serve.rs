//! `tessera serve`: opens the store chosen by the database URL, bootstraps
//! the first realm, and serves HTTP (`server.rs`) until SIGTERM/SIGINT and
//! the drain after it.

use crate::config::Config;
use crate::ConfigArgs;
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tessera_channel::Fanout;
use tessera_connect::ConnectService;
use tessera_http::{AppState, Metrics};
use tessera_keys::MasterKey;
use tessera_oauth::gc::{collect_garbage, GcConfig};
use tessera_oauth::Services;
use tessera_store::Store;
use tessera_store_postgres::PgStore;
use tessera_store_sqlite::SqliteStore;

/// Configuration with the command-line flags applied on top.
pub fn resolve(args: &ConfigArgs) -> anyhow::Result<Config> {
    let mut cfg = Config::load(args.config.as_deref())?;
    if let Some(d) = &args.data_dir {
        cfg.data_dir = d.clone();
    }
    if let Some(u) = &args.database_url {
        cfg.database_url = Some(u.clone());
    }
    Ok(cfg)
}

/// Which database this node runs on: decided once, from the URL, in
/// `open_store`; whatever else depends on it (the socket fan-out) asks this.
pub enum Backend {
    Sqlite,
    /// Several nodes may share it; the socket adapter listens on it too.
    Postgres {
        url: String,
    },
}

/// An open store and the backend behind it.
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub backend: Backend,
}

/// The database named by the configuration: PostgreSQL for `postgres://`,
/// else SQLite (a `sqlite://` URL, or `tessera.db` in the data directory).
/// Chosen once here; nothing else reads the URL to guess the backend.
pub async fn open_store(cfg: &Config, create: bool) -> anyhow::Result<Opened> {
    let sqlite = |store: SqliteStore| Opened {
        store: Arc::new(store),
        backend: Backend::Sqlite,
    };
    match cfg.database_url.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Opened {
                store: Arc::new(
                    PgStore::connect(url)
                        .await
                        .context("cannot open the PostgreSQL database")?,
                ),
                backend: Backend::Postgres {
                    url: url.to_string(),
                },
            })
        }
        Some(url) if url.starts_with("sqlite:") => Ok(sqlite(
            SqliteStore::connect(url)
                .await
                .context("cannot open the SQLite database")?,
        )),
        Some(_) => bail!("database_url must start with postgres://, postgresql:// or sqlite:"),
        None => {
            let path = cfg.data_dir.join("tessera.db");
            if !create && !path.exists() {
                bail!(
                    "no Tessera database at {} (start `tessera serve` once, or pass --data-dir)",
                    path.display()
                );
            }
            ensure_private_dir(&cfg.data_dir)?;
            create_private_file(&path)?;
            Ok(sqlite(
                SqliteStore::open(&path)
                    .await
                    .context("cannot open the SQLite database")?,
            ))
        }
    }
}

/// `TESSERA_MASTER_KEY`, else the key file in the data directory (created on
/// first start). Several PostgreSQL nodes must share one key: set the variable.
pub fn master_key(cfg: &Config) -> anyhow::Result<MasterKey> {
    if let Ok(encoded) = std::env::var("TESSERA_MASTER_KEY") {
        return MasterKey::parse(&encoded).context("TESSERA_MASTER_KEY");
    }
    ensure_private_dir(&cfg.data_dir)?;
    Ok(MasterKey::load_or_create(&cfg.data_dir.join("master.key"))?)
}

fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates the database file with mode 0600 before SQLite does, so it (and
/// the WAL and shared-memory files SQLite derives from its mode) are private
/// even in a data directory other users can read.
fn create_private_file(path: &Path) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(())
}

/// The application state over an opened store.
pub fn state(
    cfg: &Config,
    store: Arc<dyn Store>,
    master: MasterKey,
    public_url: &str,
) -> anyhow::Result<AppState> {
    let services = Services::new(store, master, cfg.oauth(public_url));
    let connect = ConnectService::new(services.providers.clone(), cfg.connect(), &|name| {
        std::env::var(name).ok()
    })
    .context("invalid provider configuration")?;
    Ok(AppState {
        services,
        metrics: Arc::new(Metrics::new()),
        settings: Arc::new(cfg.http()),
        connect: Arc::new(connect),
    })
}

pub async fn run(
    args: ConfigArgs,
    listen: Option<String>,
    public_url: Option<String>,
) -> anyhow::Result<()> {
    let mut cfg = resolve(&args)?;
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if let Some(u) = public_url {
        cfg.public_url = Some(u);
    }
    init_logging(&cfg);

    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let public_url = cfg
        .public_url
        .clone()
        .unwrap_or_else(|| default_public_url(addr));

    let master = master_key(&cfg)?;
    let Opened { store, backend } = open_store(&cfg, true).await?;
    let state = state(&cfg, store.clone(), master, &public_url)?;
    let boot = state
        .services
        .admin
        .bootstrap(
            std::env::var("TESSERA_BOOTSTRAP_ADMIN_PASSWORD").ok(),
            &cfg.default_realm,
        )
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap failed: {e:?}"))?;
    if let Some(password) = &boot.generated_admin_password {
        // Printed once, on the terminal only; never logged.
        println!(
            "\n  Created realm `master` with user `admin`.\n  One-time admin password: {}\n  Change it: tessera admin users set-password --realm master --username admin\n",
            password.expose()
        );
    }
    // Unseal the master realm's key now, so a wrong master key fails the start.
    let master_realm = state
        .services
        .realms
        .realm(tessera_oauth::provision::MASTER_REALM)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    state
        .services
        .verifier
        .realm_keys(&master_realm)
        .await
        .map_err(|e| anyhow::anyhow!("cannot load the master realm's signing key: {e:?}"))?;

    spawn_gc(
        store,
        cfg.gc(),
        Duration::from_secs(cfg.gc_interval_secs.max(1)),
    );

    tracing::info!(%addr, %public_url, backend = state.services.health.backend(), "tessera listening");
    let fanout = match backend {
        Backend::Postgres { url } => {
            // Other nodes' revocations evict from this node's cache of live
            // sessions (and this node's from theirs).
            crate::revocations::relay(state.services.sessions.clone(), &url)
                .await
                .context("cannot listen for other nodes' session revocations")?;
            Fanout::Postgres(url)
        }
        Backend::Sqlite => Fanout::Local,
    };
    let app = tessera_channel::attach(
        tessera_http::app(state.clone()),
        &state,
        cfg.channel(),
        fanout,
    )
    .await
    .context("cannot start the event channel")?;
    crate::server::serve(
        listener,
        app,
        cfg.server_limits(),
        state.services.health.clone(),
    )
    .await;
    tracing::info!("tessera stopped");
    Ok(())
}

fn default_public_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    format!("http://{host}:{}", addr.port())
}

/// Garbage-collects expired sessions, refresh tokens and consent challenges
/// in the background, in small batches; issuance never waits long for it.
fn spawn_gc(store: Arc<dyn Store>, config: GcConfig, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = tessera_core::time::now_ms();
            match collect_garbage(store.as_ref(), now, config).await {
                Ok(p) if p.total() > 0 => tracing::info!(
                    refresh_tokens = p.refresh_tokens,
                    sessions = p.sessions,
                    challenges = p.challenges,
                    codes = p.codes,
                    sso_sessions = p.sso_sessions,
                    "garbage collected"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
            }
        }
    });
}

/// Libraries whose debug and trace events carry message payloads: Socket.IO
/// `authentication` events hold access tokens (or a refresh token sent by
/// mistake), websocket frames carry the same, and the PostgreSQL adapter's
/// NOTIFY parameters hold the events it fans out (a provider token on the
/// me-channel). Whatever `RUST_LOG` says, these stop at `info`: no token may
/// reach a log at any level.
const PAYLOAD_LOGGERS: [&str; 6] = [
    "socketioxide",
    "engineioxide",
    "socketioxide_postgres",
    "tokio_postgres",
    "tungstenite",
    "tokio_tungstenite",
];

fn init_logging(cfg: &Config) {
    use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log_level));
    let caps = PAYLOAD_LOGGERS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, name| t.with_target(*name, LevelFilter::INFO),
    );
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if cfg.log_format == "json" {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter.and(caps)))
        .init();
}
