//! The resource-server keys: tenant `resource-metadata` (RFC 9728), route `resource`
//! (RFC 8707), `acr` and `max-auth-age` (RFC 9470). One const snippet per invalid value class,
//! asserting line, key and message.

use std::time::Duration;

use crate::tests::{assert_error, errs, ok};

/// A tenant with a provider, `resource-metadata` and one route whose keys a snippet appends
/// (line 16 on; the DPoP tests use it too).
pub(crate) fn with_route(route_keys: &str) -> String {
    format!(
        "\
identity-providers:
  - name: kc
    issuer: https://kc.localhost/realms/demo
    client-id: gatehouse
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: kc
    resource-metadata:
      scopes-supported: [mcp:tools, \"read\"]
    upstreams:
      - name: app
        targets: [\"127.0.0.1:18080\"]
    routes:
      - uri: /mcp/*
{route_keys}"
    )
}

#[test]
fn resource_keys_parse() {
    let c = ok(&with_route(
        "        resource: https://demo.localhost/mcp\n        acr: [gold, \"urn:mace:incommon:iap:silver\"]\n        max-auth-age: 5m\n",
    ));
    let tenant = &c.tenants[0];
    assert_eq!(
        tenant.resource_metadata.as_ref().unwrap().scopes_supported,
        ["mcp:tools", "read"]
    );
    let route = &tenant.routes[0];
    assert_eq!(
        route.resource.as_deref(),
        Some("https://demo.localhost/mcp")
    );
    assert_eq!(route.acr, ["gold", "urn:mace:incommon:iap:silver"]);
    assert_eq!(route.max_auth_age, Some(Duration::from_secs(300)));
    // Left out: none of it applies.
    let plain = ok(&with_route(""));
    let route = &plain.tenants[0].routes[0];
    assert_eq!((route.resource.as_deref(), route.acr.len()), (None, 0));
    assert_eq!(route.max_auth_age, None);
}

#[test]
fn a_resource_must_be_an_absolute_http_uri_without_query_or_fragment() {
    for (value, text) in [
        (
            "urn:gatehouse",
            "expected an absolute http:// or https:// URL",
        ),
        ("/mcp", "expected an absolute http:// or https:// URL"),
        ("ftp://demo.localhost/mcp", "is not http or https"),
        (
            "https://demo.localhost/mcp?x=1",
            "must not have a user part, a query or a fragment",
        ),
        (
            "https://demo.localhost/mcp#top",
            "must not have a user part, a query or a fragment",
        ),
        ("https://u@demo.localhost/mcp", "must not have a user part"),
        ("\"https://demo.localhost/m\\\"cp\"", "only printable ASCII"),
    ] {
        let src = with_route(&format!("        resource: {value}\n"));
        assert_error(&errs(&src), 16, "tenants[0].routes[0].resource", text);
    }
}

#[test]
fn an_acr_list_is_not_empty_and_its_values_are_tokens() {
    let empty = with_route("        acr: []\n");
    assert_error(
        &errs(&empty),
        16,
        "tenants[0].routes[0].acr",
        "must list at least one acr value",
    );
    let spaced = with_route("        acr: [gold, \"two words\"]\n");
    assert_error(
        &errs(&spaced),
        16,
        "tenants[0].routes[0].acr[1]",
        "invalid acr value \"two words\"",
    );
}

#[test]
fn max_auth_age_is_positive() {
    let src = with_route("        max-auth-age: 0s\n");
    assert_error(
        &errs(&src),
        16,
        "tenants[0].routes[0].max-auth-age",
        "must be greater than zero",
    );
}

#[test]
fn step_up_keys_need_an_authenticated_route() {
    let src = with_route("        white-listed: true\n        acr: [gold]\n");
    assert_error(
        &errs(&src),
        16,
        "tenants[0].routes[0].white-listed",
        "white-listed (no authentication) but also has resource, acr or max-auth-age",
    );
}

#[test]
fn a_resource_route_does_not_introspect() {
    let src =
        with_route("        introspect: true\n        resource: https://demo.localhost/mcp\n");
    assert_error(
        &errs(&src),
        17,
        "tenants[0].routes[0].resource",
        "cannot be combined with introspect",
    );
}

#[test]
fn scopes_supported_are_scope_tokens_and_metadata_needs_a_provider() {
    let src = with_route("").replace("\"read\"", "\"read all\"");
    assert_error(
        &errs(&src),
        10,
        "tenants[0].resource-metadata.scopes-supported[1]",
        "invalid scope \"read all\"",
    );
    let no_provider = with_route("").replace("    identity-provider: kc\n", "");
    assert_error(
        &errs(&no_provider),
        8,
        "tenants[0].resource-metadata",
        "requires the tenant's identity-provider",
    );
}
