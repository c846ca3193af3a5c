//! Sending one message to one medium: webhooks signed the Standard Webhooks way, Slack
//! incoming webhooks, email over SMTP (lettre), standard output. Each attempt ends as sent, to
//! be tried again (maybe after the wait a receiver asked for), or failed for good. Errors never
//! hold a URL (a Slack URL is a secret) or any other secret.

use crate::config::{Email, Medium, Secret, SmtpTls};
use crate::message::{self, Context};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How an attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Try again: after `after` when the receiver said so (HTTP 429 `Retry-After`), else by
    /// the schedule.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// It will never work (HTTP 410, a Slack URL that no longer exists, an address the mail
    /// server refuses for good).
    Permanent(String),
}

impl SendError {
    pub fn text(&self) -> &str {
        match self {
            SendError::Retry { error, .. } | SendError::Permanent(error) => error,
        }
    }
}

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The signing key of a webhook secret written the Standard Webhooks way (`whsec_` and base64),
/// checked; kept as the base64 text.
pub fn webhook_key(secret: &Secret) -> Result<Secret, String> {
    let text = secret.expose();
    let b64 = text.strip_prefix("whsec_").unwrap_or(text);
    match BASE64.decode(b64) {
        Ok(key) if key.len() >= 24 => Ok(Secret::from_parts(b64, secret.source())),
        Ok(_) => Err("the secret is too short: at least 24 bytes (32 are usual), base64-encoded after `whsec_`".into()),
        Err(_) => Err("not a Standard Webhooks secret: `whsec_` followed by base64".into()),
    }
}

/// The `webhook-signature` of `body` sent with `id` at `timestamp` (seconds): `v1,` and the
/// base64 HMAC-SHA256 of `id.timestamp.body` under the key.
pub fn sign(key: &Secret, id: &str, timestamp: u64, body: &[u8]) -> String {
    let key = BASE64.decode(key.expose()).unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// Sends the message of `c` to `medium`, waiting at most `timeout`. Blocking: run it on a
/// thread that may block.
pub fn send(
    medium: &Medium,
    c: &Context,
    timeout: Duration,
    now: SystemTime,
) -> Result<(), SendError> {
    match medium {
        Medium::Webhook { url, key } => {
            let body = serde_json::to_vec(&message::webhook_body(c)).unwrap_or_default();
            let ts = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            let id = &c.notification.id;
            let headers = [
                ("webhook-id", id.clone()),
                ("webhook-timestamp", ts.to_string()),
                ("webhook-signature", sign(key, id, ts, &body)),
            ];
            post(url, &headers, body, timeout, Receiver::Webhook)
        }
        Medium::Slack { url } => {
            let body = serde_json::to_vec(&message::slack_body(c)).unwrap_or_default();
            let headers = [("webhook-id", c.notification.id.clone())];
            post(url, &headers, body, timeout, Receiver::Slack)
        }
        Medium::Email(email) => send_mail(email, c, timeout),
        Medium::Stdout { to_stderr } => {
            let line = message::stdout_line(c);
            let written = if *to_stderr {
                let mut out = std::io::stderr().lock();
                writeln!(out, "{line}").and_then(|_| out.flush())
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}").and_then(|_| out.flush())
            };
            written.map_err(|e| SendError::Retry {
                error: format!("cannot write the line: {e}"),
                after: None,
            })
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Receiver {
    Webhook,
    Slack,
}

fn post(
    url: &Secret,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout: Duration,
    receiver: Receiver,
) -> Result<(), SendError> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent("chainr-notifier")
        .build()
        .new_agent();
    let mut req = agent
        .post(url.expose())
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let what = match receiver {
        Receiver::Webhook => "the webhook",
        Receiver::Slack => "Slack",
    };
    let resp = match req.send(&body[..]) {
        Ok(r) => r,
        Err(e) => {
            // ureq's errors may quote the address: it is left out.
            let text = e.to_string().replace(url.expose(), "<url>");
            return Err(SendError::Retry {
                error: format!("{what} could not be reached: {text}"),
                after: None,
            });
        }
    };
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let error = format!("{what} answered HTTP {status}");
    match (status, receiver) {
        (429, _) => Err(SendError::Retry {
            error,
            after: Some(retry_after.unwrap_or(Duration::from_secs(30))),
        }),
        (410, _) => Err(SendError::Permanent(error)),
        // Slack's other 4xx answers (an unknown or revoked URL, an invalid payload) never change.
        (400..=499, Receiver::Slack) if status != 408 => Err(SendError::Permanent(error)),
        _ => Err(SendError::Retry {
            error,
            after: retry_after,
        }),
    }
}

/// `Retry-After` as seconds (an HTTP date is taken as "soon"), at most an hour.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    let secs = match v.parse::<u64>() {
        Ok(s) => s,
        Err(_) => humantime::parse_rfc3339_weak(v)
            .ok()
            .and_then(|t| t.duration_since(SystemTime::now()).ok())
            .map(|d| d.as_secs())
            .unwrap_or(5),
    };
    Some(Duration::from_secs(secs.min(3600)))
}

fn send_mail(email: &Email, c: &Context, timeout: Duration) -> Result<(), SendError> {
    use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{Message, SmtpTransport, Transport};

    let permanent = |e: String| SendError::Permanent(e);
    let retry = |e: String| SendError::Retry {
        error: e,
        after: None,
    };
    let mail = message::mail(c);
    let from: Mailbox = email
        .from
        .parse()
        .map_err(|e| permanent(format!("from: {e}")))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(mail.subject)
        .message_id(Some(format!("<{}@chainr>", c.notification.id)));
    for to in &email.to {
        let to: Mailbox = to.parse().map_err(|e| permanent(format!("to: {e}")))?;
        builder = builder.to(to);
    }
    let message = builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(mail.text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(mail.html),
                ),
        )
        .map_err(|e| permanent(format!("the message cannot be built: {e}")))?;

    let tls = if email.tls == SmtpTls::None {
        None
    } else {
        let mut params = TlsParameters::builder(email.host.clone());
        if let Some(ca) = &email.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| retry(format!("cannot read {}: {e}", ca.display())))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| permanent(format!("{}: {e}", ca.display())))?;
            params = params.add_root_certificate(cert);
        }
        Some(params.build().map_err(|e| permanent(format!("TLS: {e}")))?)
    };
    let mut transport = SmtpTransport::builder_dangerous(&email.host)
        .port(email.port)
        .timeout(Some(timeout))
        .tls(match (email.tls, tls) {
            (SmtpTls::Starttls, Some(p)) => Tls::Required(p),
            (SmtpTls::Tls, Some(p)) => Tls::Wrapper(p),
            _ => Tls::None,
        });
    if let (Some(user), Some(password)) = (&email.username, &email.password) {
        transport = transport.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    match transport.build().send(&message) {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(permanent(format!(
            "the mail server {} refused the message: {e}",
            email.host
        ))),
        Err(e) => Err(retry(format!("mail server {}: {e}", email.host))),
    }
}
