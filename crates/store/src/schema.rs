//! Schema versions: running a backend's migrations, and refusing a database
//! written by a newer Tessera (one whose migrations this binary lacks) with a
//! message that says what to do.

use crate::StoreError;
use sqlx::migrate::{Migrate, MigrateError, Migrator};

/// The newest schema version `migrator` knows.
pub fn known_version(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The one-line message for a database newer than this binary.
pub fn newer_schema_message(found: i64, known: i64) -> String {
    format!(
        "database schema version {found} is newer than this tessera knows ({known}); upgrade tessera"
    )
}

/// Applies the pending migrations. A database that has a migration this
/// binary does not know (sqlx's `VersionMissing`) was written by a newer
/// release: refused with [`newer_schema_message`], never touched.
pub async fn migrate<DB>(migrator: &Migrator, pool: &sqlx::Pool<DB>) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    DB::Connection: Migrate,
{
    match migrator.run(pool).await {
        Ok(()) => Ok(()),
        Err(MigrateError::VersionMissing(missing)) => {
            let known = known_version(migrator);
            let found = newest_applied(pool).await.unwrap_or(missing).max(missing);
            Err(StoreError::Unexpected(if found > known {
                newer_schema_message(found, known)
            } else {
                format!(
                    "the database has migration {missing}, which this tessera (schema version {known}) does not have; it was written by a different build"
                )
            }))
        }
        Err(e) => Err(StoreError::Unexpected(format!("migration failed: {e}"))),
    }
}

/// The highest applied version, for the message only (best effort).
async fn newest_applied<DB>(pool: &sqlx::Pool<DB>) -> Option<i64>
where
    DB: sqlx::Database,
    DB::Connection: Migrate,
{
    let mut conn = pool.acquire().await.ok()?;
    let applied = conn.list_applied_migrations().await.ok()?;
    applied.iter().map(|m| m.version).max()
}
