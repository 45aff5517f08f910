//! The scheduler: claims due connections and runs them, a bounded number at a time.

use chrono::{Duration as ChronoDuration, Utc};
use tokio_util::sync::CancellationToken;

use crate::Engine;

impl Engine {
    /// Claims and runs due syncs until `shutdown` is triggered, then cancels the runs of this
    /// process and waits for them to release their leases.
    pub async fn run_scheduler(&self, shutdown: CancellationToken) {
        tracing::info!(worker = %self.inner.worker_id, "scheduler started");
        self.take_over_dead_local_workers().await;
        while !shutdown.is_cancelled() {
            self.claim_and_start().await;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(self.inner.config.poll_interval) => {}
            }
        }

        let running: Vec<CancellationToken> = self
            .inner
            .running
            .lock()
            .unwrap()
            .values()
            .cloned()
            .collect();
        for cancel in running {
            cancel.cancel();
        }
        for _ in 0..100 {
            if self.inner.running.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tracing::info!(worker = %self.inner.worker_id, "scheduler stopped");
    }

    async fn claim_and_start(&self) {
        let busy = self.inner.running.lock().unwrap().len();
        let free = self.inner.config.max_concurrent_runs.saturating_sub(busy);
        if free == 0 {
            return;
        }
        let now = Utc::now();
        let lease_until =
            now + ChronoDuration::from_std(self.inner.config.lease).unwrap_or_default();
        let claimed = self
            .inner
            .store
            .claim_due(&self.inner.worker_id, now, lease_until, free as u32)
            .await;
        match claimed {
            Ok(ids) => {
                let mut tasks = self.inner.tasks.lock().unwrap();
                while tasks.try_join_next().is_some() {}
                for id in ids {
                    // A run of this process whose page took longer than the lease let the lease
                    // run out, and the claim just took it again: the run goes on and renews it
                    // at its next page. A second run of the same connection would race it.
                    if self.is_running(&id) {
                        tracing::warn!(
                            connection_id = %id,
                            "a run outlived its lease; it keeps the connection"
                        );
                        continue;
                    }
                    tasks.spawn(self.clone().run_claimed(id));
                }
            }
            Err(err) => tracing::error!(error = %err, "claiming due syncs failed"),
        }
    }
}
