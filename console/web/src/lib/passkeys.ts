// Passkeys (WebAuthn) in the browser: the server's options are JSON with base64url binary, which
// the browser's own parsers read (PublicKeyCredential.parse*OptionsFromJSON), and its answers go
// back as PublicKeyCredential.toJSON(), which the server's WebAuthn library reads.

type PublicKeyJson = { publicKey?: unknown };
type Parsers = {
  parseCreationOptionsFromJSON?: (json: unknown) => PublicKeyCredentialCreationOptions;
  parseRequestOptionsFromJSON?: (json: unknown) => PublicKeyCredentialRequestOptions;
};

function parsers(): Parsers | null {
  const constructor = (globalThis as { PublicKeyCredential?: Parsers }).PublicKeyCredential;
  return constructor && constructor.parseCreationOptionsFromJSON && constructor.parseRequestOptionsFromJSON
    ? constructor
    : null;
}

/** Whether this browser can make and use passkeys the way the console asks for them. */
export function passkeysSupported(): boolean {
  return parsers() !== null && typeof navigator !== "undefined" && !!navigator.credentials;
}

function toJson(credential: Credential | null): unknown {
  if (!credential) throw new Error("no passkey was chosen");
  return (credential as unknown as { toJSON(): unknown }).toJSON();
}

/** Makes a passkey from the server's `beginPasskey` options; the answer for `finishPasskey`. */
export async function createPasskey(options: unknown): Promise<unknown> {
  const parse = parsers();
  if (!parse) throw new Error("this browser cannot make passkeys");
  const publicKey = parse.parseCreationOptionsFromJSON!((options as PublicKeyJson).publicKey);
  return toJson(await navigator.credentials.create({ publicKey }));
}

/** Answers a login challenge with a passkey; the answer for `POST /api/login`. */
export async function usePasskey(options: unknown): Promise<unknown> {
  const parse = parsers();
  if (!parse) throw new Error("this browser cannot use passkeys");
  const publicKey = parse.parseRequestOptionsFromJSON!((options as PublicKeyJson).publicKey);
  return toJson(await navigator.credentials.get({ publicKey }));
}
