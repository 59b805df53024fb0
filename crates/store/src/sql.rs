//! The SQL both backends share. SQLite and PostgreSQL accept the same
//! statements here (`$n` parameters, `RETURNING`, `LIMIT/OFFSET`), and their
//! column types decode to the same Rust types, so the queries are written
//! once: each backend crate expands `sql_store_impl!` over its own pool type
//! and keeps only its connection setup and migrations.
//!
//! One module per aggregate, named as in the conformance suite, holds its
//! statements as `&str` constants and the macro that implements its storage
//! trait with them: `realms::BY_NAME` and `sql_realm_store!`, and so on. A
//! statement lives with the table it touches even when another trait runs it:
//! `SessionStore` denies a user's approved device codes with
//! `browser::DENY_USER_DEVICE_CODES`. Without SQL inline, rustfmt formats the
//! macro bodies too; it silently skips one it cannot parse (a `matches!` with
//! an `if` guard was such a case, so `map_db_error` is a plain function).
//!
//! `sql_store_impl!` is the one entry point. It expands `sql_helpers!` (the
//! imports, error mapping, column decoding, the runners every statement ends
//! in, and the session insert several traits share) and then each per-trait
//! macro, all inside one anonymous const, so the per-trait macros use those
//! helpers by name and are not meant to be expanded on their own. A record
//! that is inserted and updated with the same columns binds them in one
//! function beside its decoder (`bind_client`, and so on).
//!
//! The backend type must provide `fn reader(&self) -> &Pool<DB>`,
//! `const BACKEND: &str` and
//! `async fn write<T, F>(&self, op: F) -> Result<T>` with
//! `F: for<'c> FnOnce(&'c mut DB::Connection) -> BoxFuture<'c, Result<T>>`,
//! which runs one write: SQLite queues it for the next group commit
//! (`tessera_store_sqlite::writer`), PostgreSQL runs it on a pooled
//! connection. Every write is such a closure over owned copies of its
//! arguments (a queued write may outlive its caller), and a write of several
//! statements opens its own transaction with `Connection::begin` on the
//! connection it is given: a savepoint inside SQLite's batch, a transaction
//! on PostgreSQL.

pub mod browser;
pub mod clients;
pub mod connect;
pub mod consent;
pub mod keys;
pub mod realms;
pub mod refresh;
pub mod sessions;
pub mod store;
pub mod throttle;
pub mod users;
pub mod workspaces;

/// Maps a driver error onto `StoreError`: unique violations are conflicts;
/// a database that cannot be reached or is going away is `Unavailable` (the
/// request may be retried: 503, not 500); anything else is unexpected.
pub fn map_db_error(e: sqlx::Error) -> crate::StoreError {
    use crate::StoreError::{Conflict, Unavailable, Unexpected};
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Conflict(e.to_string()),
        sqlx::Error::Database(d) if d.code().is_some_and(|c| is_outage_code(&c)) => {
            Unavailable(e.to_string())
        }
        // Refused, reset, timed out; a pool with no connection to give
        // within its acquire timeout; a connection dropped mid-message.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Unavailable(e.to_string()),
        _ => Unexpected(e.to_string()),
    }
}

/// Whether a database error code says "not now" rather than "never". A
/// PostgreSQL SQLSTATE has five characters; a SQLite result code is a
/// number below 10,000 (its primary code in the low byte).
fn is_outage_code(code: &str) -> bool {
    if code.len() == 5 {
        // 08: connection exception; 53: insufficient resources (too many
        // connections, disk full); 57P01-57P03: shutting down, starting up
        // (57P04, the database was dropped, is no outage); 25006: a
        // read-only transaction (a standby just after a failover); 40001 and
        // 40P01: a serialization failure or deadlock, which a retry resolves.
        return code.starts_with("08")
            || code.starts_with("53")
            || matches!(
                code,
                "57P01" | "57P02" | "57P03" | "25006" | "40001" | "40P01"
            );
    }
    // SQLITE_BUSY, SQLITE_LOCKED (held by another process), SQLITE_IOERR,
    // SQLITE_FULL, SQLITE_CANTOPEN.
    code.parse::<u32>()
        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14))
}

/// Escapes `%`, `_` and `\` so user search text matches literally in `LIKE`.
pub fn like_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Implements `Store` and every storage trait for `$ty` over `$db`
/// (`sqlx::Sqlite` or `sqlx::Postgres`).
#[macro_export]
#[doc(hidden)]
macro_rules! sql_store_impl {
    ($ty:ty, $db:ty) => {
        const _: () = {
            $crate::sql_helpers!($db);
            $crate::sql_realm_store!($ty);
            $crate::sql_client_store!($ty);
            $crate::sql_user_store!($ty);
            $crate::sql_session_store!($ty);
            $crate::sql_refresh_token_store!($ty);
            $crate::sql_key_store!($ty);
            $crate::sql_workspace_store!($ty);
            $crate::sql_consent_store!($ty);
            $crate::sql_browser_store!($ty);
            $crate::sql_connect_store!($ty);
            $crate::sql_throttle_store!($ty);
            $crate::sql_store!($ty, $db);
        };
    };
}

/// What the per-trait macros share: imports, the row and query types, error
/// mapping, column decoding, the runners that send a bound statement to a
/// pool or transaction, and the session (with its first refresh token) that
/// every grant inserts.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_helpers {
    ($db:ty) => {
        use ::sqlx::Connection as _;
        use ::sqlx::Row as _;
        use $crate::__core::model::KeyStatus;
        use $crate::__core::{
            AuthCode, Client, ConsentChallenge, DeviceCode, DeviceStatus, MachineTokenRecord,
            ProviderConnection, ProviderState, Realm, RefreshTokenRecord, Session,
            SigningKeyRecord, Signup, SsoSession, TokenHash, User, Workspace, WorkspaceStatus,
        };
        use $crate::sql::map_db_error as err;
        use $crate::{
            ClientMeta, DeviceDecision, Purged, Redeemed, Result, RotateOutcome, SessionOwner,
            StoreError, UserQuery,
        };
        type Row = <$db as ::sqlx::Database>::Row;
        /// The connection a write runs on.
        type Conn = <$db as ::sqlx::Database>::Connection;
        /// A statement with (some of) its parameters bound.
        type Query<'q> = ::sqlx::query::Query<'q, $db, <$db as ::sqlx::Database>::Arguments<'q>>;

        fn col<'r, T>(row: &'r Row, name: &str) -> Result<T>
        where
            T: ::sqlx::Decode<'r, $db> + ::sqlx::Type<$db>,
        {
            row.try_get(name).map_err(err)
        }
        fn json<T: $crate::__serde::de::DeserializeOwned>(row: &Row, name: &str) -> Result<T> {
            let text: String = col(row, name)?;
            $crate::__serde_json::from_str(&text)
                .map_err(|e| StoreError::Unexpected(format!("column {name}: {e}")))
        }
        fn to_json<T: $crate::__serde::Serialize>(v: &T) -> String {
            $crate::__serde_json::to_string(v).unwrap_or_else(|_| "null".into())
        }
        fn one_row(affected: u64) -> Result<()> {
            if affected == 0 {
                Err(StoreError::NotFound)
            } else {
                Ok(())
            }
        }

        /// Runs a statement for its effect.
        async fn execute<'c>(
            q: Query<'_>,
            db: impl ::sqlx::Executor<'c, Database = $db>,
        ) -> Result<()> {
            q.execute(db).await.map_err(err)?;
            Ok(())
        }
        /// Runs a statement, returning how many rows it changed.
        async fn affected<'c>(
            q: Query<'_>,
            db: impl ::sqlx::Executor<'c, Database = $db>,
        ) -> Result<u64> {
            Ok(q.execute(db).await.map_err(err)?.rows_affected())
        }
        /// The one row a statement returns, decoded.
        async fn one<'c, T>(
            q: Query<'_>,
            db: impl ::sqlx::Executor<'c, Database = $db>,
            decode: fn(&Row) -> Result<T>,
        ) -> Result<T> {
            decode(&q.fetch_one(db).await.map_err(err)?)
        }
        /// The row a statement returns, if any, decoded.
        async fn optional<'c, T>(
            q: Query<'_>,
            db: impl ::sqlx::Executor<'c, Database = $db>,
            decode: fn(&Row) -> Result<T>,
        ) -> Result<Option<T>> {
            q.fetch_optional(db)
                .await
                .map_err(err)?
                .as_ref()
                .map(decode)
                .transpose()
        }
        /// Whether a statement returns a row.
        async fn returns_row<'c>(
            q: Query<'_>,
            db: impl ::sqlx::Executor<'c, Database = $db>,
        ) -> Result<bool> {
            Ok(q.fetch_optional(db).await.map_err(err)?.is_some())
        }
        /// Every row a statement returns, decoded.
        async fn all<'c, T>(
            q: Query<'_>,
            db: impl ::sqlx::Executor<'c, Database = $db>,
            decode: fn(&Row) -> Result<T>,
        ) -> Result<Vec<T>> {
            q.fetch_all(db)
                .await
                .map_err(err)?
                .iter()
                .map(decode)
                .collect()
        }

        fn session_owner(row: &Row) -> Result<SessionOwner> {
            Ok(SessionOwner {
                realm_id: col(row, "realm_id")?,
                user_id: col(row, "user_id")?,
            })
        }

        fn session(row: &Row) -> Result<Session> {
            Ok(Session {
                id: col(row, "id")?,
                realm_id: col(row, "realm_id")?,
                user_id: col(row, "user_id")?,
                client_id: col(row, "client_id")?,
                device_id: col(row, "device_id")?,
                ip: col(row, "ip")?,
                user_agent: col(row, "user_agent")?,
                context_name: col(row, "context_name")?,
                origin: col(row, "origin")?,
                sso_session_id: col(row, "sso_session_id")?,
                scope: col(row, "scope")?,
                auth_time: col(row, "auth_time")?,
                created_at: col(row, "created_at")?,
                last_used_at: col(row, "last_used_at")?,
                expires_at: col(row, "expires_at")?,
                revoked_at: col(row, "revoked_at")?,
            })
        }

        async fn insert_session(
            c: &mut Conn,
            s: &Session,
            first: &RefreshTokenRecord,
        ) -> Result<()> {
            let q = ::sqlx::query($crate::sql::sessions::INSERT)
                .bind(&s.id)
                .bind(&s.realm_id)
                .bind(&s.user_id)
                .bind(&s.client_id)
                .bind(&s.device_id)
                .bind(&s.ip)
                .bind(&s.user_agent)
                .bind(&s.scope)
                .bind(s.auth_time)
                .bind(s.created_at)
                .bind(s.last_used_at)
                .bind(s.expires_at)
                .bind(s.revoked_at)
                .bind(&s.context_name)
                .bind(&s.origin)
                .bind(&s.sso_session_id);
            execute(q, &mut *c).await?;
            insert_refresh(c, first).await
        }

        async fn insert_refresh(c: &mut Conn, t: &RefreshTokenRecord) -> Result<()> {
            let q = ::sqlx::query($crate::sql::refresh::INSERT)
                .bind(t.hash.as_str())
                .bind(&t.session_id)
                .bind(t.created_at)
                .bind(t.expires_at)
                .bind(t.rotated_at);
            execute(q, c).await
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreError;

    #[test]
    fn an_unreachable_database_is_unavailable_not_unexpected() {
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
            sqlx::Error::Io(std::io::ErrorKind::UnexpectedEof.into()),
        ] {
            assert!(
                matches!(map_db_error(e), StoreError::Unavailable(_)),
                "unavailable"
            );
        }
        assert!(matches!(
            map_db_error(sqlx::Error::RowNotFound),
            StoreError::Unexpected(_)
        ));
    }

    #[test]
    fn outage_codes_of_both_backends() {
        // PostgreSQL: admin shutdown, cannot connect now, connection
        // failure, too many connections.
        // Also a standby's read-only transaction, serialization failure and
        // deadlock (a retry resolves them).
        for code in [
            "57P01", "57P03", "08006", "08001", "53300", "25006", "40001", "40P01",
        ] {
            assert!(is_outage_code(code), "{code}");
        }
        // SQLite: BUSY, BUSY_SNAPSHOT, LOCKED, IOERR_WRITE, CANTOPEN.
        for code in ["5", "517", "6", "778", "14"] {
            assert!(is_outage_code(code), "{code}");
        }
        // Unique and check violations, syntax errors, SQLite CONSTRAINT.
        // And a dropped database is no outage.
        for code in ["23505", "23514", "42601", "19", "2067", "1", "57P04"] {
            assert!(!is_outage_code(code), "{code}");
        }
    }
}
