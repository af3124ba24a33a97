//! A fake SMTP relay (RFC 5321) on `127.0.0.1`, for tests that drive a real SMTP client against it.
//!
//! It owns the server side of the conversation: plain text, STARTTLS (RFC 3207) or implicit TLS,
//! `AUTH PLAIN` and `AUTH LOGIN` (RFC 4954), scripted refusals per recipient, and several messages
//! per connection. It records what it accepted ([`Received`]) and how many connections it took,
//! and [`Received`] can pick a message apart (headers, MIME parts) so tests assert on content, not
//! on bytes. Nothing is relayed anywhere.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::ServerConfig;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// How the server secures its connections.
#[derive(Debug, Clone, Default)]
pub enum Security {
    /// Plain text throughout.
    #[default]
    Plain,
    /// Plain text until the client sends `STARTTLS`; mail is refused (530) before that.
    StartTls(Arc<ServerConfig>),
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls(Arc<ServerConfig>),
}

/// How the fake server behaves; [`Options::default`] is a plain relay that accepts everything.
#[derive(Debug, Clone, Default)]
pub struct Options {
    security: Security,
    credentials: Option<(String, String)>,
    rcpt_replies: HashMap<String, String>,
}

impl Options {
    /// A relay that accepts everything over `security`.
    pub fn new(security: Security) -> Self {
        Self { security, ..Self::default() }
    }

    /// Requires `AUTH` with these credentials before `MAIL` (530 otherwise, 535 for wrong ones).
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((username.into(), password.into()));
        self
    }

    /// Refuses `RCPT TO:<address>` with `reply`, a whole reply line such as
    /// `550 5.1.1 <x@example.com>: Recipient address rejected: User unknown`.
    ///
    /// # Panics
    ///
    /// When `reply` is not a 4xx or 5xx reply: this scripts refusals only.
    pub fn rcpt_reply(mut self, address: impl Into<String>, reply: impl Into<String>) -> Self {
        let reply = reply.into();
        assert!(
            matches!(reply.as_bytes(), [b'4' | b'5', b'0'..=b'9', b'0'..=b'9', b' ', ..]),
            "a scripted RCPT reply must be a 4xx or 5xx reply line, got {reply:?}"
        );
        self.rcpt_replies.insert(address.into().to_ascii_lowercase(), reply);
        self
    }
}

/// One message the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The name the client gave in `EHLO` or `HELO`.
    pub helo: String,
    /// Whether the session was encrypted when the message was sent.
    pub tls: bool,
    /// The user the session authenticated as, if it did.
    pub user: Option<String>,
    /// The envelope sender (`MAIL FROM`), without angle brackets; empty for the null sender.
    pub from: String,
    /// The envelope recipients the server accepted, in order.
    pub recipients: Vec<String>,
    /// The message as sent after `DATA`, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
}

/// One MIME leaf of a received message, with its transfer encoding undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The part's `Content-Type` as sent, e.g. `text/plain; charset=utf-8`.
    pub content_type: String,
    /// The decoded body, read as UTF-8 (invalid sequences replaced).
    pub body: String,
}

impl Part {
    /// The media type alone, lower case: `text/plain` for `Text/Plain; charset=utf-8`.
    pub fn media_type(&self) -> String {
        media_type(&self.content_type)
    }
}

impl Received {
    /// The first header called `name` (any case), unfolded, exactly as sent: encoded words stay
    /// encoded (see [`Received::decoded_header`]).
    pub fn header(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.data);
        header(&split_entity(&text).0, name)
    }

    /// Like [`Received::header`], with RFC 2047 encoded words (UTF-8 or ASCII) decoded.
    pub fn decoded_header(&self, name: &str) -> Option<String> {
        self.header(name).map(|value| decode_encoded_words(&value))
    }

    /// The body parts: each part of a top-level `multipart/*` body, or the body itself as one
    /// part. One level deep, which is all a `multipart/alternative` email needs.
    pub fn parts(&self) -> Vec<Part> {
        let text = String::from_utf8_lossy(&self.data);
        let (headers, body) = split_entity(&text);
        let content_type = header(&headers, "Content-Type").unwrap_or_default();
        match parameter(&content_type, "boundary") {
            Some(boundary) if media_type(&content_type).starts_with("multipart/") => {
                multipart_bodies(body, &boundary).iter().map(|entity| Part::from_entity(entity)).collect()
            }
            _ => vec![Part::from_headers(&headers, body)],
        }
    }

    /// The first part whose media type is `media_type` (`text/plain`, `text/html`...).
    pub fn part(&self, media_type: &str) -> Option<Part> {
        self.parts().into_iter().find(|p| p.media_type().eq_ignore_ascii_case(media_type))
    }
}

/// A running fake SMTP server; it stops, connections included, when dropped.
#[derive(Debug)]
pub struct FakeSmtp {
    port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

/// What the sessions share with the test.
#[derive(Debug)]
struct Shared {
    options: Options,
    connections: AtomicUsize,
    // A watch channel rather than a mutex so that tests can wait for messages without polling.
    messages: watch::Sender<Vec<Received>>,
}

impl FakeSmtp {
    /// Starts a server on `127.0.0.1` with an ephemeral port.
    ///
    /// # Panics
    ///
    /// When the loopback address cannot be bound.
    pub async fn start(options: Options) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("a bound listener has an address").port();
        let shared =
            Arc::new(Shared { options, connections: AtomicUsize::new(0), messages: watch::Sender::new(Vec::new()) });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Self { port, shared, accept }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.messages.borrow().clone()
    }

    /// How many connections the server has accepted (TLS handshakes that failed included).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` messages were accepted, and returns them all.
    ///
    /// # Panics
    ///
    /// When fewer than `n` arrived within `timeout`, saying how many did.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let mut messages = self.shared.messages.subscribe();
        // `wait_for` fails only once the sender is dropped, and `self` holds it.
        let arrived = tokio::time::timeout(timeout, messages.wait_for(|m| m.len() >= n)).await;
        match arrived {
            Ok(Ok(messages)) => messages.clone(),
            _ => panic!("expected {n} messages within {timeout:?}, got {}", self.messages().len()),
        }
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        // Dropping the accept task drops its `JoinSet`, which aborts every open session.
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut sessions = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Accept errors are per connection (the peer gave up, out of descriptors): keep
            // serving, after a pause so that a lasting one does not spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(&shared);
        sessions.spawn(async move {
            // A client that hangs up or fails the TLS handshake ends its session, nothing more:
            // tests judge the outcome by what was received and what the client reported.
            let _ = serve(stream, &shared).await;
        });
        while sessions.try_join_next().is_some() {}
    }
}

/// Runs one connection from the first byte to the last, through a STARTTLS upgrade if any.
async fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    match &shared.options.security {
        Security::Plain => {
            Session::new(shared, false).run(stream, true).await?;
        }
        Security::Tls(config) => {
            let stream = TlsAcceptor::from(Arc::clone(config)).accept(stream).await?;
            Session::new(shared, true).run(stream, true).await?;
        }
        Security::StartTls(config) => {
            if let Ended::StartTls(stream) = Session::new(shared, false).run(stream, true).await? {
                let stream = TlsAcceptor::from(Arc::clone(config)).accept(stream).await?;
                // RFC 3207 section 4.2: nothing learnt before TLS (EHLO name, AUTH) carries over,
                // and there is no new greeting.
                Session::new(shared, true).run(stream, false).await?;
            }
        }
    }
    Ok(())
}

/// A byte stream a session runs over: TCP or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How a session ended.
enum Ended<S> {
    /// The client quit or went away.
    Closed,
    /// The client asked for TLS: the caller performs the handshake on the returned stream.
    StartTls(S),
}

/// Why an AUTH challenge got no usable response.
enum NoAnswer {
    /// `*`: the client gave up (RFC 4954 section 4).
    Cancelled,
    /// Not base64.
    Malformed,
    /// The connection ended.
    Closed,
}

/// The state of one SMTP session (one connection, or its part after STARTTLS).
struct Session<'a> {
    shared: &'a Shared,
    tls: bool,
    helo: Option<String>,
    user: Option<String>,
    from: Option<String>,
    recipients: Vec<String>,
}

const OK: &str = "250 2.0.0 OK";

impl<'a> Session<'a> {
    fn new(shared: &'a Shared, tls: bool) -> Self {
        Self { shared, tls, helo: None, user: None, from: None, recipients: Vec::new() }
    }

    async fn run<S: Stream>(mut self, stream: S, greet: bool) -> io::Result<Ended<S>> {
        let mut io = BufReader::new(stream);
        if greet {
            send(&mut io, "220 localhost ESMTP herald-testkit").await?;
        }
        loop {
            let Some(line) = read_line(&mut io).await? else { return Ok(Ended::Closed) };
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
            let (verb, arg) = (verb.to_ascii_uppercase(), arg.trim());
            // RFC 3207 section 4: before TLS, only these commands are allowed when TLS is required.
            let reply = if self.needs_tls()
                && !matches!(verb.as_str(), "EHLO" | "HELO" | "NOOP" | "RSET" | "QUIT" | "STARTTLS")
            {
                "530 5.7.0 Must issue a STARTTLS command first".to_owned()
            } else {
                match verb.as_str() {
                    "EHLO" => self.ehlo(arg),
                    "HELO" => self.helo(arg),
                    "MAIL" => self.mail(arg),
                    "RCPT" => self.rcpt(arg),
                    "DATA" => match self.data(&mut io).await? {
                        Some(reply) => reply,
                        None => return Ok(Ended::Closed),
                    },
                    "AUTH" => match self.auth(&mut io, arg).await? {
                        Some(reply) => reply,
                        None => return Ok(Ended::Closed),
                    },
                    "RSET" => {
                        self.reset();
                        OK.to_owned()
                    }
                    "NOOP" => OK.to_owned(),
                    "QUIT" => {
                        send(&mut io, "221 2.0.0 Bye").await?;
                        return Ok(Ended::Closed);
                    }
                    "STARTTLS" if self.needs_tls() => {
                        send(&mut io, "220 2.0.0 Ready to start TLS").await?;
                        // Bytes sent after STARTTLS but before the handshake would be read as if
                        // they came over TLS (the CVE-2011-0411 injection): refuse the connection.
                        if !io.buffer().is_empty() {
                            return Err(io::Error::new(io::ErrorKind::InvalidData, "data pipelined after STARTTLS"));
                        }
                        return Ok(Ended::StartTls(io.into_inner()));
                    }
                    _ => "502 5.5.2 Command not recognized".to_owned(),
                }
            };
            send(&mut io, &reply).await?;
        }
    }

    /// In STARTTLS mode and not upgraded yet.
    fn needs_tls(&self) -> bool {
        !self.tls && matches!(self.shared.options.security, Security::StartTls(_))
    }

    /// Forgets the mail transaction in progress, if any.
    fn reset(&mut self) {
        self.from = None;
        self.recipients.clear();
    }

    fn ehlo(&mut self, name: &str) -> String {
        if name.is_empty() {
            return "501 5.5.4 Syntax: EHLO hostname".to_owned();
        }
        self.helo = Some(name.to_owned());
        self.reset();
        let mut lines = vec![format!("localhost greets {name}"), "8BITMIME".into(), "SMTPUTF8".into()];
        if self.needs_tls() {
            lines.push("STARTTLS".into());
        } else if self.shared.options.credentials.is_some() {
            // Not offered before STARTTLS: passwords never travel in clear where TLS is available.
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.push("ENHANCEDSTATUSCODES".into());
        let last = lines.len() - 1;
        let lines: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, line)| format!("250{}{line}", if i == last { ' ' } else { '-' }))
            .collect();
        lines.join("\r\n")
    }

    fn helo(&mut self, name: &str) -> String {
        if name.is_empty() {
            return "501 5.5.4 Syntax: HELO hostname".to_owned();
        }
        self.helo = Some(name.to_owned());
        self.reset();
        "250 localhost".to_owned()
    }

    fn mail(&mut self, arg: &str) -> String {
        if self.helo.is_none() {
            return "503 5.5.1 Send EHLO or HELO first".to_owned();
        }
        if self.shared.options.credentials.is_some() && self.user.is_none() {
            return "530 5.7.0 Authentication required".to_owned();
        }
        if self.from.is_some() {
            return "503 5.5.1 Sender already given".to_owned();
        }
        let Some(address) = path(arg, "FROM:") else { return "501 5.5.4 Syntax: MAIL FROM:<address>".to_owned() };
        self.from = Some(address);
        "250 2.1.0 Sender OK".to_owned()
    }

    fn rcpt(&mut self, arg: &str) -> String {
        if self.from.is_none() {
            return "503 5.5.1 Need MAIL before RCPT".to_owned();
        }
        let Some(address) = path(arg, "TO:") else { return "501 5.5.4 Syntax: RCPT TO:<address>".to_owned() };
        if let Some(reply) = self.shared.options.rcpt_replies.get(&address.to_ascii_lowercase()) {
            return reply.clone();
        }
        self.recipients.push(address);
        "250 2.1.5 Recipient OK".to_owned()
    }

    /// `DATA`: takes the message and records it; `None` when the client went away meanwhile.
    async fn data<S: Stream>(&mut self, io: &mut BufReader<S>) -> io::Result<Option<String>> {
        let Some(from) = self.from.clone() else { return Ok(Some("503 5.5.1 Need MAIL before DATA".to_owned())) };
        if self.recipients.is_empty() {
            return Ok(Some("554 5.5.1 No valid recipients".to_owned()));
        }
        send(io, "354 End data with <CR><LF>.<CR><LF>").await?;
        let mut data = Vec::new();
        loop {
            let Some(line) = read_line(io).await? else { return Ok(None) };
            if line == b".\r\n" || line == b".\n" {
                break;
            }
            // RFC 5321 section 4.5.2: the client doubled every leading dot.
            data.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
        }
        let received = Received {
            helo: self.helo.clone().unwrap_or_default(),
            tls: self.tls,
            user: self.user.clone(),
            from,
            recipients: std::mem::take(&mut self.recipients),
            data,
        };
        self.reset();
        // Recorded before the 250 goes out, so a client that saw it can assert at once.
        let mut count = 0;
        self.shared.messages.send_modify(|messages| {
            messages.push(received);
            count = messages.len();
        });
        Ok(Some(format!("250 2.0.0 OK: queued as {count}")))
    }

    /// `AUTH PLAIN` (with or without an initial response) and `AUTH LOGIN`; `None` when the
    /// client went away in the middle.
    async fn auth<S: Stream>(&mut self, io: &mut BufReader<S>, arg: &str) -> io::Result<Option<String>> {
        let Some((username, password)) = self.shared.options.credentials.clone() else {
            return Ok(Some("502 5.5.1 AUTH not available".to_owned()));
        };
        if self.user.is_some() {
            return Ok(Some("503 5.5.1 Already authenticated".to_owned()));
        }
        if self.from.is_some() {
            return Ok(Some("503 5.5.1 AUTH not allowed during a mail transaction".to_owned()));
        }
        let (mechanism, initial) = match arg.split_once(' ') {
            Some((mechanism, initial)) => (mechanism, Some(initial.trim())),
            None => (arg, None),
        };
        let given = match mechanism.to_ascii_uppercase().as_str() {
            "PLAIN" => match challenge(io, initial, "").await? {
                // authorization identity NUL authentication identity NUL password (RFC 4616)
                Ok(bytes) => match bytes.split(|b| *b == 0).collect::<Vec<_>>()[..] {
                    [_, user, pass] => {
                        (String::from_utf8_lossy(user).into_owned(), String::from_utf8_lossy(pass).into_owned())
                    }
                    _ => return Ok(Some("501 5.5.2 Malformed PLAIN response".to_owned())),
                },
                Err(no_answer) => return Ok(no_answer.reply()),
            },
            "LOGIN" => {
                // The challenges are base64 for "Username:" and "Password:".
                let user = match challenge(io, initial, "VXNlcm5hbWU6").await? {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(no_answer) => return Ok(no_answer.reply()),
                };
                match challenge(io, None, "UGFzc3dvcmQ6").await? {
                    Ok(bytes) => (user, String::from_utf8_lossy(&bytes).into_owned()),
                    Err(no_answer) => return Ok(no_answer.reply()),
                }
            }
            _ => return Ok(Some("504 5.5.4 Unrecognized authentication mechanism".to_owned())),
        };
        if given != (username, password) {
            return Ok(Some("535 5.7.8 Authentication credentials invalid".to_owned()));
        }
        self.user = Some(given.0);
        Ok(Some("235 2.7.0 Authentication successful".to_owned()))
    }
}

impl NoAnswer {
    /// The reply that ends the AUTH exchange; `None` once the connection is gone.
    fn reply(self) -> Option<String> {
        match self {
            NoAnswer::Cancelled => Some("501 5.0.0 Authentication cancelled".to_owned()),
            NoAnswer::Malformed => Some("501 5.5.2 Cannot decode response".to_owned()),
            NoAnswer::Closed => None,
        }
    }
}

/// The client's response to an AUTH challenge: `initial` when it came with the command,
/// otherwise the line answering `334 prompt`.
async fn challenge<S: Stream>(
    io: &mut BufReader<S>,
    initial: Option<&str>,
    prompt: &str,
) -> io::Result<Result<Vec<u8>, NoAnswer>> {
    let line = match initial {
        Some(initial) => initial.to_owned(),
        None => {
            send(io, &format!("334 {prompt}")).await?;
            match read_line(io).await? {
                Some(line) => String::from_utf8_lossy(&line).trim().to_owned(),
                None => return Ok(Err(NoAnswer::Closed)),
            }
        }
    };
    Ok(match line.as_str() {
        "*" => Err(NoAnswer::Cancelled),
        // RFC 4954 section 4: "=" is an empty initial response.
        "=" => Ok(Vec::new()),
        encoded => BASE64.decode(encoded).map_err(|_| NoAnswer::Malformed),
    })
}

/// One line including its line ending, `None` at end of stream.
async fn read_line<S: Stream>(io: &mut BufReader<S>) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    Ok((io.read_until(b'\n', &mut line).await? > 0).then_some(line))
}

/// Sends one reply (several lines already joined with CRLF) and flushes it.
async fn send<S: Stream>(io: &mut BufReader<S>, reply: &str) -> io::Result<()> {
    let stream = io.get_mut();
    stream.write_all(reply.as_bytes()).await?;
    stream.write_all(b"\r\n").await?;
    stream.flush().await
}

/// The address in `FROM:<address> PARAMS` / `TO:<address>`, without brackets; `None` if malformed.
fn path(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start().strip_prefix('<')?;
    Some(rest[..rest.find('>')?].to_owned())
}

impl Part {
    /// A part from its entity text: headers, blank line, body.
    fn from_entity(entity: &str) -> Self {
        let (headers, body) = split_entity(entity);
        Self::from_headers(&headers, body)
    }

    fn from_headers(headers: &[(String, String)], body: &str) -> Self {
        // RFC 2045 section 5.2: no Content-Type means plain US-ASCII text.
        let content_type = header(headers, "Content-Type").unwrap_or_else(|| "text/plain".to_owned());
        let encoding = header(headers, "Content-Transfer-Encoding").unwrap_or_default().to_ascii_lowercase();
        let bytes = match encoding.as_str() {
            "quoted-printable" => decode_quoted_printable(body),
            "base64" => {
                let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                // An undecodable body is kept as sent, so a failing assertion shows it.
                BASE64.decode(compact).unwrap_or_else(|_| body.as_bytes().to_vec())
            }
            _ => body.as_bytes().to_vec(),
        };
        Self { content_type, body: String::from_utf8_lossy(&bytes).into_owned() }
    }
}

/// Splits a message or MIME entity into its unfolded headers and its body.
fn split_entity(text: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = match text.strip_prefix("\r\n") {
        Some(body) => ("", body),
        None => text.split_once("\r\n\r\n").unwrap_or((text, "")),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        match (line.starts_with([' ', '\t']), headers.last_mut()) {
            // RFC 5322 section 2.2.3: unfolding removes the CRLF, keeps the whitespace.
            (true, Some((_, value))) => value.push_str(line),
            _ => {
                if let Some((name, value)) = line.split_once(':') {
                    headers.push((name.trim().to_owned(), value.trim_start().to_owned()));
                }
            }
        }
    }
    for (_, value) in &mut headers {
        value.truncate(value.trim_end().len());
    }
    (headers, body)
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
}

/// `text/html` from `Text/HTML; charset=utf-8`.
fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// A parameter of a structured header value, unquoted: `boundary` of a `Content-Type`.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The entities between the delimiter lines of a multipart body (RFC 2046 section 5.1.1); the
/// CRLF before each delimiter belongs to the delimiter, not to the part.
fn multipart_bodies(body: &str, boundary: &str) -> Vec<String> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in body.split("\r\n") {
        if let Some(rest) = line.strip_prefix(&delimiter) {
            if let Some(lines) = current.take() {
                parts.push(lines.join("\r\n"));
            }
            if rest.starts_with("--") {
                break;
            }
            current = Some(Vec::new());
        } else if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    parts
}

/// Undoes quoted-printable (RFC 2045 section 6.7); a stray `=` is kept as is.
fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i + 1..];
        if bytes[i] != b'=' {
            out.push(bytes[i]);
            i += 1;
        } else if rest.starts_with(b"\r\n") {
            // A soft line break: the line was only wrapped for transport.
            i += 3;
        } else if let Some(byte) = hex_byte(rest) {
            out.push(byte);
            i += 3;
        } else {
            out.push(b'=');
            i += 1;
        }
    }
    out
}

/// The byte written as two hex digits at the start of `bytes`.
fn hex_byte(bytes: &[u8]) -> Option<u8> {
    let pair = bytes.get(..2)?;
    // `from_str_radix` alone would also take a sign, as in `=+1`.
    if !pair.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()
}

/// Decodes the RFC 2047 encoded words of a header value; whitespace between two adjacent
/// encoded words is dropped (section 6.2), anything else is kept.
fn decode_encoded_words(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut after_word = false;
    let mut rest = value;
    while !rest.is_empty() {
        let token_start = rest.len() - rest.trim_start().len();
        let (space, after) = rest.split_at(token_start);
        let (token, tail) = after.split_at(after.find(char::is_whitespace).unwrap_or(after.len()));
        rest = tail;
        match decode_encoded_word(token) {
            Some(decoded) => {
                if !after_word {
                    out.push_str(space);
                }
                out.push_str(&decoded);
                after_word = true;
            }
            None => {
                out.push_str(space);
                out.push_str(token);
                after_word = false;
            }
        }
    }
    out
}

/// `=?utf-8?B?...?=` or `=?utf-8?Q?...?=`; `None` for anything else, which stays as is.
fn decode_encoded_word(token: &str) -> Option<String> {
    let inner = token.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut fields = inner.splitn(3, '?');
    let (charset, encoding, text) = (fields.next()?, fields.next()?, fields.next()?);
    if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("us-ascii") {
        return None;
    }
    let bytes = match encoding {
        "B" | "b" => BASE64.decode(text).ok()?,
        // In the Q encoding an underscore stands for a space (section 4.2).
        "Q" | "q" => decode_quoted_printable(&text.replace('_', " ")),
        _ => return None,
    };
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    /// A hand-driven client: the fake's corners that a well-behaved library never reaches.
    struct Client(BufReader<TcpStream>);

    impl Client {
        async fn connect(server: &FakeSmtp) -> Self {
            let stream = TcpStream::connect(("127.0.0.1", server.port())).await.unwrap();
            let mut client = Self(BufReader::new(stream));
            assert!(client.reply().await.starts_with("220 "));
            client
        }

        /// Sends one line and returns the whole reply, lines joined with `\n`.
        async fn say(&mut self, line: &str) -> String {
            self.0.get_mut().write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
            self.reply().await
        }

        async fn reply(&mut self) -> String {
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                tokio::time::timeout(WAIT, self.0.read_line(&mut line)).await.unwrap().unwrap();
                let line = line.trim_end().to_owned();
                let last = line.as_bytes().get(3) != Some(&b'-');
                lines.push(line);
                if last {
                    return lines.join("\n");
                }
            }
        }
    }

    #[tokio::test]
    async fn takes_several_messages_per_connection_and_unstuffs_dots() {
        let server = FakeSmtp::start(Options::default()).await;
        let mut c = Client::connect(&server).await;
        assert!(c.say("MAIL FROM:<a@example.com>").await.starts_with("503 "), "EHLO comes first");
        assert!(c.say("EHLO client.example").await.ends_with("250 ENHANCEDSTATUSCODES"));
        assert!(c.say("VRFY someone").await.starts_with("502 "));
        assert!(c.say("DATA").await.starts_with("503 "));
        assert!(c.say("MAIL FROM:<a@example.com> BODY=8BITMIME").await.starts_with("250 "));
        assert!(c.say("RCPT TO:<b@example.com>").await.starts_with("250 "));
        assert!(c.say("RSET").await.starts_with("250 "));
        assert!(c.say("DATA").await.starts_with("503 "), "RSET ended the transaction");
        for (n, body) in ["..hidden", "second"].into_iter().enumerate() {
            assert!(c.say("MAIL FROM:<>").await.starts_with("250 "));
            assert!(c.say("rcpt to:<B@example.com>").await.starts_with("250 "));
            assert!(c.say("DATA").await.starts_with("354 "));
            assert_eq!(
                c.say(&format!("Subject: {n}\r\n\r\n{body}\r\n.")).await,
                format!("250 2.0.0 OK: queued as {}", n + 1)
            );
        }
        assert!(c.say("NOOP").await.starts_with("250 "));
        assert!(c.say("QUIT").await.starts_with("221 "));

        let messages = server.wait_for_messages(2, WAIT).await;
        assert_eq!(server.connections(), 1);
        assert_eq!(messages[0].helo, "client.example");
        assert_eq!(messages[0].from, "");
        assert_eq!(messages[0].recipients, ["B@example.com"]);
        assert_eq!(messages[0].data, b"Subject: 0\r\n\r\n.hidden\r\n");
        assert_eq!(messages[1].header("subject").as_deref(), Some("1"));
        assert_eq!(messages[1].parts()[0].body, "second\r\n");
    }

    #[tokio::test]
    async fn requires_auth_and_speaks_plain_and_login() {
        let server = FakeSmtp::start(Options::default().credentials("ana", "s3cret")).await;
        let plain = |user: &str, pass: &str| BASE64.encode(format!("\0{user}\0{pass}"));
        let mut c = Client::connect(&server).await;
        assert!(c.say("EHLO client.example").await.contains("250-AUTH PLAIN LOGIN"));
        assert!(c.say("MAIL FROM:<a@example.com>").await.starts_with("530 "));
        assert!(c.say(&format!("AUTH PLAIN {}", plain("ana", "wrong"))).await.starts_with("535 "));
        assert!(c.say("AUTH CRAM-MD5").await.starts_with("504 "));
        assert_eq!(c.say("AUTH PLAIN").await, "334");
        assert!(c.say("*").await.starts_with("501 "));
        assert_eq!(c.say("AUTH PLAIN").await, "334");
        assert!(c.say(&plain("ana", "s3cret")).await.starts_with("235 "));
        assert!(c.say("AUTH PLAIN =").await.starts_with("503 "), "once is enough");

        let mut c = Client::connect(&server).await;
        c.say("EHLO client.example").await;
        assert_eq!(c.say("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
        assert_eq!(c.say(&BASE64.encode("ana")).await, "334 UGFzc3dvcmQ6");
        assert!(c.say(&BASE64.encode("s3cret")).await.starts_with("235 "));
        assert!(c.say("MAIL FROM:<a@example.com>").await.starts_with("250 "));
        assert!(c.say("RCPT TO:<b@example.com>").await.starts_with("250 "));
        c.say("DATA").await;
        assert!(c.say("Subject: hi\r\n\r\nhi\r\n.").await.starts_with("250 "));
        assert_eq!(server.messages()[0].user.as_deref(), Some("ana"));
    }

    #[tokio::test]
    async fn starttls_mode_refuses_mail_in_clear() {
        let ca = crate::tls::TestCa::new();
        let server = FakeSmtp::start(Options::new(Security::StartTls(ca.server_config())).credentials("a", "b")).await;
        let mut c = Client::connect(&server).await;
        let ehlo = c.say("EHLO client.example").await;
        assert!(ehlo.contains("250-STARTTLS") && !ehlo.contains("AUTH"), "{ehlo}");
        assert!(c.say("MAIL FROM:<a@example.com>").await.starts_with("530 5.7.0 Must issue a STARTTLS"));
        assert!(c.say("AUTH PLAIN =").await.starts_with("530 "));
        assert!(c.say("STARTTLS").await.starts_with("220 "));
    }

    #[tokio::test]
    async fn scripted_recipients_are_refused() {
        let reply = "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown";
        let server = FakeSmtp::start(Options::default().rcpt_reply("Gone@Example.com", reply)).await;
        let mut c = Client::connect(&server).await;
        c.say("HELO client.example").await;
        c.say("MAIL FROM:<a@example.com>").await;
        assert_eq!(c.say("RCPT TO:<gone@example.com>").await, reply);
        assert!(c.say("DATA").await.starts_with("554 "), "no recipient was accepted");
    }

    #[test]
    fn parses_multipart_alternative_with_either_transfer_encoding() {
        let data = concat!(
            "From: a@example.com\r\n",
            "Subject: =?utf-8?b?UsOpcG9uc2U=?=\r\n =?utf-8?q?_de_B=C3=B3?= today\r\n",
            "Content-Type: multipart/alternative;\r\n boundary=\"b1\"\r\n",
            "\r\n",
            "preamble\r\n",
            "--b1\r\n",
            "Content-Type: text/plain; charset=utf-8\r\n",
            "Content-Transfer-Encoding: quoted-printable\r\n",
            "\r\n",
            "Ca=C3=A7a va =3D bien, a long line=\r\n that goes on\r\n",
            "--b1\r\n",
            "Content-Type: text/html; charset=utf-8\r\n",
            "Content-Transfer-Encoding: base64\r\n",
            "\r\n",
            "PHA+Jmx0O2ImZ3Q7\r\nPC9wPg==\r\n",
            "--b1--\r\n",
            "epilogue\r\n",
        );
        let received = Received {
            helo: String::new(),
            tls: false,
            user: None,
            from: String::new(),
            recipients: Vec::new(),
            data: data.as_bytes().to_vec(),
        };
        assert_eq!(received.header("content-type").as_deref(), Some("multipart/alternative; boundary=\"b1\""));
        assert_eq!(received.decoded_header("Subject").as_deref(), Some("Réponse de Bó today"));
        let parts = received.parts();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].media_type(), "text/plain");
        assert_eq!(parts[0].body, "Caça va = bien, a long line that goes on");
        assert_eq!(received.part("text/html").map(|p| p.body).as_deref(), Some("<p>&lt;b&gt;</p>"));
    }
}
