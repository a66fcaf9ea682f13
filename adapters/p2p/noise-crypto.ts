import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import type { ICryptoInterface } from '@chainsafe/libp2p-noise';

type Bytes = Uint8Array | { subarray(): Uint8Array };

const bytes = (b: Bytes): Uint8Array => (b instanceof Uint8Array ? b : b.subarray());
const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');

/**
 * The Noise handshake's key operations, the same algorithms (X25519, HKDF-SHA256) as
 * libp2p-noise's default for Node, without its costly key import: the default builds a
 * KeyObject from PKCS#8 DER for every Diffie-Hellman (~0.6 ms each with OpenSSL 3 here, three
 * per handshake per side, so ~2.7 ms of the ~10 ms a connection costs each side) and runs HKDF
 * in JavaScript. Here a private key we generated keeps its KeyObject (the static key is used in
 * every handshake, an ephemeral one twice), a public key is imported as JWK (~18 µs instead of
 * ~115 µs), and HKDF is Node's. When a whole cluster joins at once, every peer sets up a
 * connection to every other within seconds; this is most of what starves a small machine then.
 */
export function fastNoiseCrypto(base: ICryptoInterface): ICryptoInterface {
  // private key bytes (base64url) -> KeyObject; bounded: ephemeral keys are used once or twice
  const keys = new Map<string, KeyObject>();
  const remember = (d: string, k: KeyObject): void => {
    keys.set(d, k);
    if (keys.size > 256) keys.delete(keys.keys().next().value!);
  };
  const pair = (k: KeyObject, pub: KeyObject): { publicKey: Uint8Array; privateKey: Uint8Array } => {
    const jwk = k.export({ format: 'jwk' }) as { d: string };
    remember(jwk.d, k);
    const x = (pub.export({ format: 'jwk' }) as { x: string }).x;
    return { publicKey: Buffer.from(x, 'base64url'), privateKey: Buffer.from(jwk.d, 'base64url') };
  };
  return {
    ...base,
    getHKDF(ck, ikm) {
      const okm = new Uint8Array(hkdfSync('sha256', ikm, ck, new Uint8Array(0), 96));
      return [okm.subarray(0, 32), okm.subarray(32, 64), okm.subarray(64, 96)];
    },
    generateX25519KeyPair() {
      const { privateKey, publicKey } = generateKeyPairSync('x25519');
      return pair(privateKey, publicKey);
    },
    generateX25519KeyPairFromSeed(seed) {
      const p = base.generateX25519KeyPairFromSeed(seed);
      remember(b64u(p.privateKey), createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64u(p.privateKey), x: b64u(p.publicKey) }, format: 'jwk' }));
      return p;
    },
    generateX25519SharedKey(privateKey, publicKey) {
      const priv = bytes(privateKey);
      const pub = bytes(publicKey);
      const k = keys.get(b64u(priv));
      // a key we did not make (not seen in practice): the default path
      if (!k) return base.generateX25519SharedKey(priv, pub);
      return diffieHellman({ privateKey: k, publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(pub) }, format: 'jwk' }) });
    },
  };
}
