//! The egress proxy: the one way out of a chat's sandbox besides the model. An HTTP `CONNECT`
//! proxy on its own unix socket (`<data_dir>/run/gateway/proxy.sock`, beside the gateway's, so
//! the sandbox's bind mount carries it; the sandbox's init relays `127.0.0.1:7825` to it) that
//! tunnels to hosts on the chat's allowlist and nowhere else.
//!
//! For each connection it:
//! * accepts `CONNECT host:port` only (anything else: 405; plain `http://` is never proxied,
//!   because the agent's TLS keeps the proxy out of the content and the host name is all there
//!   is to check);
//! * knows the chat by `Proxy-Authorization: Basic` carrying the chat's gateway token (as user
//!   name or password), looked up like the gateway's (by hash, compared in constant time);
//!   none or an unknown one: 407;
//! * checks the port against `gateway.allow_ports` and the host against `gateway.allow_hosts`
//!   and the chat's `gateway.chat_allow_hosts` ([`HostPattern`]); otherwise 403 with a body
//!   naming the host and the setting that would allow it, and no connection is attempted;
//! * resolves the name itself (an address from the client is only used when the allowlist
//!   holds that very IP literal) and drops private, loopback and link-local results unless the
//!   name is in `gateway.allow_private_hosts`, so an allowed public name cannot be pointed at
//!   the host's or the LAN's services; it connects to exactly the addresses it checked;
//! * answers `200 Connection established` and copies bytes both ways until both sides close.
//!
//! Every connection is logged (chat, host, port, bytes each way, outcome) and counted
//! ([`EgressStats`]). Without root there is no network namespace, so nothing forces an agent
//! through this proxy and the daemon does not offer it then (see `model_env`); it is served
//! on the unix socket only.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UnixListener, UnixStream};

use super::{Gateway, TOKEN_PREFIX};
use crate::config::GatewayConfig;

/// The egress proxy's socket file, in the gateway's socket directory.
pub const PROXY_SOCKET_NAME: &str = "proxy.sock";
/// Where the agent reaches the proxy inside a chat's network namespace (the init's relay).
pub const NAMESPACE_PROXY_ADDR: &str = "127.0.0.1:7825";
/// A request head larger than this is refused (a CONNECT head is a few hundred bytes).
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// A client that has not sent its whole request head by then is dropped.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Tunnels one chat may have open (or opening) at once: the daemon's descriptors are shared
/// by every chat and the model gateway, so one chat must not be able to use them all up.
pub const MAX_TUNNELS_PER_CHAT: usize = 64;

/// One allowlist entry, as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this host name (lowercase, no trailing dot).
    Name(String),
    /// Every name below this domain (from `*.domain`), not the domain itself.
    Subdomains(String),
    /// Exactly this address, written as an IP literal on purpose (private ones included).
    Ip(IpAddr),
}

/// The host of a `CONNECT` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetHost {
    Name(String),
    Ip(IpAddr),
}

impl std::fmt::Display for TargetHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetHost::Name(name) => f.write_str(name),
            TargetHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            TargetHost::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl HostPattern {
    /// Parses an allowlist entry; the error says what to write instead.
    pub fn parse(entry: &str) -> Result<HostPattern, String> {
        let text = entry.trim();
        if text.is_empty() {
            return Err("empty host".into());
        }
        if text.contains("://") {
            return Err("no scheme: write the host name alone, e.g. \"registry.npmjs.org\"".into());
        }
        if text.contains('/') {
            return Err("no path: write the host name alone, e.g. \"registry.npmjs.org\"".into());
        }
        if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            return inner
                .parse::<Ipv6Addr>()
                .map(|ip| HostPattern::Ip(IpAddr::V6(ip)))
                .map_err(|_| "not an IPv6 address between the brackets".into());
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(HostPattern::Ip(ip));
        }
        if text.contains(':') {
            return Err("no port: the ports allowed are gateway.allow_ports".into());
        }
        if let Some(domain) = text.strip_prefix("*.") {
            let domain = host_name(domain)?;
            if !domain.contains('.') {
                return Err(
                    "a wildcard needs a domain with at least two labels (\"*.example.com\")".into(),
                );
            }
            return Ok(HostPattern::Subdomains(domain));
        }
        if text.contains('*') {
            return Err("a wildcard may only be a leading \"*.\"".into());
        }
        host_name(text).map(HostPattern::Name)
    }

    pub fn matches(&self, host: &TargetHost) -> bool {
        match (self, host) {
            (HostPattern::Name(pattern), TargetHost::Name(name)) => pattern == name,
            (HostPattern::Subdomains(domain), TargetHost::Name(name)) => name
                .strip_suffix(domain.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
            (HostPattern::Ip(pattern), TargetHost::Ip(ip)) => pattern == ip,
            _ => false,
        }
    }
}

/// A DNS host name, lowercased, without a trailing dot.
fn host_name(text: &str) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err("a host name has 1 to 253 characters".into());
    }
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(format!(
                "{name:?} is not a host name (letters, digits and '-' in dot-separated labels)"
            ));
        }
    }
    // The resolver reads "10.1" or "2130706433" as addresses; no real top-level domain is
    // numeric, so such a "name" is an address in disguise.
    if name
        .rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "{name:?} is neither a host name nor a complete IP address"
        ));
    }
    Ok(name)
}

/// Parses a `CONNECT` target, `host:port` or `[v6]:port`.
pub fn parse_authority(authority: &str) -> Result<(TargetHost, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (ip, port) = rest
            .split_once("]:")
            .ok_or_else(|| format!("{authority:?} is not [address]:port"))?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| format!("{authority:?} holds no IPv6 address"))?;
        (TargetHost::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| format!("{authority:?} is not host:port"))?;
        let host = match host.parse::<Ipv4Addr>() {
            Ok(ip) => TargetHost::Ip(IpAddr::V4(ip)),
            Err(_) => TargetHost::Name(host_name(host)?),
        };
        (host, port)
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{authority:?} has no valid port"))?;
    Ok((host, port))
}

/// Whether `ip` is an ordinary address on the internet: not loopback, private, link-local,
/// shared (CGNAT), multicast, documentation, reserved, or an IPv6 form of one of those.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                // ::/96 (IPv4-compatible), fc00::/7 (unique local), fe80::/10 (link-local),
                // fec0::/10 (site-local), 64:ff9b::/96 (NAT64: some IPv4 behind it),
                // 2001:db8::/32 (documentation).
                || s[..6].iter().all(|x| *x == 0)
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x64 && s[1] == 0xff9b)
                || (s[0] == 0x2001 && s[1] == 0xdb8))
        }
    }
}

/// The allowlists, parsed once at start.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    every_chat: Vec<HostPattern>,
    per_chat: HashMap<String, Vec<HostPattern>>,
    ports: Vec<u16>,
    private_names: Vec<String>,
    connect_timeout: Duration,
}

impl EgressPolicy {
    pub fn from_config(config: &GatewayConfig) -> Result<EgressPolicy, String> {
        let parse = |entries: &[String]| -> Result<Vec<HostPattern>, String> {
            entries
                .iter()
                .map(|e| HostPattern::parse(e).map_err(|why| format!("{e:?}: {why}")))
                .collect()
        };
        let mut per_chat = HashMap::new();
        for (chat, entries) in &config.chat_allow_hosts {
            per_chat.insert(chat.clone(), parse(entries)?);
        }
        let private_names = parse(&config.allow_private_hosts)?
            .into_iter()
            .filter_map(|p| match p {
                HostPattern::Name(name) => Some(name),
                _ => None,
            })
            .collect();
        Ok(EgressPolicy {
            every_chat: parse(&config.allow_hosts)?,
            per_chat,
            ports: config.allow_ports.clone(),
            private_names,
            connect_timeout: Duration::from_secs(config.connect_timeout_secs.max(1)),
        })
    }

    /// Whether `chat_id` may reach any host at all.
    pub fn has_hosts(&self, chat_id: &str) -> bool {
        !self.every_chat.is_empty() || self.per_chat.get(chat_id).is_some_and(|l| !l.is_empty())
    }

    /// Whether `chat_id`'s allowlists hold `host`.
    pub fn allows_host(&self, chat_id: &str, host: &TargetHost) -> bool {
        self.every_chat
            .iter()
            .chain(self.per_chat.get(chat_id).into_iter().flatten())
            .any(|p| p.matches(host))
    }

    pub fn allows_port(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }

    fn private_allowed(&self, name: &str) -> bool {
        self.private_names.iter().any(|n| n == name)
    }
}

/// Counters of the proxy's connections since start.
#[derive(Debug, Default)]
pub struct EgressCounters {
    tunnels: AtomicU64,
    refused_auth: AtomicU64,
    refused_target: AtomicU64,
    refused_method: AtomicU64,
    bad_requests: AtomicU64,
    failed: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    refused_busy: AtomicU64,
    /// Open tunnels by chat (entries go when they reach zero).
    open: Mutex<HashMap<String, usize>>,
}

/// One chat's claim on a tunnel, given back when dropped.
struct TunnelSlot<'a> {
    counters: &'a EgressCounters,
    chat_id: String,
}

impl Drop for TunnelSlot<'_> {
    fn drop(&mut self) {
        if let Ok(mut open) = self.counters.open.lock()
            && let Some(count) = open.get_mut(&self.chat_id)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.chat_id);
            }
        }
    }
}

/// A snapshot of [`EgressCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EgressStats {
    /// Tunnels opened (the upstream connection succeeded).
    pub tunnels: u64,
    /// 407: no token, or one that belongs to no chat.
    pub refused_auth: u64,
    /// 403: host or port not allowed, or the name resolved only to private addresses.
    pub refused_target: u64,
    /// 405: not a CONNECT.
    pub refused_method: u64,
    /// 400: an unreadable request.
    pub bad_requests: u64,
    /// 502/503: the host did not resolve or answer, or the store could not be read.
    pub failed: u64,
    /// Bytes from agents to hosts, and back, over finished tunnels.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// 429: the chat already had [`MAX_TUNNELS_PER_CHAT`] tunnels open.
    pub refused_busy: u64,
    /// Tunnels open (or connecting) now.
    pub open_now: u64,
}

impl EgressCounters {
    pub fn snapshot(&self) -> EgressStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EgressStats {
            tunnels: get(&self.tunnels),
            refused_auth: get(&self.refused_auth),
            refused_target: get(&self.refused_target),
            refused_method: get(&self.refused_method),
            bad_requests: get(&self.bad_requests),
            failed: get(&self.failed),
            bytes_up: get(&self.bytes_up),
            bytes_down: get(&self.bytes_down),
            refused_busy: get(&self.refused_busy),
            open_now: self
                .open
                .lock()
                .map(|open| open.values().sum::<usize>() as u64)
                .unwrap_or(0),
        }
    }

    /// A tunnel slot for `chat_id`, unless it has [`MAX_TUNNELS_PER_CHAT`] already.
    fn claim(&self, chat_id: &str) -> Option<TunnelSlot<'_>> {
        let mut open = self.open.lock().ok()?;
        let count = open.entry(chat_id.to_owned()).or_insert(0);
        if *count >= MAX_TUNNELS_PER_CHAT {
            return None;
        }
        *count += 1;
        Some(TunnelSlot {
            counters: self,
            chat_id: chat_id.to_owned(),
        })
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Accepts proxy connections until the listener fails; each is handled on its own task.
pub(super) async fn serve(listener: UnixListener, gateway: Arc<Gateway>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let gateway = gateway.clone();
                tokio::spawn(async move { handle(stream, &gateway).await });
            }
            Err(e) => {
                // Out of descriptors, say: wait a moment instead of spinning.
                tracing::warn!(error = %e, "egress proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A request head as far as the proxy cares.
struct Head {
    method: String,
    target: String,
    proxy_authorization: Option<String>,
    /// Bytes the client sent after the head (the start of the tunnel's data).
    rest: Vec<u8>,
}

/// Reads up to the end of the request head; the error says why the request is unusable.
async fn read_head(stream: &mut UnixStream) -> Result<Head, &'static str> {
    let mut buffer = Vec::with_capacity(1024);
    let end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buffer.len() >= MAX_HEAD_BYTES {
            return Err("request head too large");
        }
        let mut chunk = [0u8; 1024];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| "reading the request failed")?;
        if n == 0 {
            return Err("the client closed before the request head ended");
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let text = std::str::from_utf8(&buffer[..end]).map_err(|_| "request head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version), None) = (
        request_line.next(),
        request_line.next(),
        request_line.next(),
        request_line.next(),
    ) else {
        return Err("malformed request line");
    };
    if !version.starts_with("HTTP/1.") {
        return Err("not HTTP/1.x");
    }
    let mut proxy_authorization = None;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or("malformed header line")?;
        if name.trim().eq_ignore_ascii_case("proxy-authorization") {
            proxy_authorization = Some(value.trim().to_owned());
        }
    }
    Ok(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        proxy_authorization,
        rest: buffer[end + 4..].to_vec(),
    })
}

/// The gateway token in a `Proxy-Authorization: Basic …` value (as user name or password).
fn basic_token(value: &str) -> Option<String> {
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
    let token = if password.starts_with(TOKEN_PREFIX) {
        password
    } else {
        user
    };
    (!token.is_empty()).then(|| token.to_owned())
}

/// Writes a final answer and closes the connection.
async fn answer(stream: &mut UnixStream, status: &str, extra_headers: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\n{extra_headers}content-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn handle(mut stream: UnixStream, gateway: &Gateway) {
    let counters = &gateway.egress_counters;
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(why)) => {
            EgressCounters::bump(&counters.bad_requests);
            tracing::info!(
                outcome = "bad_request",
                reason = why,
                "egress proxy: refused"
            );
            answer(&mut stream, "400 Bad Request", "", &format!("{why}\n")).await;
            return;
        }
        Err(_) => {
            EgressCounters::bump(&counters.bad_requests);
            tracing::info!(
                outcome = "bad_request",
                reason = "head timeout",
                "egress proxy: refused"
            );
            return;
        }
    };
    if !head.method.eq_ignore_ascii_case("CONNECT") {
        EgressCounters::bump(&counters.refused_method);
        tracing::info!(outcome = "refused_method", method = %head.method, "egress proxy: refused");
        answer(
            &mut stream,
            "405 Method Not Allowed",
            "allow: CONNECT\r\n",
            "picortex's egress proxy only tunnels (CONNECT host:port, as for https://); plain http:// requests are not proxied.\n",
        )
        .await;
        return;
    }
    let chat_id = match head.proxy_authorization.as_deref().and_then(basic_token) {
        None => None,
        Some(token) => match gateway.chat_of(&token).await {
            Ok(chat) => chat,
            Err(e) => {
                EgressCounters::bump(&counters.failed);
                tracing::error!(error = %e, "egress proxy: cannot read tokens");
                answer(
                    &mut stream,
                    "503 Service Unavailable",
                    "",
                    "the proxy cannot read its store\n",
                )
                .await;
                return;
            }
        },
    };
    let Some(chat_id) = chat_id else {
        EgressCounters::bump(&counters.refused_auth);
        tracing::warn!(outcome = "refused_auth", target = %head.target, "egress proxy: refused");
        answer(
            &mut stream,
            "407 Proxy Authentication Required",
            "proxy-authenticate: Basic realm=\"picortex\"\r\n",
            "picortex's egress proxy needs this chat's gateway token as the proxy user (http://<token>@127.0.0.1:7825, as in HTTPS_PROXY).\n",
        )
        .await;
        return;
    };
    let (host, port) = match parse_authority(&head.target) {
        Ok(target) => target,
        Err(why) => {
            EgressCounters::bump(&counters.bad_requests);
            tracing::info!(%chat_id, outcome = "bad_request", reason = %why, "egress proxy: refused");
            answer(&mut stream, "400 Bad Request", "", &format!("{why}\n")).await;
            return;
        }
    };
    let policy = &gateway.egress;
    let refusal = if !policy.allows_host(&chat_id, &host) {
        Some(format!(
            "picortex: {host} is not on this chat's egress allowlist, so the proxy did not connect to it.\n\
             To allow it, the owner adds it to the daemon's configuration and restarts it:\n\
             [gateway.chat_allow_hosts] \"{chat_id}\" = [\"{host}\"] for this chat, or [gateway] allow_hosts = [\"{host}\"] for every chat.\n"
        ))
    } else if !policy.allows_port(port) {
        Some(format!(
            "picortex: port {port} is not allowed for egress ({host} is); the owner can add it to [gateway] allow_ports.\n"
        ))
    } else {
        None
    };
    if let Some(body) = refusal {
        EgressCounters::bump(&counters.refused_target);
        tracing::info!(%chat_id, %host, port, outcome = "refused_host", "egress proxy: refused");
        answer(&mut stream, "403 Forbidden", "", &body).await;
        return;
    }
    let Some(_slot) = counters.claim(&chat_id) else {
        EgressCounters::bump(&counters.refused_busy);
        tracing::warn!(%chat_id, %host, port, outcome = "refused_busy", "egress proxy: refused");
        answer(
            &mut stream,
            "429 Too Many Requests",
            "",
            &format!(
                "picortex: this chat already has {MAX_TUNNELS_PER_CHAT} connections open through the proxy; close some first.\n"
            ),
        )
        .await;
        return;
    };
    let addresses = match resolve(policy, &host, port).await {
        Ok(addresses) => addresses,
        Err(Unreachable::Private) => {
            EgressCounters::bump(&counters.refused_target);
            tracing::warn!(%chat_id, %host, port, outcome = "refused_private", "egress proxy: refused");
            answer(
                &mut stream,
                "403 Forbidden",
                "",
                &format!(
                    "picortex: {host} resolves only to private, loopback or link-local addresses, which the proxy does not connect to.\n\
                     If that is intended (a server on the LAN), the owner adds it to [gateway] allow_private_hosts.\n"
                ),
            )
            .await;
            return;
        }
        Err(Unreachable::Unresolved(why)) => {
            EgressCounters::bump(&counters.failed);
            tracing::info!(%chat_id, %host, port, outcome = "unresolved", reason = %why, "egress proxy: failed");
            answer(
                &mut stream,
                "502 Bad Gateway",
                "",
                &format!("picortex: {host} did not resolve: {why}\n"),
            )
            .await;
            return;
        }
    };
    let upstream = match connect(&addresses, policy.connect_timeout).await {
        Ok(upstream) => upstream,
        Err(why) => {
            EgressCounters::bump(&counters.failed);
            tracing::info!(%chat_id, %host, port, outcome = "connect_failed", reason = %why, "egress proxy: failed");
            answer(
                &mut stream,
                "502 Bad Gateway",
                "",
                &format!("picortex: could not connect to {host}:{port}: {why}\n"),
            )
            .await;
            return;
        }
    };
    EgressCounters::bump(&counters.tunnels);
    let peer = upstream.peer_addr().ok();
    tracing::info!(%chat_id, %host, port, ?peer, "egress proxy: tunnel open");
    let (up, down, outcome) = tunnel(stream, upstream, &head.rest).await;
    counters.bytes_up.fetch_add(up, Ordering::Relaxed);
    counters.bytes_down.fetch_add(down, Ordering::Relaxed);
    tracing::info!(
        %chat_id,
        %host,
        port,
        bytes_up = up,
        bytes_down = down,
        outcome,
        "egress proxy: tunnel closed"
    );
}

enum Unreachable {
    Private,
    Unresolved(String),
}

/// The addresses to try for `host`: an allowlisted IP literal as it is; a name as the resolver
/// answers, without private addresses unless the name may have them.
async fn resolve(
    policy: &EgressPolicy,
    host: &TargetHost,
    port: u16,
) -> Result<Vec<SocketAddr>, Unreachable> {
    let name = match host {
        TargetHost::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, port)]),
        TargetHost::Name(name) => name,
    };
    let found: Vec<SocketAddr> = tokio::time::timeout(
        policy.connect_timeout,
        tokio::net::lookup_host((name.as_str(), port)),
    )
    .await
    .map_err(|_| Unreachable::Unresolved("the resolver timed out".into()))?
    .map_err(|e| Unreachable::Unresolved(e.to_string()))?
    .collect();
    if found.is_empty() {
        return Err(Unreachable::Unresolved("no addresses".into()));
    }
    if policy.private_allowed(name) {
        return Ok(found);
    }
    let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
    if public.is_empty() {
        return Err(Unreachable::Private);
    }
    Ok(public)
}

/// Connects to the first of `addresses` that answers.
async fn connect(addresses: &[SocketAddr], timeout: Duration) -> Result<TcpStream, String> {
    let mut last = String::from("no address");
    for address in addresses {
        match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = format!("{address}: {e}"),
            Err(_) => last = format!("{address}: timed out after {timeout:?}"),
        }
    }
    Err(last)
}

/// Tells the client the tunnel is up and copies both ways; (bytes up, bytes down, outcome).
async fn tunnel(
    mut client: UnixStream,
    mut upstream: TcpStream,
    early: &[u8],
) -> (u64, u64, &'static str) {
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return (0, 0, "client_gone");
    }
    if !early.is_empty() && upstream.write_all(early).await.is_err() {
        return (0, 0, "upstream_closed");
    }
    let early = early.len() as u64;
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((up, down)) => (up + early, down, "closed"),
        // The byte counts of a broken copy are lost with it; the log says it broke.
        Err(_) => (early, 0, "broken"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> TargetHost {
        TargetHost::Name(s.into())
    }

    #[test]
    fn patterns_parse_and_refuse_with_reasons() {
        assert_eq!(
            HostPattern::parse(" Registry.NPMjs.org. ").unwrap(),
            HostPattern::Name("registry.npmjs.org".into())
        );
        assert_eq!(
            HostPattern::parse("*.pythonhosted.org").unwrap(),
            HostPattern::Subdomains("pythonhosted.org".into())
        );
        assert_eq!(
            HostPattern::parse("10.0.0.5").unwrap(),
            HostPattern::Ip("10.0.0.5".parse().unwrap())
        );
        assert_eq!(
            HostPattern::parse("[fd00::5]").unwrap(),
            HostPattern::Ip("fd00::5".parse().unwrap())
        );
        for (bad, why) in [
            ("https://pypi.org", "scheme"),
            ("pypi.org/simple", "path"),
            ("pypi.org:443", "port"),
            ("[::1]:443", "port"),
            ("*.com", "two labels"),
            ("a.*.com", "leading"),
            ("", "empty"),
            ("under_score.org", "host name"),
            ("10.1", "complete IP"),
            ("2130706433", "complete IP"),
            ("-x.org", "host name"),
        ] {
            let error = HostPattern::parse(bad).unwrap_err();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
    }

    #[test]
    fn patterns_match_exactly_or_below_a_domain() {
        let exact = HostPattern::parse("pypi.org").unwrap();
        assert!(exact.matches(&name("pypi.org")));
        assert!(!exact.matches(&name("evil-pypi.org")));
        assert!(!exact.matches(&name("x.pypi.org")));
        let below = HostPattern::parse("*.pythonhosted.org").unwrap();
        assert!(below.matches(&name("files.pythonhosted.org")));
        assert!(below.matches(&name("a.b.pythonhosted.org")));
        assert!(!below.matches(&name("pythonhosted.org")));
        assert!(!below.matches(&name("evilpythonhosted.org")));
        let ip = HostPattern::parse("127.0.0.1").unwrap();
        assert!(ip.matches(&TargetHost::Ip("127.0.0.1".parse().unwrap())));
        assert!(!ip.matches(&name("localhost")));
        assert!(!exact.matches(&TargetHost::Ip("151.101.0.223".parse().unwrap())));
    }

    #[test]
    fn authorities_parse() {
        assert_eq!(
            parse_authority("PyPI.org:443").unwrap(),
            (name("pypi.org"), 443)
        );
        assert_eq!(
            parse_authority("[::1]:8443").unwrap(),
            (TargetHost::Ip("::1".parse().unwrap()), 8443)
        );
        assert_eq!(
            parse_authority("127.0.0.1:80").unwrap(),
            (TargetHost::Ip("127.0.0.1".parse().unwrap()), 80)
        );
        for bad in [
            "pypi.org",
            "pypi.org:0",
            "pypi.org:x",
            "::1:443",
            "0x7f.1:443",
            "127.1:443",
        ] {
            assert!(parse_authority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_addresses_are_recognised() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::ffff:127.0.0.1",
            "fd00::1",
            "fe80::1",
            "64:ff9b::7f00:1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["151.101.0.223", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn the_token_comes_from_basic_auth_as_user_or_password() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            basic_token(&format!("Basic {}", b64("pcx_gw_abc:"))).as_deref(),
            Some("pcx_gw_abc")
        );
        assert_eq!(
            basic_token(&format!("basic {}", b64("x:pcx_gw_abc"))).as_deref(),
            Some("pcx_gw_abc")
        );
        assert_eq!(basic_token(&format!("Bearer {}", b64("pcx_gw_abc:"))), None);
        assert_eq!(basic_token("Basic !!!"), None);
        assert_eq!(basic_token(&format!("Basic {}", b64(":"))), None);
    }
}
