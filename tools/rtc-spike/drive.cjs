// Drive Debian's Chromium through the spike page: print the video capabilities, run one
// test (dc | video | bwe), print its JSON result. Runs inside the browser's namespace.
//   node drive.cjs MODE URL [SECONDS]
// playwright-core: `npm install playwright-core` here, or PLAYWRIGHT_CORE=/path/to/playwright-core.
'use strict';
const { chromium } = require(process.env.PLAYWRIGHT_CORE || 'playwright-core');

(async () => {
  const [mode, url, seconds = '20'] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: false, // the flag below asks for the new headless mode explicitly
    // SPIKE_MDNS=1 leaves Chromium's mDNS (.local) host candidates on, to see how str0m copes.
    args: ['--headless=new', '--no-sandbox',
      ...(process.env.SPIKE_MDNS ? [] : ['--disable-features=WebRtcHideLocalIpsWithMdns']),
      '--autoplay-policy=no-user-gesture-required',
      // crypto.subtle (SHA-256) needs a secure context; the page is plain HTTP on the veth.
      `--unsafely-treat-insecure-origin-as-secure=${new URL(url).origin}`],
  });
  let failed = false;
  try {
    const page = await browser.newPage();
    page.on('console', m => console.error(`page: ${m.text()}`));
    await page.goto(url);
    const caps = await page.evaluate(() => videoCaps());
    console.log(JSON.stringify({ chromium: browser.version(), videoCaps: caps }));
    page.setDefaultTimeout(0);
    const result = mode === 'dc'
      ? await page.evaluate(() => runDc())
      : await page.evaluate(s => runVideo(s), Number(seconds));
    console.log(JSON.stringify(result));
    if (mode === 'dc') failed = !(result.up.ok && result.down.ok);
    else failed = !(result.last.framesDecoded > 0);
  } catch (e) {
    console.error(e);
    failed = true;
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
})();
