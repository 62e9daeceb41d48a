//! systemd's readiness protocol (`sd_notify(3)`), for `Type=notify` units: one datagram of
//! `KEY=VALUE` lines to the socket named by `$NOTIFY_SOCKET`. Without that variable (not
//! started by systemd) every call does nothing.
//!
//! A name starting with `@` is an abstract socket (the `@` stands for the leading NUL).

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Where `$NOTIFY_SOCKET` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A socket file.
    Path(std::path::PathBuf),
    /// An abstract socket name (without the leading `@`).
    Abstract(Vec<u8>),
}

/// Parse a `$NOTIFY_SOCKET` value; `None` when it is empty or not a Unix socket name.
pub fn parse_target(value: &str) -> Option<Target> {
    if let Some(name) = value.strip_prefix('@') {
        return (!name.is_empty()).then(|| Target::Abstract(name.as_bytes().to_vec()));
    }
    value.starts_with('/').then(|| Target::Path(value.into()))
}

/// Send `state` (newline-separated `KEY=VALUE` assignments) to `target`.
pub fn send_to(target: &Target, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    match target {
        Target::Path(p) => sock.send_to(state.as_bytes(), p)?,
        Target::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?
        }
    };
    Ok(())
}

/// Send `state` to systemd when `$NOTIFY_SOCKET` is set; failures are logged, never fatal.
pub fn notify(state: &str) {
    let Some(value) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    let Some(target) = value.to_str().and_then(parse_target) else {
        log::warn!("{NOTIFY_SOCKET}={value:?} is not a Unix socket name; not notifying");
        return;
    };
    match send_to(&target, state) {
        Ok(()) => log::debug!("sd_notify: {}", state.replace('\n', " ")),
        Err(e) => log::warn!("sd_notify to {value:?} failed: {e}"),
    }
}

/// `READY=1` with a status line: the interface is up.
pub fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={}", status.replace('\n', " ")));
}

/// `STOPPING=1` with a status line: teardown has started.
pub fn stopping(status: &str) {
    notify(&format!("STOPPING=1\nSTATUS={}", status.replace('\n', " ")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            parse_target("/run/systemd/notify"),
            Some(Target::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            parse_target("@sd-notify-1"),
            Some(Target::Abstract(b"sd-notify-1".to_vec()))
        );
        for bad in ["", "@", "relative/path", "vsock:2:1"] {
            assert_eq!(parse_target(bad), None, "{bad}");
        }
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("usbnetd-sdnotify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        send_to(&Target::Path(path.clone()), "READY=1\nSTATUS=up").unwrap();
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("usbnetd-test-{}", std::process::id());
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let target = parse_target(&format!("@{name}")).unwrap();
        send_to(&target, "STOPPING=1").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
