// ES256 client assertions with node `jose`, key imported once: the Node peer of the Rust bench.
//
// Usage: node jose_assert.mjs KEY.pem SECONDS
// Prints `rate N` (assertions per CPU-second of the process over SECONDS, after a warm-up) for infra/bench/peers.sh.
// Each assertion carries what pkjwt's does: header alg/kid/typ; claims iss, sub, aud, iat, nbf,
// exp and a fresh 128-bit jti from the operating system. Signing is awaited one at a time, as a
// client signing one assertion per token request does.
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import {
  SignJWT,
  importPKCS8,
  exportJWK,
  calculateJwkThumbprint,
  jwtVerify,
} from "jose";

const CLIENT_ID = "bench-client";
const AUDIENCE = "https://as.example.com";
const TYP = "client-authentication+jwt";

const [pemPath, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg);
const key = await importPKCS8(readFileSync(pemPath, "utf8"), "ES256", { extractable: true });
const jwk = await exportJWK(key);
const kid = await calculateJwkThumbprint({ kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y });
const header = { alg: "ES256", kid, typ: TYP };

function one() {
  const iat = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti: randomBytes(16).toString("base64url") })
    .setProtectedHeader(header)
    .setIssuer(CLIENT_ID)
    .setSubject(CLIENT_ID)
    .setAudience(AUDIENCE)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(iat + 60)
    .sign(key);
}

// The JWT must verify with the key (a peer that did less would look fast).
const { createPublicKey } = await import("node:crypto");
await jwtVerify(await one(), createPublicKey(readFileSync(pemPath, "utf8")), {
  audience: AUDIENCE,
  typ: TYP,
});
for (let i = 0; i < 50; i++) await one();
// Runs for SECONDS of wall time, counts per CPU-second of the process (user + system, all of its
// threads), as the Rust bench does, so other processes on a shared machine do not lower the rate.
let n = 0;
const start = performance.now();
const cpuStart = process.cpuUsage();
while (performance.now() - start < seconds * 1000) {
  for (let i = 0; i < 16; i++) await one();
  n += 16;
}
const cpu = process.cpuUsage(cpuStart);
console.log(`rate ${Math.round(n / ((cpu.user + cpu.system) / 1e6))}`);
