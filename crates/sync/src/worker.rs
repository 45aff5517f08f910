//! Worker identity: which process holds a lease, so that a restarted process can take over the
//! syncs of a process on the same host that died, without waiting for its leases to run out.

use crate::Engine;

/// Returns a worker id naming this host and process: `HOST:PID:RANDOM`, where RANDOM starts
/// with the process's start time (`START-RANDOM`) where the host tells it, so that a later
/// process given the same PID is not mistaken for this one.
pub(crate) fn new_worker_id() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    let pid = std::process::id();
    match process_start(pid) {
        Some(start) => format!("{}:{pid}:{start}-{}", host_name(), &random[..12]),
        None => format!("{}:{pid}:{}", host_name(), &random[..12]),
    }
}

/// What `/proc/<pid>/stat` says of a process: its start time in clock ticks after boot, and
/// whether it has ended (a zombie or dead task whose parent has not reaped it yet).
struct ProcStat {
    start: u64,
    ended: bool,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: read after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 (the state); the start time is field 22.
    let state = fields.first()?;
    let start = fields.get(19)?.parse().ok()?;
    Some(ProcStat {
        start,
        ended: matches!(*state, "Z" | "X" | "x"),
    })
}

fn process_start(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|stat| stat.start)
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
    let (Some(host), Some(pid), Some(random), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    let can_tell = std::path::Path::new("/proc/self/stat").exists();
    if !can_tell || host != host_name() || pid == std::process::id() {
        return false;
    }
    let started = random
        .split_once('-')
        .and_then(|(start, _)| start.parse::<u64>().ok());
    match proc_stat(pid) {
        None => true,
        Some(stat) if stat.ended => true,
        // The PID now belongs to a process started at another time.
        Some(stat) => started.is_some_and(|started| started != stat.start),
    }
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

    #[test]
    fn a_zombie_is_dead_and_a_reused_pid_is_not_the_old_worker() {
        // A child that exited but is not reaped yet stays in /proc as a zombie, as a process
        // killed by `kill -9` does for a moment; it must count as dead.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = process_start(pid).unwrap_or(0);
        let worker = format!("{}:{pid}:{start}-abc", host_name());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !proc_stat(pid).is_some_and(|stat| stat.ended) {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never exited"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(is_dead_local_worker(&worker), "a zombie is dead");
        child.wait().unwrap();

        // A live process is alive under its own start time, and not under another one (the
        // same PID given to a later process).
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = sleeper.id();
        let start = process_start(pid).unwrap();
        let host = host_name();
        assert!(!is_dead_local_worker(&format!("{host}:{pid}:{start}-abc")));
        assert!(is_dead_local_worker(&format!(
            "{host}:{pid}:{}-abc",
            start + 1
        )));
        assert!(
            !is_dead_local_worker(&format!("{host}:{pid}:abc")),
            "an id without a start time is judged by the PID alone"
        );
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }
}
