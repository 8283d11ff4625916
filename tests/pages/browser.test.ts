import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../helpers/browser.ts';
import {
  createReaderFixture,
  linkIn,
  type ReaderFixture,
} from '../subscriptions/reader-fixture.ts';

let t: ReaderFixture;
let server: Server;
let browser: Browser;
let page: Page;
let base: string;

beforeAll(async () => {
  t = await createReaderFixture();
  await t.newsletter('morning-briefing', 'Morning Briefing', { description: 'The day ahead' });
  await t.newsletter('weekly-explainer', 'The Weekly Explainer');
  server = await new Promise<Server>((resolve) => {
    const listening = t.app.listen(0, '127.0.0.1', () => resolve(listening));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 375, height: 740 }, javaScriptEnabled: false });
});
afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => server?.close(resolve));
  await t?.close();
});

describe('a reader in a real browser, without JavaScript, on a phone-sized screen', () => {
  it('subscribes from the demo page, taking the typo suggestion', async () => {
    await page.goto(`${base}/`);
    expect(await page.locator('h1').textContent()).toBe('Subscribe to our newsletters');
    await page.fill('input[name=email]', 'phone.reader@gmial.com');
    await page.check('input[value=morning-briefing]');
    await page.check('input[value=weekly-explainer]');
    // The honeypot is off screen for people; robots that fill every field still find it.
    const honeypot = await page.locator('input[name=website]').boundingBox();
    expect(honeypot!.x + honeypot!.width).toBeLessThan(0);
    await page.click('button:has-text("Subscribe")');
    await page.waitForSelector('.message.success');
    expect(await page.textContent('.message.success')).toContain('confirmation email');
    expect(await page.textContent('form.card p')).toContain('Did you mean phone.reader@gmail.com?');

    await page.click('button:has-text("Yes, use phone.reader@gmail.com")');
    await page.waitForSelector('.message.success');
    const mails = await t.deliver();
    expect(mails.map((mail) => mail.envelope.to[0])).toEqual([
      'phone.reader@gmial.com',
      'phone.reader@gmail.com',
    ]);
  });

  it('confirms with the button on the page the mail links to', async () => {
    const mail = t.smtp.messages.find((m) => m.envelope.to[0] === 'phone.reader@gmail.com')!;
    await page.goto(`${base}${linkIn(mail, 'confirm')}`);
    expect(await page.textContent('h1')).toBe('Confirm your subscription');
    await page.click('button:has-text("Confirm my subscription")');
    await page.waitForSelector('text=You are subscribed');
    expect(await page.textContent('main')).toContain('Morning Briefing');
    expect(await page.textContent('main')).toContain('The Weekly Explainer');
  });

  it('unsubscribes and then rejoins from the preferences page', async () => {
    const welcomes = (await t.deliver()).filter((m) => m.parsed.subject?.startsWith('Welcome'));
    const morning = welcomes.find((m) => m.parsed.subject?.includes('Morning'))!;
    await page.goto(`${base}${linkIn(morning, 'unsubscribe')}`);
    await page.click('button:has-text("Unsubscribe from Morning Briefing")');
    await page.waitForSelector('text=You are unsubscribed');
    expect(await page.textContent('.message.success')).toContain('Morning Briefing');

    await page.goto(`${base}${linkIn(morning, 'preferences')}`);
    expect(await page.isChecked('input[value=morning-briefing]')).toBe(false);
    expect(await page.isChecked('input[value=weekly-explainer]')).toBe(true);
    await page.check('input[value=morning-briefing]');
    await page.click('button:has-text("Save my choices")');
    await page.waitForSelector('text=Your choices are saved');
    expect(await page.isChecked('input[value=morning-briefing]')).toBe(true);
  });
});
