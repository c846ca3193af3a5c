//! The lexer: text as a sequence of tokens with byte spans.
//!
//! The grammar (`grammar/chainr.pest`) is what parses. This lexer is for the places that walk
//! text without parsing it: skipping blanks and comments, finding where a string or a comment
//! ends, counting brackets (nesting depth, an unclosed `{`, where a file can be cut into parts),
//! collecting comments for the formatter and editors, and finding keys in IR JSON. It agrees
//! with the grammar on where comments, strings and text blocks start and end, which is what all
//! of those places need, so they all agree with each other: a `{` inside a comment or a string is
//! never a brace.
//!
//! It never fails. A character that starts no token of the language is [`TokenKind::Other`],
//! and a comment, string or text block that is never closed is a token marked unterminated.
//!
//! ```
//! use chainr_compiler::lex::{tokens, TokenKind};
//! let src = r#"job a { run = "{" } // {"#;
//! let braces = tokens(src).filter(|t| t.kind == TokenKind::Punct && t.text(src) == "{").count();
//! assert_eq!(braces, 1);
//! ```

use crate::syntax::Span;

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Spaces, tabs, carriage returns and newlines (the grammar's `WHITESPACE`).
    Whitespace,
    /// `//` up to the end of its line, the newline excluded.
    LineComment,
    /// `/* ... */`. Block comments do not nest; one never closed runs to the end of the text.
    BlockComment { terminated: bool },
    /// A `"` string. A backslash escapes the character after it (any character, as in the
    /// grammar). One not closed on its line ends before the newline.
    Str { terminated: bool },
    /// A `"""` text block: no escapes; one never closed runs to the end of the text.
    TextBlock { terminated: bool },
    /// An identifier or keyword: an ASCII letter or `_`, then ASCII letters, digits, `_`, `-`.
    Word,
    /// A number, duration or quantity token: `3`, `-1`, `0.5`, `1h30m`, `256Mi`.
    Number,
    /// One of `{ } ( ) [ ] = , ; : . < > !` or `..`, `&&`, `||`.
    Punct,
    /// Any other character, one at a time: `'`, `@`, a lone `&`, a no-break space, ...
    Other,
}

impl TokenKind {
    /// Blanks and comments: what the grammar skips between tokens. An unterminated block
    /// comment is not trivia (the grammar does not skip it, it fails there).
    pub fn is_trivia(self) -> bool {
        matches!(
            self,
            TokenKind::Whitespace
                | TokenKind::LineComment
                | TokenKind::BlockComment { terminated: true }
        )
    }

    /// A comment, terminated or not.
    pub fn is_comment(self) -> bool {
        matches!(
            self,
            TokenKind::LineComment | TokenKind::BlockComment { .. }
        )
    }

    /// A string or a text block, terminated or not.
    pub fn is_string(self) -> bool {
        matches!(self, TokenKind::Str { .. } | TokenKind::TextBlock { .. })
    }

    /// A comment, string or text block that is never closed.
    pub fn is_unterminated(self) -> bool {
        matches!(
            self,
            TokenKind::BlockComment { terminated: false }
                | TokenKind::Str { terminated: false }
                | TokenKind::TextBlock { terminated: false }
        )
    }
}

/// A token: its kind and its bytes `start..end` in the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub fn span(&self) -> Span {
        Span::new(self.start, self.end)
    }

    pub fn text<'a>(&self, src: &'a str) -> &'a str {
        &src[self.start..self.end]
    }

    /// Whether this is the punctuation `p` (`"{"`, `".."`, ...).
    pub fn is_punct(&self, src: &str, p: &str) -> bool {
        self.kind == TokenKind::Punct && self.text(src) == p
    }

    /// The text between the quotes of a string or text block (up to the end of the token when it
    /// is never closed); `None` for other tokens.
    pub fn body(&self) -> Option<(usize, usize)> {
        let (open, close) = match self.kind {
            TokenKind::Str { terminated } => (1, if terminated { 1 } else { 0 }),
            TokenKind::TextBlock { terminated } => (3, if terminated { 3 } else { 0 }),
            _ => return None,
        };
        Some((self.start + open, (self.end - close).max(self.start + open)))
    }
}

/// The tokens of `src`, from its start.
pub fn tokens(src: &str) -> Lexer<'_> {
    Lexer { src, pos: 0 }
}

/// The tokens of `src` from byte `pos`, which must be the start of a token (or the end of the
/// text): the lexer has no state but its position.
pub fn tokens_from(src: &str, pos: usize) -> Lexer<'_> {
    Lexer {
        src,
        pos: pos.min(src.len()),
    }
}

/// An iterator of [`Token`]s; see [`tokens`].
#[derive(Clone, Debug)]
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    /// Where the next token starts.
    pub fn pos(&self) -> usize {
        self.pos
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    #[inline]
    fn next(&mut self) -> Option<Token> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let &b = bytes.get(start)?;
        let (kind, end) = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                let mut end = start + 1;
                while end < bytes.len() && matches!(bytes[end], b' ' | b'\t' | b'\r' | b'\n') {
                    end += 1;
                }
                (TokenKind::Whitespace, end)
            }
            b'/' if bytes.get(start + 1) == Some(&b'/') => {
                let end = self.src[start..]
                    .find('\n')
                    .map_or(bytes.len(), |n| start + n);
                (TokenKind::LineComment, end)
            }
            b'/' if bytes.get(start + 1) == Some(&b'*') => match self.src[start + 2..].find("*/") {
                Some(n) => (
                    TokenKind::BlockComment { terminated: true },
                    start + 2 + n + 2,
                ),
                None => (TokenKind::BlockComment { terminated: false }, bytes.len()),
            },
            b'"' if bytes[start..].starts_with(b"\"\"\"") => {
                match self.src[start + 3..].find("\"\"\"") {
                    Some(n) => (TokenKind::TextBlock { terminated: true }, start + 3 + n + 3),
                    None => (TokenKind::TextBlock { terminated: false }, bytes.len()),
                }
            }
            b'"' => string(self.src, start),
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let mut end = start + 1;
                while end < bytes.len() && is_word_byte(bytes[end]) {
                    end += 1;
                }
                (TokenKind::Word, end)
            }
            b'0'..=b'9' => (TokenKind::Number, number(bytes, start)),
            b'-' if bytes.get(start + 1).is_some_and(u8::is_ascii_digit) => {
                (TokenKind::Number, number(bytes, start + 1))
            }
            b'.' if bytes.get(start + 1) == Some(&b'.') => (TokenKind::Punct, start + 2),
            b'&' if bytes.get(start + 1) == Some(&b'&') => (TokenKind::Punct, start + 2),
            b'|' if bytes.get(start + 1) == Some(&b'|') => (TokenKind::Punct, start + 2),
            b'{' | b'}' | b'(' | b')' | b'[' | b']' | b'=' | b',' | b';' | b':' | b'.' | b'<'
            | b'>' | b'!' => (TokenKind::Punct, start + 1),
            _ => (TokenKind::Other, start + char_len(self.src, start)),
        };
        self.pos = end;
        Some(Token { kind, start, end })
    }
}

#[inline]
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn char_len(src: &str, at: usize) -> usize {
    src[at..].chars().next().map_or(1, char::len_utf8)
}

/// A `"` string from its opening quote: to the closing quote, or to the end of the line.
fn string(src: &str, start: usize) -> (TokenKind, usize) {
    let bytes = src.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return (TokenKind::Str { terminated: true }, i + 1),
            b'\n' => return (TokenKind::Str { terminated: false }, i),
            b'\\' if i + 1 < bytes.len() => i += 1 + char_len(src, i + 1),
            _ => i += 1,
        }
    }
    (TokenKind::Str { terminated: false }, bytes.len())
}

/// The end of a number token whose digits start at `i`, as the grammar's `number` reads it:
/// digits, a fraction, then units each optionally followed by more digits and a unit (`1h30m`).
fn number(bytes: &[u8], mut i: usize) -> usize {
    let digits = |i: usize| i + bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    let alphas = |i: usize| {
        i + bytes[i..]
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .count()
    };
    let fraction = |i: usize| {
        if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            digits(i + 1)
        } else {
            i
        }
    };
    i = fraction(digits(i));
    let unit = alphas(i);
    if unit == i {
        return i;
    }
    i = unit;
    loop {
        let more = fraction(digits(i));
        let unit = alphas(more);
        if more == i || unit == more {
            return i;
        }
        i = unit;
    }
}

/// A `${...}` in a string or text block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interpolation {
    /// Where its `$` is.
    pub start: usize,
    /// The name it holds, when it is well formed (`${name}`, with optional spaces); `None` when
    /// something else follows `${`, which the grammar rejects.
    pub name: Option<Span>,
    /// Its end: after the `}` when well formed, after the `${` otherwise.
    pub end: usize,
}

/// The interpolations of a string or text block token, as the grammar reads them: in a string a
/// backslash escapes the next character (`\${` is text), and in both `$${` is a literal `${`.
pub fn interpolations(src: &str, token: Token) -> impl Iterator<Item = Interpolation> + '_ {
    let escapes = matches!(token.kind, TokenKind::Str { .. });
    let (mut i, end) = token.body().unwrap_or((token.end, token.end));
    let bytes = src.as_bytes();
    std::iter::from_fn(move || {
        while i < end {
            match bytes[i] {
                b'\\' if escapes && i + 1 < end => i += 1 + char_len(src, i + 1),
                b'$' if bytes[i..end].starts_with(b"$${") => i += 3,
                b'$' if bytes[i..end].starts_with(b"${") => {
                    let start = i;
                    i += 2;
                    let spaces =
                        |j: usize| j + bytes[j..end].iter().take_while(|&&b| b == b' ').count();
                    let name_start = spaces(i);
                    let name_end = name_start
                        + bytes[name_start..end]
                            .iter()
                            .enumerate()
                            .take_while(|&(k, b)| {
                                b.is_ascii_alphabetic()
                                    || *b == b'_'
                                    || (k > 0 && (b.is_ascii_digit() || *b == b'-'))
                            })
                            .count();
                    let close = spaces(name_end);
                    if name_end > name_start && bytes.get(close) == Some(&b'}') && close < end {
                        i = close + 1;
                        return Some(Interpolation {
                            start,
                            name: Some(Span::new(name_start, name_end)),
                            end: i,
                        });
                    }
                    return Some(Interpolation {
                        start,
                        name: None,
                        end: i,
                    });
                }
                _ => i += 1,
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use TokenKind::*;

    fn kinds(src: &str) -> Vec<(TokenKind, &str)> {
        tokens(src).map(|t| (t.kind, t.text(src))).collect()
    }

    #[test]
    fn tokens_cover_the_text() {
        let src = "pipeline p { job a after b.failed && !c, (d || e) { run = \"x\\\"{\" } } // {\n/* { */ \"\"\"\n}\n\"\"\" é '";
        let mut end = 0;
        for t in tokens(src) {
            assert_eq!(t.start, end);
            assert!(t.end > t.start);
            end = t.end;
        }
        assert_eq!(end, src.len());
    }

    #[test]
    fn comments_strings_and_blocks() {
        assert_eq!(
            kinds("a // { \"\n/* { \" */"),
            [
                (Word, "a"),
                (Whitespace, " "),
                (LineComment, "// { \""),
                (Whitespace, "\n"),
                (BlockComment { terminated: true }, "/* { \" */"),
            ]
        );
        assert_eq!(
            kinds(r#""a\"{" "b"#),
            [
                (Str { terminated: true }, r#""a\"{""#),
                (Whitespace, " "),
                (Str { terminated: false }, "\"b"),
            ]
        );
        assert_eq!(
            kinds("\"x\ny"),
            [
                (Str { terminated: false }, "\"x"),
                (Whitespace, "\n"),
                (Word, "y"),
            ]
        );
        assert_eq!(
            kinds("\"\"\"a\n\" // \"\"\"x"),
            [
                (TextBlock { terminated: true }, "\"\"\"a\n\" // \"\"\""),
                (Word, "x"),
            ]
        );
        assert_eq!(
            kinds("\"\"\"a /*"),
            [(TextBlock { terminated: false }, "\"\"\"a /*")]
        );
        assert_eq!(
            kinds("/* a"),
            [(BlockComment { terminated: false }, "/* a")]
        );
        // A backslash escapes any character, a multi-byte one or a newline included.
        assert_eq!(
            kinds("\"\\é\\\n\""),
            [(Str { terminated: true }, "\"\\é\\\n\"")]
        );
        assert_eq!(kinds("\"\\"), [(Str { terminated: false }, "\"\\")]);
    }

    #[test]
    fn words_numbers_and_punctuation() {
        assert_eq!(
            kinds("for i in 0..4 x-1 -1 1h30m 0.5 256Mi a.b && || & | - / é"),
            [
                (Word, "for"),
                (Whitespace, " "),
                (Word, "i"),
                (Whitespace, " "),
                (Word, "in"),
                (Whitespace, " "),
                (Number, "0"),
                (Punct, ".."),
                (Number, "4"),
                (Whitespace, " "),
                (Word, "x-1"),
                (Whitespace, " "),
                (Number, "-1"),
                (Whitespace, " "),
                (Number, "1h30m"),
                (Whitespace, " "),
                (Number, "0.5"),
                (Whitespace, " "),
                (Number, "256Mi"),
                (Whitespace, " "),
                (Word, "a"),
                (Punct, "."),
                (Word, "b"),
                (Whitespace, " "),
                (Punct, "&&"),
                (Whitespace, " "),
                (Punct, "||"),
                (Whitespace, " "),
                (Other, "&"),
                (Whitespace, " "),
                (Other, "|"),
                (Whitespace, " "),
                (Other, "-"),
                (Whitespace, " "),
                (Other, "/"),
                (Whitespace, " "),
                (Other, "é"),
            ]
        );
        assert_eq!(kinds("1.x"), [(Number, "1"), (Punct, "."), (Word, "x")]);
        assert_eq!(kinds("2h3"), [(Number, "2h"), (Number, "3")]);
    }

    /// `$$${e}` is a lone `$` and then `$${`: no interpolation, as in the grammar.
    #[test]
    fn interpolations_as_the_grammar_reads_them() {
        fn found(src: &str) -> Vec<(&str, Option<&str>)> {
            let t = tokens(src).next().unwrap();
            interpolations(src, t)
                .map(|i| (&src[i.start..i.end], i.name.map(|n| &src[n.range()])))
                .collect()
        }
        assert_eq!(
            found(r#""${a} ${ b-1 } $${c} \${d} $$${e} ${1} ${x.y}""#),
            [
                ("${a}", Some("a")),
                ("${ b-1 }", Some("b-1")),
                ("${", None),
                ("${", None),
            ]
        );
        // A text block has no escapes: `\${` is a backslash and an interpolation.
        assert_eq!(found("\"\"\"\\${d}\"\"\""), [("${d}", Some("d"))]);
        // Unterminated: up to the end of the line.
        assert_eq!(found("\"${a"), [("${", None)]);
    }
}
