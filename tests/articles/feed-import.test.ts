import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeedPoller } from '../../src/articles/feed-poller.ts';
import { importFeed, loadFeed } from '../../src/articles/feed-import.service.ts';
import { createLogger } from '../../src/log.ts';
import { createTestApp, type TestApp } from '../helpers/test-app.ts';

const FIXTURES = new URL('../fixtures/feeds/', import.meta.url);
let t: TestApp;
let server: Server;
let base: string;
const hits = new Map<string, number>();

beforeAll(async () => {
  t = await createTestApp();
  server = createServer((req, res) => {
    const name = (req.url ?? '/').slice(1);
    hits.set(name, (hits.get(name) ?? 0) + 1);
    if (name === 'gone.xml') {
      res.writeHead(404).end('not here');
      return;
    }
    readFile(new URL(name, FIXTURES)).then(
      (body) => res.writeHead(200, { 'content-type': 'application/xml' }).end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await t.close();
});

const importUrl = async (name: string) =>
  importFeed(t.database.db, await loadFeed(`${base}/${name}`));
const rowsFor = (prefix: string) =>
  t.database.db
    .selectFrom('articles')
    .selectAll()
    .where('url', 'like', `${prefix}%`)
    .orderBy('published_at', 'desc')
    .execute();
const articleCount = async () =>
  Number(
    (
      await t.database.db
        .selectFrom('articles')
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );

describe('feed import', () => {
  it('imports an RSS 2.0 feed with authors, image, categories and dates, skipping what cannot be an article', async () => {
    const result = await importUrl('rss.xml');
    expect(result).toMatchObject({ format: 'rss', feed: 'The Newsroom', created: 2, updated: 0 });
    expect(result.skipped).toEqual([{ index: 2, reason: 'has no link' }]);
    const [budget, tom] = await rowsFor('https://news.test/2026/11/');
    expect(budget).toMatchObject({
      url: 'https://news.test/2026/11/budget-passes',
      title: 'Budget passes after all-night session',
      summary: 'The vote was close & late.',
      authors: ['Ann Reporter'],
      image_url: 'https://cdn.news.test/budget.jpg',
      image_alt: 'MPs leaving the chamber',
      image_width: 1200,
      image_height: 800,
      section: 'Politics',
      tags: ['politics', 'budget'],
      source: `feed:${base}/rss.xml`,
    });
    expect(budget!.published_at.toISOString()).toBe('2026-11-25T21:30:00.000Z');
    expect(tom).toMatchObject({
      title: 'Tom & Jerry\'s "big" day 🎉',
      authors: ['Bob Writer'],
      image_url: 'https://cdn.news.test/tom.png',
      image_width: null,
    });
  });

  it('imports the same feed again without duplicates', async () => {
    const before = await articleCount();
    const again = await importUrl('rss.xml');
    expect(again).toMatchObject({ created: 0, updated: 2 });
    expect(await articleCount()).toBe(before);
  });

  it('imports an Atom feed, reading HTML titles and summaries as text', async () => {
    const result = await importUrl('atom.xml');
    expect(result).toMatchObject({ format: 'atom', created: 2, skipped: [] });
    const storm = (await rowsFor('https://news.test/2026/11/storm'))[0]!;
    expect(storm).toMatchObject({
      title: 'Storm closes coast road',
      summary: 'Winds of 100 km/h.',
      authors: ['Cat Correspondent', 'Dan Desk'],
      section: 'Weather',
      tags: ['weather'],
    });
    expect(storm.published_at.toISOString()).toBe('2026-11-25T20:00:00.000Z');
    expect(storm.updated_at?.toISOString()).toBe('2026-11-25T20:15:00.000Z');
    const cycle = (await rowsFor('https://news.test/2026/11/cycle-lanes'))[0]!;
    expect(cycle.summary).toBe('Three new routes.');
    // Without <published> the entry is dated by <updated>.
    expect(cycle.published_at.toISOString()).toBe('2026-11-25T19:00:00.000Z');
  });

  it('resolves relative links against the feed site', async () => {
    const result = await importUrl('relative.xml');
    expect(result.created).toBe(2);
    const urls = (await rowsFor('https://news.test/')).map((row) => row.url);
    expect(urls).toContain('https://news.test/2026/11/library');
    expect(urls).toContain('https://news.test/local/market-day?ref=feed');
    const library = (await rowsFor('https://news.test/2026/11/library'))[0]!;
    expect(library.image_url).toBe('https://news.test/local/images/library-wide.jpg');
    expect(library.summary).toBe('Doors open again.');
  });

  it('reads the encoding the XML declares', async () => {
    const result = await importUrl('latin1.xml');
    expect(result.feed).toBe('Café');
    expect((await rowsFor('https://news.test/cafe'))[0]!.title).toBe('Café crème');
  });

  it('imports nothing from an empty feed, and says so', async () => {
    const before = await articleCount();
    const result = await importUrl('empty.xml');
    expect(result).toMatchObject({ created: 0, updated: 0, skipped: [] });
    expect(await articleCount()).toBe(before);
  });

  it.each([
    ['broken XML', 'broken.xml', 'feed_malformed', /not well-formed XML at line 12/],
    ['an HTML page', 'not-a-feed.html', 'feed_malformed', /not well-formed XML/],
    ['XML that is not a feed', 'not-a-feed.xml', 'feed_unsupported', /neither RSS nor Atom/],
    ['a missing feed', 'gone.xml', 'feed_unreachable', /answered HTTP 404/],
  ])('refuses %s with a clear error and imports nothing', async (_label, name, code, message) => {
    const before = await articleCount();
    const failure = importUrl(name);
    await expect(failure).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
    expect(await articleCount()).toBe(before);
  });

  it('refuses an unreachable host and a missing file', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await expect(loadFeed(`http://127.0.0.1:${port}/feed.xml`)).rejects.toMatchObject({
      code: 'feed_unreachable',
      message: expect.stringMatching(/ECONNREFUSED/),
    });
    await expect(loadFeed('/nonexistent/feed.xml')).rejects.toMatchObject({
      code: 'feed_unreachable',
      message: expect.stringMatching(/ENOENT/),
    });
  });
});

describe('feed polling', () => {
  it('imports each due newsletter feed once per interval and records how it went', async () => {
    const admin = { Authorization: `Bearer ${t.adminToken}` };
    await request(t.app)
      .post('/api/v1/newsletters')
      .set(admin)
      .send({ slug: 'polled', name: 'Polled', feedUrl: `${base}/atom.xml`, feedPollMinutes: 30 })
      .expect(201);
    await request(t.app)
      .post('/api/v1/newsletters')
      .set(admin)
      .send({ slug: 'polled-broken', name: 'Broken', feedUrl: `${base}/broken.xml` })
      .expect(201);
    const poller = new FeedPoller({ db: t.database.db, logger: createLogger('silent') });
    const first = await poller.runOnce();
    expect(first.map((o) => o.slug).sort()).toEqual(['polled', 'polled-broken']);
    expect(first.find((o) => o.slug === 'polled')?.imported).toMatchObject({ format: 'atom' });
    expect(first.find((o) => o.slug === 'polled-broken')?.error).toMatch(/not well-formed/);

    const atomHits = hits.get('atom.xml');
    expect(await poller.runOnce()).toEqual([]);
    expect(hits.get('atom.xml')).toBe(atomHits);

    const status = await request(t.app).get('/api/v1/newsletters/polled-broken').set(admin);
    expect(status.body.feedPolledAt).toEqual(expect.any(String));
    expect(status.body.feedLastError).toMatch(/not well-formed XML/);

    // Changing the feed address makes it due at once.
    await request(t.app)
      .patch('/api/v1/newsletters/polled-broken')
      .set(admin)
      .send({ feedUrl: `${base}/rss.xml` })
      .expect(200);
    const third = await poller.runOnce();
    expect(third.map((o) => [o.slug, o.error])).toEqual([['polled-broken', undefined]]);
    const fixed = await request(t.app).get('/api/v1/newsletters/polled-broken').set(admin);
    expect(fixed.body.feedLastError).toBeNull();
  });
});

describe('import-feed command', () => {
  it('imports a feed file into the configured database and reports counts', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'broadsheet-cli-feed-'));
    const run = promisify(execFile);
    const { DATABASE_URL: _unused, ...inherited } = process.env;
    const env = { ...inherited, DATA_DIR: dataDir, LOG_LEVEL: 'silent' };
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', 'import-feed', 'tests/fixtures/feeds/rss.xml'],
      { env },
    );
    expect(stdout).toContain('rss feed "The Newsroom": 2 created, 0 updated, 1 skipped');
    expect(stdout).toContain('entry 3 skipped: has no link');
    const failed = run(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', 'import-feed', 'tests/fixtures/feeds/broken.xml'],
      { env },
    );
    await expect(failed).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/broadsheet: the feed is not well-formed XML at line 12/),
    });
  });
});
