//! The decoder for `application/x-www-form-urlencoded` data: a callback's query and a
//! back-channel logout's body.

use std::borrow::Cow;

/// The decoded value of the first `name=value` pair named `name` in `form` (`a=1&b=2`); a pair
/// without `=` has an empty value.
pub(super) fn param<'a>(form: Option<&'a str>, name: &str) -> Option<Cow<'a, str>> {
    form?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

/// Decodes a form-urlencoded value (`+` is a space, `%XX` a byte; a bad escape stays as is).
fn percent_decode(v: &str) -> Cow<'_, str> {
    if !v.contains(['%', '+']) {
        return Cow::Borrowed(v);
    }
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let byte = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match byte {
                    Some(x) => {
                        out.push(x);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_pair_by_exact_name() {
        let q = Some("code=abc&state=xyz&code=second&flag");
        assert_eq!(param(q, "code").as_deref(), Some("abc"));
        assert_eq!(param(q, "state").as_deref(), Some("xyz"));
        assert_eq!(param(q, "flag").as_deref(), Some(""));
        assert_eq!(param(q, "cod"), None);
        assert_eq!(param(None, "code"), None);
    }

    #[test]
    fn decodes_plus_and_escapes_and_keeps_bad_escapes() {
        assert!(matches!(percent_decode("plain"), Cow::Borrowed("plain")));
        assert_eq!(percent_decode("a+b%2Fc%3d"), "a b/c=");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(
            percent_decode("%FF"),
            "\u{FFFD}",
            "invalid UTF-8 is replaced"
        );
    }
}
