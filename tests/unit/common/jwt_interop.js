'use strict';
/*
 * jwt_interop.js - the other end of jwt_test.c's interoperability test:
 * Node's own crypto (no npm packages) checks tokens made by mk_jwt.c and
 * makes tokens for mk_jwt.c to check.
 *
 *   node jwt_interop.js PUB_PEM PRIV_PEM ISS AUD NOW COUNT TOKEN...
 *
 * Every TOKEN must carry kid = the RFC 7638 thumbprint of PUB_PEM, an ES256
 * signature by it (IEEE P1363 form, R || S), and the expected iss and aud;
 * any failure prints a reason on stderr and exits 1. Then COUNT tokens
 * signed with PRIV_PEM (kid = its thumbprint, iat = NOW, exp = NOW + 600)
 * are printed on stdout, one per line, after a first line
 * "verified N <kid>".
 */
const crypto = require('crypto');
const fs = require('fs');

function fail(msg) {
	process.stderr.write('jwt_interop: ' + msg + '\n');
	process.exit(1);
}

function b64url(buf) {
	return Buffer.from(buf).toString('base64url');
}

/* RFC 7638: the required members in lexicographic order, no white space. */
function thumbprint(key) {
	const jwk = key.export({ format: 'jwk' });
	if (jwk.kty !== 'EC' || jwk.crv !== 'P-256')
		fail('not an EC P-256 key');
	const canon = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
	return crypto.createHash('sha256').update(canon).digest('base64url');
}

function decodeJson(part, what) {
	if (!/^[A-Za-z0-9_-]+$/.test(part))
		fail(what + ' is not base64url');
	try {
		return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
	} catch (e) {
		fail(what + ' is not JSON');
	}
}

function verify(token, pub, kid, iss, aud, now) {
	const parts = token.split('.');
	if (parts.length !== 3)
		fail('token has ' + parts.length + ' parts');
	const header = decodeJson(parts[0], 'header');
	if (header.alg !== 'ES256' || header.typ !== 'JWT')
		fail('header is ' + JSON.stringify(header));
	if (header.kid !== kid)
		fail('kid ' + header.kid + ' is not the thumbprint ' + kid);
	const sig = Buffer.from(parts[2], 'base64url');
	if (sig.length !== 64 || b64url(sig) !== parts[2])
		fail('signature is not 64 bytes of unpadded base64url');
	const data = Buffer.from(parts[0] + '.' + parts[1]);
	if (!crypto.verify('sha256', data, { key: pub, dsaEncoding: 'ieee-p1363' }, sig))
		fail('signature does not verify');
	const p = decodeJson(parts[1], 'payload');
	if (p.iss !== iss || p.aud !== aud)
		fail('iss/aud are ' + p.iss + '/' + p.aud);
	if (!Number.isInteger(p.iat) || !Number.isInteger(p.exp) || p.exp <= now || p.iat > now)
		fail('iat/exp are ' + p.iat + '/' + p.exp + ' at ' + now);
	if (typeof p.sub !== 'string' || !['user', 'admin'].includes(p.role))
		fail('sub/role are ' + p.sub + '/' + p.role);
	if (typeof p.jti !== 'string' || !/^[0-9a-f]{32}$/.test(p.jti))
		fail('jti is ' + p.jti);
}

function sign(priv, kid, iss, aud, now, i) {
	const header = { alg: 'ES256', typ: 'JWT', kid: kid };
	const payload = {
		iss: iss, aud: aud, sub: 'node-' + i, role: 'admin', email: 'node@example.com',
		iat: now, exp: now + 600, jti: crypto.randomBytes(16).toString('hex'),
	};
	const input = b64url(JSON.stringify(header)) + '.' + b64url(JSON.stringify(payload));
	const sig = crypto.sign('sha256', Buffer.from(input), { key: priv, dsaEncoding: 'ieee-p1363' });
	return input + '.' + b64url(sig);
}

const [pubPath, privPath, iss, aud, nowArg, countArg, ...tokens] = process.argv.slice(2);
if (!countArg || tokens.length === 0)
	fail('usage: jwt_interop.js PUB_PEM PRIV_PEM ISS AUD NOW COUNT TOKEN...');
const now = Number(nowArg), count = Number(countArg);
const pub = crypto.createPublicKey(fs.readFileSync(pubPath));
const kid = thumbprint(pub);
for (const t of tokens)
	verify(t, pub, kid, iss, aud, now);

const priv = crypto.createPrivateKey(fs.readFileSync(privPath));
const privKid = thumbprint(crypto.createPublicKey(priv));
let out = 'verified ' + tokens.length + ' ' + kid + '\n';
for (let i = 0; i < count; i++)
	out += sign(priv, privKid, iss, aud, now, i) + '\n';
process.stdout.write(out);
