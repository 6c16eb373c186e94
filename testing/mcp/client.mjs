#!/usr/bin/env node
// An MCP client (the official TypeScript SDK's Client, streamable HTTP transport, its
// client-credentials OAuth provider) for gatehouse's tests:
//   node client.mjs <MCP server URL> <client id> <client secret> <expected issuer>
// It is given no authorization server: on the gateway's 401 the SDK reads
// `resource_metadata` from WWW-Authenticate, fetches the protected resource metadata, discovers
// the authorization server it names, gets a token for the metadata's `resource` (RFC 8707) and
// calls the `whoami` tool. Prints one JSON line: the tool result, every HTTP request the SDK
// made (method, URL, status) and the access token it used.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

const [url, clientId, clientSecret, issuer] = process.argv.slice(2);
if (!issuer) {
  console.error('usage: node client.mjs <MCP server URL> <client id> <client secret> <expected issuer>');
  process.exit(2);
}

const requests = [];
const logged = async (input, init) => {
  const response = await fetch(input, init);
  requests.push({ method: init?.method ?? 'GET', url: String(input), status: response.status });
  return response;
};

const authProvider = new ClientCredentialsProvider({ clientId, clientSecret, expectedIssuer: issuer });
const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider, fetch: logged });
const client = new Client({ name: 'gatehouse-test-client', version: '0.1.0' });
try {
  await client.connect(transport);
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  process.stdout.write(`${JSON.stringify({ result, requests, token: authProvider.tokens()?.access_token })}\n`);
  await client.close();
} catch (e) {
  process.stdout.write(`${JSON.stringify({ error: String(e?.stack ?? e), requests })}\n`);
  process.exit(1);
}
