// The OpenID Connect provider of tests/test_sso_oidc.py: panva's oidc-provider on 127.0.0.1 (its
// development login and consent forms accept anyone: a test fixture, never for production).
// argv: port, redirect URL, JSON of accounts {login (the subject): {username, name, email, groups}}. Prints "ready <issuer>".
// POST /__tamper {"mode": ...} makes the NEXT token response carry a forged ID token, as a
// compromised network or provider would: "foreign-key" (signed by a key not in the JWKS, same kid),
// "issuer", "audience", "nonce", "no-nonce", "expired" (re-signed with the real key).
import { generateKeyPair, exportJWK, SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import Provider from 'oidc-provider';

const [port, redirect, accountsJson] = process.argv.slice(2);
const accounts = JSON.parse(accountsJson || '{}');
const issuer = `http://127.0.0.1:${port}`;
const real = await generateKeyPair('RS256', { extractable: true });
const foreign = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(real.privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{ client_id: 'nextstat-pro', client_secret: 'test-client-secret', redirect_uris: [redirect],
    grant_types: ['authorization_code'], response_types: ['code'] }],
  jwks: { keys: [jwk] },
  pkce: { required: () => true },
  conformIdTokenClaims: false, // scope claims (username, groups) in the ID token itself
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email'], groups: ['groups'] },
  scopes: ['openid', 'profile', 'email', 'groups'],
  findAccount: (ctx, id) => ({
    accountId: id,
    claims: () => ({ sub: id, preferred_username: accounts[id]?.username ?? id, name: accounts[id]?.name ?? id,
      email: accounts[id]?.email, groups: accounts[id]?.groups ?? [] }),
  }),
});

let tamper = null;
provider.use(async (ctx, next) => {
  if (ctx.path === '/__tamper' && ctx.method === 'POST') {
    tamper = ctx.query.mode || null;
    ctx.status = 204;
    return;
  }
  await next();
  if (ctx.path === '/token' && tamper && ctx.body?.id_token) {
    const claims = decodeJwt(ctx.body.id_token);
    const { kid } = decodeProtectedHeader(ctx.body.id_token);
    let key = real.privateKey;
    if (tamper === 'foreign-key') key = foreign.privateKey;
    if (tamper === 'issuer') claims.iss = 'http://127.0.0.1:1/evil';
    if (tamper === 'audience') claims.aud = 'someone-else';
    if (tamper === 'nonce') claims.nonce = 'not-the-nonce-that-was-sent';
    if (tamper === 'no-nonce') delete claims.nonce;
    if (tamper === 'expired') { claims.iat -= 7200; claims.exp = claims.iat + 600; }
    ctx.body = { ...ctx.body, id_token: await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(key) };
    tamper = null;
  }
});

provider.listen(Number(port), '127.0.0.1', () => console.log(`ready ${issuer}`));
