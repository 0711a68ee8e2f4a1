// The local clipboard through the async Clipboard API, which browsers grant only in secure
// contexts, with the page focused, and (for reading) after the user allowed it. Failures are
// answers, not errors: the viewer then offers a text box instead.

/** The local clipboard's text, or null when the browser will not give it. */
export async function readLocalClipboard(): Promise<string | null> {
  try {
    return (await navigator.clipboard?.readText()) ?? null;
  } catch {
    return null;
  }
}

/** Puts text on the local clipboard; false when the browser refused. */
export async function writeLocalClipboard(text: string): Promise<boolean> {
  try {
    if (!navigator.clipboard) return false;
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}
