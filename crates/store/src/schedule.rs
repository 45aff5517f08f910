//! Scheduling: when each connection's next sync is due, and which worker holds it.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::convert::{micros, opt_micros, opt_time};
use crate::{Backend, Store, StoreError};

impl Store {
    /// Claims up to `limit` connections that are active, due and not leased by a live worker
    /// (no lease, or `lease_until < now`), leasing each to `worker` until `lease_until`.
    /// Returns their ids. Each connection is claimed by one worker only, even with several
    /// processes on one PostgreSQL database.
    ///
    /// A claim consumes the due time (`next_sync_at` becomes null), so that a sync asked for
    /// while the run goes on is a new due time that [`Store::release_lease`] keeps. Due means
    /// `next_sync_at <= now`, or a null `next_sync_at` under an expired lease: the claim of a
    /// worker that died, whose run the next worker resumes.
    pub async fn claim_due(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        // PostgreSQL: rows another claimer has locked are skipped, and a row locked here is
        // checked again against the WHERE clause in its newest version, so a lease committed
        // meanwhile wins. SQLite: the single writer runs one claim at a time.
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let claimable = "status = 'active' \
                         AND (next_sync_at <= $3 \
                              OR (next_sync_at IS NULL AND lease_owner IS NOT NULL)) \
                         AND (lease_until IS NULL OR lease_until < $3)";
        // The candidates are materialised once: an inlined `IN (SELECT ... LIMIT)` may be
        // rescanned by PostgreSQL and then claim more than `limit` rows.
        let sql = format!(
            "WITH due AS MATERIALIZED (SELECT id FROM connections WHERE {claimable} \
             ORDER BY next_sync_at, id LIMIT $4 {lock}) \
             UPDATE connections SET lease_owner = $1, lease_until = $2, next_sync_at = NULL \
             WHERE id IN (SELECT id FROM due) AND {claimable} \
             RETURNING id"
        );
        let rows = sqlx::query(&sql)
            .bind(worker)
            .bind(micros(lease_until))
            .bind(micros(now))
            .bind(i64::from(limit))
            .fetch_all(&self.write)
            .await?;
        let ids = rows
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<Vec<String>, _>>()?;
        if !ids.is_empty() {
            tracing::debug!(worker, claimed = ids.len(), "claimed due connections");
        }
        Ok(ids)
    }

    /// Extends `worker`'s lease; returns false when the lease was lost or the connection is not
    /// active any more (the run must stop).
    pub async fn renew_lease(
        &self,
        id: &str,
        worker: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE connections SET lease_until = $3 \
             WHERE id = $1 AND lease_owner = $2 AND status = 'active'",
        )
        .bind(id)
        .bind(worker)
        .bind(micros(lease_until))
        .execute(&self.write)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Drops `worker`'s lease and sets when the next scheduled sync is due (`None`: none).
    ///
    /// A due time set meanwhile by [`Store::request_sync`] is kept when it is earlier: a sync
    /// asked for during a run is never pushed back by the run's end.
    pub async fn release_lease(
        &self,
        id: &str,
        worker: &str,
        next_sync_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        // A connection that stopped being active meanwhile keeps no schedule.
        sqlx::query(
            "UPDATE connections SET lease_owner = NULL, lease_until = NULL, \
             next_sync_at = CASE WHEN status <> 'active' THEN NULL \
                                 WHEN next_sync_at IS NULL THEN $3 \
                                 WHEN $3 IS NULL OR next_sync_at < $3 THEN next_sync_at \
                                 ELSE $3 END \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(opt_micros(next_sync_at))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Returns the workers that hold leases, expired or not.
    pub async fn lease_owners(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query(
            "SELECT DISTINCT lease_owner FROM connections WHERE lease_owner IS NOT NULL \
             ORDER BY lease_owner",
        )
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|row| Ok(row.try_get("lease_owner")?))
        .collect()
    }

    /// Ends the leases `worker` holds, so that its syncs can be claimed at once. For a worker
    /// known to be dead; returns how many leases ended.
    pub async fn expire_leases_of(&self, worker: &str) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE connections SET lease_until = 0 WHERE lease_owner = $1 AND lease_until > 0",
        )
        .bind(worker)
        .execute(&self.write)
        .await?;
        Ok(result.rows_affected())
    }

    /// Makes an active connection's next sync due now; refuses inactive connections.
    pub async fn request_sync(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let result = sqlx::query(
            "UPDATE connections SET next_sync_at = $2 WHERE id = $1 AND status = 'active'",
        )
        .bind(id)
        .bind(micros(now))
        .execute(&self.write)
        .await?;
        if result.rows_affected() > 0 {
            return Ok(());
        }

        let exists = sqlx::query("SELECT id FROM connections WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .is_some();
        if exists {
            Err(StoreError::ConnectionInactive(id.to_owned()))
        } else {
            Err(StoreError::ConnectionNotFound(id.to_owned()))
        }
    }

    /// Returns when the connection's next sync is due.
    pub async fn next_sync_at(&self, id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query("SELECT next_sync_at FROM connections WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::ConnectionNotFound(id.to_owned()))?;
        opt_time(row.try_get("next_sync_at")?)
    }
}
