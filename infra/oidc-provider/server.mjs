// pkjwt's test authorization server: oidc-provider (a certified OpenID Provider) configured for
// private_key_jwt client authentication, the client_credentials grant, the RFC 7523 §2.1
// JWT-bearer authorization grant and RFC 9068 JWT access tokens. TEST USE ONLY: it binds
// 127.0.0.1, keeps everything in memory, and fetches client jwks_uri from loopback addresses,
// which oidc-provider rightly refuses in production.
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
//     "initialAccessToken": "secret",  // protects /reg; false = open registration
//     "idTokenSigningAlgValues": ["HS256", "ES256"], // enabledJWA for ID tokens (default: oidc-provider's)
//     "stallOnceMarker": "/tmp/m"      // harness test: the first start (marker absent) creates the
//                                      // marker and never listens; later starts run normally
//   }
// On readiness it prints one JSON line on stdout: {"event":"ready","issuer":"http://127.0.0.1:P",
// "port":P}. Every grant error is one JSON line on stdout with oidc-provider's internal reason
// (error_detail), because for a client authentication failure the HTTP body only says "client
// authentication failed". grant.error and grant.success lines also carry the grant_type, and a
// JWT-bearer grant.success line the sub the token was issued for.
//
// JWT-bearer grant (grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer, RFC 7523 §2.1), for
// clients whose grant_types include it. oidc-provider has no such grant; it is registered below
// with provider.registerGrantType. oidc-provider first authenticates the client (private_key_jwt
// client_assertion) and refuses clients without the grant type in grant_types (invalid_request
// "requested grant type is not allowed for this client"); then the handler checks the
// `assertion` parameter as RFC 7523 §3 asks:
//   - a compact JWS with an asymmetric alg (the list in ASYMMETRIC_ALGS), not typed
//     client-authentication+jwt (a client assertion is not an authorization grant);
//   - signed by one of the authenticated client's own registered keys (its jwks or jwks_uri,
//     through oidc-provider's key store for that client);
//   - iss = the client_id; sub present (the user the token is for); aud = the issuer or the
//     token endpoint URL (or an array holding one of them); exp present and not past; nbf and
//     iat not in the future; all with LEEWAY seconds of clock tolerance;
//   - jti present and used once per client (kept in memory until exp + LEEWAY).
// Each failure is invalid_grant with an error_description naming the failed check (also the
// error_detail of the grant.error line); a missing `assertion` is invalid_request. The access
// token is issued like client_credentials issues its own (scope limited to the client's and the
// resource's, audience = the resource indicator or defaultResource, JWT format), but with
// sub = the assertion's sub rather than the client_id, and client_id = the client.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import { compactVerify, decodeJwt, decodeProtectedHeader } from 'jose';
import Provider, { errors } from 'oidc-provider';
// The helpers oidc-provider binds to its own grant handlers (resource indicator and scope
// resolution, the token response), so the JWT-bearer grant resolves them exactly as
// client_credentials does. Not oidc-provider's public API: this deep import holds because
// package.json pins oidc-provider to one exact version.
import * as grantHelpers from 'oidc-provider/lib/helpers/grants.js';

// Start-up stages on stderr, with milliseconds since the process started: a start that hangs on a
// loaded CI machine then shows where it stopped (the harness prints this stderr when it gives up).
const stage = (what) => process.stderr.write(`server.mjs: ${what} at ${Math.round(performance.now())} ms\n`);
stage('modules loaded');

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

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
// Client assertions and JWT-bearer grant assertions: asymmetric algorithms only (a grant signed
// with a shared secret would prove nothing the client secret does not).
const ASYMMETRIC_ALGS = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512', 'Ed25519', 'EdDSA',
];
// Clock tolerance for the grant assertion, in seconds: oidc-provider's default clockTolerance,
// the one it applies to client assertions.
const LEEWAY = 15;

const epoch = () => Math.floor(Date.now() / 1000);

// invalid_grant with the failed check as error_description. oidc-provider's InvalidGrant always
// says "grant request is invalid" and keeps the reason in error_detail (logged, not sent); a test
// server tells the client too, so a refusal is readable from either side.
function invalidGrant(reason, cause) {
  const err = new errors.InvalidGrant(cause ? { detail: reason, cause } : reason);
  err.error_description = reason;
  return err;
}

// Single use of grant assertions: client_id + jti -> the epoch second after which the assertion
// is refused as expired anyway, so the entry can go. A Map rather than oidc-provider's
// ReplayDetection: the in-memory adapter behind it is an LRU of 1000 entries that a long test run
// could push a used jti out of. Client assertions keep oidc-provider's own replay check.
const usedJtis = new Map();
function firstUse(clientId, jti, exp) {
  const now = epoch();
  for (const [key, until] of usedJtis) {
    if (until < now) usedJtis.delete(key);
  }
  const key = JSON.stringify([clientId, jti]);
  if (usedJtis.has(key)) return false;
  usedJtis.set(key, exp + LEEWAY);
  return true;
}

// RFC 7523 §3 checks of the grant assertion; returns its claims. Signature first: the claims of
// an unverified JWT say nothing. The jti is only read here; it is spent once the request is
// otherwise valid (see jwtBearerGrant), so a refused scope or resource does not burn it.
async function verifyGrantAssertion(ctx) {
  const { client, params } = ctx.oidc;
  const { assertion } = params;
  if (typeof assertion !== 'string' || assertion === '') {
    throw new errors.InvalidRequest("missing required parameter 'assertion'");
  }

  let header;
  let claims;
  try {
    header = decodeProtectedHeader(assertion);
    claims = decodeJwt(assertion);
  } catch (cause) {
    throw invalidGrant(`assertion is not a signed JWT (${cause.message})`, cause);
  }

  if (!ASYMMETRIC_ALGS.includes(header.alg)) {
    throw invalidGrant(
      `assertion alg ${JSON.stringify(header.alg ?? null)} is not accepted; the grant needs an `
        + `asymmetric signature (${ASYMMETRIC_ALGS.join(', ')})`,
    );
  }
  if (typeof header.typ === 'string'
      && header.typ.toLowerCase().replace(/^application\//, '') === 'client-authentication+jwt') {
    throw invalidGrant('assertion typ is client-authentication+jwt: a client assertion is not an authorization grant');
  }

  // The key store oidc-provider verified the client assertion with: the client's inline jwks, or
  // its jwks_uri (fetched again only when stale; loopback allowed by the fetch override below).
  const keystore = client.asymmetricKeyStore;
  try {
    await keystore.refresh();
  } catch (cause) {
    throw invalidGrant(`the client's jwks_uri could not be fetched to verify the assertion (${cause.error_detail ?? cause.message})`, cause);
  }
  const candidates = keystore.selectForVerify({ alg: header.alg, kid: header.kid });
  if (candidates.length === 0) {
    const kid = typeof header.kid === 'string' ? ` and kid ${JSON.stringify(header.kid)}` : '';
    throw invalidGrant(`no key registered for the client matches the assertion's alg ${header.alg}${kid}`);
  }
  let verified = false;
  for (const jwk of candidates) {
    try {
      const { payload } = await compactVerify(assertion, keystore.getKeyObject(jwk, true), { algorithms: [header.alg] });
      // From here on, the claims are those of the verified payload.
      claims = JSON.parse(new TextDecoder().decode(payload));
      verified = true;
      break;
    } catch {
      // next candidate
    }
  }
  if (!verified) {
    throw invalidGrant("assertion signature does not verify with the client's registered keys");
  }

  if (claims.iss === undefined) {
    throw invalidGrant(`assertion iss (issuer) is missing; it must be the client_id ${client.clientId}`);
  }
  if (claims.iss !== client.clientId) {
    throw invalidGrant(`assertion iss (issuer) must be the client_id ${client.clientId}`);
  }
  if (typeof claims.sub !== 'string' || claims.sub === '') {
    throw invalidGrant('assertion sub (subject) is missing; it names the user the access token is requested for');
  }

  const accepted = [ctx.oidc.issuer, ctx.oidc.urlFor('token')];
  const expected = `the issuer ${accepted[0]} or the token endpoint ${accepted[1]}`;
  if (claims.aud === undefined) {
    throw invalidGrant(`assertion aud (audience) is missing; it must be ${expected}`);
  }
  const auds = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!auds.some((aud) => accepted.includes(aud))) {
    throw invalidGrant(`assertion aud (audience) must be ${expected}`);
  }

  const now = epoch();
  for (const name of ['exp', 'nbf', 'iat']) {
    if (claims[name] !== undefined && !Number.isFinite(claims[name])) {
      throw invalidGrant(`assertion ${name} is not a NumericDate`);
    }
  }
  if (claims.exp === undefined) {
    throw invalidGrant('assertion exp (expiration time) is missing');
  }
  if (claims.exp <= now - LEEWAY) {
    throw invalidGrant(`assertion expired (exp is ${now - claims.exp} s in the past; leeway ${LEEWAY} s)`);
  }
  if (claims.nbf !== undefined && claims.nbf > now + LEEWAY) {
    throw invalidGrant(`assertion nbf (not before) is ${claims.nbf - now} s in the future; leeway ${LEEWAY} s`);
  }
  if (claims.iat !== undefined && claims.iat > now + LEEWAY) {
    throw invalidGrant(`assertion iat (issued at) is ${claims.iat - now} s in the future; leeway ${LEEWAY} s`);
  }

  if (typeof claims.jti !== 'string' || claims.jti === '') {
    throw invalidGrant('assertion jti (JWT ID) is missing; it is required so that an assertion is used only once');
  }

  return claims;
}

// The grant handler, modelled on oidc-provider's lib/actions/grants/client_credentials.js: same
// resource and scope resolution, but a provider.AccessToken whose accountId (the JWT's sub) is the
// assertion's subject. No grant or session is created.
// DPoP and mTLS binding are left out: neither feature is enabled here.
async function jwtBearerGrant(ctx) {
  const { client, provider } = ctx.oidc;

  const claims = await verifyGrantAssertion(ctx);

  const resourceServers = await grantHelpers.resolveRequestedResources(provider, ctx);
  const scopes = [...grantHelpers.validateClientScope(provider, ctx)];
  const { 0: resourceServer, length } = resourceServers;
  if (length !== 1) {
    throw new errors.InvalidTarget(length
      ? 'only a single resource indicator value is supported for this grant type'
      : 'a resource indicator is required (no defaultResource is configured)');
  }

  if (!firstUse(client.clientId, claims.jti, claims.exp)) {
    throw invalidGrant('assertion jti (JWT ID) was already used; a grant assertion is single use');
  }

  const resourceScopes = new Set(resourceServer.scope.split(' '));
  const token = new provider.AccessToken({
    accountId: claims.sub,
    client,
    gty: JWT_BEARER,
    scope: scopes.filter((s) => resourceScopes.has(s)).join(' ') || undefined,
  });
  token.resourceServer = resourceServer;

  ctx.oidc.entity('AccessToken', token);
  const value = await token.save();

  ctx.body = grantHelpers.buildTokenResponse(provider, {
    accessToken: value,
    expiresIn: token.expiration,
    scope: token.scope || undefined,
    tokenType: token.tokenType,
  });
}

// The provider's own keys: ES256 for access tokens and ID tokens, RS256 because OIDC requires it
// for ID tokens. Fresh per start; a protected API discovers them at /jwks.
// The JWK is encoded by the key generation job itself, never by KeyObject.export(): on Node 20,
// exporting the job's key as a JWK could deadlock the process (about one start in a thousand
// on a loaded machine; gdb showed the main thread in ExportJWKRsaKey, a string allocation
// starting a GC whose weak callback ran ~KeyGenJob<RsaKeyGenTraits>, which waited for the mutex
// the export held).
function privateJwk(type, opts, alg) {
  const { privateKey } = generateKeyPairSync(type, {
    ...opts,
    publicKeyEncoding: { type: 'spki', format: 'jwk' },
    privateKeyEncoding: { type: 'pkcs8', format: 'jwk' },
  });
  return { ...privateKey, alg, use: 'sig' };
}
const providerKeys = [
  privateJwk('ec', { namedCurve: 'P-256' }, 'ES256'),
  privateJwk('rsa', { modulusLength: 2048 }, 'RS256'),
];

stage('provider keys generated');

const server = createServer();
// The harness's own test of a stalled start (see stallOnceMarker above).
const stall = config.stallOnceMarker && !existsSync(config.stallOnceMarker);
if (stall) {
  writeFileSync(config.stallOnceMarker, '');
  stage('stalling on purpose (stallOnceMarker)');
}
if (!stall) server.listen(config.port || 0, host, () => {
  const { port } = server.address();
  stage(`listening on port ${port}`);
  const issuer = `http://${host}:${port}`;

  const provider = new Provider(issuer, {
    clients: config.clients || [],
    jwks: { keys: providerKeys },
    scopes: ['openid', ...new Set(Object.values(resources).flatMap((r) => (r.scope || '').split(' ').filter(Boolean)))],
    enabledJWA: {
      clientAuthSigningAlgValues: ASYMMETRIC_ALGS,
      // An HMAC ID-token algorithm makes oidc-provider issue a client_secret even to a
      // private_key_jwt client: tests of secret hygiene enable one.
      ...(config.idTokenSigningAlgValues
        ? { idTokenSigningAlgValues: config.idTokenSigningAlgValues }
        : {}),
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
          if (!rs) throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
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

  // Registering the grant type also makes it an accepted client grant_types value (static clients
  // are validated on first use, after this) and lists it in discovery's grant_types_supported.
  // Parameters: the grant's own, plus resource (repeatable, RFC 8707) as oidc-provider allows for
  // its built-in grants when resourceIndicators is on.
  provider.registerGrantType(JWT_BEARER, jwtBearerGrant, ['assertion', 'scope', 'resource'], ['resource']);

  for (const event of ['grant.error', 'server_error', 'registration_create.error']) {
    provider.on(event, (ctx, err) => {
      line({
        event,
        client_id: ctx?.oidc?.client?.clientId ?? ctx?.oidc?.params?.client_id,
        grant_type: ctx?.oidc?.params?.grant_type,
        error: err?.error ?? err?.name,
        error_description: err?.error_description ?? err?.message,
        error_detail: err?.error_detail ?? err?.cause?.message,
      });
    });
  }
  provider.on('grant.success', (ctx) => {
    line({
      event: 'grant.success',
      client_id: ctx?.oidc?.client?.clientId,
      grant_type: ctx?.oidc?.params?.grant_type,
      // The user a JWT-bearer token was issued for (absent for client_credentials).
      sub: ctx?.oidc?.entities?.AccessToken?.accountId,
    });
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
