//! Child processes of the benchmark: the Maximo sandbox and `millrace serve`, each started,
//! awaited until it announces itself on standard output, measured through `/proc`, and stopped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

/// Longest wait for a child's ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Linux reports CPU times in `/proc/<pid>/stat` in ticks of this many per second (`USER_HZ`,
/// fixed for the user-space ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// A running child process; it is killed when dropped, so an early error leaves nothing behind.
pub struct ChildProcess {
    name: &'static str,
    child: tokio::process::Child,
    pid: u32,
    log: PathBuf,
}

impl ChildProcess {
    /// Starts `command` with standard error going to `log`, and returns it with the first
    /// standard-output line for which `ready` gives a value.
    pub async fn spawn<T>(
        name: &'static str,
        mut command: Command,
        log: &Path,
        ready: impl Fn(&str) -> Option<T>,
    ) -> anyhow::Result<(ChildProcess, T)> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create the log file {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start the {name}"))?;
        let pid = child.id().context("the child has no process id")?;
        let stdout = child
            .stdout
            .take()
            .context("the child's standard output is not piped")?;
        let mut process = ChildProcess {
            name,
            child,
            pid,
            log: log.to_owned(),
        };

        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(READY_TIMEOUT, first_ready_line(&mut lines, &ready)).await;
        let value = match found {
            Ok(Ok(Some(value))) => value,
            Ok(Ok(None)) => {
                let status = process.child.wait().await?;
                bail!(
                    "the {name} exited ({status}) before it was ready; {}",
                    process.log_hint()
                )
            }
            Ok(Err(err)) => return Err(err.context(format!("reading the {name}'s output"))),
            Err(_) => bail!(
                "the {name} was not ready within {READY_TIMEOUT:?}; {}",
                process.log_hint()
            ),
        };

        // Later output is drained so that a write to a full pipe never blocks the child.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok((process, value))
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Returns the peak resident set size so far, in bytes (`VmHWM`).
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        proc_status_kib(self.pid, "VmHWM").map(|kib| kib * 1024)
    }

    /// Returns the CPU time (user plus system) the process has used so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let path = format!("/proc/{}/stat", self.pid);
        let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        // The command name may hold spaces; the fields after its closing parenthesis do not.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&index| {
                fields
                    .get(index)
                    .and_then(|field| field.parse::<u64>().ok())
            })
            .sum();
        Ok(ticks as f64 / TICKS_PER_SECOND)
    }

    /// Tells where the child's log is, for error messages.
    pub fn log_hint(&self) -> String {
        format!("its log is {}", self.log.display())
    }

    /// Asks the child to stop (SIGINT, as Ctrl-C), then kills it if it has not stopped soon.
    pub async fn stop(mut self) {
        let interrupted = std::process::Command::new("kill")
            .args(["-INT", &self.pid.to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if interrupted
            && tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .is_ok()
        {
            return;
        }
        if let Err(err) = self.child.kill().await {
            eprintln!(
                "warning: cannot kill the {} (pid {}): {err}",
                self.name, self.pid
            );
        }
    }
}

async fn first_ready_line<T>(
    lines: &mut Lines<BufReader<ChildStdout>>,
    ready: &impl Fn(&str) -> Option<T>,
) -> anyhow::Result<Option<T>> {
    while let Some(line) = lines.next_line().await? {
        if let Some(value) = ready(&line) {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// Reads one `kB` field of `/proc/<pid>/status`.
fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    status
        .lines()
        .find_map(|line| {
            let value = line.strip_prefix(field)?.strip_prefix(':')?;
            value.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .with_context(|| format!("{path} has no {field} field"))
}
