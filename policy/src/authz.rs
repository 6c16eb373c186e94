//! Authorization: a route's `roles`, `groups`, `require-all` and `match-claims`, compiled once
//! into [`Requirements`] and evaluated against any [`Identity`] in a few hundred nanoseconds,
//! without I/O or allocation.
//!
//! Semantics (the contract's, made precise):
//! - `roles`: the caller needs at least one of them (`require-all: true`: every one). A role
//!   `client:role` is a client role of `client`; a bare `role` is a realm role or a role of the
//!   identity provider's own client-id (the [`Identity`] implementation resolves both).
//! - `groups`: likewise, at least one (or, with `require-all`, every one).
//! - when both lists are given, both conditions must hold (a role AND a group requirement);
//! - `match-claims`: every listed claim must match its regex, as a whole (the pattern is
//!   anchored at both ends; `.*x.*` matches a substring); an array claim matches when any
//!   element does; a missing claim never matches.

use std::fmt;

use regex::Regex;

/// What authorization needs from an authenticated caller.
pub trait Identity {
    /// Whether the caller has `role` (`client:role`, or a bare realm/own-client role).
    fn has_role(&self, role: &str) -> bool;
    /// Whether the caller is in `group` (with or without a leading `/`).
    fn in_group(&self, group: &str) -> bool;
    /// Whether the claim at the dotted `path` (or any element of it, for arrays) matches.
    fn claim_matches(&self, path: &str, pattern: &Regex) -> bool;
}

/// Why an authenticated caller is refused (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    /// None (or, with `require-all`, not all) of the route's roles.
    MissingRole,
    /// None (or not all) of the route's groups.
    MissingGroup,
    /// A `match-claims` entry did not match.
    ClaimMismatch,
    /// No route matches and the tenant denies by default (authenticated or not).
    NoRoute,
}

impl Forbidden {
    /// A short, stable reason for logs and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Forbidden::MissingRole => "missing_role",
            Forbidden::MissingGroup => "missing_group",
            Forbidden::ClaimMismatch => "claim_mismatch",
            Forbidden::NoRoute => "no_route",
        }
    }
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// A route's compiled authorization requirements.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    roles: Vec<String>,
    groups: Vec<String>,
    require_all: bool,
    claims: Vec<(String, Regex)>,
}

impl Requirements {
    /// Compiles the route's keys; `match_claims` patterns must be valid regexes (config
    /// validation has already checked them; an invalid one is reported here too) and each is
    /// anchored to match the whole claim value ([`gatehouse_config::anchored_pattern`]).
    pub fn new(
        roles: &[String],
        groups: &[String],
        require_all: bool,
        match_claims: &[(String, String)],
    ) -> Result<Requirements, regex::Error> {
        let claims = match_claims
            .iter()
            .map(|(path, pattern)| {
                Regex::new(&gatehouse_config::anchored_pattern(pattern))
                    .map(|re| (path.clone(), re))
            })
            .collect::<Result<_, _>>()?;
        Ok(Requirements {
            roles: roles.to_vec(),
            groups: groups.to_vec(),
            require_all,
            claims,
        })
    }

    /// True when any authenticated caller passes (no roles, groups or claims listed).
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.groups.is_empty() && self.claims.is_empty()
    }

    /// Evaluates the requirements for `identity`.
    pub fn check(&self, identity: &impl Identity) -> Result<(), Forbidden> {
        let satisfied = |items: &[String], has: &dyn Fn(&str) -> bool| {
            items.is_empty()
                || if self.require_all {
                    items.iter().all(|i| has(i))
                } else {
                    items.iter().any(|i| has(i))
                }
        };
        if !satisfied(&self.roles, &|r| identity.has_role(r)) {
            return Err(Forbidden::MissingRole);
        }
        if !satisfied(&self.groups, &|g| identity.in_group(g)) {
            return Err(Forbidden::MissingGroup);
        }
        if !self
            .claims
            .iter()
            .all(|(path, re)| identity.claim_matches(path, re))
        {
            return Err(Forbidden::ClaimMismatch);
        }
        Ok(())
    }

    /// Whether `require-all` is set (every listed role and group, not one of each).
    pub fn require_all(&self) -> bool {
        self.require_all
    }

    /// Each listed role, group and claim, and whether `identity` has it: what `gatehouse
    /// explain` shows next to the verdict, which is always [`Requirements::check`]'s.
    pub fn report(&self, identity: &impl Identity) -> Vec<RequirementCheck<'_>> {
        let roles = self.roles.iter().map(|r| RequirementCheck {
            kind: "role",
            name: r,
            pattern: None,
            met: identity.has_role(r),
        });
        let groups = self.groups.iter().map(|g| RequirementCheck {
            kind: "group",
            name: g,
            pattern: None,
            met: identity.in_group(g),
        });
        let claims = self.claims.iter().map(|(path, re)| RequirementCheck {
            kind: "claim",
            name: path,
            pattern: Some(re.as_str()),
            met: identity.claim_matches(path, re),
        });
        roles.chain(groups).chain(claims).collect()
    }
}

/// One of a route's requirements and whether an identity meets it ([`Requirements::report`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequirementCheck<'a> {
    /// `role`, `group` or `claim`.
    pub kind: &'static str,
    /// The role, group, or the claim's dotted path.
    pub name: &'a str,
    /// A claim's anchored pattern.
    pub pattern: Option<&'a str>,
    /// Whether the identity has it.
    pub met: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A Keycloak-like identity for tests: realm roles, client roles of the provider's own
    /// client `gatehouse`, groups with leading `/`, and string/array claims.
    struct Fake {
        realm: Vec<&'static str>,
        clients: HashMap<&'static str, Vec<&'static str>>,
        groups: Vec<&'static str>,
        claims: HashMap<&'static str, Vec<&'static str>>,
    }

    impl Identity for Fake {
        fn has_role(&self, role: &str) -> bool {
            match role.split_once(':') {
                Some((client, r)) => self.clients.get(client).is_some_and(|rs| rs.contains(&r)),
                None => {
                    self.realm.contains(&role)
                        || self
                            .clients
                            .get("gatehouse")
                            .is_some_and(|rs| rs.contains(&role))
                }
            }
        }
        fn in_group(&self, group: &str) -> bool {
            let g = group.trim_start_matches('/');
            self.groups.iter().any(|x| x.trim_start_matches('/') == g)
        }
        fn claim_matches(&self, path: &str, pattern: &Regex) -> bool {
            self.claims
                .get(path)
                .is_some_and(|vs| vs.iter().any(|v| pattern.is_match(v)))
        }
    }

    fn alice() -> Fake {
        Fake {
            realm: vec!["admin", "user"],
            clients: HashMap::from([
                ("gatehouse", vec!["super-admin"]),
                ("account", vec!["manage-account"]),
            ]),
            groups: vec!["/developers"],
            claims: HashMap::from([
                ("email", vec!["alice@example.com"]),
                ("email_verified", vec!["true"]),
                ("realm_access.roles", vec!["admin", "user"]),
            ]),
        }
    }

    fn req(roles: &[&str], groups: &[&str], all: bool, claims: &[(&str, &str)]) -> Requirements {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let c: Vec<(String, String)> = claims
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        Requirements::new(&s(roles), &s(groups), all, &c).unwrap()
    }

    #[test]
    fn the_report_lists_each_requirement_and_agrees_with_the_check() {
        let a = alice();
        let r = req(
            &["admin", "nope"],
            &["/developers", "ops"],
            true,
            &[("email", ".*@example\\.com")],
        );
        let report = r.report(&a);
        let met: Vec<(&str, &str, bool)> = report.iter().map(|c| (c.kind, c.name, c.met)).collect();
        assert_eq!(
            met,
            [
                ("role", "admin", true),
                ("role", "nope", false),
                ("group", "/developers", true),
                ("group", "ops", false),
                ("claim", "email", true),
            ]
        );
        assert_eq!(report[4].pattern, Some("^(?:.*@example\\.com)$"));
        assert!(r.require_all());
        assert_eq!(r.check(&a), Err(Forbidden::MissingRole));
        // Any-of: one met role and group each is enough, as the report shows.
        let any = req(&["admin", "nope"], &["/developers", "ops"], false, &[]);
        assert_eq!(any.check(&a), Ok(()));
        assert!(any.report(&a).iter().any(|c| c.kind == "role" && c.met));
    }

    #[test]
    fn roles_any_of_realm_client_and_bare_client_roles() {
        let a = alice();
        assert_eq!(req(&[], &[], false, &[]).check(&a), Ok(()));
        assert!(req(&[], &[], false, &[]).is_empty());
        assert_eq!(req(&["admin"], &[], false, &[]).check(&a), Ok(()));
        assert_eq!(req(&["nope", "user"], &[], false, &[]).check(&a), Ok(()));
        assert_eq!(
            req(&["gatehouse:super-admin"], &[], false, &[]).check(&a),
            Ok(())
        );
        assert_eq!(
            req(&["super-admin"], &[], false, &[]).check(&a),
            Ok(()),
            "bare role of the own client"
        );
        assert_eq!(
            req(&["account:manage-account"], &[], false, &[]).check(&a),
            Ok(())
        );
        assert_eq!(
            req(&["manage-account"], &[], false, &[]).check(&a),
            Err(Forbidden::MissingRole),
            "another client's role needs its prefix"
        );
        assert_eq!(
            req(&["account:admin"], &[], false, &[]).check(&a),
            Err(Forbidden::MissingRole)
        );
        assert_eq!(
            req(&["uploader"], &[], false, &[]).check(&a),
            Err(Forbidden::MissingRole)
        );
    }

    #[test]
    fn require_all_needs_every_role_and_group() {
        let a = alice();
        assert_eq!(req(&["admin", "user"], &[], true, &[]).check(&a), Ok(()));
        assert_eq!(
            req(&["admin", "uploader"], &[], true, &[]).check(&a),
            Err(Forbidden::MissingRole)
        );
        assert_eq!(
            req(&[], &["developers", "/admins"], true, &[]).check(&a),
            Err(Forbidden::MissingGroup)
        );
        assert_eq!(
            req(&[], &["developers", "/admins"], false, &[]).check(&a),
            Ok(())
        );
    }

    #[test]
    fn roles_and_groups_are_both_required_when_both_listed() {
        let a = alice();
        assert_eq!(
            req(&["admin"], &["developers"], false, &[]).check(&a),
            Ok(())
        );
        assert_eq!(
            req(&["admin"], &["/ops"], false, &[]).check(&a),
            Err(Forbidden::MissingGroup)
        );
        assert_eq!(
            req(&["ops"], &["/developers"], false, &[]).check(&a),
            Err(Forbidden::MissingRole)
        );
    }

    #[test]
    fn claims_must_all_match_and_arrays_match_any_element() {
        let a = alice();
        let ok = req(
            &[],
            &[],
            false,
            &[
                ("email_verified", "^true$"),
                ("email", "^.*@example\\.com$"),
            ],
        );
        assert_eq!(ok.check(&a), Ok(()));
        let bad = req(
            &[],
            &[],
            false,
            &[("email", "^.*@example\\.com$"), ("email", "^bob@")],
        );
        assert_eq!(bad.check(&a), Err(Forbidden::ClaimMismatch));
        assert_eq!(
            req(&[], &[], false, &[("realm_access.roles", "^admin$")]).check(&a),
            Ok(())
        );
        assert_eq!(
            req(&[], &[], false, &[("missing", ".*")]).check(&a),
            Err(Forbidden::ClaimMismatch)
        );
        assert!(Requirements::new(&[], &[], false, &[("x".into(), "(".into())]).is_err());
    }

    #[test]
    fn claim_patterns_match_the_whole_value() {
        let a = alice();
        let check = |pattern: &str| req(&[], &[], false, &[("email", pattern)]).check(&a);
        for whole in [
            ".*@example\\.com",
            "^.*@example\\.com$",
            "alice@example\\.com",
            "bob|alice@example\\.com",
            ".*example.*",
        ] {
            assert_eq!(check(whole), Ok(()), "{whole}");
        }
        for part in [
            "@example\\.com",
            "alice",
            "example",
            "^alice",
            "com$",
            "alice@example\\.co",
            "bob|alice",
        ] {
            assert_eq!(check(part), Err(Forbidden::ClaimMismatch), "{part}");
        }
    }
}
