import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../helpers/browser.ts';
import { createTestApp, type TestApp } from '../helpers/test-app.ts';
import { decodePng, solidPng, type Pixels } from './png.ts';

const PHOTO: [number, number, number] = [200, 40, 40];
const SHOTS = join(tmpdir(), 'broadsheet-visual');

let t: TestApp;
let app: Server;
let photos: Server;
let browser: Browser;
let previewUrl: string;

const listen = (server: Server) =>
  new Promise<string>((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    ),
  );

beforeAll(async () => {
  t = await createTestApp();
  photos = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'image/png' }).end(solidPng(120, 80, PHOTO));
  });
  const photoBase = await listen(photos);
  app = createServer(t.app);
  const base = await listen(app);
  const admin = { Authorization: `Bearer ${t.adminToken}` };
  await request(t.app)
    .post('/api/v1/newsletters')
    .set(admin)
    .send({ slug: 'visual', name: 'Morning Briefing', digestWindow: 'hours' })
    .expect(201);
  const articles = [1, 2, 3, 4].map((n) => ({
    url: `https://news.test/2026/story-${n}`,
    title: n === 1 ? 'Tom & Jerry’s “big” day <script> 🎉' : `Story ${n} headline`,
    summary: 'Councillors met late into the night to settle the budget. '.repeat(3),
    authors: ['Ann Reporter'],
    imageUrl: `${photoBase}/photo-${n}.png`,
    imageAlt: `Photo ${n}`,
    imageWidth: 1200,
    imageHeight: 800,
    section: 'Politics',
    publishedAt: new Date(Date.now() - n * 600_000).toISOString(),
  }));
  articles[0]!.title = 'Tom &amp; Jerry’s “big” day &lt;script&gt; 🎉';
  await request(t.app)
    .post('/api/v1/articles')
    .set({ Authorization: `Bearer ${t.editorToken}` })
    .send({ articles })
    .expect(200);
  previewUrl = `${base}/api/v1/newsletters/visual/digest?format=html`;
  browser = await launchChromium();
  await mkdir(SHOTS, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => (app ? app.close(resolve) : resolve(undefined)));
  await new Promise((resolve) => (photos ? photos.close(resolve) : resolve(undefined)));
  await t?.close();
});

function look(pixels: Pixels) {
  const counts = new Map<number, number>();
  let photo = 0;
  for (let i = 0; i < pixels.data.length; i += 4) {
    const [r, g, b] = [pixels.data[i]!, pixels.data[i + 1]!, pixels.data[i + 2]!];
    counts.set((r << 16) | (g << 8) | b, (counts.get((r << 16) | (g << 8) | b) ?? 0) + 1);
    if (Math.abs(r - PHOTO[0]) < 8 && Math.abs(g - PHOTO[1]) < 8 && Math.abs(b - PHOTO[2]) < 8) {
      photo += 1;
    }
  }
  const total = pixels.width * pixels.height;
  const background = Math.max(...counts.values());
  return { colours: counts.size, notBackground: 1 - background / total, photoShare: photo / total };
}

describe('the digest preview in headless Chromium', () => {
  it.each([
    [600, 900],
    [375, 740],
  ])(
    'renders at %i px wide: not blank, photos drawn, nothing wider than the screen',
    async (width, height) => {
      const page = await browser.newPage({
        viewport: { width, height },
        extraHTTPHeaders: { Authorization: `Bearer ${t.editorToken}` },
      });
      const response = await page.goto(previewUrl, { waitUntil: 'load' });
      expect(response?.status()).toBe(200);
      expect(await page.getByText('Tom & Jerry’s “big” day <script> 🎉').first().isVisible()).toBe(
        true,
      );
      expect(await page.getByRole('link', { name: 'Unsubscribe' }).isVisible()).toBe(true);
      const layout = await page.evaluate(() => ({
        scrollWidth: document.documentElement.scrollWidth,
        images: [...document.images].map((img) => ({
          loaded: img.complete && img.naturalWidth > 0,
          width: img.getBoundingClientRect().width,
          alt: img.alt,
        })),
      }));
      expect(layout.scrollWidth).toBeLessThanOrEqual(width);
      expect(layout.images).toHaveLength(4);
      for (const image of layout.images) {
        expect(image.loaded).toBe(true);
        expect(image.width).toBeGreaterThan(width * 0.7);
        expect(image.alt).toMatch(/^Photo \d$/);
      }

      const shot = await page.screenshot({ fullPage: true });
      await writeFile(join(SHOTS, `digest-${width}.png`), shot);
      const pixels = decodePng(shot);
      expect(pixels.width).toBe(width);
      const seen = look(pixels);
      expect(seen.colours).toBeGreaterThan(50);
      expect(seen.notBackground).toBeGreaterThan(0.2);
      expect(seen.photoShare).toBeGreaterThan(0.1);
      await page.close();
    },
  );
});
