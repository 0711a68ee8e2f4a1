// The console's check of the agent's direct-path proof (`common/src/relay/identity.rs` explains
// it): the agent signs both DTLS fingerprints of the session with its agent key, and the console
// takes the answer only if that key is the device's (the device id is the key's SHA-384, in
// MeshCentral's base64) and the signature holds. So the server, which carries the signalling,
// cannot answer in the agent's place with a certificate of its own.

export interface PathProof {
  /** PKCS#1 `RSAPublicKey` DER, base64. */
  publicKey: string;
  /** RSA PKCS#1 v1.5 SHA-384 over the proof message, base64. */
  signature: string;
}

/** The first `a=fingerprint:` value of an SDP. */
export function fingerprint(sdp: string): string | null {
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith("a=fingerprint:")) return line.slice("a=fingerprint:".length).trim();
  }
  return null;
}

/** The bytes the agent signs, as `proof_message` in identity.rs. */
export function proofMessage(offerSdp: string, answerSdp: string): Uint8Array<ArrayBuffer> | null {
  const [offer, answer] = [fingerprint(offerSdp), fingerprint(answerSdp)];
  if (!offer || !answer) return null;
  return new TextEncoder().encode(`tether direct path v1\noffer ${offer}\nanswer ${answer}\n`);
}

/** `null` when `proof` is `device`'s key signing these two fingerprints; else why not. */
export async function checkProof(proof: unknown, device: string, offerSdp: string, answerSdp: string): Promise<string | null> {
  if (!isProof(proof)) return "the answer carries no proof of the device's identity";
  const message = proofMessage(offerSdp, answerSdp);
  if (!message) return "the offer or the answer has no DTLS fingerprint";
  let key: Uint8Array<ArrayBuffer>;
  let signature: Uint8Array<ArrayBuffer>;
  try {
    key = fromBase64(proof.publicKey);
    signature = fromBase64(proof.signature);
  } catch {
    return "the proof is not valid base64";
  }
  const id = meshBase64(new Uint8Array(await crypto.subtle.digest("SHA-384", key)));
  if (id !== device) return "the proof is signed by a key that is not this device's";
  try {
    const algorithm = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-384" };
    const imported = await crypto.subtle.importKey("spki", spkiOfPkcs1(key), algorithm, false, ["verify"]);
    if (await crypto.subtle.verify(algorithm, imported, signature, message)) return null;
  } catch {
    return "the proof's key is not an RSA public key";
  }
  return "the signature does not match the session's DTLS fingerprints";
}

function isProof(value: unknown): value is PathProof {
  const proof = value as PathProof | null;
  return typeof proof === "object" && proof !== null && typeof proof.publicKey === "string" && typeof proof.signature === "string";
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** MeshCentral's base64: `@` for `+`, `$` for `/` (`mesh_base64` in ids.rs). */
function meshBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "@").replaceAll("/", "$");
}

/**
 * WebCrypto imports RSA public keys as SubjectPublicKeyInfo only: wrap the PKCS#1 key in it
 * (SEQUENCE { AlgorithmIdentifier rsaEncryption NULL, BIT STRING { 0 unused bits, key } }).
 */
export function spkiOfPkcs1(pkcs1: Uint8Array): Uint8Array<ArrayBuffer> {
  const rsaEncryption = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
  const bitString = der(0x03, [0x00, ...pkcs1]);
  return new Uint8Array(der(0x30, [...rsaEncryption, ...bitString]));
}

function der(tag: number, body: number[]): number[] {
  const n = body.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return [tag, ...length, ...body];
}
