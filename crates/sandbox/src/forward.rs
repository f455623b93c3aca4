//! The daemon's way into a chat's network namespace: the sandbox's init listens on loopback
//! inside the namespace and relays each connection, byte for byte, to a daemon unix socket
//! (their directory is mounted read-only into the sandbox): `127.0.0.1:7824` to the model
//! gateway (`gateway.sock`) and `127.0.0.1:7825` to its egress proxy (`proxy.sock`). No
//! parsing, no buffering beyond a copy buffer: the daemon on the other side does all the
//! checking. A relay whose socket is missing (the daemon serves no proxy) closes each
//! connection at once.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::thread::JoinHandle;

/// Relay threads need little stack; many idle connections must not cost much memory.
const RELAY_STACK_BYTES: usize = 64 * 1024;

/// Accepts connections on `listener` in a background thread named `name` and relays each to
/// the unix socket at `target` (connected anew per connection, so a restarted daemon is picked
/// up).
pub fn spawn_relay(
    name: &str,
    listener: TcpListener,
    target: PathBuf,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(RELAY_STACK_BYTES)
        .spawn(move || accept_loop(&listener, &target))
}

fn accept_loop(listener: &TcpListener, target: &PathBuf) {
    for incoming in listener.incoming() {
        let tcp = match incoming {
            Ok(tcp) => tcp,
            // Out of descriptors or memory: drop this one, keep serving.
            Err(_) => continue,
        };
        let Ok(unix) = UnixStream::connect(target) else {
            // No daemon socket: the client sees the connection close at once.
            let _ = tcp.shutdown(Shutdown::Both);
            continue;
        };
        let _ = std::thread::Builder::new()
            .name("gateway-relay".into())
            .stack_size(RELAY_STACK_BYTES)
            .spawn(move || relay(tcp, unix));
    }
}

/// Copies both ways until both sides are done: client→gateway in a helper thread,
/// gateway→client in this one. Each direction's end is passed on as a half-close.
pub fn relay(tcp: TcpStream, unix: UnixStream) {
    let (Ok(tcp_reader), Ok(unix_writer)) = (tcp.try_clone(), unix.try_clone()) else {
        return;
    };
    let upstream = std::thread::Builder::new()
        .name("gateway-relay-up".into())
        .stack_size(RELAY_STACK_BYTES)
        .spawn(move || copy_then_close(tcp_reader, unix_writer));
    copy_then_close(unix, tcp);
    if let Ok(handle) = upstream {
        let _ = handle.join();
    }
}

/// A stream whose writing half can be closed on its own.
trait HalfClose {
    fn close_write(&self);
}

impl HalfClose for TcpStream {
    fn close_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl HalfClose for UnixStream {
    fn close_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

fn copy_then_close<R: Read, W: Write + HalfClose>(mut from: R, mut to: W) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    to.close_write();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn relays_both_ways_with_half_close() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("gateway.sock");
        let gateway = UnixListener::bind(&socket).unwrap();
        let echo = std::thread::spawn(move || {
            let (mut conn, _) = gateway.accept().unwrap();
            let mut request = Vec::new();
            conn.read_to_end(&mut request).unwrap();
            conn.write_all(b"echo:").unwrap();
            conn.write_all(&request).unwrap();
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        spawn_relay("test-relay", listener, socket).unwrap();
        let mut client = TcpStream::connect(address).unwrap();
        client.write_all(b"hello").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "echo:hello");
        echo.join().unwrap();
    }

    #[test]
    fn a_missing_socket_closes_the_connection_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        spawn_relay("test-relay", listener, dir.path().join("absent.sock")).unwrap();
        let mut client = TcpStream::connect(address).unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let _ = client.write_all(b"CONNECT example.org:443 HTTP/1.1\r\n\r\n");
        let mut answer = Vec::new();
        let read = client.read_to_end(&mut answer);
        assert!(answer.is_empty(), "{read:?} {answer:?}");
    }
}
