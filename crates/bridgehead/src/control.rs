//! The control socket: a Unix stream socket, one request line in, one reply out.
//!
//! Requests are words (`status`, `bgp`, `routes`, `reload`); the reply is JSON. The socket is created mode 0660 so only
//! root and the service's group can use it. The server answers on its own thread and never
//! blocks the dataplane: a request only reads counters.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Default control socket path.
pub const DEFAULT_PATH: &str = "/run/bridgehead/control.sock";

/// Longest request line accepted, in bytes.
const MAX_REQUEST: u64 = 256;

/// Binds the control socket at `path`, replacing a stale one.
pub fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!("{} is in use by another bridgehead", path.display());
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(l)
}

/// Serves requests on its own thread until the process exits.
pub fn serve<F>(listener: UnixListener, path: PathBuf, handler: F) -> Result<()>
where
    F: Fn(&str) -> String + Send + 'static,
{
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            let _cleanup = RemoveOnDrop(path);
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else {
                    // Out of descriptors or similar: do not spin on a failing accept.
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                let mut reader = BufReader::new((&conn).take(MAX_REQUEST));
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let reply = handler(line.trim());
                let _ = conn.write_all(reply.as_bytes());
            }
        })?;
    Ok(())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Sends one request and returns the reply (waiting up to 5 s for it).
pub fn request(path: &Path, req: &str) -> Result<String> {
    request_with_timeout(path, req, Duration::from_secs(5))
}

/// Sends one request and returns the reply, waiting up to `timeout` for it (a `reload` may
/// take seconds: DELETEs to peers, devices created).
pub fn request_with_timeout(path: &Path, req: &str, timeout: Duration) -> Result<String> {
    let mut s = UnixStream::connect(path)
        .with_context(|| format!("connecting to {} (is the daemon running?)", path.display()))?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(req.as_bytes())?;
    s.write_all(b"\n")?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
