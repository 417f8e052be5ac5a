// A test-only OAuth 2.0 authorization server, shaped like a Keycloak realm,
// built on oidc-provider: an implementation independent of keycloak-jwt and
// of its Go test issuer, used by the interop tests to check that the engine
// accepts what a real, certified server issues.
//
//   node server.js [port]          (or PORT=...; default 0: any free port)
//
// It listens on 127.0.0.1 (HOST to change) and prints one JSON line on stdout
// once it serves:
//   {"event":"listening","port":N,"issuer":"http://127.0.0.1:N/realms/demo","admin":"http://127.0.0.1:N/admin"}
//
// The realm: issuer <base>/realms/demo; Keycloak's endpoint paths
// (/protocol/openid-connect/token and /certs); confidential clients using the
// client-credentials grant only; access tokens are RFC 9068 JWTs (header typ
// "at+jwt", claim client_id, no azp), RS256, 5 minutes, with aud "orders-api"
// by default (resource indicator urn:keycloak-jwt:orders-api) and Keycloak's
// realm_access / resource_access role claims. The JWKS also publishes an
// RSA-OAEP "enc" key, as Keycloak's does.
//
// Key rotation: POST /admin/rotate (or SIGUSR2) makes a new RS256 key the
// signing key; the previous one stays published (like a passive key in
// Keycloak) unless ?retire=true. GET /admin/keys lists the kids. The admin
// endpoints exist for tests and listen on the same loopback address.
//
// With OIDC_EXIT_ON_STDIN_EOF=1 the server exits when its stdin closes, so a
// test process that dies does not leave it running.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const REALM_PATH = '/realms/demo';
const ADMIN_PATH = '/admin';
const SCOPES = ['orders:read', 'orders:write'];

// Resource servers the realm issues tokens for: resource indicator (RFC 8707,
// an absolute URI) -> the "aud" its tokens carry. Keycloak has no resource
// indicators; "orders-api" is what its audience mapper would add, and
// "account" is the aud of a Keycloak client without one.
const RESOURCES = {
  'urn:keycloak-jwt:orders-api': 'orders-api',
  'urn:keycloak-jwt:other-api': 'other-api',
  'urn:keycloak-jwt:account': 'account',
};

// The clients, mirroring examples/keycloak/realm-demo.json. Like Keycloak,
// oidc-provider accepts a client secret both ways, client_secret_basic (HTTP
// Basic) and client_secret_post (form body), whichever of the two is registered.
const CLIENTS = {
  'orders-service': {
    secret: 'orders-service-demo-secret',
    scope: 'orders:read orders:write',
    resource: 'urn:keycloak-jwt:orders-api',
    realmRoles: ['api-client', 'orders-admin'],
    clientRoles: { 'orders-api': ['reader', 'writer'] },
  },
  'reports-job': {
    secret: 'reports-job-demo-secret',
    scope: 'orders:read',
    resource: 'urn:keycloak-jwt:orders-api',
    realmRoles: ['api-client'],
    clientRoles: { 'orders-api': ['reader'] },
  },
  'no-audience-client': {
    secret: 'no-audience-client-demo-secret',
    scope: 'orders:read',
    resource: 'urn:keycloak-jwt:account',
    realmRoles: ['api-client'],
    clientRoles: {},
  },
};

const TOKEN_TTL = Number.parseInt(process.env.TOKEN_TTL ?? '300', 10);

let keySeq = 0;

function newSigningKey() {
  keySeq += 1;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: `rs256-${keySeq}-${randomBytes(4).toString('hex')}`,
    alg: 'RS256',
    use: 'sig',
  };
}

function newEncryptionKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: `rsa-oaep-${randomBytes(4).toString('hex')}`,
    alg: 'RSA-OAEP',
    use: 'enc',
  };
}

const encKey = newEncryptionKey();
let signingKeys = [newSigningKey()]; // [current, previous?]
const cookieKeys = [randomBytes(32).toString('hex')];

function buildProvider(issuer) {
  const current = signingKeys[0].kid;
  const provider = new Provider(issuer, {
    clients: Object.entries(CLIENTS).map(([id, c]) => ({
      client_id: id,
      client_secret: c.secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: c.scope,
    })),
    jwks: { keys: [...signingKeys, encKey] },
    cookies: { keys: cookieKeys },
    scopes: SCOPES,
    routes: {
      token: '/protocol/openid-connect/token',
      jwks: '/protocol/openid-connect/certs',
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Only so that the JWKS may publish an "enc" key, as Keycloak's does.
      encryption: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client) => CLIENTS[client.clientId]?.resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          const audience = RESOURCES[resource];
          if (!audience) {
            throw new errors.InvalidTarget(`unknown resource ${resource}`);
          }
          return {
            scope: SCOPES.join(' '),
            audience,
            accessTokenFormat: 'jwt',
            accessTokenTTL: TOKEN_TTL,
            jwt: { sign: { alg: 'RS256', kid: current } },
          };
        },
      },
    },
    extraTokenClaims: (ctx, token) => {
      const c = CLIENTS[token.clientId];
      if (!c) return undefined;
      const resourceAccess = {};
      for (const [client, roles] of Object.entries(c.clientRoles)) {
        resourceAccess[client] = { roles };
      }
      return { realm_access: { roles: c.realmRoles }, resource_access: resourceAccess };
    },
    ttl: { ClientCredentials: TOKEN_TTL },
  });
  provider.on('server_error', (ctx, err) => {
    process.stderr.write(`oidc-server: server_error: ${err?.stack ?? err}\n`);
  });
  return provider;
}

function rotate(retire) {
  const next = newSigningKey();
  signingKeys = retire ? [next] : [next, signingKeys[0]];
  provider = buildProvider(issuer);
  handler = provider.callback();
  process.stderr.write(`oidc-server: signing key is now ${next.kid}; published: ${publishedKids().join(' ')}\n`);
  return next.kid;
}

function publishedKids() {
  return signingKeys.map((k) => k.kid);
}

function sendJSON(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(data);
}

function admin(req, res, url) {
  if (url.pathname === `${ADMIN_PATH}/rotate` && req.method === 'POST') {
    const kid = rotate(url.searchParams.get('retire') === 'true');
    return sendJSON(res, 200, { kid, published: publishedKids() });
  }
  if (url.pathname === `${ADMIN_PATH}/keys` && req.method === 'GET') {
    return sendJSON(res, 200, { kid: signingKeys[0].kid, published: publishedKids() });
  }
  return sendJSON(res, 404, { error: 'not_found' });
}

let issuer;
let provider;
let handler;

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === ADMIN_PATH || url.pathname.startsWith(`${ADMIN_PATH}/`)) {
    return admin(req, res, url);
  }
  if (!handler || !(url.pathname === REALM_PATH || url.pathname.startsWith(`${REALM_PATH}/`))) {
    return sendJSON(res, 404, { error: 'not_found' });
  }
  // oidc-provider mounted under the realm path: it derives its mount path
  // from originalUrl.
  req.originalUrl = req.url;
  req.url = req.url.slice(REALM_PATH.length) || '/';
  return handler(req, res);
});

const host = process.env.HOST ?? '127.0.0.1';
const port = Number.parseInt(process.argv[2] ?? process.env.PORT ?? '0', 10);

server.listen(port, host, () => {
  const { port: bound } = server.address();
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  issuer = `${base}${REALM_PATH}`;
  provider = buildProvider(issuer);
  handler = provider.callback();
  process.stdout.write(`${JSON.stringify({
    event: 'listening', port: bound, issuer, admin: `${base}${ADMIN_PATH}`,
  })}\n`);
});

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('SIGUSR2', () => rotate(false));
if (process.env.OIDC_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}
