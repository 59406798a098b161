//! systemd's readiness protocol (`sd_notify`): under `Type=notify`, systemd counts the service as
//! started only once it says `READY=1` (after its listeners are bound), and is told `STOPPING=1`
//! when draining begins. Without `$NOTIFY_SOCKET` (not under systemd) nothing is sent.

/// Sends `state` (such as `READY=1`) to the socket systemd named in `$NOTIFY_SOCKET`; a failure
/// is logged, never fatal.
#[cfg(unix)]
pub fn notify(state: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let bytes = target.as_encoded_bytes();
        match bytes.strip_prefix(b"@") {
            // An abstract socket (Linux): `@name`.
            #[cfg(target_os = "linux")]
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &address)
            }
            _ => socket.send_to(state.as_bytes(), &target),
        }
    });
    if let Err(error) = sent {
        tracing::warn!(%error, socket = ?target, state, "cannot notify systemd");
    }
}

/// There is no systemd here.
#[cfg(not(unix))]
pub fn notify(_state: &str) {}
