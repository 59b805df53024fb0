//! Shared rate-limit counters: hits per key in a fixed window.

/// Counts a hit on `$1` at `$2` in a window of `$3`, returning the count and
/// the window's start. Every expression of the update reads the old row, so
/// an ended window restarts at `$2` with one hit.
pub const HIT: &str = "INSERT INTO throttle (key, window_start, hits) VALUES ($1, $2, 1) \
    ON CONFLICT (key) DO UPDATE \
    SET hits = CASE WHEN throttle.window_start <= $2 - $3 THEN 1 ELSE throttle.hits + 1 END, \
    window_start = CASE WHEN throttle.window_start <= $2 - $3 THEN $2 \
    ELSE throttle.window_start END \
    RETURNING hits, window_start";
/// Gives one hit back, only to the window it was counted in.
pub const UNHIT: &str = "UPDATE throttle SET hits = hits - 1 \
    WHERE key = $1 AND window_start = $2 AND hits > 0";
pub const CLEAR: &str = "DELETE FROM throttle WHERE key = $1";
/// A batch of keys whose window started a day before `$1`.
pub const PURGE: &str = "DELETE FROM throttle WHERE key IN \
    (SELECT key FROM throttle WHERE window_start <= $1 - 86400000 LIMIT $2)";

/// `ThrottleStore` for `$ty`, inside `sql_store_impl!`.
#[macro_export]
#[doc(hidden)]
macro_rules! sql_throttle_store {
    ($ty:ty) => {
        const _: () = {
            use $crate::sql::throttle;

            #[$crate::__async_trait]
            impl $crate::ThrottleStore for $ty {
                async fn hit(&self, key: &str, now: i64, window: i64) -> Result<(i64, i64)> {
                    let key = key.to_owned();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(throttle::HIT)
                                .bind(&key)
                                .bind(now)
                                .bind(window);
                            one(q, &mut *conn, |r| {
                                Ok((col(r, "hits")?, col(r, "window_start")?))
                            })
                            .await
                        })
                    })
                    .await
                }
                async fn unhit(&self, key: &str, window_start: i64) -> Result<()> {
                    let key = key.to_owned();
                    self.write(move |conn| {
                        Box::pin(async move {
                            let q = ::sqlx::query(throttle::UNHIT).bind(&key).bind(window_start);
                            execute(q, &mut *conn).await
                        })
                    })
                    .await
                }
                async fn clear_hits(&self, key: &str) -> Result<()> {
                    let key = key.to_owned();
                    self.write(move |conn| {
                        Box::pin(async move {
                            execute(::sqlx::query(throttle::CLEAR).bind(&key), &mut *conn).await
                        })
                    })
                    .await
                }
            }
        };
    };
}
