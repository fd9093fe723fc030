//! Service notifications to systemd (the `sd_notify` protocol), without libsystemd.
//!
//! Under `Type=notify` systemd passes the path of a Unix datagram socket in `$NOTIFY_SOCKET`
//! (a file path, or `@name` for the abstract namespace) and, with `WatchdogSec=`, the watchdog
//! interval in microseconds in `$WATCHDOG_USEC` (and the PID it is meant for in
//! `$WATCHDOG_PID`). The service sends newline-separated `KEY=VALUE` assignments as single
//! datagrams: `READY=1` once it serves, `STATUS=...` as a one-line summary for `systemctl
//! status`, `WATCHDOG=1` keep-alives, `RELOADING=1` (with `MONOTONIC_USEC=`, which systemd
//! 253 and later want with it) when a configuration reload begins and `READY=1` again when it
//! is done, `STOPPING=1` when it begins to shut down. The protocol
//! is described in systemd's `sd_notify(3)` and `systemd.service(5)` (`WatchdogSec=`,
//! `NotifyAccess=`).
//!
//! What this module does: find the socket, send those messages from a std `UnixDatagram`, and
//! run a keep-alive thread that sends `WATCHDOG=1` at half the interval, but only while a
//! health check the daemon supplies passes, so a wedged daemon is restarted by systemd.
//!
//! What it does NOT do: pass file descriptors (`FDSTORE=1`), send `MAINPID=` or
//! `EXTEND_TIMEOUT_USEC=`, or check the sender credentials (the kernel attaches them; the
//! unit's `NotifyAccess=main` is satisfied because threads share the process ID). Outside
//! systemd (no `$NOTIFY_SOCKET`) every call is a no-op.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest `STATUS=` text sent, in bytes; longer texts are cut at a character boundary.
pub const MAX_STATUS: usize = 512;

/// Why a notification could not be set up or sent.
#[derive(Debug)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is neither an absolute path nor `@` followed by an abstract name.
    BadAddress,
    /// Creating the socket or sending the datagram failed.
    Io(io::Error),
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadAddress => f.write_str(
                "NOTIFY_SOCKET is neither an absolute path nor an abstract socket name (@name)",
            ),
            Self::Io(e) => write!(f, "sending to the systemd notification socket: {e}"),
        }
    }
}

impl std::error::Error for NotifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::BadAddress => None,
            Self::Io(e) => Some(e),
        }
    }
}

impl From<io::Error> for NotifyError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// A connection to systemd's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier systemd asked for in `$NOTIFY_SOCKET`, or `None` when it is unset or
    /// empty (not started by systemd, or not `Type=notify`).
    pub fn from_env() -> Result<Option<Self>, NotifyError> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(v) if !v.is_empty() => Self::connect(&v).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier sending to `address`: an absolute path, or `@name` for the abstract
    /// namespace (the two forms systemd uses in `$NOTIFY_SOCKET`).
    pub fn connect(address: &OsStr) -> Result<Self, NotifyError> {
        let bytes = address.as_bytes();
        let addr = match bytes.first() {
            Some(b'/') => SocketAddr::from_pathname(address)?,
            Some(b'@') if bytes.len() > 1 => {
                SocketAddr::from_abstract_name(bytes.get(1..).unwrap_or_default())?
            }
            _ => return Err(NotifyError::BadAddress),
        };
        Ok(Self {
            socket: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// A second handle on the same destination, e.g. for the watchdog thread.
    pub fn try_clone(&self) -> Result<Self, NotifyError> {
        Ok(Self {
            socket: self.socket.try_clone()?,
            addr: self.addr.clone(),
        })
    }

    /// Sends one datagram of newline-separated `KEY=VALUE` assignments as given.
    pub fn notify(&self, state: &str) -> Result<(), NotifyError> {
        self.socket.send_to_addr(state.as_bytes(), &self.addr)?;
        Ok(())
    }

    /// `READY=1` with a `STATUS=` line: startup is complete.
    pub fn ready(&self, status: &str) -> Result<(), NotifyError> {
        self.notify(&format!("READY=1\nSTATUS={}", status_line(status)))
    }

    /// `STATUS=`: the one-line summary `systemctl status` shows.
    pub fn status(&self, status: &str) -> Result<(), NotifyError> {
        self.notify(&format!("STATUS={}", status_line(status)))
    }

    /// `WATCHDOG=1`: a keep-alive.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.notify("WATCHDOG=1")
    }

    /// `STOPPING=1` with a `STATUS=` line: shutdown has begun.
    pub fn stopping(&self, status: &str) -> Result<(), NotifyError> {
        self.notify(&format!("STOPPING=1\nSTATUS={}", status_line(status)))
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC now, in microseconds, as
    /// `sd_notify(3)` asks for `Type=notify-reload`) and a `STATUS=` line: a configuration
    /// reload has begun; `READY=1` ends it.
    pub fn reloading(&self, status: &str) -> Result<(), NotifyError> {
        self.notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS={}",
            bh_sys::clock::monotonic_usec(),
            status_line(status)
        ))
    }
}

/// `text` made safe for a `STATUS=` value: control characters (a newline would start a new
/// assignment; systemd drops datagrams with a NUL) become spaces, and it is cut to
/// [`MAX_STATUS`] bytes.
pub fn status_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_STATUS));
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_STATUS {
            break;
        }
        out.push(c);
    }
    out
}

/// How often to send `WATCHDOG=1`, from the values of `$WATCHDOG_USEC` and `$WATCHDOG_PID`:
/// half the interval (as `sd_watchdog_enabled(3)` advises), or `None` when there is no
/// watchdog, the value is not a positive number, or it is meant for another process.
pub fn watchdog_period(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// [`watchdog_period`] of this process's environment.
pub fn watchdog_period_from_env() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_period(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// The keep-alive thread; dropping it stops and joins the thread.
#[derive(Debug)]
pub struct Watchdog {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts a thread that, every `period`, runs `healthy` and sends `WATCHDOG=1` if it
    /// returned true. A failed check is logged and no keep-alive is sent, so systemd restarts
    /// the service when checks keep failing for the whole `WatchdogSec=`.
    pub fn spawn<F>(notifier: Notifier, period: Duration, healthy: F) -> io::Result<Self>
    where
        F: Fn() -> bool + Send + 'static,
    {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                let (lock, cvar) = &*flag;
                let mut stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                while !*stopped {
                    let (guard, timeout) = cvar
                        .wait_timeout(stopped, period)
                        .unwrap_or_else(PoisonError::into_inner);
                    stopped = guard;
                    if *stopped || !timeout.timed_out() {
                        continue;
                    }
                    // Not under the lock: the check may take a while.
                    drop(stopped);
                    if healthy() {
                        if let Err(e) = notifier.watchdog() {
                            tracing::warn!(error = %e, "watchdog keep-alive not sent");
                        }
                    } else {
                        tracing::warn!("health check failed: no watchdog keep-alive sent");
                    }
                    stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cvar.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The daemon's side of systemd supervision: a [`Notifier`] when there is one and the
/// [`Watchdog`] thread. Every method is a no-op outside systemd, and failures are logged, not
/// returned: a missed notification must not stop the tunnels.
#[derive(Debug, Default)]
pub struct Service {
    notifier: Option<Notifier>,
    watchdog: Option<Watchdog>,
}

impl Service {
    /// From `$NOTIFY_SOCKET`; a malformed value is logged and ignored.
    pub fn from_env() -> Self {
        let notifier = Notifier::from_env().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "not notifying systemd");
            None
        });
        Self {
            notifier,
            watchdog: None,
        }
    }

    /// A service notifying through `notifier` (tests, or a socket chosen by the caller).
    pub fn with_notifier(notifier: Notifier) -> Self {
        Self {
            notifier: Some(notifier),
            watchdog: None,
        }
    }

    /// Whether systemd is listening.
    pub fn is_supervised(&self) -> bool {
        self.notifier.is_some()
    }

    /// Starts the keep-alive thread when `period` is given (see [`watchdog_period_from_env`])
    /// and systemd is listening; returns whether it runs.
    pub fn start_watchdog<F>(&mut self, period: Option<Duration>, healthy: F) -> bool
    where
        F: Fn() -> bool + Send + 'static,
    {
        let (Some(n), Some(period)) = (&self.notifier, period) else {
            return false;
        };
        let started = n
            .try_clone()
            .map_err(|e| e.to_string())
            .and_then(|n| Watchdog::spawn(n, period, healthy).map_err(|e| e.to_string()));
        match started {
            Ok(w) => {
                tracing::info!(period_ms = period.as_millis(), "systemd watchdog started");
                self.watchdog = Some(w);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "systemd watchdog not started");
                false
            }
        }
    }

    /// Sends `READY=1` and `status`.
    pub fn ready(&self, status: &str) {
        self.send(|n| n.ready(status));
    }

    /// Sends `STATUS=`.
    pub fn status(&self, status: &str) {
        self.send(|n| n.status(status));
    }

    /// Sends `RELOADING=1`, `MONOTONIC_USEC=` and `status` (then [`Service::ready`] when the
    /// reload is done).
    pub fn reloading(&self, status: &str) {
        self.send(|n| n.reloading(status));
    }

    /// Stops the keep-alive thread and sends `STOPPING=1` and `status`.
    pub fn stopping(&mut self, status: &str) {
        self.watchdog = None;
        self.send(|n| n.stopping(status));
    }

    fn send(&self, f: impl FnOnce(&Notifier) -> Result<(), NotifyError>) {
        if let Some(n) = &self.notifier {
            if let Err(e) = f(n) {
                tracing::warn!(error = %e, "systemd notification not sent");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    /// A notification socket bound in a fresh directory, as systemd binds its own.
    struct Listener {
        sock: UnixDatagram,
        dir: std::path::PathBuf,
    }

    impl Listener {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "bh-sdnotify-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let sock = UnixDatagram::bind(dir.join("notify")).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            Self { sock, dir }
        }

        fn path(&self) -> std::path::PathBuf {
            self.dir.join("notify")
        }

        fn recv(&self) -> Option<String> {
            let mut buf = [0u8; 4096];
            match self.sock.recv(&mut buf) {
                Ok(n) => Some(String::from_utf8(buf[..n].to_vec()).unwrap()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    None
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
    }

    impl Drop for Listener {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn ready_status_stopping_reach_a_path_socket() {
        let l = Listener::new("path");
        let n = Notifier::connect(l.path().as_os_str()).unwrap();
        n.ready("2 tunnel(s) up").unwrap();
        assert_eq!(l.recv().as_deref(), Some("READY=1\nSTATUS=2 tunnel(s) up"));
        n.status("reloading").unwrap();
        assert_eq!(l.recv().as_deref(), Some("STATUS=reloading"));
        n.watchdog().unwrap();
        assert_eq!(l.recv().as_deref(), Some("WATCHDOG=1"));
        n.stopping("stopping on SIGTERM").unwrap();
        assert_eq!(
            l.recv().as_deref(),
            Some("STOPPING=1\nSTATUS=stopping on SIGTERM")
        );
    }

    #[test]
    fn reloading_carries_monotonic_usec_then_ready_ends_it() {
        let l = Listener::new("reload");
        let n = Notifier::connect(l.path().as_os_str()).unwrap();
        let before = bh_sys::clock::monotonic_usec();
        n.reloading("reloading the configuration").unwrap();
        let msg = l.recv().unwrap();
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines[0], "RELOADING=1");
        let usec: u64 = lines[1]
            .strip_prefix("MONOTONIC_USEC=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            usec >= before && usec < before + 60_000_000,
            "{usec} vs {before}"
        );
        assert_eq!(lines[2], "STATUS=reloading the configuration");
        n.ready("reloaded").unwrap();
        assert_eq!(l.recv().as_deref(), Some("READY=1\nSTATUS=reloaded"));
    }

    #[test]
    fn abstract_socket_names_start_with_at() {
        let name = format!("bh-sdnotify-abstract-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::connect(OsStr::new(&format!("@{name}"))).unwrap();
        n.ready("up").unwrap();
        let mut buf = [0u8; 64];
        let len = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up");
    }

    #[test]
    fn bad_addresses_are_rejected() {
        for a in ["", "@", "relative/notify", "notify"] {
            assert!(
                matches!(
                    Notifier::connect(OsStr::new(a)),
                    Err(NotifyError::BadAddress)
                ),
                "{a:?} accepted"
            );
        }
    }

    #[test]
    fn sending_to_a_missing_socket_is_an_error() {
        let l = Listener::new("missing");
        let path = l.dir.join("nobody-listens");
        let n = Notifier::connect(path.as_os_str()).unwrap();
        assert!(matches!(n.ready("x"), Err(NotifyError::Io(_))));
    }

    #[test]
    fn status_cannot_inject_assignments_and_is_bounded() {
        assert_eq!(status_line("up\nREADY=1\0x"), "up READY=1 x");
        let long = "é".repeat(MAX_STATUS);
        let s = status_line(&long);
        assert!(
            s.len() <= MAX_STATUS && s.len() > MAX_STATUS - 2,
            "{}",
            s.len()
        );
        assert!(s.chars().all(|c| c == 'é'));
    }

    #[test]
    fn watchdog_period_is_half_the_interval_for_this_process() {
        assert_eq!(
            watchdog_period(Some("30000000"), None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_period(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(15))
        );
        // Meant for another process (e.g. inherited from a parent).
        assert_eq!(watchdog_period(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period(Some("30000000"), Some("x"), 7), None);
        assert_eq!(watchdog_period(None, Some("7"), 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(Some("-5"), None, 7), None);
        assert_eq!(watchdog_period(Some("30s"), None, 7), None);
        assert_eq!(
            watchdog_period(Some("1"), None, 7),
            Some(Duration::from_millis(1))
        );
    }

    #[test]
    fn watchdog_thread_sends_keepalives_while_healthy_and_stops_on_drop() {
        let l = Listener::new("wd");
        let n = Notifier::connect(l.path().as_os_str()).unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let h = Arc::clone(&healthy);
        let start = Instant::now();
        let wd = Watchdog::spawn(n, Duration::from_millis(20), move || {
            h.load(Ordering::SeqCst)
        })
        .unwrap();
        for _ in 0..3 {
            assert_eq!(l.recv().as_deref(), Some("WATCHDOG=1"));
        }
        // Three periods have passed: the thread waits between keep-alives.
        assert!(start.elapsed() >= Duration::from_millis(60));

        // Unhealthy: no keep-alives (the one in flight, if any, drains first).
        healthy.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        l.sock
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        while l.recv().is_some() {}
        l.sock
            .set_read_timeout(Some(Duration::from_millis(150)))
            .unwrap();
        assert_eq!(l.recv(), None, "keep-alive sent while unhealthy");

        // Healthy again: they resume.
        healthy.store(true, Ordering::SeqCst);
        l.sock
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(l.recv().as_deref(), Some("WATCHDOG=1"));

        // Dropped: the thread is joined promptly and sends nothing more.
        let t = Instant::now();
        drop(wd);
        assert!(t.elapsed() < Duration::from_secs(1));
        l.sock
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        while l.recv().is_some() {}
        l.sock
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        assert_eq!(l.recv(), None, "keep-alive after drop");
    }

    #[test]
    fn service_without_systemd_is_a_no_op_and_with_it_notifies_in_order() {
        let mut quiet = Service::default();
        assert!(!quiet.is_supervised());
        assert!(!quiet.start_watchdog(Some(Duration::from_millis(1)), || true));
        quiet.ready("x");
        quiet.stopping("y");

        let l = Listener::new("svc");
        let mut s = Service::with_notifier(Notifier::connect(l.path().as_os_str()).unwrap());
        assert!(s.is_supervised());
        assert!(
            !s.start_watchdog(None, || true),
            "no WATCHDOG_USEC, no thread"
        );
        assert!(s.start_watchdog(Some(Duration::from_millis(10)), || true));
        s.ready("1 tunnel(s) up");
        // Keep-alives may interleave with READY; READY must arrive.
        let mut seen_ready = false;
        let mut keepalives = 0;
        while !(seen_ready && keepalives >= 1) {
            match l.recv().as_deref() {
                Some("READY=1\nSTATUS=1 tunnel(s) up") => seen_ready = true,
                Some("WATCHDOG=1") => keepalives += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        s.stopping("stopping");
        // After STOPPING=1 nothing else is sent: the watchdog was stopped first.
        let mut last = None;
        l.sock
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        while let Some(m) = l.recv() {
            last = Some(m);
        }
        assert_eq!(last.as_deref(), Some("STOPPING=1\nSTATUS=stopping"));
    }
}
