//! A real MCP client and server on each side of the real binary: the MCP TypeScript SDK's
//! client (`testing/mcp/client.mjs`), given only the server's URL and client credentials,
//! discovers the authorization server through gatehouse's RFC 9728 metadata from a 401, gets an
//! RFC 8707 token for the resource from the test IdP and calls a tool of the SDK's server
//! (`testing/mcp/server.mjs`, streamable HTTP) behind gatehouse.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use support::idp::Idp;
use support::*;

fn mcp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testing/mcp")
}

/// The SDK's server on a free port; killed on drop.
struct McpServer {
    child: Child,
    port: u16,
}

impl McpServer {
    fn start() -> McpServer {
        let port = free_port();
        let mut child = Command::new("node")
            .arg(mcp_dir().join("server.mjs"))
            .env("MCP_PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node testing/mcp/server.mjs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("server output");
        assert_eq!(line.trim(), format!("MCP READY {port}"));
        McpServer { child, port }
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(listen: u16, admin: u16, server: u16, idp_port: u16) -> String {
    format!(
        r#"
listen: 127.0.0.1:{listen}
admin-listen: 127.0.0.1:{admin}
identity-providers:
  - name: idp
    issuer: http://127.0.0.1:{idp_port}/realms/demo
    allow-insecure-http: true
    client-id: gatehouse
tenants:
  - name: mcp
    hosts: [127.0.0.1]
    identity-provider: idp
    resource-metadata:
      scopes-supported: [mcp:tools]
    identity-headers:
      X-Auth-Subject: sub
    upstreams:
      - name: mcp-server
        targets: ["127.0.0.1:{server}"]
    routes:
      - uri: /mcp/*
        resource: http://127.0.0.1:{listen}/mcp
"#
    )
}

#[test]
fn the_mcp_sdk_client_finds_the_authorization_server_through_gatehouse_and_calls_a_tool() {
    if !mcp_dir()
        .join("node_modules/@modelcontextprotocol/sdk")
        .exists()
    {
        skip_or_fail(
            "the_mcp_sdk_client_finds_the_authorization_server_through_gatehouse_and_calls_a_tool",
            "testing/mcp has no node_modules: run ./scripts/install-deps.sh",
        );
        return;
    }
    let server = McpServer::start();
    let idp = Idp::start(None, &[]);
    let gw = Gateway::start("mcp", |p, _| {
        config(p.listen, p.admin, server.port, idp.port)
    });
    gw.wait_ready();
    let url = format!("http://127.0.0.1:{}/mcp", gw.listen.port());

    let out = Command::new("node")
        .arg(mcp_dir().join("client.mjs"))
        .args([
            url.as_str(),
            "svc-user",
            "svc-user-secret",
            idp.issuer.as_str(),
        ])
        .output()
        .expect("node testing/mcp/client.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "client output ({e}): {stdout}\nstderr: {}\ngateway log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            gw.log()
        )
    });
    assert!(
        out.status.success(),
        "{report:#}\ngateway log:\n{}",
        gw.log()
    );

    // The tool ran behind the gateway, for the service account the IdP issued the token to.
    assert_eq!(
        report["result"]["content"][0]["text"], "service-account-svc-user",
        "{report:#}"
    );
    // Its token is for this resource alone.
    let token = report["token"].as_str().expect("the token the client used");
    let claims = gatehouse_test_support::keys::decode(token).1;
    assert_eq!(claims["aud"], url.as_str());
    // How it got there: a 401 from the gateway, the metadata it names, the IdP, the retry.
    let requests: Vec<String> = report["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{} {} {}", r["method"], r["url"], r["status"]).replace('"', ""))
        .collect();
    let origin = format!("http://127.0.0.1:{}", gw.listen.port());
    let position = |prefix: &str| {
        requests
            .iter()
            .position(|r| r.starts_with(prefix))
            .unwrap_or_else(|| panic!("no request {prefix:?} in {requests:#?}"))
    };
    let refused = position(&format!("POST {url} 401"));
    let metadata = position(&format!(
        "GET {origin}/.well-known/oauth-protected-resource/mcp 200"
    ));
    let token_request = position(&format!(
        "POST {}/protocol/openid-connect/token 200",
        idp.issuer
    ));
    let accepted = position(&format!("POST {url} 200"));
    assert!(
        refused < metadata && metadata < token_request && token_request < accepted,
        "{requests:#?}"
    );
}
