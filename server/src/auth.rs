//! Who is calling: bearer tokens with a scope (`read` or `write`), presented in the
//! `Authorization` header or, for the web UI, in the session cookie `POST /api/session` sets.
//! Tokens are kept as SHA-256 hashes only, compared in constant time, and never logged. The
//! tokens file (or `CHAINR_TOKENS`) holds one token per line: `NAME SCOPE SECRET`, where SECRET
//! is the token itself or `sha256:HEX`, its hash; `#` starts a comment.
//!
//! Writes are guarded against cross-site requests: a write whose `Origin` is not the server's
//! own is refused, and a write authenticated by the cookie must say its `Origin`.

use crate::error::ApiError;
use axum::http::{header, HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Read runs, logs, events and metrics.
    Read,
    /// Also submit, cancel and retry runs.
    Write,
}

impl Scope {
    pub fn word(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }
}

/// The caller of a request, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's name (the submitter of the runs it submits); `None` without authentication.
    pub name: Option<String>,
    pub scope: Scope,
    /// How the token came.
    pub via: Via,
}

/// How a caller was authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `--no-auth`: nothing was asked.
    Open,
    /// `Authorization: Bearer TOKEN`.
    Bearer,
    /// The session cookie of the web UI, which a browser attaches by itself: writes need a
    /// same-origin `Origin` too.
    Cookie,
}

impl Via {
    pub fn word(self) -> &'static str {
        match self {
            Via::Open => "none",
            Via::Bearer => "bearer",
            Via::Cookie => "cookie",
        }
    }
}

/// The name of the web UI's session cookie; its value is the token, hex-encoded.
pub const SESSION_COOKIE: &str = "chainr_session";

struct Token {
    name: String,
    scope: Scope,
    hash: [u8; 32],
}

/// How requests are authenticated.
pub enum Auth {
    /// `--no-auth`: every caller may do everything.
    Disabled,
    Tokens(Tokens),
}

/// The known tokens, as hashes.
pub struct Tokens(Vec<Token>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names and scopes only: never a secret, not even its hash.
        f.debug_list()
            .entries(self.0.iter().map(|t| (&t.name, t.scope.word())))
            .finish()
    }
}

/// The hash a token is kept as.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Reads a tokens file's text. Errors name the line, never the secret.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut tokens: Vec<Token> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let n = i + 1;
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [name, scope, secret] = parts[..] else {
                return Err(format!(
                    "line {n}: expected `NAME SCOPE SECRET` (scope `read` or `write`)"
                ));
            };
            let scope = match scope {
                "read" => Scope::Read,
                "write" => Scope::Write,
                other => {
                    return Err(format!(
                        "line {n}: unknown scope `{other}` of token `{name}`; expected `read` or `write`"
                    ))
                }
            };
            let hash = match secret.strip_prefix("sha256:") {
                Some(hex) => {
                    let mut out = [0u8; 32];
                    hex::decode_to_slice(hex, &mut out).map_err(|_| {
                        format!("line {n}: the hash of token `{name}` is not 64 hex digits")
                    })?;
                    out
                }
                None if secret.len() < 16 => {
                    return Err(format!(
                        "line {n}: token `{name}` is shorter than 16 characters; `chainrc token {name}` makes a good one"
                    ))
                }
                None => hash(secret),
            };
            if tokens.iter().any(|t| t.name == name) {
                return Err(format!("line {n}: a token named `{name}` is listed twice"));
            }
            tokens.push(Token {
                name: name.to_string(),
                scope,
                hash,
            });
        }
        if tokens.is_empty() {
            return Err("no token is listed".to_string());
        }
        Ok(Tokens(tokens))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name and scope of the token `presented`, if it is one.
    pub fn check(&self, presented: &str) -> Option<(String, Scope)> {
        self.find(presented).map(|t| (t.name.clone(), t.scope))
    }

    /// The token `presented` is, if any. Every known hash is compared, in constant time.
    fn find(&self, presented: &str) -> Option<&Token> {
        let h = hash(presented);
        let mut found = None;
        for t in &self.0 {
            if bool::from(t.hash.ct_eq(&h)) {
                found = Some(t);
            }
        }
        found
    }
}

impl Auth {
    /// The caller of a request with these headers (`Authorization: Bearer TOKEN`, else the
    /// session cookie), or 401.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let tokens = match self {
            Auth::Disabled => {
                return Ok(Caller {
                    name: None,
                    scope: Scope::Write,
                    via: Via::Open,
                })
            }
            Auth::Tokens(t) => t,
        };
        let unauthorized = |why: &str| {
            ApiError::new(StatusCode::UNAUTHORIZED, why)
                .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"chainr\"")
        };
        let (presented, via) = match headers.get(header::AUTHORIZATION) {
            Some(value) => {
                let presented = value
                    .to_str()
                    .ok()
                    .and_then(|v| {
                        let (scheme, rest) = v.split_once(' ')?;
                        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
                    })
                    .ok_or_else(|| {
                        unauthorized("the Authorization header must be `Bearer TOKEN`")
                    })?;
                (presented.to_string(), Via::Bearer)
            }
            None => match session_cookie(headers) {
                Some(token) => (token, Via::Cookie),
                None => {
                    return Err(unauthorized(
                        "authentication required: send `Authorization: Bearer TOKEN`",
                    ))
                }
            },
        };
        match tokens.find(&presented) {
            Some(t) => Ok(Caller {
                name: Some(t.name.clone()),
                scope: t.scope,
                via,
            }),
            None if via == Via::Cookie => Err(unauthorized(
                "the session's token is no longer known; sign in again",
            )),
            None => Err(unauthorized("unknown token")),
        }
    }
}

/// The token in the session cookie, if the request has one that decodes.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .and_then(|(_, value)| hex::decode(value.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// The `Set-Cookie` value that keeps `token` for the UI: only sent back to this server, never to
/// scripts, never with a request another site starts; `Secure` when the client came over HTTPS.
pub fn session_cookie_for(token: &str, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{secure}",
        hex::encode(token.as_bytes())
    )
}

/// The `Set-Cookie` value that removes the session.
pub fn session_cookie_cleared(https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}")
}

/// Whether the client reached us over HTTPS, as the proxy in front says (the server itself
/// speaks plain HTTP).
pub fn came_over_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get("forwarded")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| {
            first.split(';').any(|kv| {
                kv.trim().split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("proto")
                        && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
        });
    forwarded_proto || forwarded
}

/// The guard against cross-site writes: a write from a page of another origin is refused
/// (whatever authenticates it: even `--no-auth` serves only its own pages), and a write that
/// only the cookie authenticates must carry the `Origin` browsers send with every write, so that
/// a request another site makes the browser send cannot use the session.
pub fn same_origin(headers: &HeaderMap, via: Via) -> Result<(), ApiError> {
    let refused = |why: String| ApiError::new(StatusCode::FORBIDDEN, why);
    let Some(origin) = headers.get(header::ORIGIN) else {
        return match via {
            Via::Cookie => Err(refused(
                "a write authenticated by the session cookie must carry an Origin header".into(),
            )),
            Via::Open | Via::Bearer => Ok(()),
        };
    };
    let origin = origin.to_str().unwrap_or("");
    let Some((scheme, host)) = origin.split_once("://") else {
        return Err(refused(format!(
            "cross-origin write refused: Origin `{origin}` is not this server"
        )));
    };
    let host = without_default_port(scheme, host);
    let ours = [header::HOST.as_str(), "x-forwarded-host"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .flat_map(|v| v.split(','))
        .any(|h| {
            let h = h.trim();
            without_default_port(scheme, h).eq_ignore_ascii_case(host)
        });
    if ours {
        Ok(())
    } else {
        Err(refused(format!(
            "cross-origin write refused: Origin `{origin}` is not this server"
        )))
    }
}

fn without_default_port<'a>(scheme: &str, host: &'a str) -> &'a str {
    let default = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return host,
    };
    host.strip_suffix(default).unwrap_or(host)
}

impl Caller {
    /// 403 unless the caller has `scope`; `doing` says what needs it ("submitting a run").
    pub fn require(&self, scope: Scope, doing: &str) -> Result<(), ApiError> {
        if self.scope >= scope {
            return Ok(());
        }
        let who = self.name.as_deref().unwrap_or("this caller");
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token `{who}` has scope {}; {doing} needs scope {}",
                self.scope.word(),
                scope.word()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        h
    }

    #[test]
    fn plain_and_hashed_secrets_are_both_accepted() {
        let hashed = hex::encode(hash("reader-secret-0123456789"));
        let text = format!(
            "# who may do what\nci write writer-secret-0123456789\n\nviewer read sha256:{hashed} # the dashboard\n"
        );
        let auth = Auth::Tokens(Tokens::parse(&text).unwrap());
        let ci = auth.caller(&bearer("writer-secret-0123456789")).unwrap();
        assert_eq!(ci.name.as_deref(), Some("ci"));
        assert_eq!(ci.scope, Scope::Write);
        let viewer = auth.caller(&bearer("reader-secret-0123456789")).unwrap();
        assert_eq!(viewer.scope, Scope::Read);
        let err = viewer
            .require(Scope::Write, "submitting a run")
            .unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert!(err.message.contains("viewer"), "{}", err.message);
    }

    #[test]
    fn missing_or_unknown_tokens_are_401_with_a_challenge() {
        let auth = Auth::Tokens(Tokens::parse("ci write writer-secret-0123456789").unwrap());
        for headers in [HeaderMap::new(), bearer("nope-nope-nope-nope")] {
            let err = auth.caller(&headers).unwrap_err();
            assert_eq!(err.status, StatusCode::UNAUTHORIZED);
            assert!(err
                .headers
                .iter()
                .any(|(n, _)| n == header::WWW_AUTHENTICATE));
        }
        let mut basic = HeaderMap::new();
        basic.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(
            auth.caller(&basic).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn bad_files_name_the_line_and_never_the_secret() {
        for (text, says) in [
            ("ci admin writer-secret-0123456789", "unknown scope `admin`"),
            ("ci write short", "shorter than 16"),
            ("ci write", "expected `NAME SCOPE SECRET`"),
            ("a read sha256:zz", "not 64 hex digits"),
            ("# nothing\n", "no token is listed"),
            (
                "a read aaaaaaaaaaaaaaaaaaaa\na write bbbbbbbbbbbbbbbbbbbb",
                "listed twice",
            ),
        ] {
            let err = Tokens::parse(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
            assert!(!err.contains("secret-0123"), "{err}");
        }
        let tokens = Tokens::parse("ci write writer-secret-0123456789").unwrap();
        assert!(!format!("{tokens:?}").contains("writer-secret"));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn https_is_what_the_proxy_in_front_says() {
        assert!(came_over_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(came_over_https(&headers(&[(
            "x-forwarded-proto",
            "HTTPS, http"
        )])));
        assert!(came_over_https(&headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=https;by=203.0.113.43"
        )])));
        assert!(came_over_https(&headers(&[(
            "forwarded",
            "proto=\"https\""
        )])));
        assert!(!came_over_https(&headers(&[("x-forwarded-proto", "http")])));
        assert!(!came_over_https(&headers(&[])));
    }

    #[test]
    fn the_origin_of_a_write_must_be_the_server_itself() {
        let ok =
            |pairs: &[(&'static str, &'static str)], via| same_origin(&headers(pairs), via).is_ok();
        let host = ("host", "ci.example:8080");
        assert!(ok(
            &[host, ("origin", "http://ci.example:8080")],
            Via::Cookie
        ));
        assert!(ok(
            &[("host", "ci.example"), ("origin", "https://ci.example:443")],
            Via::Cookie
        ));
        // Behind a proxy that rewrites Host, the host the browser used is X-Forwarded-Host.
        assert!(ok(
            &[
                ("host", "10.0.0.7:8080"),
                ("x-forwarded-host", "chainr.example"),
                ("origin", "https://chainr.example")
            ],
            Via::Cookie
        ));
        assert!(!ok(
            &[host, ("origin", "http://ci.example:9090")],
            Via::Bearer
        ));
        assert!(!ok(&[host, ("origin", "http://evil.example")], Via::Open));
        assert!(!ok(&[host, ("origin", "null")], Via::Open));
        // No Origin: fine for clients that are not browsers, not for the cookie.
        assert!(ok(&[host], Via::Bearer));
        assert!(ok(&[host], Via::Open));
        assert!(!ok(&[host], Via::Cookie));
    }

    #[test]
    fn the_session_cookie_holds_the_token_among_others() {
        let value = session_cookie_for("tok;en with spaces", false);
        let pair = value.split(';').next().unwrap().to_string();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("a=b; {pair}; c=d").parse().unwrap());
        assert_eq!(session_cookie(&h).as_deref(), Some("tok;en with spaces"));
        assert!(session_cookie_cleared(true).contains("Max-Age=0; Secure"));
    }
}
