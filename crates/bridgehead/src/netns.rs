//! Network namespaces for the lab, the tests and the benches, built with iproute2.
//!
//! [`Namespaces`] remembers every namespace it created and every process it started, and removes
//! them when dropped: processes are stopped by their PID (SIGTERM, then SIGKILL after a grace
//! period) and namespaces are deleted. It never touches a namespace or process it did not make.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Namespaces and processes owned by one lab or test run.
#[derive(Default)]
pub struct Namespaces {
    names: Vec<String>,
    children: Vec<(String, Child)>,
}

/// Runs a command to completion and fails with its stderr if it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Namespaces {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates namespace `name` with its loopback up.
    pub fn add(&mut self, name: &str) -> Result<()> {
        run(Command::new("ip").args(["netns", "add", name]))?;
        self.names.push(name.to_owned());
        self.ip(name, &["link", "set", "lo", "up"])?;
        Ok(())
    }

    /// The namespaces created so far.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// `ip -n NS ARGS...`.
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<String> {
        run(Command::new("ip").arg("-n").arg(ns).args(args))
    }

    /// A veth pair from `a.0` (interface `a.1`) to `b.0` (interface `b.1`), both up.
    pub fn veth(&self, a: (&str, &str), b: (&str, &str)) -> Result<()> {
        run(Command::new("ip").args([
            "link", "add", a.1, "netns", a.0, "type", "veth", "peer", "name", b.1, "netns", b.0,
        ]))?;
        self.ip(a.0, &["link", "set", a.1, "up"])?;
        self.ip(b.0, &["link", "set", b.1, "up"])?;
        Ok(())
    }

    /// Adds an address (IPv6 without duplicate address detection, so it is usable at once).
    pub fn addr(&self, ns: &str, dev: &str, cidr: &str) -> Result<()> {
        let mut args = vec!["addr", "add", cidr, "dev", dev];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.ip(ns, &args)?;
        Ok(())
    }

    /// Writes a sysctl inside `ns`.
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<()> {
        run(self
            .exec(ns, "sysctl")
            .args(["-q", "-w", &format!("{key}={value}")]))?;
        Ok(())
    }

    /// A command that runs `prog` inside `ns`.
    pub fn exec(&self, ns: &str, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, prog]);
        c
    }

    /// Starts a long-running process; it is stopped by PID when `self` is dropped.
    pub fn spawn(&mut self, label: &str, mut cmd: Command) -> Result<u32> {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {label}: {cmd:?}"))?;
        let pid = child.id();
        self.children.push((label.to_owned(), child));
        Ok(pid)
    }

    /// Whether the process started as `label` is still running.
    pub fn is_running(&mut self, label: &str) -> bool {
        self.children
            .iter_mut()
            .find(|(l, _)| l == label)
            .is_some_and(|(_, c)| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the process started as `label` (SIGTERM, then SIGKILL after `grace`).
    pub fn stop(&mut self, label: &str, grace: Duration) {
        if let Some(i) = self.children.iter().position(|(l, _)| l == label) {
            let (_, child) = self.children.swap_remove(i);
            stop_child(child, grace);
        }
    }

    /// Stops every process and deletes every namespace, now.
    pub fn teardown(&mut self) {
        for (_, child) in self.children.drain(..) {
            stop_child(child, Duration::from_secs(3));
        }
        for ns in self.names.drain(..).rev() {
            let _ = run(Command::new("ip").args(["netns", "del", &ns]));
        }
    }
}

fn stop_child(mut child: Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // Only the PID we started; `ip netns exec` execs the program, so this is the program.
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.teardown();
    }
}
