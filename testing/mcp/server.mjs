#!/usr/bin/env node
// A small MCP server (the official TypeScript SDK's McpServer, streamable HTTP, stateless) for
// gatehouse's tests: it sits behind the gateway, which does all of the authorization. Its one
// tool, `whoami`, answers the subject the gateway passed in `X-Auth-Subject`.
// MCP_PORT (default 3000) on 127.0.0.1; prints `MCP READY <port>` once listening.

import * as http from 'node:http';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

const PORT = Number.parseInt(process.env.MCP_PORT || '3000', 10);

const server = http.createServer(async (req, res) => {
  if (req.url === '/health') {
    res.end('ok');
    return;
  }
  // Stateless: a server and a transport per request.
  const mcp = new McpServer({ name: 'gatehouse-test-mcp', version: '0.1.0' });
  mcp.registerTool('whoami', { description: 'The caller, as the gateway names it' }, async () => ({
    content: [{ type: 'text', text: String(req.headers['x-auth-subject'] ?? '') }],
  }));
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  res.on('close', () => {
    transport.close();
    mcp.close();
  });
  try {
    await mcp.connect(transport);
    await transport.handleRequest(req, res);
  } catch (e) {
    console.error('MCP server error', e);
    if (!res.headersSent) {
      res.writeHead(500).end();
    }
  }
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
server.listen(PORT, '127.0.0.1', () => process.stdout.write(`MCP READY ${PORT}\n`));
