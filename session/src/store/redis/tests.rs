use super::*;

#[test]
fn parses_single_node_urls() {
    let t = parse_url("redis://127.0.0.1:6380/2", false).unwrap();
    assert_eq!(t.hosts, vec![("127.0.0.1".to_string(), 6380)]);
    assert_eq!(t.database, Some(2));
    assert_eq!(t.username, None);
    let t = parse_url("rediss://:p%40ss@redis.internal", false).unwrap();
    assert_eq!(t.hosts, vec![("redis.internal".to_string(), 6379)]);
    assert_eq!(t.password.as_deref(), Some("p@ss"));
    assert!(!format!("{t:?}").contains("p@ss"), "{t:?}");
    let t = parse_url("redis://gate:pw@[::1]:7000", false).unwrap();
    assert_eq!(t.hosts, vec![("::1".to_string(), 7000)]);
    assert_eq!(t.username.as_deref(), Some("gate"));
}

#[test]
fn parses_cluster_urls() {
    let t = parse_url("redis-cluster://r1:7000, r2:7001,r3", true).unwrap();
    assert_eq!(
        t.hosts,
        vec![
            ("r1".to_string(), 7000),
            ("r2".to_string(), 7001),
            ("r3".to_string(), 6379)
        ]
    );
}

#[test]
fn refuses_unusable_urls() {
    assert!(parse_url("redis://a:1,b:2", false).is_err());
    assert!(parse_url("redis-cluster://a:1/0", true).is_err());
    assert!(parse_url("redis://a:notaport", false).is_err());
    assert!(parse_url("redis://:1", false).is_err());
    assert!(parse_url("redis://a:1/db", false).is_err());
    assert!(parse_url("redis://a:1?x=y", false).is_err());
}
