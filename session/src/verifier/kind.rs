//! Which kind of token a verified JWT is, and whether that kind fits its use.
//!
//! One provider signs access tokens, ID tokens and logout tokens with the same keys, for the
//! same audience (the client), so a valid signature, `iss` and `aud` do not tell them apart.
//! A bearer credential must be an access token: an ID token proves a login to a client (and
//! travels in browser URLs as `id_token_hint`), a logout token ends sessions; neither grants
//! access. These rules read only what the token says about itself, so they run once per
//! verification, before a token is cached: a cache hit never re-checks them.

use super::error::TokenError;
use crate::claims::Registered;

/// What a verified token is about to be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// A bearer credential. The JOSE header `typ`, when present, is `JWT` or `at+jwt` (RFC 9068;
    /// with or without `application/`, any case); no `nonce` (ID tokens), no `events` (logout
    /// tokens), and no Keycloak payload `typ` of another kind (`ID`, `Refresh`, `Offline`,
    /// `Logout`). With `authorized-parties`, `azp` must be listed.
    Access,
    /// The ID token of the code flow (its own rules on top live in `oidc.rs`): header `typ`
    /// absent or `JWT`, no `events`.
    Id,
    /// A back-channel logout token: an `events` claim, no `nonce`, header `typ` absent, `JWT`
    /// or `logout+jwt`.
    Logout,
}

/// Keycloak's payload `typ` of tokens that are not access tokens.
const NOT_ACCESS: [&str; 4] = ["ID", "Refresh", "Offline", "Logout"];

/// A JOSE `typ` without its optional `application/` prefix (RFC 7515 4.1.9).
fn media_type(typ: &str) -> &str {
    match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    }
}

/// Whether the header `typ` (if any) is one of `allowed` (compared without `application/`,
/// ignoring case).
fn header_typ_is(typ: Option<&str>, allowed: &[&str]) -> bool {
    typ.is_none_or(|t| {
        let t = media_type(t);
        allowed.iter().any(|a| t.eq_ignore_ascii_case(a))
    })
}

/// Checks that a token whose signature and registered claims are valid is of the kind `usage`
/// needs; `header_typ` is the JOSE header's `typ`.
pub(crate) fn check_use(
    usage: TokenUse,
    header_typ: Option<&str>,
    registered: &Registered,
) -> Result<(), TokenError> {
    let fits = match usage {
        TokenUse::Access => {
            header_typ_is(header_typ, &["JWT", "at+jwt"])
                && !registered.nonce
                && !registered.events
                && registered
                    .typ
                    .as_deref()
                    .is_none_or(|t| !NOT_ACCESS.iter().any(|n| t.eq_ignore_ascii_case(n)))
        }
        TokenUse::Id => header_typ_is(header_typ, &["JWT"]) && !registered.events,
        TokenUse::Logout => {
            header_typ_is(header_typ, &["JWT", "logout+jwt"])
                && registered.events
                && !registered.nonce
        }
    };
    if fits {
        Ok(())
    } else {
        Err(TokenError::NotAccessToken)
    }
}

/// Checks that an active RFC 7662 introspection answer describes an access token: no Keycloak
/// `typ` of another kind, a `token_type` (when given) of an access token (`Bearer`, `DPoP`,
/// `N_A`), an ORY-style `token_use` (when given) of `access_token`, no `nonce`, no `events`.
/// Introspection endpoints answer for refresh tokens too, and a refresh token must not work
/// as a bearer credential.
pub(crate) fn check_introspected(doc: &serde_json::Value) -> Result<(), TokenError> {
    let text = |name: &str| doc.get(name).and_then(serde_json::Value::as_str);
    let other_kind = text("typ")
        .is_some_and(|t| NOT_ACCESS.iter().any(|n| t.eq_ignore_ascii_case(n)))
        || text("token_type").is_some_and(|t| {
            !["Bearer", "DPoP", "N_A"]
                .iter()
                .any(|a| t.eq_ignore_ascii_case(a))
        })
        || text("token_use").is_some_and(|t| t != "access_token")
        || doc.get("nonce").is_some_and(|v| !v.is_null())
        || doc.get("events").is_some_and(|v| !v.is_null());
    if other_kind {
        Err(TokenError::NotAccessToken)
    } else {
        Ok(())
    }
}

/// Checks `azp` against the provider's `authorized-parties` (`None`: not configured, any or
/// no `azp` passes).
pub(crate) fn check_azp(allowed: Option<&[String]>, azp: Option<&str>) -> Result<(), TokenError> {
    match allowed {
        None => Ok(()),
        Some(list) if azp.is_some_and(|azp| list.iter().any(|a| a == azp)) => Ok(()),
        Some(_) => Err(TokenError::UnauthorizedParty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Claims;

    fn registered(payload: &str) -> Registered {
        Claims::from_json(payload.to_string())
            .expect("a JSON object")
            .1
    }

    #[test]
    fn access_tokens_pass_and_other_kinds_are_refused() {
        let keycloak_access = registered(r#"{"typ": "Bearer", "azp": "web"}"#);
        for typ in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("at+jwt"),
            Some("AT+JWT"),
            Some("application/at+jwt"),
            Some("Application/JWT"),
        ] {
            assert_eq!(
                check_use(TokenUse::Access, typ, &keycloak_access),
                Ok(()),
                "{typ:?}"
            );
        }
        for typ in [
            "logout+jwt",
            "application/logout+jwt",
            "id+jwt",
            "dpop+jwt",
            "secevent+jwt",
            "",
            "application/",
            "JWS",
            "at+jwt ",
        ] {
            assert_eq!(
                check_use(TokenUse::Access, Some(typ), &keycloak_access),
                Err(TokenError::NotAccessToken),
                "{typ:?}"
            );
        }
        for payload in [
            r#"{"nonce": "n"}"#,
            r#"{"nonce": ""}"#,
            r#"{"events": {"http://schemas.openid.net/event/backchannel-logout": {}}}"#,
            r#"{"events": []}"#,
            r#"{"typ": "ID"}"#,
            r#"{"typ": "id"}"#,
            r#"{"typ": "Refresh"}"#,
            r#"{"typ": "Offline"}"#,
            r#"{"typ": "Logout"}"#,
        ] {
            assert_eq!(
                check_use(TokenUse::Access, None, &registered(payload)),
                Err(TokenError::NotAccessToken),
                "{payload}"
            );
        }
    }

    #[test]
    fn id_and_logout_tokens_fit_their_own_uses() {
        let id = registered(r#"{"nonce": "n", "typ": "ID"}"#);
        let logout = registered(r#"{"events": {"e": {}}, "sid": "s"}"#);
        assert_eq!(check_use(TokenUse::Id, None, &id), Ok(()));
        assert_eq!(check_use(TokenUse::Id, Some("JWT"), &id), Ok(()));
        assert!(check_use(TokenUse::Id, Some("at+jwt"), &id).is_err());
        assert!(check_use(TokenUse::Id, None, &logout).is_err());
        assert_eq!(check_use(TokenUse::Logout, None, &logout), Ok(()));
        assert_eq!(
            check_use(TokenUse::Logout, Some("logout+jwt"), &logout),
            Ok(())
        );
        assert!(check_use(TokenUse::Logout, Some("at+jwt"), &logout).is_err());
        assert!(check_use(TokenUse::Logout, None, &id).is_err());
        assert!(check_use(
            TokenUse::Logout,
            None,
            &registered(r#"{"events": {}, "nonce": "n"}"#)
        )
        .is_err());
    }

    #[test]
    fn introspection_answers_for_other_kinds_are_refused() {
        use serde_json::json;
        for ok in [
            json!({"active": true}),
            json!({"active": true, "typ": "Bearer", "token_type": "Bearer"}),
            json!({"active": true, "token_type": "bearer", "token_use": "access_token"}),
            json!({"active": true, "token_type": "DPoP", "nonce": null}),
        ] {
            assert_eq!(check_introspected(&ok), Ok(()), "{ok}");
        }
        for refused in [
            json!({"active": true, "typ": "Refresh"}),
            json!({"active": true, "typ": "Offline"}),
            json!({"active": true, "typ": "ID"}),
            json!({"active": true, "token_type": "refresh_token"}),
            json!({"active": true, "token_type": "access_token+refresh"}),
            json!({"active": true, "token_use": "refresh_token"}),
            json!({"active": true, "nonce": "n"}),
            json!({"active": true, "events": {}}),
        ] {
            assert_eq!(
                check_introspected(&refused),
                Err(TokenError::NotAccessToken),
                "{refused}"
            );
        }
    }

    #[test]
    fn authorized_parties() {
        let list = vec!["web".to_string(), "cli".to_string()];
        assert_eq!(check_azp(None, None), Ok(()));
        assert_eq!(check_azp(None, Some("any")), Ok(()));
        assert_eq!(check_azp(Some(&list), Some("web")), Ok(()));
        assert_eq!(check_azp(Some(&list), Some("cli")), Ok(()));
        for azp in [None, Some("other"), Some("WEB"), Some("")] {
            assert_eq!(
                check_azp(Some(&list), azp),
                Err(TokenError::UnauthorizedParty),
                "{azp:?}"
            );
        }
    }
}
