// node-oidc-provider 9, as bench/sso_peer.py runs it beside Roam: one process, its default
// in-memory adapter, one RS256 key, one confidential client (client_secret_basic) whose
// ID tokens are RS256, PKCE S256. Logins go through its development interactions (any
// user name); consent is taken as given (a first-party RP), as Roam gives it.
//
//   PORT=… CLIENT_SECRET=… CALLBACK=… node provider.mjs
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'rs256-1', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench-rp',
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.CALLBACK],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: { devInteractions: { enabled: true } },
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  async loadExistingGrant(ctx) {
    const existing = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (existing) return ctx.oidc.provider.Grant.find(existing);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid');
    await grant.save();
    ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId, grant.jti);
    return grant;
  },
  ttl: { Session: 8 * 3600, Grant: 8 * 3600 },
});
provider.listen(port, '127.0.0.1', () => console.log(`listening ${issuer}`));
