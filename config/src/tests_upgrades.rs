//! Upgraded connections (WebSocket): the tenant's `upgrade-idle-timeout`; HTTP/2 without TLS:
//! the top-level `listen-h2c`; the admin listener's `admin-explain`. One const snippet per
//! invalid value class, asserting line, key and message.

use std::time::Duration;

use crate::tests::{assert_error, errs, ok, BASE};

#[test]
fn upgrade_idle_timeout_defaults_to_an_hour_and_takes_a_duration() {
    let c = ok(BASE);
    assert_eq!(c.tenants[0].upgrade_idle_timeout, Duration::from_secs(3600));
    let c = ok(&format!("{BASE}    upgrade-idle-timeout: 90s\n"));
    assert_eq!(c.tenants[0].upgrade_idle_timeout, Duration::from_secs(90));
    let c = ok(&format!("{BASE}    upgrade-idle-timeout: 120\n"));
    assert_eq!(c.tenants[0].upgrade_idle_timeout, Duration::from_secs(120));
}

#[test]
fn upgrade_idle_timeout_refuses_a_non_duration() {
    let e = errs(&format!("{BASE}    upgrade-idle-timeout: forever\n"));
    assert_error(
        &e,
        13,
        "tenants[0].upgrade-idle-timeout",
        "invalid duration \"forever\"",
    );
}

#[test]
fn upgrade_idle_timeout_refuses_zero() {
    let e = errs(&format!("{BASE}    upgrade-idle-timeout: 0s\n"));
    assert_error(
        &e,
        13,
        "tenants[0].upgrade-idle-timeout",
        "must be greater than zero",
    );
}

#[test]
fn upgrade_idle_timeout_refuses_a_list() {
    let e = errs(&format!("{BASE}    upgrade-idle-timeout: [1h]\n"));
    assert_error(
        &e,
        13,
        "tenants[0].upgrade-idle-timeout",
        "invalid duration a list",
    );
}

#[test]
fn listen_h2c_defaults_to_off_and_takes_a_boolean() {
    assert!(!ok(BASE).listen_h2c);
    assert!(ok(&format!("listen-h2c: true\n{BASE}")).listen_h2c);
    let e = errs(&format!("listen-h2c: sometimes\n{BASE}"));
    assert_error(&e, 1, "listen-h2c", "invalid boolean \"sometimes\"");
}

#[test]
fn admin_explain_defaults_to_off_and_takes_a_boolean() {
    assert!(!ok(BASE).admin_explain);
    let on = ok(&format!(
        "admin-listen: 127.0.0.1:9090\nadmin-explain: true\n{BASE}"
    ));
    assert!(on.admin_explain);
    assert!(on.warnings.is_empty(), "{:?}", on.warnings);
    let e = errs(&format!("admin-explain: maybe\n{BASE}"));
    assert_error(&e, 1, "admin-explain", "invalid boolean \"maybe\"");
}

#[test]
fn admin_explain_without_an_admin_listener_is_a_warning() {
    let c = ok(&format!("admin-explain: true\n{BASE}"));
    assert!(c.admin_explain);
    let w = c
        .warnings
        .iter()
        .find(|w| w.key == "admin-explain")
        .expect("a warning on admin-explain");
    assert_eq!(w.line, Some(1));
    assert!(w.message.contains("admin-listen"), "{}", w.message);
}
