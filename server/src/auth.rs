//! Who is calling: bearer tokens with a scope (`read` or `write`). Tokens are kept as SHA-256
//! hashes only, compared in constant time, and never logged. The tokens file (or
//! `CHAINR_TOKENS`) holds one token per line: `NAME SCOPE SECRET`, where SECRET is the token
//! itself or `sha256:HEX`, its hash; `#` starts a comment.

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
}

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
    /// The caller of a request with these headers (`Authorization: Bearer TOKEN`), or 401.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let tokens = match self {
            Auth::Disabled => {
                return Ok(Caller {
                    name: None,
                    scope: Scope::Write,
                })
            }
            Auth::Tokens(t) => t,
        };
        let unauthorized = |why: &str| {
            ApiError::new(StatusCode::UNAUTHORIZED, why)
                .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"chainr\"")
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "authentication required: send `Authorization: Bearer TOKEN`",
            ));
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer TOKEN`"))?;
        match tokens.find(presented) {
            Some(t) => Ok(Caller {
                name: Some(t.name.clone()),
                scope: t.scope,
            }),
            None => Err(unauthorized("unknown token")),
        }
    }
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
}
