//! `session-store.url` for Redis: `redis(s)[-cluster]://[user[:password]@]host:port[,...][/db]`.

/// The parts of a `redis(s)[-cluster]://[user[:password]@]host:port[,host:port...][/db]` URL.
/// `Debug` hides the password.
#[derive(PartialEq)]
pub(super) struct Target {
    pub(super) hosts: Vec<(String, u16)>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) database: Option<u8>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("hosts", &self.hosts)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .finish()
    }
}

pub(super) fn parse_url(url: &str, cluster: bool) -> Result<Target, String> {
    let (_, rest) = url
        .split_once("://")
        .ok_or_else(|| "session-store.url: missing scheme".to_string())?;
    if rest.contains('?') || rest.contains('#') {
        return Err("session-store.url: query strings and fragments are not supported".into());
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            let (user, pass) = u.split_once(':').map_or((u, None), |(a, b)| (a, Some(b)));
            let user = decode(user)?;
            let pass = pass.map(decode).transpose()?;
            ((!user.is_empty()).then_some(user), pass)
        }
    };
    let database = match path {
        "" => None,
        _ if cluster => return Err("session-store.url: Redis Cluster has no databases".into()),
        db => Some(
            db.parse::<u8>()
                .map_err(|_| format!("session-store.url: invalid database {db:?}"))?,
        ),
    };
    let hosts = hosts
        .split(',')
        .map(parse_host)
        .collect::<Result<Vec<_>, _>>()?;
    if !cluster && hosts.len() != 1 {
        return Err("session-store.url: several hosts need redis-cluster://".into());
    }
    Ok(Target {
        hosts,
        username,
        password,
        database,
    })
}

fn decode(s: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| "session-store.url: credentials are not UTF-8".to_string())
}

fn parse_host(node: &str) -> Result<(String, u16), String> {
    let node = node.trim();
    let (host, port) = if let Some(v6) = node.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("session-store.url: invalid host {node:?}"))?;
        (h, after.strip_prefix(':'))
    } else {
        match node.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (node, None),
        }
    };
    if host.is_empty() {
        return Err(format!("session-store.url: missing host in {node:?}"));
    }
    let port = match port {
        None => 6379,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("session-store.url: invalid port in {node:?}"))?,
    };
    Ok((host.to_string(), port))
}
