import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const USUAL_PLACES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/**
 * A headless Chromium from CHROMIUM_PATH or the usual places. Page tests need a real browser, so
 * without one they fail, saying what to install, rather than pass having looked at nothing.
 */
export async function launchChromium(): Promise<Browser> {
  const executablePath =
    process.env.CHROMIUM_PATH ?? USUAL_PLACES.find((place) => existsSync(place));
  if (!executablePath) {
    throw new Error(
      'the page tests drive a real browser and found none: install Chromium (Debian: apt-get install chromium) or set CHROMIUM_PATH',
    );
  }
  return chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}
