import { sql } from 'kysely';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDigest } from '../../src/digests/digest.service.ts';
import { MailTemplates } from '../../src/digests/mail-templates.ts';
import { createTestApp, type TestApp } from '../helpers/test-app.ts';

let t: TestApp;
const admin = () => ({ Authorization: `Bearer ${t.adminToken}` });
const editor = () => ({ Authorization: `Bearer ${t.editorToken}` });
const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3600_000).toISOString();
const ids: Record<string, number> = {};

async function newsletter(slug: string, settings: Record<string, unknown> = {}) {
  const res = await request(t.app)
    .post('/api/v1/newsletters')
    .set(admin())
    .send({ slug, name: `The ${slug}`, ...settings });
  expect(res.status).toBe(201);
  return res.body;
}

beforeAll(async () => {
  t = await createTestApp({ ARCHIVE_URL: 'https://news.test/archive/{newsletter}' });
  const articles = [
    { key: 'world-new', section: 'World', tags: [], at: hoursAgo(1) },
    { key: 'sport-new', section: 'Sport', tags: ['Football'], at: hoursAgo(2) },
    { key: 'politics-election', section: 'Politics', tags: ['election'], at: hoursAgo(3) },
    { key: 'world-old', section: 'World', tags: [], at: hoursAgo(30) },
    {
      key: 'future',
      section: 'World',
      tags: [],
      at: new Date(Date.now() + 3600_000).toISOString(),
    },
  ].map((a) => ({
    url: `https://news.test/${a.key}`,
    title: `Story ${a.key}`,
    summary: `About ${a.key}`,
    section: a.section,
    tags: a.tags,
    publishedAt: a.at,
  }));
  const res = await request(t.app).post('/api/v1/articles').set(editor()).send({ articles });
  expect(res.status).toBe(200);
  for (const a of res.body.articles) ids[a.url.replace('https://news.test/', '')] = a.id;
});
afterAll(() => t.close());

const preview = (slug: string, query = 'format=json') =>
  request(t.app).get(`/api/v1/newsletters/${slug}/digest?${query}`).set(editor());

describe('newsletter digest settings', () => {
  it('are stored and read back in camelCase with defaults', async () => {
    const created = await newsletter('settings', {
      digestSections: ['World'],
      digestTags: ['Election'],
      digestMaxArticles: 5,
      digestWindow: 'hours',
      digestWindowHours: 48,
      digestSubject: '{{ newsletter.name }}: {{ headline }}',
      feedUrl: 'https://news.test/feed.xml',
      feedPollMinutes: 15,
    });
    expect(created).toMatchObject({
      digestSections: ['World'],
      digestTags: ['election'],
      digestMaxArticles: 5,
      digestWindow: 'hours',
      digestWindowHours: 48,
      feedUrl: 'https://news.test/feed.xml',
      feedPollMinutes: 15,
      feedPolledAt: null,
    });
    const plain = await newsletter('plain');
    expect(plain).toMatchObject({
      digestSections: [],
      digestTags: [],
      digestMaxArticles: 10,
      digestWindow: 'since_last_send',
      digestWindowHours: 24,
      digestSubject: null,
      feedUrl: null,
    });
    const patched = await request(t.app)
      .patch('/api/v1/newsletters/plain')
      .set(admin())
      .send({ digestTags: ['Sport'], digestMaxArticles: 3 });
    expect(patched.body).toMatchObject({ digestTags: ['sport'], digestMaxArticles: 3 });
  });

  it.each([
    ['a max of 0', { digestMaxArticles: 0 }],
    ['a max of 51', { digestMaxArticles: 51 }],
    ['an unknown window', { digestWindow: 'weekly' }],
    ['a feed that is not http', { feedUrl: 'file:///etc/passwd' }],
    ['a poll interval of a minute', { feedPollMinutes: 1 }],
    ['markup in a section', { digestSections: ['<b>World</b>'] }],
    ['a broken subject template', { digestSubject: '{{ headline ' }],
  ])('refuses %s', async (_label, settings) => {
    const res = await request(t.app)
      .post('/api/v1/newsletters')
      .set(admin())
      .send({ slug: 'refused', name: 'x', ...settings });
    expect(res.status).toBe(400);
  });
});

describe('article selection', () => {
  it('takes everything of the window, newest first, never a future article', async () => {
    await newsletter('everything', { digestWindow: 'hours', digestWindowHours: 24 });
    const res = await preview('everything');
    expect(res.status).toBe(200);
    expect(res.body.articleIds).toEqual([
      ids['world-new'],
      ids['sport-new'],
      ids['politics-election'],
    ]);
  });

  it('keeps to the newsletter sections or tags (either one qualifies)', async () => {
    await newsletter('world-and-election', {
      digestSections: ['world'],
      digestTags: ['Election'],
      digestWindow: 'hours',
      digestWindowHours: 48,
    });
    const res = await preview('world-and-election');
    expect(res.body.articleIds).toEqual([
      ids['world-new'],
      ids['politics-election'],
      ids['world-old'],
    ]);
  });

  it('stops at the maximum number of articles', async () => {
    await newsletter('two', { digestMaxArticles: 2, digestWindow: 'hours', digestWindowHours: 48 });
    const res = await preview('two');
    expect(res.body.articleIds).toEqual([ids['world-new'], ids['sport-new']]);
  });

  it('counts "since the last send" from a date the caller gives', async () => {
    await newsletter('since', { digestWindow: 'since_last_send' });
    const digest = await buildDigest(
      t.database.db,
      { templates: new MailTemplates(), config: t.config },
      'since',
      { since: new Date(hoursAgo(2.5)) },
    );
    expect(digest.articleIds).toEqual([ids['world-new'], ids['sport-new']]);
  });

  it('reads the last send itself when the sends table exists, ignoring drafts and cancelled ones', async () => {
    const created = await newsletter('after-send', { digestWindow: 'since_last_send' });
    const present = await sql<{
      present: boolean;
    }>`select to_regclass('sends') is not null as present`.execute(t.database.db);
    if (!present.rows[0]?.present) return;
    const row = await t.database.db
      .selectFrom('newsletters')
      .select('id')
      .where('slug', '=', created.slug)
      .executeTakeFirstOrThrow();
    const insertSend = (status: string, at: string) =>
      sql`insert into sends (newsletter_id, status, subject, html, text, created_at)
          values (${row.id}, ${status}, 's', 'h', 't', ${at})`.execute(t.database.db);
    await insertSend('sent', hoursAgo(1.5));
    await insertSend('cancelled', hoursAgo(0.5));
    await insertSend('draft', hoursAgo(0.2));
    const res = await preview('after-send');
    expect(res.body.articleIds).toEqual([ids['world-new']]);
  });

  it('falls back to the last N hours before the first send', async () => {
    await newsletter('first-send', { digestWindow: 'since_last_send', digestWindowHours: 2 });
    const res = await preview('first-send');
    expect(res.body.articleIds).toEqual([ids['world-new']]);
  });

  it('answers 422 nothing_to_send when no article qualifies', async () => {
    await newsletter('quiet', { digestSections: ['Arts'] });
    const res = await preview('quiet');
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('nothing_to_send');
    expect(res.body.error.message).toMatch(
      /no article was published in the last 24 hours in sections arts|sections Arts/i,
    );
  });

  it('refuses to build a digest for an archived newsletter', async () => {
    await newsletter('retired', { digestWindow: 'hours' });
    await request(t.app).delete('/api/v1/newsletters/retired').set(admin()).expect(200);
    const res = await preview('retired');
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('newsletter_archived');
  });

  it('takes the editor’s own choice of articles in their order', async () => {
    await newsletter('chosen', { digestSections: ['Arts'] });
    const res = await preview(
      'chosen',
      `format=json&articleIds=${ids['world-old']},${ids['sport-new']}`,
    );
    expect(res.status).toBe(200);
    expect(res.body.articleIds).toEqual([ids['world-old'], ids['sport-new']]);
    const missing = await preview('chosen', `format=json&articleIds=${ids['world-old']},999999`);
    expect(missing.status).toBe(422);
    expect(missing.body.error.code).toBe('article_not_found');
    expect(missing.body.error.message).toContain('999999');
  });
});

describe('digest preview', () => {
  beforeAll(async () => {
    await newsletter('preview', { digestWindow: 'hours', digestWindowHours: 24 });
  });

  it('serves HTML an editor can open, with sample personal links and a strict policy', async () => {
    const res = await preview('preview', 'format=html');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
    expect(res.text).toContain('href="https://news.test/world-new"');
    expect(res.text).toContain('href="http://news.test/unsubscribe/preview-sample-link"');
    expect(res.text).toContain('href="http://news.test/preferences/preview-sample-link"');
    expect(res.text).toContain('href="https://news.test/archive/preview"');
    expect(res.text).not.toContain('%%{');
  });

  it('serves the text part and the MJML source', async () => {
    const text = await preview('preview', 'format=text');
    expect(text.headers['content-type']).toMatch(/^text\/plain/);
    expect(text.text).toContain('1. Story world-new');
    expect(text.text).toContain('Unsubscribe: http://news.test/unsubscribe/preview-sample-link');
    const mjml = await preview('preview', 'format=mjml');
    expect(mjml.text).toMatch(/^<mjml lang="en">/);
    expect(mjml.text).toContain('%%{unsubscribe_url}%%');
  });

  it('matches what buildDigest gives a send', async () => {
    const json = await preview('preview');
    const digest = await buildDigest(
      t.database.db,
      { templates: new MailTemplates(), config: t.config },
      'preview',
    );
    expect(json.body.subject).toBe(digest.subject);
    expect(json.body.articleIds).toEqual(digest.articleIds);
    expect(json.body.htmlBytes).toBe(Buffer.byteLength(digest.html));
  });

  it.each([
    ['an unknown format', 'format=pdf', 400],
    ['ids that are not numbers', 'articleIds=1,abc', 400],
    ['an unknown parameter', 'colour=red', 400],
  ])('refuses %s', async (_label, query, status) => {
    const res = await preview('preview', query);
    expect(res.status).toBe(status);
  });

  it('answers 404 for an unknown newsletter and 401 without a token', async () => {
    expect((await preview('nope')).status).toBe(404);
    expect((await request(t.app).get('/api/v1/newsletters/preview/digest')).status).toBe(401);
  });
});
