// The console's check of an agent's direct-path proof, against proofs made the way the agent
// makes them: an RSA key, PKCS#1 v1.5 with SHA-384 (made and signed with WebCrypto here).
import { describe, expect, it } from "vitest";
import { checkProof, fingerprint, spkiOfPkcs1 } from "../src/lib/sessions/pathProof";

const OFFER = "v=0\r\na=fingerprint:sha-256 AA:BB\r\nm=application 9\r\n";
const ANSWER = "v=0\r\na=fingerprint:sha-256 CC:DD\r\n";
const RSA = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-384" };

const base64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));

async function agentKey() {
  const pair = (await crypto.subtle.generateKey(
    { ...RSA, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
    true,
    ["sign", "verify"],
  )) as CryptoKeyPair;
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  // A 2048-bit key's SPKI: 4-byte SEQUENCE header, 15-byte AlgorithmIdentifier, 5-byte BIT
  // STRING header (with its unused-bits byte), then the PKCS#1 key the agent sends.
  const pkcs1 = spki.slice(4 + 15 + 5);
  expect(spkiOfPkcs1(pkcs1)).toEqual(spki);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-384", pkcs1));
  const device = base64(hash).replaceAll("+", "@").replaceAll("/", "$");
  const prove = async (offer: string, answer: string) => {
    const message = new TextEncoder().encode(`tether direct path v1\noffer ${fingerprint(offer)}\nanswer ${fingerprint(answer)}\n`);
    const signature = new Uint8Array(await crypto.subtle.sign(RSA, pair.privateKey, message));
    return { publicKey: base64(pkcs1), signature: base64(signature) };
  };
  return { device, prove };
}

describe("direct-path proof", () => {
  it("accepts the device's own signature over both fingerprints, and nothing else", async () => {
    const agent = await agentKey();
    const proof = await agent.prove(OFFER, ANSWER);
    expect(await checkProof(proof, agent.device, OFFER, ANSWER)).toBeNull();
    // The server answered with a DTLS certificate of its own.
    expect(await checkProof(proof, agent.device, OFFER, ANSWER.replace("CC:DD", "EE:FF"))).toMatch(/does not match/);
    // The server made its own offer to the agent and replays the proof.
    expect(await checkProof(proof, agent.device, OFFER.replace("AA:BB", "12:34"), ANSWER)).toMatch(/does not match/);
    // Another key signing for this device.
    const stranger = await agentKey();
    expect(await checkProof(await stranger.prove(OFFER, ANSWER), agent.device, OFFER, ANSWER)).toMatch(/not this device's/);
    expect(await checkProof(undefined, agent.device, OFFER, ANSWER)).toMatch(/no proof/);
    expect(await checkProof({ publicKey: "%%%", signature: "" }, agent.device, OFFER, ANSWER)).toMatch(/base64/);
    expect(await checkProof(proof, agent.device, "v=0\r\n", ANSWER)).toMatch(/fingerprint/);
  }, 20_000);
});
