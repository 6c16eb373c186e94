//! `identity-providers[]`: OIDC providers, their URLs (https unless allowed) and token rules.

use super::*;

pub(super) fn identity_provider(
    d: &mut Diag<'_>,
    f: FileIdentityProvider,
    path: &str,
) -> Option<IdentityProvider> {
    let name = required(d, f.name, path, "name");
    if let Some(n) = &name {
        check_name(d, &join(path, "name"), "identity provider", n);
    }
    let issuer = required(d, f.issuer, path, "issuer");
    if let Some(iss) = &issuer {
        if let Err(e) = http_url(iss) {
            d.error(&join(path, "issuer"), e);
        }
    }
    let allow_insecure_http = flag(f.allow_insecure_http, false);
    let discovery_key = if f.discovery_url.is_some() {
        "discovery-url"
    } else {
        "issuer"
    };
    let discovery_url = match f.discovery_url {
        Some(u) => {
            if let Err(e) = http_url(&u) {
                d.error(&join(path, "discovery-url"), e);
            }
            u
        }
        None => issuer.as_deref().map_or_else(String::new, |iss| {
            format!(
                "{}/.well-known/openid-configuration",
                iss.trim_end_matches('/')
            )
        }),
    };
    let client_id = required(d, f.client_id, path, "client-id").map(|t| t.0);
    if client_id.as_deref() == Some("") {
        d.error(&join(path, "client-id"), "must not be empty");
    }
    let audiences = match f.audiences {
        Some(a) => {
            let a: Vec<String> = a.into_iter().map(|t| t.0).collect();
            if a.is_empty() {
                d.error(
                    &join(path, "audiences"),
                    "must list at least one audience (omit it for [client-id])",
                );
            }
            a
        }
        None => client_id.iter().cloned().collect(),
    };
    let algorithms = match f.algorithms {
        Some(algs) => {
            let key = join(path, "algorithms");
            if algs.is_empty() {
                d.error(&key, "must list at least one algorithm");
            }
            for (i, a) in algs.iter().enumerate() {
                if !ALGORITHMS.contains(&a.as_str()) {
                    d.error(
                        &index(&key, i),
                        format!(
                            "unsupported algorithm {a:?} (expected one of {})",
                            ALGORITHMS.join(", ")
                        ),
                    );
                }
            }
            algs
        }
        None => vec!["RS256".to_string()],
    };
    let scopes = match f.scopes {
        Some(s) => {
            if !s.iter().any(|x| x == "openid") {
                d.error(&join(path, "scopes"), "must include \"openid\"");
            }
            s
        }
        None => vec!["openid".into(), "email".into(), "profile".into()],
    };
    let token_endpoint_auth_method = match f.token_endpoint_auth_method.as_deref() {
        None | Some("client_secret_basic") => TokenEndpointAuthMethod::ClientSecretBasic,
        Some("client_secret_post") => TokenEndpointAuthMethod::ClientSecretPost,
        Some(other) => {
            d.error(
                &join(path, "token-endpoint-auth-method"),
                format!(
                    "invalid value {other:?} (expected client_secret_basic or client_secret_post)"
                ),
            );
            TokenEndpointAuthMethod::ClientSecretBasic
        }
    };
    let jwks_refresh_interval = dur(f.jwks_refresh_interval, Duration::from_secs(600));
    positive(
        d,
        &join(path, "jwks-refresh-interval"),
        jwks_refresh_interval,
    );
    let jwks_file = path_value(d, &join(path, "jwks-file"), f.jwks_file);
    let introspection = flag(f.introspection, false);
    if let Some(u) = &f.introspection_url {
        if let Err(e) = http_url(u) {
            d.error(&join(path, "introspection-url"), e);
        }
    }
    if !allow_insecure_http {
        // With a jwks-file and no discovery-url nothing is fetched for bearer tokens; a login
        // that discovers over http is refused when it happens.
        if discovery_key == "discovery-url" || jwks_file.is_none() {
            insecure(d, &join(path, discovery_key), "discovery", &discovery_url);
        }
        if let Some(u) = &f.introspection_url {
            insecure(d, &join(path, "introspection-url"), "introspection", u);
        }
    }
    let authorized_parties = f.authorized_parties.map(|list| {
        let key = join(path, "authorized-parties");
        if list.is_empty() {
            d.error(
                &key,
                "must list at least one client id (omit it to accept any azp)",
            );
        }
        for (i, party) in list.iter().enumerate() {
            if party.0.is_empty() {
                d.error(&index(&key, i), "must not be empty");
            }
        }
        list.into_iter().map(|t| t.0).collect()
    });
    if introspection {
        if f.client_secret.as_ref().is_none_or(|s| s.0.is_empty()) {
            d.error(
                &join(path, "introspection"),
                "introspection requires a client-secret (the client authenticates at the introspection endpoint)",
            );
        }
        if jwks_file.is_some() && f.introspection_url.is_none() {
            d.error(
                &join(path, "introspection-url"),
                "required when introspection is on with jwks-file (there is no discovery)",
            );
        }
    }
    Some(IdentityProvider {
        name: name?,
        issuer: issuer?,
        discovery_url,
        jwks_file,
        client_id: client_id?,
        client_secret: f.client_secret.map(|t| Secret::new(t.0)),
        audiences,
        algorithms,
        leeway: dur(f.leeway, Duration::from_secs(30)),
        scopes,
        token_endpoint_auth_method,
        jwks_refresh_interval,
        jwks_min_refetch_interval: dur(f.jwks_min_refetch_interval, Duration::from_secs(30)),
        max_token_age: f.max_token_age.map(|d| d.0),
        introspection,
        introspection_url: f.introspection_url,
        introspection_cache_ttl: dur(f.introspection_cache_ttl, Duration::from_secs(30)),
        authorized_parties,
        allow_insecure_http,
        token_cache_size: f.token_cache_size.map_or(DEFAULT_TOKEN_CACHE_SIZE, |s| s.0),
    })
}

/// Reports `url` (used for `what`) when it is plain http: only `allow-insecure-http` permits
/// that.
pub(super) fn insecure(d: &mut Diag<'_>, key: &str, what: &str, url: &str) {
    if url
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
    {
        d.error(
            key,
            format!(
                "{what} over plain http ({url:?}) is refused: use https, or set allow-insecure-http: true on this identity provider (loopback tests and development only)"
            ),
        );
    }
}
