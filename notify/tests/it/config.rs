//! The configuration file: each medium, secrets from the environment or files (never shown),
//! and clear errors.

use chainr_notify::config::{Config, Medium, SmtpTls};
use std::path::Path;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn env(name: &str) -> Option<String> {
    match name {
        "HOOK_SECRET" => Some(SECRET.into()),
        "SLACK_URL" => Some("https://hooks.slack.com/services/T000/B000/XXXXSECRET".into()),
        "SMTP_PASSWORD" => Some("hunter2-very-secret".into()),
        _ => None,
    }
}

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, &env, Path::new("/nonexistent")).map_err(|e| e.to_string())
}

const EVERY_MEDIUM: &str = r#"
ui_url = "https://chainr.example.com/"

[media.hooks]
type = "webhook"
url = "https://ops.example.com/chainr"
secret = { env = "HOOK_SECRET" }

[media.team-slack]
type = "slack"
url = { env = "SLACK_URL" }

[media.oncall-mail]
type = "email"
host = "smtp.example.com"
username = "chainr"
password = { env = "SMTP_PASSWORD" }
from = "chainr <chainr@example.com>"
to = ["oncall@example.com"]

[media.console]
type = "stdout"

[[routes]]
on = ["failed"]
to = ["team-slack", "oncall-mail"]

[delivery]
schedule = ["5s", "1m"]
timeout = "3s"
"#;

#[test]
fn every_medium_is_read_and_no_secret_is_shown() {
    let config = parse(EVERY_MEDIUM).unwrap();
    assert_eq!(config.ui_url.as_deref(), Some("https://chainr.example.com"));
    let kinds: Vec<(&str, &str)> = config
        .media
        .iter()
        .map(|(n, m)| (n.as_str(), m.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("console", "stdout"),
            ("hooks", "webhook"),
            ("oncall-mail", "email"),
            ("team-slack", "slack")
        ]
    );
    match &config.media["oncall-mail"] {
        Medium::Email(e) => {
            assert_eq!(
                (e.port, e.tls),
                (587, SmtpTls::Starttls),
                "STARTTLS on 587 by default"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(config.schedule.0.len(), 2);
    assert_eq!(
        config.schedule.after_attempt(1),
        Some(std::time::Duration::from_secs(5))
    );
    assert_eq!(
        config.schedule.after_attempt(3),
        None,
        "dead after the last"
    );
    let shown = format!("{config:?}");
    for secret in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "XXXXSECRET", "hunter2"] {
        assert!(!shown.contains(secret), "{secret} shown in {shown}");
    }
    assert!(shown.contains("environment variable SLACK_URL"));
}

#[test]
fn mistakes_are_reported_where_they_are_without_secrets() {
    let cases = [
        (
            "[media.h]\ntype = \"webhook\"\nurl = \"https://x\"\nsecret = \"whsec_abc\"\n",
            "media.h.secret is a secret: give it as { env = \"NAME\" } or { file = \"PATH\" }",
        ),
        (
            "[media.h]\ntype = \"webhook\"\nurl = \"https://x\"\nsecret = { env = \"MISSING\" }\n",
            "media.h.secret: the environment variable MISSING is not set",
        ),
        (
            "[media.h]\ntype = \"webhook\"\nurl = \"https://x\"\nsecret = { env = \"SMTP_PASSWORD\" }\n",
            "not a Standard Webhooks secret",
        ),
        (
            "[media.s]\ntype = \"slack\"\nurl = { file = \"slack-url\" }\n",
            "media.s.url: cannot read the file /nonexistent/slack-url",
        ),
        (
            "[media.s]\ntype = \"pager\"\n",
            "unknown variant `pager`",
        ),
        (
            "[media.c]\ntype = \"stdout\"\n[[routes]]\non = [\"failed\"]\nto = [\"slack\"]\n",
            "routes[0].to: no medium is named \"slack\" (the media are c)",
        ),
        (
            "[media.c]\ntype = \"stdout\"\n[[routes]]\non = [\"faild\"]\nto = [\"c\"]\n",
            "routes[0].on: unknown event \"faild\"",
        ),
        (
            "[media.c]\ntype = \"stdout\"\n[[routes]]\non = [\"running_longer_than\"]\nto = [\"c\"]\n",
            "running_longer_than needs `after`",
        ),
        (
            "[media.m]\ntype = \"email\"\nhost = \"h\"\nfrom = \"not an address\"\nto = [\"a@b.c\"]\n",
            "media.m: \"not an address\" is not an email address",
        ),
        ("[delivery]\ntimeout = \"soon\"\n", "delivery.timeout: \"soon\" is not a duration"),
        ("[media.\"9lives\"]\ntype = \"stdout\"\n", "media.9lives: a medium's name"),
    ];
    for (text, expected) in cases {
        let e = parse(text).expect_err(text);
        assert!(
            e.contains(expected),
            "for\n{text}\nexpected {expected:?} in {e:?}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }
}

#[test]
fn a_secret_file_is_read_relative_to_the_configuration() {
    let dir = std::env::temp_dir().join(format!("chainr-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hook-secret"), format!("{SECRET}\n")).unwrap();
    let path = dir.join("notify.toml");
    std::fs::write(
        &path,
        "[media.h]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nsecret = { file = \"hook-secret\" }\n",
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    assert!(format!("{config:?}").contains("hook-secret"));
    let missing = Config::load(&dir.join("nope.toml"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("cannot read"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}
