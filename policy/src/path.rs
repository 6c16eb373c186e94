//! Request path normalization.
//!
//! Every route decision is taken on the output of [`normalize_path`], so two spellings of the
//! same resource (`/admin`, `/%61dmin`, `/x/../admin`, `//admin`) reach the same route, and
//! spellings that upstreams disagree on (encoded slashes, backslashes, `;` path parameters,
//! control characters) are refused outright instead of guessed at.
//!
//! The function is on the hot path of every request: an already-normal path is returned
//! borrowed after one scan, and only a path that needs rewriting allocates (once).

use std::borrow::Cow;
use std::fmt;

/// Why a request path was refused by [`normalize_path`].
///
/// Every variant is a client error: the gateway answers HTTP 400 for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathError {
    /// The path is empty or does not start with `/` (this includes the `*` request-target).
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// An encoded slash (`%2F`): upstreams disagree on whether it splits segments.
    EncodedSlash,
    /// A backslash, raw or encoded (`%5C`): some upstreams treat it as a separator.
    Backslash,
    /// A `;` path parameter, raw or encoded (`%3B`): some upstreams strip what follows it.
    PathParameter,
    /// A NUL byte, raw or encoded (`%00`).
    Nul,
    /// Another control character (0x01-0x1F or 0x7F), raw or encoded.
    ControlChar,
    /// The percent-decoded path is not valid UTF-8.
    InvalidUtf8,
    /// A raw byte above 0x7F: clients must percent-encode non-ASCII characters.
    NonAscii,
    /// A `#` in the path: fragments are never sent to a server.
    Fragment,
}

impl PathError {
    /// A short, stable reason for logs and metrics (`snake_case`, no user data).
    pub fn as_str(&self) -> &'static str {
        match self {
            PathError::NotAbsolute => "not_absolute",
            PathError::BadEscape => "bad_escape",
            PathError::EncodedSlash => "encoded_slash",
            PathError::Backslash => "backslash",
            PathError::PathParameter => "path_parameter",
            PathError::Nul => "nul",
            PathError::ControlChar => "control_char",
            PathError::InvalidUtf8 => "invalid_utf8",
            PathError::NonAscii => "non_ascii",
            PathError::Fragment => "fragment",
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            PathError::NotAbsolute => "path is not absolute",
            PathError::BadEscape => "invalid percent-escape in path",
            PathError::EncodedSlash => "encoded slash in path",
            PathError::Backslash => "backslash in path",
            PathError::PathParameter => "path parameter (;) in path",
            PathError::Nul => "NUL byte in path",
            PathError::ControlChar => "control character in path",
            PathError::InvalidUtf8 => "percent-decoded path is not valid UTF-8",
            PathError::NonAscii => "raw non-ASCII byte in path",
            PathError::Fragment => "fragment (#) in path",
        };
        f.write_str(msg)
    }
}

impl std::error::Error for PathError {}

/// Normalizes the path part of a request-target (the caller has already split off `?query`).
///
/// Contract:
/// - The path must start with `/` ([`PathError::NotAbsolute`] otherwise, including for `*`).
/// - `%XX` escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded; every other
///   escape is kept, with its hex digits uppercased (`%3a` becomes `%3A`).
/// - Refused: malformed escapes, `%2F`, raw or encoded `\` and `;`, raw or encoded NUL and other
///   control characters, `#`, raw bytes above 0x7F, and escapes whose decoded bytes are not
///   valid UTF-8 (see [`PathError`] for which error each case gets; the first offending byte
///   from the left decides).
/// - Runs of `/` collapse to one; `.` and `..` segments (also when spelled `%2E`) are removed
///   as in RFC 3986 section 5.2.4, `..` never climbs above the root, and a path ending in a dot
///   segment ends in `/`. A trailing `/` is otherwise kept (`/a/` stays `/a/`).
///
/// Returns [`Cow::Borrowed`] when the input is already normal, so the common case allocates
/// nothing; the output is always ASCII.
///
/// # Errors
///
/// A [`PathError`] naming the first rule the path breaks; the gateway answers 400.
pub fn normalize_path(raw: &[u8]) -> Result<Cow<'_, str>, PathError> {
    if raw.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if validate(raw)? {
        Ok(Cow::Owned(rewrite(raw)))
    } else {
        // `validate` refused every byte above 0x7F, so this cannot fail.
        std::str::from_utf8(raw)
            .map(Cow::Borrowed)
            .map_err(|_| PathError::NonAscii)
    }
}

/// Characters RFC 3986 calls unreserved: their escapes are decoded.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes the escape starting at `raw[i]` (which is `%`).
fn decode_escape(raw: &[u8], i: usize) -> Result<u8, PathError> {
    match (raw.get(i + 1).copied(), raw.get(i + 2).copied()) {
        (Some(h), Some(l)) => match (hex_val(h), hex_val(l)) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(PathError::BadEscape),
        },
        _ => Err(PathError::BadEscape),
    }
}

/// Refusals shared by raw and decoded bytes.
fn check_byte(b: u8) -> Result<(), PathError> {
    match b {
        0 => Err(PathError::Nul),
        0x01..=0x1f | 0x7f => Err(PathError::ControlChar),
        b'\\' => Err(PathError::Backslash),
        b';' => Err(PathError::PathParameter),
        _ => Ok(()),
    }
}

/// Incremental UTF-8 well-formedness check (Unicode table 3-7) over the decoded bytes, so the
/// decoded path never has to be materialized.
struct Utf8Check {
    /// Continuation bytes still expected.
    need: u8,
    /// Allowed range of the next continuation byte.
    lo: u8,
    hi: u8,
}

impl Utf8Check {
    fn new() -> Self {
        Utf8Check {
            need: 0,
            lo: 0x80,
            hi: 0xbf,
        }
    }

    fn push(&mut self, b: u8) -> Result<(), PathError> {
        if self.need > 0 {
            if b < self.lo || b > self.hi {
                return Err(PathError::InvalidUtf8);
            }
            self.need -= 1;
            self.lo = 0x80;
            self.hi = 0xbf;
            return Ok(());
        }
        let (need, lo, hi) = match b {
            0x00..=0x7f => return Ok(()),
            0xc2..=0xdf => (1, 0x80, 0xbf),
            0xe0 => (2, 0xa0, 0xbf),
            0xe1..=0xec | 0xee..=0xef => (2, 0x80, 0xbf),
            0xed => (2, 0x80, 0x9f),
            0xf0 => (3, 0x90, 0xbf),
            0xf1..=0xf3 => (3, 0x80, 0xbf),
            0xf4 => (3, 0x80, 0x8f),
            _ => return Err(PathError::InvalidUtf8),
        };
        self.need = need;
        self.lo = lo;
        self.hi = hi;
        Ok(())
    }

    fn finish(&self) -> Result<(), PathError> {
        if self.need == 0 {
            Ok(())
        } else {
            Err(PathError::InvalidUtf8)
        }
    }
}

/// Checks every rule and reports whether the path needs rewriting (`Ok(true)`) or is already
/// normal (`Ok(false)`).
fn validate(raw: &[u8]) -> Result<bool, PathError> {
    let mut utf8 = Utf8Check::new();
    let mut rewrite = false;
    // Start of the current segment (just after its leading `/`).
    let mut seg_start = 1;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        match b {
            b'%' => {
                let d = decode_escape(raw, i)?;
                if d == b'/' {
                    return Err(PathError::EncodedSlash);
                }
                check_byte(d)?;
                utf8.push(d)?;
                if is_unreserved(d)
                    || raw[i + 1].is_ascii_lowercase()
                    || raw[i + 2].is_ascii_lowercase()
                {
                    rewrite = true;
                }
                i += 3;
                continue;
            }
            b'/' => {
                if i > 0 {
                    let seg = &raw[seg_start..i];
                    if seg.is_empty() || seg == b"." || seg == b".." {
                        rewrite = true;
                    }
                }
                seg_start = i + 1;
            }
            b'#' => return Err(PathError::Fragment),
            0x80..=0xff => return Err(PathError::NonAscii),
            _ => check_byte(b)?,
        }
        // A raw byte is ASCII here, so it is valid UTF-8 unless it interrupts a sequence.
        if utf8.need != 0 {
            return Err(PathError::InvalidUtf8);
        }
        i += 1;
    }
    utf8.finish()?;
    let last = &raw[seg_start..];
    if last == b"." || last == b".." {
        rewrite = true;
    }
    Ok(rewrite)
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Rewrites a path that [`validate`] accepted and flagged: decodes unreserved escapes,
/// uppercases the others, collapses slashes and removes dot segments in one pass.
fn rewrite(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    // Whether the last segment seen was empty or a dot segment, which leaves a trailing `/`.
    let mut trailing_slash;
    let mut i = 1;
    loop {
        let seg_start = out.len();
        out.push('/');
        while i < raw.len() && raw[i] != b'/' {
            let b = raw[i];
            if b == b'%' {
                let d = decode_escape(raw, i).unwrap_or(b'%');
                if is_unreserved(d) {
                    out.push(char::from(d));
                } else {
                    out.push('%');
                    out.push(char::from(UPPER_HEX[usize::from(d >> 4)]));
                    out.push(char::from(UPPER_HEX[usize::from(d & 0xf)]));
                }
                i += 3;
            } else {
                out.push(char::from(b));
                i += 1;
            }
        }
        let seg = &out[seg_start + 1..];
        trailing_slash = match seg {
            "" | "." => {
                out.truncate(seg_start);
                true
            }
            ".." => {
                out.truncate(seg_start);
                let parent = out.rfind('/').unwrap_or(0);
                out.truncate(parent);
                true
            }
            _ => false,
        };
        if i >= raw.len() {
            break;
        }
        // Skip the `/` that ended this segment.
        i += 1;
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use PathError::*;

    /// Expected output: `Ok(path)` or `Err(reason)`.
    const CASES: &[(&[u8], Result<&str, PathError>)] = &[
        // Already normal.
        (b"/", Ok("/")),
        (b"/a", Ok("/a")),
        (b"/a/b/", Ok("/a/b/")),
        (b"/a/", Ok("/a/")),
        (b"/a/.b", Ok("/a/.b")),
        (b"/a/..b", Ok("/a/..b")),
        (b"/a/...", Ok("/a/...")),
        (b"/a/b.", Ok("/a/b.")),
        (b"/a%20b", Ok("/a%20b")),
        (b"/caf%C3%A9", Ok("/caf%C3%A9")),
        (b"/%F0%9F%98%80", Ok("/%F0%9F%98%80")),
        (b"/a:b@c!$&'()*+,=", Ok("/a:b@c!$&'()*+,=")),
        // Dot segments.
        (b"/a/./b", Ok("/a/b")),
        (b"/a/../b", Ok("/b")),
        (b"/../../etc/passwd", Ok("/etc/passwd")),
        (b"/.", Ok("/")),
        (b"/..", Ok("/")),
        (b"/a/..", Ok("/")),
        (b"/a/b/..", Ok("/a/")),
        (b"/a/b/.", Ok("/a/b/")),
        (b"/a/b/../c/.", Ok("/a/c/")),
        (b"/a/./", Ok("/a/")),
        (b"/a/../", Ok("/")),
        (b"/./a", Ok("/a")),
        (b"/a/%2e%2e/b", Ok("/b")),
        (b"/a/%2E/b", Ok("/a/b")),
        (b"/a/.%2e", Ok("/")),
        (b"/%2e%2E%2e", Ok("/...")),
        // Repeated slashes.
        (b"//a///b", Ok("/a/b")),
        (b"//", Ok("/")),
        (b"/a//", Ok("/a/")),
        (b"///..//a", Ok("/a")),
        // Escapes.
        (b"/%61dmin", Ok("/admin")),
        (b"/a%7e", Ok("/a~")),
        (b"/a%7E%2D%5f", Ok("/a~-_")),
        (b"/a%3a", Ok("/a%3A")),
        (b"/caf%c3%a9", Ok("/caf%C3%A9")),
        (b"/a%25", Ok("/a%25")),
        (b"/a%2fb", Err(EncodedSlash)),
        (b"/a%2Fb", Err(EncodedSlash)),
        (b"/a%zz", Err(BadEscape)),
        (b"/a%", Err(BadEscape)),
        (b"/a%1", Err(BadEscape)),
        (b"/a%G1", Err(BadEscape)),
        (b"/a%1G", Err(BadEscape)),
        // Separators upstreams disagree on.
        (b"/a%5cb", Err(Backslash)),
        (b"/a%5Cb", Err(Backslash)),
        (b"/a\\b", Err(Backslash)),
        (b"/a;jsessionid=1/b", Err(PathParameter)),
        (b"/a%3bb", Err(PathParameter)),
        (b"/a%3Bb", Err(PathParameter)),
        // Control characters.
        (b"/a%00b", Err(Nul)),
        (b"/a\0b", Err(Nul)),
        (b"/a\tb", Err(ControlChar)),
        (b"/a\x7fb", Err(ControlChar)),
        (b"/a%0d%0a", Err(ControlChar)),
        (b"/a%7F", Err(ControlChar)),
        (b"/a%1f", Err(ControlChar)),
        // UTF-8.
        (b"/%C3%28", Err(InvalidUtf8)),
        (b"/%FF", Err(InvalidUtf8)),
        (b"/%C3", Err(InvalidUtf8)),
        (b"/%C3/", Err(InvalidUtf8)),
        (b"/%C0%AF", Err(InvalidUtf8)),
        (b"/%ED%A0%80", Err(InvalidUtf8)),
        (b"/%F4%90%80%80", Err(InvalidUtf8)),
        (b"/caf\xc3\xa9", Err(NonAscii)),
        (b"/\x80", Err(NonAscii)),
        // Not a path.
        (b"", Err(NotAbsolute)),
        (b"*", Err(NotAbsolute)),
        (b"a/b", Err(NotAbsolute)),
        (b"%2Fa", Err(NotAbsolute)),
        (b"/a#frag", Err(Fragment)),
        // First offending byte decides.
        (b"/a;%00", Err(PathParameter)),
        (b"/a%00;", Err(Nul)),
    ];

    #[test]
    fn table() {
        assert!(CASES.len() >= 40);
        for (input, expected) in CASES {
            let got = normalize_path(input);
            let got = got.as_ref().map(|c| c.as_ref()).map_err(|e| *e);
            assert_eq!(got, *expected, "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn borrows_exactly_when_unchanged() {
        for (input, expected) in CASES {
            if let Ok(Ok(out)) = normalize_path(input).map(|c| match c {
                Cow::Borrowed(s) => Ok(s),
                Cow::Owned(s) => Err(s),
            }) {
                assert_eq!(out.as_bytes(), *input);
            } else if let Ok(exp) = expected {
                assert_ne!(exp.as_bytes(), *input, "{exp} should have been borrowed");
            }
        }
    }

    #[test]
    fn output_is_a_fixed_point() {
        for (input, _) in CASES {
            if let Ok(out) = normalize_path(input) {
                let again = normalize_path(out.as_bytes()).expect("normal path stays valid");
                assert!(matches!(again, Cow::Borrowed(_)), "{out} not stable");
                assert_eq!(again, out);
            }
        }
    }

    #[test]
    fn error_strings() {
        assert_eq!(EncodedSlash.as_str(), "encoded_slash");
        assert_eq!(EncodedSlash.to_string(), "encoded slash in path");
        let all = [
            NotAbsolute,
            BadEscape,
            EncodedSlash,
            Backslash,
            PathParameter,
            Nul,
            ControlChar,
            InvalidUtf8,
            NonAscii,
            Fragment,
        ];
        let mut names: Vec<_> = all.iter().map(PathError::as_str).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }

    mod proptests {
        use super::*;
        use proptest::prelude::*;

        fn raw_path() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop::sample::select(vec![
                &b"/"[..],
                b"//",
                b".",
                b"..",
                b"a",
                b"B",
                b"%2e",
                b"%2E",
                b"%41",
                b"%3a",
                b"%c3%a9",
                b"%C3",
                b"%20",
                b"%",
                b"%2f",
                b";",
                b"\\",
                b"~",
                b"\t",
                b"\xc3",
            ]);
            prop::collection::vec(piece, 0..12).prop_map(|ps| {
                let mut v = b"/".to_vec();
                for p in ps {
                    v.extend_from_slice(p);
                }
                v
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]
            #[test]
            fn output_invariants(raw in raw_path()) {
                if let Ok(out) = normalize_path(&raw) {
                    prop_assert!(out.starts_with('/'));
                    prop_assert!(out.is_ascii());
                    prop_assert!(!out.contains("//"), "{}", out);
                    for seg in out.split('/') {
                        prop_assert!(seg != "." && seg != "..", "{}", out);
                    }
                    let again = normalize_path(out.as_bytes());
                    prop_assert!(matches!(again, Ok(Cow::Borrowed(_))), "{} not stable", out);
                    // Every rewrite shortens or keeps the length, so one allocation of the
                    // input's length always suffices.
                    prop_assert!(out.len() <= raw.len());
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..64)) {
                let _ = normalize_path(&raw);
            }
        }
    }
}
