//! Email over SMTP (lettre): multipart text and HTML, the delivery id as `Message-ID`, and the
//! RFC 8058 one-click unsubscribe headers. Connections are pooled and reused between sends.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use crate::{Provider, SendCommand, SendError, Sent, Target};

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
#[derive(Debug, Clone)]
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
    /// A pooled transport to the relay; fails on a bad `from` or host.
    pub fn new(config: SmtpConfig, timeout: Duration) -> Result<Self, String> {
        let from: Mailbox = config.from.parse().map_err(|e| format!("channels.email.from {:?}: {e}", config.from))?;
        let builder = match config.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| format!("smtp host {}: {e}", config.host))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| format!("smtp host {}: {e}", config.host))?,
        };
        let mut builder =
            builder.port(config.port).timeout(Some(timeout)).hello_name(ClientId::Domain(from.email.domain().into()));
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
        for t in &cmd.targets {
            let Target::Email(to) = t else { continue };
            let message = self.message(cmd, to)?;
            if let Err(e) = self.transport.send(message).await {
                // 5xx replies will not change on retry; 4xx, timeouts and broken connections may.
                return Err(if e.is_permanent() {
                    SendError::Permanent(format!("smtp: {e}"))
                } else {
                    SendError::Transient { message: format!("smtp: {e}"), retry_after: None }
                });
            }
        }
        Ok(Sent::default())
    }
}
