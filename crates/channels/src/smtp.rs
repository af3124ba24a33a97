//! Email over SMTP (lettre): multipart text and HTML, the delivery id as `Message-ID`, and the
//! RFC 8058 one-click unsubscribe headers. Connections are pooled and reused between sends.

use std::error::Error as _;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde::{Deserialize, Serialize};

use crate::{AddressBlock, Provider, SendCommand, SendError, Sent, Target};

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain text (a local relay, or tests).
    #[default]
    None,
    /// Upgrade with STARTTLS; refuse a relay that does not offer it.
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

/// Where and how to send email.
#[derive(Clone)]
pub struct SmtpConfig {
    /// Relay host.
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// Transport security.
    pub tls: SmtpTls,
    /// Login, when the relay wants one.
    pub username: String,
    /// Password for `username`.
    pub password: String,
    /// `From`, e.g. `Herald <noreply@example.com>`.
    pub from: String,
    /// PEM of a CA certificate to trust besides the built-in web PKI roots (a relay with a
    /// private CA); only meaningful with `starttls` or `tls`.
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for SmtpConfig {
    /// Leaves the password out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// The SMTP provider.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// `List-Unsubscribe: <https://...>` (RFC 2369).
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.trim().trim_start_matches('<').trim_end_matches('>').to_owned()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), format!("<{}>", self.0))
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Debug, Clone)]
struct OneClick;

impl Header for OneClick {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

impl Smtp {
    /// A pooled transport to the relay; fails on a bad `from`, a bad `ca_pem`, or outside a
    /// Tokio runtime.
    pub fn new(config: SmtpConfig, timeout: Duration) -> Result<Self, String> {
        // Building the pool spawns its cleanup task, and tokio panics when there is no runtime.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err("the SMTP provider must be created inside a Tokio runtime".into());
        }
        let from: Mailbox = config.from.parse().map_err(|e| format!("channels.email.from {:?}: {e}", config.from))?;
        let tls = match config.tls {
            // A CA that is never consulted would hide a relay that was meant to be verified.
            SmtpTls::None if config.ca_pem.is_some() => {
                return Err("channels.email.ca_pem is set but tls is none, so it would never be used".into());
            }
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(tls_parameters(&config.host, config.ca_pem.as_deref())?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters(&config.host, config.ca_pem.as_deref())?),
        };
        // `builder_dangerous` only means "no TLS unless told": `tls` above always tells it.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .tls(tls)
            .port(config.port)
            .timeout(Some(timeout))
            .hello_name(ClientId::Domain(from.email.domain().into()));
        if !config.username.is_empty() {
            builder = builder.credentials(Credentials::new(config.username, config.password));
        }
        Ok(Self { transport: builder.build(), from })
    }

    fn message(&self, cmd: &SendCommand, to: &str) -> Result<Message, SendError> {
        let to: Mailbox = to.parse().map_err(|e| SendError::Permanent(format!("bad address {to}: {e}")))?;
        let field = |k: &str| cmd.payload.get(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(field("subject").unwrap_or_default())
            // The delivery id makes a redelivery recognisable as the same message.
            .message_id(Some(format!("<{}@{}>", cmd.delivery_id, self.from.email.domain())));
        if let Some(url) = &cmd.unsubscribe_url {
            b = b.header(ListUnsubscribe(url.clone())).header(OneClick);
        }
        let built = match (field("text"), field("html")) {
            (Some(text), Some(html)) => {
                b.multipart(MultiPart::alternative_plain_html(text.to_owned(), html.to_owned()))
            }
            (None, Some(html)) => b.singlepart(SinglePart::html(html.to_owned())),
            (text, None) => b.singlepart(
                SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text.unwrap_or_default().to_owned()),
            ),
        };
        built.map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
    }
}

#[async_trait]
impl Provider for Smtp {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, cmd: &SendCommand) -> Result<Sent, SendError> {
        let addresses: Vec<&str> = cmd
            .targets
            .iter()
            .filter_map(|t| match t {
                Target::Email(address) => Some(address.as_str()),
                _ => None,
            })
            .collect();
        if addresses.is_empty() {
            return Err(SendError::Permanent("no email address among the targets".into()));
        }
        for to in addresses {
            let message = self.message(cmd, to)?;
            self.transport.send(message).await.map_err(|e| classify(&e))?;
        }
        Ok(Sent::default())
    }
}

/// TLS settings for `host`: the web PKI roots, plus the operator's CA when there is one.
fn tls_parameters(host: &str, ca_pem: Option<&str>) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(pem) = ca_pem {
        // lettre takes PEM without a single certificate in it as an empty list; that must not
        // pass for a CA, so the certificates are read here and handed over one by one.
        let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("channels.email.ca_pem: {e}"))?;
        if certificates.is_empty() {
            return Err("channels.email.ca_pem holds no PEM certificate".into());
        }
        for certificate in certificates {
            let certificate =
                Certificate::from_der(certificate.to_vec()).map_err(|e| format!("channels.email.ca_pem: {e}"))?;
            builder = builder.add_root_certificate(certificate);
        }
    }
    // Building parses every root, so a certificate that is not one fails here, at start.
    builder.build().map_err(|e| match ca_pem {
        Some(_) => format!("channels.email.ca_pem: {e}"),
        None => format!("smtp TLS for {host}: {e}"),
    })
}

/// What a failed SMTP exchange means for the delivery: 5xx replies will not change on retry,
/// 4xx replies, timeouts and broken connections may.
fn classify(error: &SmtpError) -> SendError {
    let message = format!("smtp: {error}");
    let transient = |message| SendError::Transient { message, retry_after: None };
    // No reply code: the connection, the TLS handshake or a timeout failed on the way to the relay.
    let Some(code) = error.status() else { return transient(message) };
    match u16::from(code) {
        // The relay refuses us, not this message (bad credentials, AUTH or TLS required, weak
        // mechanism): an operator configuration problem that fails every message alike. Transient
        // opens the circuit breaker and lets retries through once it is fixed, where permanent
        // would dead-letter everything meanwhile.
        530 | 534 | 535 | 538 => transient(message),
        500..=599 if is_bad_destination(error) => SendError::Unreachable { message, block: AddressBlock::HardBounce },
        500..=599 => SendError::Permanent(message),
        _ => transient(message),
    }
}

/// Whether the reply says the recipient's mailbox or its domain does not exist (RFC 3463: 5.1.1
/// bad mailbox, 5.1.2 bad system, 5.1.3 bad address syntax, 5.1.6 mailbox moved, 5.1.10 null
/// MX). Only these block the address for good, and never when the reply is about the sender:
/// Postfix rejects a bad sender at RCPT time (5.1.0, 5.1.7, 5.1.8 "Sender address rejected"),
/// and blocking every recipient for a misconfigured `from` would be a disaster.
fn is_bad_destination(error: &SmtpError) -> bool {
    // lettre keeps the reply text as the error's source; the enhanced code is its first word.
    let Some(text) = error.source().map(ToString::to_string) else { return false };
    if text.to_ascii_lowercase().contains("sender") {
        return false;
    }
    let Some(word) = text.split_whitespace().next() else { return false };
    matches!(word, "5.1.1" | "5.1.2" | "5.1.3" | "5.1.6" | "5.1.10")
}

#[cfg(test)]
mod tests {
    use herald_domain::{Channel, Class};
    use herald_testkit::smtp::{FakeSmtp, Options, Security};
    use herald_testkit::tls::TestCa;
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::*;

    /// Short enough that a broken exchange fails the test instead of hanging it.
    const TIMEOUT: Duration = Duration::from_secs(5);

    fn config(server: &FakeSmtp, tls: SmtpTls) -> SmtpConfig {
        SmtpConfig {
            // By address, as the test certificate names it: `localhost` may resolve to `::1` first.
            host: "127.0.0.1".into(),
            port: server.port(),
            tls,
            username: String::new(),
            password: String::new(),
            from: "Herald <noreply@example.com>".into(),
            ca_pem: None,
        }
    }

    fn command(to: &str, payload: Value) -> SendCommand {
        SendCommand {
            delivery_id: Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0042),
            channel: Channel::Email,
            user_id: "ana".into(),
            payload,
            targets: vec![Target::Email(to.into())],
            attempt: 1,
            class: Class::Transactional,
            collapse_key: None,
            ttl: None,
            unsubscribe_url: None,
        }
    }

    fn hello(to: &str) -> SendCommand {
        command(to, json!({ "subject": "Hello", "text": "Hi there" }))
    }

    fn is_transient(result: &Result<Sent, SendError>) -> bool {
        matches!(result, Err(SendError::Transient { .. }))
    }

    #[tokio::test]
    async fn sends_text_and_html_as_multipart_alternative_with_every_header() {
        let server = FakeSmtp::start(Options::default()).await;
        let smtp = Smtp::new(config(&server, SmtpTls::None), TIMEOUT).unwrap();
        let text = "Ça va?\r\n.a line that starts with a dot\r\nBo";
        let mut cmd = command(
            "ana@example.com",
            json!({ "subject": "Réponse de Bó — 5 €", "text": text, "html": "<p>&lt;b&gt;</p>" }),
        );
        cmd.unsubscribe_url = Some("https://herald.example/v1/unsubscribe/tok3n".into());
        assert_eq!(smtp.send(&cmd).await, Ok(Sent::default()));

        let received = server.wait_for_messages(1, TIMEOUT).await.remove(0);
        assert_eq!(received.from, "noreply@example.com");
        assert_eq!(received.recipients, ["ana@example.com"]);
        assert_eq!(received.helo, "example.com", "EHLO with the sender's domain");
        assert_eq!(received.header("From").as_deref(), Some("Herald <noreply@example.com>"));
        assert_eq!(received.header("To").as_deref(), Some("ana@example.com"));
        assert_eq!(received.decoded_header("Subject").as_deref(), Some("Réponse de Bó — 5 €"));
        let message_id = received.header("Message-ID").unwrap();
        assert!(message_id.contains(&cmd.delivery_id.to_string()), "{message_id}");
        assert_eq!(
            received.header("List-Unsubscribe").as_deref(),
            Some("<https://herald.example/v1/unsubscribe/tok3n>")
        );
        assert_eq!(received.header("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));

        let content_type = received.header("Content-Type").unwrap();
        assert!(content_type.starts_with("multipart/alternative"), "{content_type}");
        let parts = received.parts();
        assert_eq!(parts.iter().map(|p| p.media_type()).collect::<Vec<_>>(), ["text/plain", "text/html"]);
        assert_eq!(parts[0].body.trim_end(), text);
        // Escaping happened when the template was rendered: the provider passes HTML through.
        assert_eq!(parts[1].body.trim_end(), "<p>&lt;b&gt;</p>");
    }

    #[tokio::test]
    async fn sends_text_only_and_html_only_as_single_parts() {
        let server = FakeSmtp::start(Options::default()).await;
        let smtp = Smtp::new(config(&server, SmtpTls::None), TIMEOUT).unwrap();
        smtp.send(&command("ana@example.com", json!({ "subject": "Text", "text": "Just text" }))).await.unwrap();
        smtp.send(&command("ana@example.com", json!({ "subject": "Html", "html": "<h1>Just HTML</h1>" })))
            .await
            .unwrap();

        let received = server.wait_for_messages(2, TIMEOUT).await;
        let [text, html] = [&received[0], &received[1]].map(|m| m.parts());
        assert_eq!(text.len(), 1);
        assert_eq!(text[0].media_type(), "text/plain");
        assert_eq!(text[0].body.trim_end(), "Just text");
        assert_eq!(html.len(), 1);
        assert_eq!(html[0].media_type(), "text/html");
        assert_eq!(html[0].body.trim_end(), "<h1>Just HTML</h1>");
        assert_eq!(received[1].header("List-Unsubscribe"), None, "no unsubscribe URL, no header");
    }

    #[tokio::test]
    async fn starttls_verifies_the_relay_against_the_configured_ca() {
        let ca = TestCa::new();
        let server = FakeSmtp::start(Options::new(Security::StartTls(ca.server_config()))).await;

        let untrusting = Smtp::new(config(&server, SmtpTls::Starttls), TIMEOUT).unwrap();
        let refused = untrusting.send(&hello("ana@example.com")).await;
        assert!(is_transient(&refused), "an unknown CA must fail the handshake: {refused:?}");
        assert!(format!("{refused:?}").contains("certificate"), "{refused:?}");

        let trusting =
            Smtp::new(SmtpConfig { ca_pem: Some(ca.ca_pem()), ..config(&server, SmtpTls::Starttls) }, TIMEOUT).unwrap();
        assert_eq!(trusting.send(&hello("ana@example.com")).await, Ok(Sent::default()));
        let received = server.wait_for_messages(1, TIMEOUT).await;
        assert_eq!(received.len(), 1, "nothing went through the refused handshake");
        assert!(received[0].tls);
        assert_eq!(received[0].parts()[0].body.trim_end(), "Hi there");
    }

    #[tokio::test]
    async fn starttls_refuses_a_relay_that_does_not_offer_it() {
        let server = FakeSmtp::start(Options::default()).await;
        let smtp = Smtp::new(config(&server, SmtpTls::Starttls), TIMEOUT).unwrap();
        let result = smtp.send(&hello("ana@example.com")).await;
        assert!(is_transient(&result) && format!("{result:?}").contains("STARTTLS"), "{result:?}");
        assert!(server.messages().is_empty(), "nothing may travel in clear");
    }

    #[tokio::test]
    async fn implicit_tls_works() {
        let ca = TestCa::new();
        let server = FakeSmtp::start(Options::new(Security::Tls(ca.server_config()))).await;
        let smtp =
            Smtp::new(SmtpConfig { ca_pem: Some(ca.ca_pem()), ..config(&server, SmtpTls::Tls) }, TIMEOUT).unwrap();
        assert_eq!(smtp.send(&hello("ana@example.com")).await, Ok(Sent::default()));
        let received = server.wait_for_messages(1, TIMEOUT).await;
        assert!(received[0].tls);
        assert_eq!(received[0].decoded_header("Subject").as_deref(), Some("Hello"));
    }

    #[tokio::test]
    async fn authenticates_and_treats_refused_credentials_as_transient() {
        let ca = TestCa::new();
        let options = Options::new(Security::StartTls(ca.server_config())).credentials("herald", "s3cret");
        let server = FakeSmtp::start(options).await;
        let with_password = |password: &str| SmtpConfig {
            username: "herald".into(),
            password: password.into(),
            ca_pem: Some(ca.ca_pem()),
            ..config(&server, SmtpTls::Starttls)
        };

        let wrong = Smtp::new(with_password("wrong"), TIMEOUT).unwrap();
        let refused = wrong.send(&hello("ana@example.com")).await;
        assert!(is_transient(&refused), "535 is the operator's to fix, not the message's: {refused:?}");
        assert!(format!("{refused:?}").contains("535"), "{refused:?}");

        let right = Smtp::new(with_password("s3cret"), TIMEOUT).unwrap();
        assert_eq!(right.send(&hello("ana@example.com")).await, Ok(Sent::default()));
        let received = server.wait_for_messages(1, TIMEOUT).await;
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].user.as_deref(), Some("herald"));
    }

    #[tokio::test]
    async fn reuses_one_connection_for_consecutive_sends() {
        let server = FakeSmtp::start(Options::default()).await;
        let smtp = Smtp::new(config(&server, SmtpTls::None), TIMEOUT).unwrap();
        smtp.send(&hello("ana@example.com")).await.unwrap();
        // lettre hands the connection back to the pool from a spawned task; let it run.
        tokio::time::sleep(Duration::from_millis(50)).await;
        smtp.send(&hello("bo@example.com")).await.unwrap();

        let received = server.wait_for_messages(2, TIMEOUT).await;
        assert_eq!(
            received.iter().map(|m| m.recipients[0].as_str()).collect::<Vec<_>>(),
            ["ana@example.com", "bo@example.com"]
        );
        assert_eq!(server.connections(), 1);
    }

    #[tokio::test]
    async fn classifies_recipient_refusals() {
        let cases = [
            (
                "gone@example.com",
                "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown",
                "unreachable",
            ),
            ("bad@example.com", "553 5.1.3 <bad@example.com>: Bad destination mailbox address syntax", "unreachable"),
            ("nomx@example.com", "556 5.1.10 <nomx@example.com>: Recipient address has null MX", "unreachable"),
            ("spam@example.com", "554 5.7.1 Rejected as spam", "permanent"),
            (
                "sender@example.com",
                "553 5.1.8 <noreply@example.com>: Sender address rejected: Domain not found",
                "permanent",
            ),
            (
                "unlisted@example.com",
                "550 5.1.0 <noreply@example.com>: Sender address rejected: not owned by user",
                "permanent",
            ),
            ("moved@example.com", "551 5.1.6 <moved@example.com>: Mailbox has moved", "unreachable"),
            ("odd@example.com", "550 5.1.9 Something else about addresses", "permanent"),
            ("plain@example.com", "550 No such user here", "permanent"),
            ("busy@example.com", "450 4.2.1 Mailbox busy", "transient"),
            ("later@example.com", "451 4.1.1 <later@example.com>: Recipient address lookup failed", "transient"),
        ];
        let options = cases.iter().fold(Options::default(), |o, (address, reply, _)| o.rcpt_reply(*address, *reply));
        let server = FakeSmtp::start(options).await;
        let smtp = Smtp::new(config(&server, SmtpTls::None), TIMEOUT).unwrap();
        for (address, reply, expected) in cases {
            let result = smtp.send(&hello(address)).await;
            let kind = match &result {
                Err(SendError::Unreachable { block: AddressBlock::HardBounce, .. }) => "unreachable",
                Err(SendError::Permanent(_)) => "permanent",
                Err(SendError::Transient { .. }) => "transient",
                _ => "other",
            };
            assert_eq!(kind, expected, "{reply}: {result:?}");
            let text = reply.split_once(' ').map_or(reply, |(_, text)| text);
            assert!(format!("{result:?}").contains(text), "the relay's words are kept: {result:?}");
        }
        assert!(server.messages().is_empty());
    }

    #[tokio::test]
    async fn refuses_a_command_without_an_email_address() {
        let server = FakeSmtp::start(Options::default()).await;
        let smtp = Smtp::new(config(&server, SmtpTls::None), TIMEOUT).unwrap();
        let mut cmd = hello("ana@example.com");
        for targets in [vec![], vec![Target::Phone("+33612345678".into())]] {
            cmd.targets = targets;
            assert!(matches!(smtp.send(&cmd).await, Err(SendError::Permanent(_))));
        }
        assert_eq!(server.connections(), 0);
    }

    #[tokio::test]
    async fn rejects_a_ca_that_is_not_one() {
        let server = FakeSmtp::start(Options::default()).await;
        let with_ca =
            |tls, pem: &str| Smtp::new(SmtpConfig { ca_pem: Some(pem.into()), ..config(&server, tls) }, TIMEOUT);
        let garbage = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
        for pem in ["", "not a certificate", garbage] {
            assert!(with_ca(SmtpTls::Starttls, pem).is_err(), "{pem:?}");
        }
        let ca = TestCa::new().ca_pem();
        assert!(with_ca(SmtpTls::None, &ca).is_err(), "a CA with no TLS to verify is a mistake");
        assert!(with_ca(SmtpTls::Tls, &ca).is_ok());
    }

    #[test]
    fn needs_a_runtime_instead_of_panicking() {
        let config = SmtpConfig {
            host: "127.0.0.1".into(),
            port: 25,
            tls: SmtpTls::None,
            username: String::new(),
            password: String::new(),
            from: "noreply@example.com".into(),
            ca_pem: None,
        };
        assert!(Smtp::new(config, TIMEOUT).is_err());
    }
}
