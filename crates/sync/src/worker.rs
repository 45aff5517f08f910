//! Worker identity: which process holds a lease, so that a restarted process can take over the
//! syncs of a process on the same host that died, without waiting for its leases to run out.

use crate::Engine;

/// Returns a worker id naming this host and process: `HOST:PID:RANDOM`.
pub(crate) fn new_worker_id() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{}:{}:{}", host_name(), std::process::id(), &random[..12])
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().replace(':', "_"))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// Returns whether `worker` names a process of this host that no longer runs.
///
/// Only answers yes when it can tell: on a host without `/proc`, or for a worker of another
/// host, the worker is taken as alive and its leases simply run out.
fn is_dead_local_worker(worker: &str) -> bool {
    let mut parts = worker.split(':');
    let (Some(host), Some(pid), Some(_random), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    let can_tell = std::path::Path::new("/proc/self").exists();
    can_tell
        && host == host_name()
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Engine {
    /// Ends the leases of workers of this host whose process has died (a crash or `kill -9`),
    /// so that their syncs resume now from their checkpoints.
    pub(crate) async fn take_over_dead_local_workers(&self) {
        let owners = match self.inner.store.lease_owners().await {
            Ok(owners) => owners,
            Err(err) => {
                tracing::warn!(error = %err, "listing lease owners failed");
                return;
            }
        };
        for owner in owners.iter().filter(|owner| is_dead_local_worker(owner)) {
            match self.inner.store.expire_leases_of(owner).await {
                Ok(ended) if ended > 0 => {
                    tracing::info!(
                        worker = %owner,
                        leases = ended,
                        "took over a dead worker's syncs"
                    );
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(worker = %owner, error = %err, "ending leases failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dead_processes_of_this_host_are_taken_over() {
        let ours = new_worker_id();
        assert!(!is_dead_local_worker(&ours), "this process is alive");
        assert!(
            !is_dead_local_worker("other-host:1:abc"),
            "another host is never judged"
        );
        assert!(
            !is_dead_local_worker("worker-legacy"),
            "an id of another shape is left alone"
        );

        let dead_pid = u32::MAX - 7;
        let dead = format!("{}:{dead_pid}:abc", host_name());
        assert!(is_dead_local_worker(&dead));
    }
}
