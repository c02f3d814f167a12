// pkjwt's test authorization server: oidc-provider (a certified OpenID Provider) configured for
// private_key_jwt client authentication, the client_credentials grant and RFC 9068 JWT access
// tokens. TEST USE ONLY: it binds 127.0.0.1, keeps everything in memory, and fetches client
// jwks_uri from loopback addresses, which oidc-provider rightly refuses in production.
//
// Usage: node server.mjs [CONFIG.json]   (or PKJWT_OP_CONFIG=CONFIG.json)
// Config (every field optional):
//   {
//     "port": 0,                      // 0 = any free port; the chosen one is reported
//     "host": "127.0.0.1",
//     "clients": [ { client metadata as in RFC 7591 / oidc-provider } ],
//     "resources": { "https://api.example.com": { "scope": "accounts:read" } },
//     "defaultResource": "https://api.example.com",
//     "accessTokenTTL": 300,           // seconds
//     "initialAccessToken": "secret"   // protects /reg; false = open registration
//   }
// On readiness it prints one JSON line on stdout: {"event":"ready","issuer":"http://127.0.0.1:P",
// "port":P}. Every grant error is one JSON line on stdout with oidc-provider's internal reason
// (error_detail), because the HTTP body only says "client authentication failed".
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const configPath = process.argv[2] || process.env.PKJWT_OP_CONFIG;
const config = configPath ? JSON.parse(readFileSync(configPath, 'utf8')) : {};
const host = config.host || '127.0.0.1';
if (host !== '127.0.0.1' && host !== '::1' && host !== 'localhost') {
  // The loopback fetch override below must never face a network.
  console.error(`refusing to bind ${host}: this test server is loopback only`);
  process.exit(2);
}

const resources = config.resources || { 'https://api.example.com': { scope: 'accounts:read' } };
const defaultResource = config.defaultResource || Object.keys(resources)[0];

function line(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

// The provider's own keys: ES256 for access tokens and ID tokens, RS256 because OIDC requires it
// for ID tokens. Fresh per start; a protected API discovers them at /jwks.
function privateJwk(type, opts, alg) {
  const { privateKey } = generateKeyPairSync(type, opts);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig' };
}
const providerKeys = [
  privateJwk('ec', { namedCurve: 'P-256' }, 'ES256'),
  privateJwk('rsa', { modulusLength: 2048 }, 'RS256'),
];

const server = createServer();
server.listen(config.port || 0, host, () => {
  const { port } = server.address();
  const issuer = `http://${host}:${port}`;

  const provider = new Provider(issuer, {
    clients: config.clients || [],
    jwks: { keys: providerKeys },
    scopes: ['openid', ...new Set(Object.values(resources).flatMap((r) => (r.scope || '').split(' ').filter(Boolean)))],
    enabledJWA: {
      clientAuthSigningAlgValues: [
        'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512',
        'ES256', 'ES384', 'ES512', 'Ed25519', 'EdDSA',
      ],
    },
    clientAuthMethods: ['private_key_jwt', 'none'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      registration: {
        enabled: true,
        initialAccessToken: config.initialAccessToken ?? false,
      },
      registrationManagement: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => defaultResource,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resourceIndicator) => {
          const rs = resources[resourceIndicator];
          if (!rs) throw new Provider.errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
          return {
            scope: rs.scope || '',
            audience: rs.audience || resourceIndicator,
            accessTokenTTL: config.accessTokenTTL || 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    // TEST ONLY. oidc-provider 9 refuses to fetch from special-use addresses (127/8, ::1, 10/8…)
    // through its own undici dispatcher; dropping the dispatcher lets it reach a jwks_uri served
    // by `pkjwt serve` on 127.0.0.1. Never configure this in production.
    fetch: (url, options) => {
      const opts = { ...options };
      delete opts.dispatcher;
      return fetch(url, opts);
    },
  });

  for (const event of ['grant.error', 'server_error', 'registration_create.error']) {
    provider.on(event, (ctx, err) => {
      line({
        event,
        client_id: ctx?.oidc?.client?.clientId ?? ctx?.oidc?.params?.client_id,
        error: err?.error ?? err?.name,
        error_description: err?.error_description ?? err?.message,
        error_detail: err?.error_detail ?? err?.cause?.message,
      });
    });
  }
  provider.on('grant.success', (ctx) => {
    line({ event: 'grant.success', client_id: ctx?.oidc?.client?.clientId });
  });

  server.on('request', provider.callback());
  line({ event: 'ready', issuer, port });
});

// Under a test harness: exit when the parent closes our stdin (or dies), so no server outlives
// a killed test process.
if (process.env.PKJWT_EXIT_ON_STDIN_CLOSE === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}
